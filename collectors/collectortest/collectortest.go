// Package collectortest is the collectors' conformance kit, what every
// product collector's tests share: the case folders (testdata/<case>/ with
// state.json, an optional options.json and expected.json, the observations
// sorted by object key, which -update rewrites), loading a simulator state,
// checking an error's words, and Conformance, the one suite every REST
// collector runs against its simulator (session kept and renewed, expiry in
// the middle of the pages, wrong password is ErrAuth and not retried,
// cancellation, the per-call deadline, certificate pinning, no password in
// an error).
//
// Kit is a REST product's test scaffolding on top of that: its simulator
// started on a loopback TLS server, the collector built with the
// simulator's thumbprint pinned, the case folders and the conformance suite
// run, a fault set before one collection (FaultError). The checks the
// products' tests share are functions: CollectBy, Throttled,
// NoSecretsLogged, SessionRefused, WrongPasswordTwice, HTTPSOnly.
package collectortest

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
)

// Update is the -update flag of a test binary that imports this package.
var Update = flag.Bool("update", false, "rewrite testdata/*/expected.json from the collector's output")

// Dirs are the case folders below testdata: those holding a state.json.
func Dirs(tb testing.TB) []string {
	tb.Helper()
	paths, err := filepath.Glob("testdata/*/state.json")
	if err != nil {
		tb.Fatal(err)
	}
	dirs := make([]string, len(paths))
	for i, p := range paths {
		dirs[i] = filepath.Dir(p)
	}
	return dirs
}

// Cases runs run on every case folder, as a subtest named after it.
func Cases(t *testing.T, run func(t *testing.T, dir string)) {
	t.Helper()
	dirs := Dirs(t)
	if len(dirs) == 0 {
		t.Fatal("no cases")
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) { run(t, dir) })
	}
}

// Options is the case's options.json, "" when it has none.
func Options(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "options.json"))
	if err != nil {
		return ""
	}
	return string(b)
}

// Golden collects c for hour and compares the observations, sorted by
// object key, with the case's expected.json (rewritten first with -update).
func Golden(t *testing.T, dir string, c collectors.Collector, hour time.Time) {
	t.Helper()
	obs, err := c.Collect(context.Background(), hour)
	if err != nil {
		t.Fatal(err)
	}
	SortObs(obs)
	got, _ := json.MarshalIndent(obs, "", "  ")
	got = append(got, '\n')
	exp := filepath.Join(dir, "expected.json")
	if *Update {
		if err := os.WriteFile(exp, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(exp)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("observations differ from %s (run with -update to accept):\n%s", exp, got)
	}
}

// SortObs sorts observations by object key.
func SortObs(obs []collectors.Observation) {
	sort.Slice(obs, func(i, j int) bool { return obs[i].ObjectKey < obs[j].ObjectKey })
}

// LoadState reads a simulator state file with the simulator's LoadState.
func LoadState[S any](tb testing.TB, path string, load func([]byte) (S, error)) S {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	st, err := load(b)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return st
}

// WantError checks that err is an error that mentions every one of want
// and, when is is not nil, is is.
func WantError(t *testing.T, err error, want []string, is error) {
	t.Helper()
	if err == nil {
		t.Fatal("Collect succeeded")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if is != nil && !errors.Is(err, is) {
		t.Errorf("error %v is not %v", err, is)
	}
}

// WantEditions checks the edition of each VM (by name) of want in got; an
// edition "" means the VM must not be observed. featuresDim names the
// dimension that lists the VM's features, shown on a mismatch.
func WantEditions(t *testing.T, got map[string]collectors.Observation, want map[string]string, featuresDim string) {
	t.Helper()
	for vm, ed := range want {
		o, ok := got[vm]
		if ed == "" && ok {
			t.Errorf("%s observed (%s), want not", vm, o.Edition)
		}
		if ed != "" && o.Edition != ed {
			t.Errorf("%s: edition %q, want %q (features %s)", vm, o.Edition, ed, o.Dims[featuresDim])
		}
	}
}

// Bench collects c for hour b.N times; ok says whether the number of
// observations is right.
func Bench(b *testing.B, c collectors.Collector, hour time.Time, ok func(n int) bool) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		obs, err := c.Collect(ctx, hour)
		if err != nil {
			b.Fatal(err)
		}
		if !ok(len(obs)) {
			b.Fatalf("%d observations", len(obs))
		}
	}
}

// WrongPasswordTwice collects c, built with the wrong password wrong, for
// two hours: each collection must fail with an error that is
// collectors.ErrAuth, mentions every one of want and not the password, and
// cost exactly one call to the product (calls counts them): no retry loop
// that could lock the metering account out. It returns the last error.
func WrongPasswordTwice(t *testing.T, c collectors.Collector, calls func() int, wrong string, want ...string) error {
	t.Helper()
	hour := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	before := calls()
	var err error
	for i := range 2 {
		_, err = c.Collect(context.Background(), hour.Add(time.Duration(i)*time.Hour))
		if !errors.Is(err, collectors.ErrAuth) {
			t.Fatalf("error %v is not collectors.ErrAuth", err)
		}
	}
	WantError(t, err, want, collectors.ErrAuth)
	if strings.Contains(err.Error(), wrong) {
		t.Errorf("the error carries the password: %v", err)
	}
	if n := calls() - before; n != 2 {
		t.Errorf("%d calls for a wrong password in two hours, want 2", n)
	}
	return err
}

// States loads the state.json of every case folder with the simulator's
// LoadState (fuzz tests seed their corpus from them).
func States[S any](tb testing.TB, load func([]byte) (S, error)) []S {
	tb.Helper()
	var sts []S
	for _, dir := range Dirs(tb) {
		sts = append(sts, LoadState(tb, filepath.Join(dir, "state.json"), load))
	}
	return sts
}

// WantParseError fails t when a parser's error does not say what is wrong
// with the body ("malformed body", or the field): the check of every fuzz
// test of a response parser.
func WantParseError(t *testing.T, err error) {
	t.Helper()
	if err != nil && !strings.Contains(err.Error(), "malformed body") && !strings.Contains(err.Error(), "field ") {
		t.Fatalf("unhelpful error %v", err)
	}
}
