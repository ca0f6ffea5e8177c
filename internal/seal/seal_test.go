package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyFileLifecycle(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, KeyFileName)

	if _, _, err := LoadOrCreateKey(path, false); err == nil {
		t.Fatal("missing key with create=false: want error")
	}
	box, created, err := LoadOrCreateKey(path, true)
	if err != nil || !created {
		t.Fatalf("create: %v created=%v", err, created)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	sealed, err := box.Seal([]byte("hunter2"), []byte("product:1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("hunter2")) {
		t.Fatal("sealed bytes contain the clear text")
	}

	again, created, err := LoadOrCreateKey(path, true)
	if err != nil || created {
		t.Fatalf("reuse: %v created=%v", err, created)
	}
	pt, err := again.Open(sealed, []byte("product:1"))
	if err != nil || string(pt) != "hunter2" {
		t.Fatalf("open with reloaded key: %q %v", pt, err)
	}
	if _, err := again.Open(sealed, []byte("product:2")); !errors.Is(err, ErrOpen) {
		t.Fatalf("open bound to another product: %v, want ErrOpen", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := again.Open(sealed, []byte("product:1")); !errors.Is(err, ErrOpen) {
		t.Fatalf("tampered: %v, want ErrOpen", err)
	}
}

func TestCorruptKeyIsNeverReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), KeyFileName)
	if err := os.WriteFile(path, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := LoadOrCreateKey(path, true)
	if err == nil || !strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), path) {
		t.Fatalf("corrupt key: %v", err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != "not a key\n" {
		t.Fatal("corrupt key file was overwritten")
	}
}

func TestWrongKey(t *testing.T) {
	a, _ := NewBox(bytes.Repeat([]byte{1}, 32))
	b, _ := NewBox(bytes.Repeat([]byte{2}, 32))
	s, _ := a.Seal([]byte("x"), nil)
	if _, err := b.Open(s, nil); !errors.Is(err, ErrOpen) {
		t.Fatalf("got %v", err)
	}
}
