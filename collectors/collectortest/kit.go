package collectortest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/internal/simhttp"
)

// Server is what a Kit needs of a product simulator: serving on loopback
// over TLS for the length of a test, and counting the requests served.
type Server interface {
	Start(t simhttp.TB) (url, thumbprint string)
	Calls() int
}

// Kit is one REST product's test scaffolding: its simulator (of state St)
// started on a loopback TLS server, the collector C built for it with the
// simulator's thumbprint pinned, the case folders run and golden-checked,
// the conformance suite run.
type Kit[St any, S Server, C collectors.Collector] struct {
	Sim  func(St) S                         // the simulator's New
	Load func([]byte) (St, error)           // the simulator's LoadState
	New  func(collectors.Target) (C, error) // the package's collector constructor
	// Target is the collector's target for the simulator at url, with the
	// state's right credentials, thumbprint accepted and opts.
	Target func(url, thumbprint string, st St, opts string) collectors.Target
	// Delay and ExpireAfter set the simulator's faults of those names, for
	// the conformance suite (ExpireAfter nil: a product without sessions;
	// with it, S must also have Logins and ExpireSessions).
	Delay       func(s S, d time.Duration)
	ExpireAfter func(s S, n int)
}

// LoadState reads a state file with the simulator's LoadState.
func (k Kit[St, S, C]) LoadState(tb testing.TB, path string) St {
	tb.Helper()
	return LoadState(tb, path, k.Load)
}

// States loads the state of every case folder (fuzz tests seed their
// corpus from them).
func (k Kit[St, S, C]) States(tb testing.TB) []St {
	tb.Helper()
	return States(tb, k.Load)
}

// Start serves st and builds a collector for it with opts, its target
// edited by edit (in order).
func (k Kit[St, S, C]) Start(tb testing.TB, st St, opts string, edit ...func(*collectors.Target)) (S, C) {
	tb.Helper()
	s := k.Sim(st)
	u, thumb := s.Start(tb)
	tg := k.Target(u, thumb, st, opts)
	for _, e := range edit {
		e(&tg)
	}
	c, err := k.New(tg)
	if err != nil {
		tb.Fatal(err)
	}
	return s, c
}

// Conformance runs the conformance suite on the state file state served
// with opts, through the kit's Delay and ExpireAfter. prepare edits each
// target the suite is given (e.g. pairs it with a vCenter started for the
// test).
func (k Kit[St, S, C]) Conformance(t *testing.T, state, opts string, prepare ...func(t *testing.T, tg *collectors.Target)) {
	Conformance(t, Product{Start: func(t *testing.T) (Sim, collectors.Target) {
		st := k.LoadState(t, state)
		s := k.Sim(st)
		u, thumb := s.Start(t)
		tg := k.Target(u, thumb, st, opts)
		for _, p := range prepare {
			p(t, &tg)
		}
		ks := kitSim[S]{s: s, delay: k.Delay}
		var sim Sim = ks
		if k.ExpireAfter != nil {
			ss, ok := any(s).(sessionServer)
			if !ok {
				t.Fatalf("%T has no Logins and ExpireSessions", s)
			}
			sim = kitSessionSim[S]{kitSim: ks, ss: ss, expire: k.ExpireAfter}
		}
		return sim, tg
	}})
}

// sessionServer is a simulator of a product with sessions.
type sessionServer interface {
	Logins() int
	ExpireSessions()
}

// kitSim is a Kit's simulator for the conformance suite.
type kitSim[S Server] struct {
	s     S
	delay func(S, time.Duration)
}

func (k kitSim[S]) Calls() int               { return k.s.Calls() }
func (k kitSim[S]) SetDelay(d time.Duration) { k.delay(k.s, d) }

// The conformance suite checks sessions through SessionSim.
var _ SessionSim = kitSessionSim[Server]{}

// kitSessionSim is kitSim for a product with sessions.
type kitSessionSim[S Server] struct {
	kitSim[S]
	ss     sessionServer
	expire func(S, int)
}

func (k kitSessionSim[S]) Logins() int       { return k.ss.Logins() }
func (k kitSessionSim[S]) ExpireSessions()   { k.ss.ExpireSessions() }
func (k kitSessionSim[S]) ExpireAfter(n int) { k.expire(k.s, n) }

// Cases runs every case folder (see Cases and Golden) for hour, then check
// on the simulator (nil: none).
func (k Kit[St, S, C]) Cases(t *testing.T, hour time.Time, check func(t *testing.T, s S)) {
	Cases(t, func(t *testing.T, dir string) {
		s, c := k.Start(t, k.LoadState(t, filepath.Join(dir, "state.json")), Options(dir))
		Golden(t, dir, c, hour)
		if check != nil {
			check(t, s)
		}
	})
}

// OneLogin fails t unless the simulator saw exactly one login (a case
// collected in one session).
func OneLogin[S interface{ Logins() int }](t *testing.T, s S) {
	t.Helper()
	if n := s.Logins(); n != 1 {
		t.Errorf("logins = %d, want 1", n)
	}
}

// LogTo is a target edit that logs the collector's lines at level to buf.
func LogTo(buf *bytes.Buffer, level slog.Level) func(*collectors.Target) {
	return func(tg *collectors.Target) {
		tg.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: level}))
	}
}

// WithPassword is a target edit that sets the password.
func WithPassword(p string) func(*collectors.Target) {
	return func(tg *collectors.Target) { tg.Password = collectors.Secret(p) }
}

// NoSecretIn fails t when one of secrets (those not "") is in log or in
// err's words.
func NoSecretIn(t *testing.T, log string, err error, secrets ...string) {
	t.Helper()
	for _, secret := range secrets {
		if secret != "" && (strings.Contains(log, secret) || strings.Contains(fmt.Sprint(err), secret)) {
			t.Errorf("secret %q in the log or error:\n%s\n%v", secret, log, err)
		}
	}
}

// Renewal is a product's session, for NoSecretsLogged.
type Renewal struct {
	Held   func() []string // the session's secrets the collector holds (tokens, ids)
	Expire func()          // ends every session (the simulator's ExpireSessions)
	Reject func()          // makes the product refuse every session (a RejectAll fault)
	Logged string          // what the log says of a renewal
}

// NoSecretsLogged collects with c, whose lines log writes at debug level,
// through a login, a renewal after r.Expire and a refusal after r.Reject:
// neither the password nor a secret r.Held returned after the login may be
// in the log or the last error, and the log must say r.Logged. It returns
// the first collection's observations and the last error.
func NoSecretsLogged(t *testing.T, c collectors.Collector, hour time.Time, log *bytes.Buffer, password string, r Renewal) ([]collectors.Observation, error) {
	t.Helper()
	obs, err := c.Collect(context.Background(), hour)
	if err != nil {
		t.Fatal(err)
	}
	held := r.Held()
	r.Expire()
	if _, err := c.Collect(context.Background(), hour); err != nil {
		t.Fatal(err)
	}
	r.Reject()
	_, err = c.Collect(context.Background(), hour)
	NoSecretIn(t, log.String(), err, append([]string{password}, held...)...)
	if !strings.Contains(log.String(), r.Logged) {
		t.Errorf("the renewal is not logged:\n%s", log.String())
	}
	return obs, err
}

// Throttle is a product's refusals for load, for Throttled.
type Throttle struct {
	// Set makes the simulator refuse every every-th call (0: none), with
	// 429 Too Many Requests when tooMany, else its usual busy answer.
	Set func(every int, tooMany bool)
	// TooMany says the product also answers 429 (checked).
	TooMany bool
	// Always is what the error says when every call is refused.
	Always []string
}

// Throttled checks that c waits out a product refusing for load: refused
// every third call (and, with th.TooMany, every other call with 429) the
// collection for hour still gives n observations; refused every call, it
// fails with an error that says th.Always.
func Throttled(t *testing.T, c collectors.Collector, hour time.Time, n int, th Throttle) {
	t.Helper()
	th.Set(3, false)
	if obs, err := c.Collect(context.Background(), hour); err != nil || len(obs) != n {
		t.Fatalf("throttled collection: %d observations, %v", len(obs), err)
	}
	if th.TooMany {
		th.Set(2, true)
		if obs, err := c.Collect(context.Background(), hour); err != nil || len(obs) != n {
			t.Fatalf("rate-limited collection (429): %d observations, %v", len(obs), err)
		}
	}
	th.Set(1, false)
	_, err := c.Collect(context.Background(), hour)
	if err == nil {
		t.Fatal("always busy: Collect succeeded")
	}
	for _, w := range th.Always {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("always busy: error %q does not mention %q", err, w)
		}
	}
}

// CollectBy collects c for hour and returns the observations by key(o). It
// fails t when the collection fails, on an observation bad says is wrong,
// and on a key observed twice.
func CollectBy(t *testing.T, c collectors.Collector, hour time.Time, key func(collectors.Observation) string, bad func(collectors.Observation) bool) map[string]collectors.Observation {
	t.Helper()
	obs, err := c.Collect(context.Background(), hour)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]collectors.Observation{}
	for _, o := range obs {
		if bad(o) {
			t.Errorf("bad observation %+v", o)
		}
		k := key(o)
		if _, dup := m[k]; dup {
			t.Errorf("%s observed twice", k)
		}
		m[k] = o
	}
	return m
}

// SessionRefused collects with c, then has reject make the product refuse
// every session and collects again: the second collection must fail with
// an error that is want (the product's login error, as the new login made
// once for the refused session is refused too).
func SessionRefused(t *testing.T, c collectors.Collector, hour time.Time, reject func(), want error) {
	t.Helper()
	if _, err := c.Collect(context.Background(), hour); err != nil {
		t.Fatal(err)
	}
	reject()
	if _, err := c.Collect(context.Background(), hour); !errors.Is(err, want) {
		t.Fatalf("error %v, want %v after the session was refused", err, want)
	}
}

// HTTPSOnly checks that a collector is not built for tg, whose endpoint is
// http, with an error that says https.
func HTTPSOnly(t *testing.T, tg collectors.Target) {
	t.Helper()
	if _, err := collectors.New(tg); err == nil || !strings.Contains(err.Error(), "https") {
		t.Fatalf("error %v", err)
	}
}

// FaultError serves st, builds a collector for it with opts (its target
// edited by edit), has fault set the simulator's faults and returns the
// error of one collection for hour.
func (k Kit[St, S, C]) FaultError(t *testing.T, hour time.Time, st St, opts string, fault func(S), edit ...func(*collectors.Target)) error {
	t.Helper()
	s, c := k.Start(t, st, opts, edit...)
	fault(s)
	_, err := c.Collect(context.Background(), hour)
	return err
}

// WithTimeout is a target edit that sets the per-call deadline to d (0:
// leaves it).
func WithTimeout(d time.Duration) func(*collectors.Target) {
	return func(tg *collectors.Target) {
		if d > 0 {
			tg.Timeout = d
		}
	}
}
