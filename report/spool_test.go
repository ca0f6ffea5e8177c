package report

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/anonymize"
	"github.com/usagemeter/usagemeter/collectors"
)

// TestStaleSpoolsRemoved: the work directory a crashed build left (nobody
// holds it) is removed by the next build; one another build holds, and one
// just created, are not; the build's own is removed by Close.
func TestStaleSpoolsRemoved(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	f.span(t, f.vc, collectors.MetricVMVRAM, "vm/1", march.Start, march.End, 1024, "MB", "e", map[string]string{"host": "h1"})
	old := time.Now().Add(-2 * time.Hour)
	mk := func(name string, mtime time.Time) string {
		d := filepath.Join(f.dir, name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, FileVMs), []byte("spooled rows\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(d, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return d
	}
	crashed := mk(".build-crashed", old)
	held := mk(".build-held", old)
	fresh := mk(".build-fresh", time.Now())
	other := mk("not-a-build", old)
	lock, ok, err := lockDir(held)
	if err != nil || !ok {
		t.Fatalf("locking %s: %v %v", held, ok, err)
	}
	defer lock.Close()

	b, _, err := f.generator(t, anonymize.ModeHashed, secretA).Build(context.Background(), march)
	if err != nil {
		t.Fatal(err)
	}
	exists := func(d string) bool { _, err := os.Stat(d); return err == nil }
	if exists(crashed) {
		t.Errorf("%s left by a crashed build is still there", crashed)
	}
	for _, d := range []string{held, fresh, other, b.dir} {
		if !exists(d) {
			t.Errorf("%s was removed", d)
		}
	}
	// The build's own directory is held: another build leaves it.
	if removed := RemoveStaleSpools(f.dir, time.Now().Add(time.Hour)); !slices.Equal(removed, []string{fresh}) {
		t.Errorf("removed %v during the build, want only %s", removed, fresh)
	}
	own := b.dir
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if exists(own) {
		t.Errorf("%s remains after Close", own)
	}
	lock.Close()
	if removed := RemoveStaleSpools(f.dir, time.Now().Add(time.Hour)); !slices.Equal(removed, []string{held}) {
		t.Errorf("removed %v once released, want %s", removed, held)
	}
}

// TestTSVRow: tabs and line breaks inside a field become spaces, a field a
// spreadsheet would take for a formula is made text, others are as given.
func TestTSVRow(t *testing.T) {
	var w tsv
	w.row("a\tb", "line\nbreak\r", "=SUM(A1)", "+1", "-2", "@x", "", "héllo", "x=1")
	want := "a b\tline break \t'=SUM(A1)\t'+1\t'-2\t'@x\t\théllo\tx=1\n"
	if got := w.String(); got != want {
		t.Errorf("row %q, want %q", got, want)
	}
}
