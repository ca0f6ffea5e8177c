package anonymize

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

func testSecret(b byte) []byte { return bytes.Repeat([]byte{b}, SecretSize) }

func mustNew(t *testing.T, mode Mode, secret []byte) *Anonymizer {
	t.Helper()
	a, err := New(mode, secret)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// RFC 2202 section 3, test cases 6 and 7: the only HMAC-SHA1 vectors whose
// key (80 bytes of 0xaa) is long enough for an anonymisation secret.
func TestNameRFC2202(t *testing.T) {
	key := bytes.Repeat([]byte{0xaa}, 80)
	a := mustNew(t, ModeHashed, key)
	for _, tc := range []struct{ data, want string }{
		{"Test Using Larger Than Block-Size Key - Hash Key First", "aa4ae5e15272d00e95705637ce8a3b55ed402112"},
		{"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data", "e8e99d0f45237d786d6bbaa7965c7808bbff1a91"},
	} {
		if got := a.Name(KindVM, tc.data); got != tc.want {
			t.Errorf("Name(%q) = %s, want %s", tc.data, got, tc.want)
		}
	}
}

func TestNameHashed(t *testing.T) {
	a := mustNew(t, ModeHashed, testSecret(1))
	h := a.Name(KindVM, "web-01")
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(h) {
		t.Fatalf("hash %q is not 40 lowercase hex digits", h)
	}
	if again := a.Name(KindVM, "web-01"); again != h {
		t.Errorf("same name hashed twice: %s then %s", h, again)
	}
	if other := a.Name(KindFolder, "web-01"); other != h {
		t.Errorf("kind changed the hash: vm %s, folder %s", h, other)
	}
	if other := a.Name(KindVM, "web-02"); other == h {
		t.Errorf("two names hashed to %s", h)
	}
	b := mustNew(t, ModeHashed, testSecret(2))
	if other := b.Name(KindVM, "web-01"); other == h {
		t.Errorf("two secrets gave the same hash %s", h)
	}
	b2 := mustNew(t, ModeHashed, testSecret(2))
	if b.Name(KindVM, "web-01") != b2.Name(KindVM, "web-01") {
		t.Error("same secret, different Anonymizers: different hashes")
	}
	if got := a.Name(KindFolder, ""); got != "" {
		t.Errorf("empty name hashed to %q", got)
	}

	m := a.Map()
	want := map[string]Entry{
		h:                        {KindVM, "web-01"}, // first kind wins
		a.Name(KindVM, "web-02"): {KindVM, "web-02"},
	}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Errorf("Map() = %v, want %v", m, want)
	}
	m[h] = Entry{"x", "y"}
	if a.Map()[h].Value != "web-01" {
		t.Error("Map() returned the Anonymizer's own map, not a copy")
	}
}

func TestNameRedactedAndNone(t *testing.T) {
	r := mustNew(t, ModeRedacted, nil)
	if got := r.Name(KindHost, "esx01.example.com"); got != Redacted {
		t.Errorf("redacted: %q", got)
	}
	if got := r.Name(KindHost, ""); got != "" {
		t.Errorf("redacted empty: %q", got)
	}
	n := mustNew(t, ModeNone, nil)
	if got := n.Name(KindHost, "esx01.example.com"); got != "esx01.example.com" {
		t.Errorf("none: %q", got)
	}
	if len(r.Map())+len(n.Map()) != 0 {
		t.Error("reverse map filled outside hashed mode")
	}
	if r.Mode() != ModeRedacted || n.Mode() != ModeNone {
		t.Error("Mode() does not report the mode")
	}
}

func TestNewAndParseModeErrors(t *testing.T) {
	for _, tc := range []struct {
		mode   Mode
		secret []byte
		want   string
	}{
		{ModeHashed, nil, "secret is 0 bytes, want at least 32"},
		{ModeHashed, make([]byte, 31), "secret is 31 bytes, want at least 32"},
		{"", testSecret(1), `unknown anonymisation mode ""`},
		{"sha1", testSecret(1), `unknown anonymisation mode "sha1"`},
	} {
		_, err := New(tc.mode, tc.secret)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q, %d bytes) error %v, want %q", tc.mode, len(tc.secret), err, tc.want)
		}
	}
	for in, want := range map[string]Mode{"": ModeHashed, "hashed": ModeHashed, "redacted": ModeRedacted, "none": ModeNone} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseMode("clear"); err == nil || !strings.Contains(err.Error(), `"clear"`) {
		t.Errorf("ParseMode(clear) error %v", err)
	}
}

func TestReverse(t *testing.T) {
	a := mustNew(t, ModeHashed, testSecret(3))
	names := []struct{ kind, value string }{
		{KindVM, "db-01"}, {KindHost, "esx01.example.com"}, {KindCluster, "Gold"},
		{KindCustomer, "ACME Corp"}, {KindIP, "10.1.2.3"},
	}
	var clear, hashed strings.Builder
	for _, n := range names {
		fmt.Fprintf(&clear, "%s\t%s\n", n.kind, n.value)
		fmt.Fprintf(&hashed, "%s\t%s\n", n.kind, a.Name(n.kind, n.value))
	}
	unknown := strings.Repeat("ab", 20)             // 40 hex digits, not ours
	sha256 := strings.Repeat("0123456789abcdef", 4) // longer digest: untouched
	tail := "sum\t" + unknown + "\t" + sha256 + "\n"
	got := Reverse(hashed.String()+tail, a.Map())
	if want := clear.String() + tail; got != want {
		t.Errorf("Reverse:\n%s\nwant:\n%s", got, want)
	}
	upper := strings.ToUpper(a.Name(KindVM, "db-01"))
	if got := Reverse("x "+upper+" y", a.Map()); got != "x db-01 y" {
		t.Errorf("Reverse of an upper-case hash: %q", got)
	}
	if got := Reverse(hashed.String(), nil); got != hashed.String() {
		t.Error("Reverse with an empty map changed the text")
	}
}

func TestConcurrentUse(t *testing.T) {
	a := mustNew(t, ModeHashed, testSecret(4))
	const workers, names = 8, 200
	results := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range names {
				results[w] = append(results[w], a.Name(KindVM, fmt.Sprintf("vm-%d", i)))
				if i%50 == 0 {
					_ = a.Map()
				}
			}
			results[w] = append(results[w], a.ScrubIPs(fmt.Sprintf("from 10.0.0.%d", w)))
		}()
	}
	wg.Wait()
	for w := 1; w < workers; w++ {
		for i := range names {
			if results[w][i] != results[0][i] {
				t.Fatalf("worker %d name %d: %s, worker 0: %s", w, i, results[w][i], results[0][i])
			}
		}
	}
	if got := len(a.Map()); got != names+workers {
		t.Errorf("reverse map has %d entries, want %d", got, names+workers)
	}
}

func TestNewSecret(t *testing.T) {
	s1, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := NewSecret()
	if len(s1) != SecretSize || bytes.Equal(s1, s2) {
		t.Errorf("NewSecret: %x, %x", s1, s2)
	}
}

func TestLoadOrCreateSecret(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "anonymize.key")
	s1, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(s1) != SecretSize {
		t.Fatalf("secret is %d bytes", len(s1))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode %v, want 0600", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(path); string(b) != hex.EncodeToString(s1)+"\n" {
		t.Errorf("secret file holds %q", b)
	}
	s2, err := LoadOrCreateSecret(path)
	if err != nil || !bytes.Equal(s1, s2) {
		t.Errorf("second load: %x, %v; want %x", s2, err, s1)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "sub", ".*tmp*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestLoadSecretFormats(t *testing.T) {
	raw := testSecret(0x5a)
	long := bytes.Repeat([]byte{7}, 48)
	for _, tc := range []struct {
		name     string
		contents []byte
		want     []byte
		err      string
	}{
		{"raw", raw, raw, ""},
		{"hex", []byte(hex.EncodeToString(raw)), raw, ""},
		{"hex upper with white space", []byte("  " + strings.ToUpper(hex.EncodeToString(raw)) + "\r\n"), raw, ""},
		{"hex longer", []byte(hex.EncodeToString(long) + "\n"), long, ""},
		{"hex short", []byte(hex.EncodeToString(raw[:16]) + "\n"), nil, "is 16 bytes, want at least 32"},
		{"hex odd", []byte(hex.EncodeToString(raw)[:63]), nil, "odd number of hex digits"},
		{"raw short", raw[:31], nil, "is corrupt: 31 bytes"},
		{"empty", nil, nil, "is corrupt: 0 bytes"},
		{"text", []byte("not a secret at all\n"), nil, "is corrupt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "secret")
			if err := os.WriteFile(path, tc.contents, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := LoadOrCreateSecret(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), path) {
					t.Fatalf("error %v, want %q naming %s", err, tc.err, path)
				}
				if after, _ := os.ReadFile(path); !bytes.Equal(after, tc.contents) {
					t.Error("corrupt secret file was rewritten")
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("got %x, %v; want %x", got, err, tc.want)
			}
		})
	}
}

// Several processes starting at once agree on one secret.
func TestLoadOrCreateSecretConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "anonymize.key")
	const n = 8
	secrets := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			secrets[i], errs[i] = LoadOrCreateSecret(path)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || !bytes.Equal(secrets[i], secrets[0]) {
			t.Fatalf("caller %d: %x, %v; caller 0: %x", i, secrets[i], errs[i], secrets[0])
		}
	}
}

func BenchmarkNameHashed(b *testing.B) {
	a, err := New(ModeHashed, testSecret(1))
	if err != nil {
		b.Fatal(err)
	}
	names := make([]string, 50000) // a large provider's VMs
	for i := range names {
		names[i] = fmt.Sprintf("customer-%03d-vm-%05d", i%300, i)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		a.Name(KindVM, names[i%len(names)])
	}
}

// A Hasher gives Name's answers in every mode, with one HMAC reused, and
// records nothing in the reverse map.
func TestHasher(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, SecretSize)
	for _, mode := range []Mode{ModeHashed, ModeRedacted, ModeNone} {
		a, err := New(mode, secret)
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := New(mode, secret)
		h := a.Hasher()
		for _, v := range []string{"web01", "", "esx01.corp.example", "web01", "ü/ß\t"} {
			if got, want := h.Name(v), ref.Name(KindVM, v); got != want {
				t.Errorf("%s: Hasher.Name(%q) = %q, want %q", mode, v, got, want)
			}
		}
		if n := len(a.Map()); n != 0 {
			t.Errorf("%s: the Hasher recorded %d names in the reverse map", mode, n)
		}
	}
}
