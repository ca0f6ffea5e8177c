package report

import (
	"archive/tar"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
)

// TestTarGzOfSpooledFiles: the files spooled while the bundle was built
// (history, hourly totals) are compressed as they are written and copied
// into the .tar.gz as gzip members of their own. The tar inside is byte for
// byte archive/tar's for the same files, and GNU tar and gzip read the
// archive (several members, one stream) to the same files.
func TestTarGzOfSpooledFiles(t *testing.T) {
	b := seededBundle(t)
	spooled := 0
	for _, bf := range b.files {
		if bf.gz != "" {
			spooled++
		}
	}
	if spooled < 3 {
		t.Fatalf("%d files compressed while spooled, want the history and hourly files", spooled)
	}
	tgz, err := b.TarGz(2)
	if err != nil {
		t.Fatal(err)
	}
	got := gunzip(t, tgz)

	// The same files through archive/tar.
	files := tarFiles(t, tgz)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var want bytes.Buffer
	tw := tar.NewWriter(&want)
	mtime := march.Start.UTC()
	dirs := map[string]bool{}
	for _, n := range names {
		if d := filepath.Dir(n); d != "." && !dirs[d] {
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
				t.Fatal(err)
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(files[n])), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("the tar inside the bundle (%d bytes) differs from archive/tar's for its files (%d bytes)", len(got), want.Len())
	}

	// GNU tar, through gzip.
	dir := t.TempDir()
	path := filepath.Join(dir, "bundle.tar.gz")
	if err := os.WriteFile(path, tgz, 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "x")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command("tar", "-xzf", path, "-C", out).CombinedOutput(); err != nil {
		t.Fatalf("tar -xzf: %v: %s", err, msg)
	}
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(out, n))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, files[n]) {
			t.Errorf("%s: GNU tar extracted %d bytes, the bundle holds %d", n, len(data), len(files[n]))
		}
	}
}
