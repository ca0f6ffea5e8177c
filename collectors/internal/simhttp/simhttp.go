// Package simhttp is the plumbing the REST product simulators share
// (collectors/vcd/simulator, collectors/nsxt/simulator,
// collectors/nsxv/simulator and the next ones), so that each simulator holds
// only its product's API: the request count and fault switches every request
// starts with (Core: the product's Faults, the Delay fault, Wait), the
// logged-in sessions with the "expire after N calls" and "reject every
// session" faults (Sessions), loading a state file strictly (LoadState),
// reading a list's integer paging parameters (IntParams), and serving over
// TLS with a self-signed certificate whose thumbprint an admin would accept
// (ServeTLS, StartTLS).
//
// Each simulator is written from its product's public API reference, cited in
// its package comment: the same login flow, headers, status codes, paging and
// field names as the real API. Tests set the state (VMs, orgs, segments,
// rules, licences) and switch error modes (401 after N calls, 500 on a page,
// slow answers, malformed bodies). The same simulators serve `usagemeter
// demo`. They are public packages beside their collectors, as govmomi's
// simulator is beside its client, and import no testing package.
package simhttp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Core counts the requests a simulator serves and holds its fault switches
// F (the product's Faults). Its zero value is ready; it is safe for
// concurrent use.
type Core[F any] struct {
	mu     sync.Mutex
	faults F
	calls  int
}

// SetFaults replaces the fault switches.
func (c *Core[F]) SetFaults(f F) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults = f
}

// Faults returns the fault switches in force.
func (c *Core[F]) Faults() F {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.faults
}

// Calls is the number of requests served so far.
func (c *Core[F]) Calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// Begin counts a request and returns the fault switches it is served under
// and its number (1 for the first request).
func (c *Core[F]) Begin() (F, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	return c.faults, c.calls
}

// Wait holds the answer to r for d (a Delay fault; 0: not at all). When the
// client gives up first, Wait aborts the handler (it panics with
// http.ErrAbortHandler, which the server recovers without a log): the
// server drops the connection (HTTP/1.1) or resets the stream (HTTP/2)
// without an answer, as a product that never answered. A handler that
// returned without writing would answer "200 OK" with an empty body, and
// over HTTP/1.1 a client can take that answer for the product's: its
// transport sends the TLS close_notify alert when its deadline passes, which
// cancels r's context here, and uses an answer that comes in before it has
// closed the socket.
func Wait(r *http.Request, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		panic(http.ErrAbortHandler)
	}
}

// Sessions are a simulator's logged-in sessions by id (a token, a cookie),
// each with the product's data V and the number of calls made with it. Its
// zero value is ready; it is safe for concurrent use.
type Sessions[V any] struct {
	mu     sync.Mutex
	m      map[string]*session[V]
	logins int
}

type session[V any] struct {
	v     V
	calls int
}

// Verdict is what Sessions.Use says of a call.
type Verdict int

// Verdicts of Sessions.Use.
const (
	Gone     Verdict = iota // unknown, expired or rejected: the session is no more (401)
	Refused                 // the product's own check refused the call; the session lives on
	Accepted                // the call is made with a live session, and counted
)

// Open records a session opened by a successful login.
func (s *Sessions[V]) Open(id string, v V) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*session[V]{}
	}
	s.m[id] = &session[V]{v: v}
	s.logins++
}

// Close ends one session (a logout).
func (s *Sessions[V]) Close(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// ExpireAll ends every session, as a restart or an idle timeout would.
func (s *Sessions[V]) ExpireAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m = nil
}

// Logins is the number of successful logins so far.
func (s *Sessions[V]) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// Use checks a call made with session id. The session is Gone, and ended,
// when the id is unknown, when reject is set (a RejectAll fault) or when
// expireAfter > 0 and it has served that many calls (an ExpireAfter fault).
// Otherwise, when accept (nil: none) refuses the session's data the call is
// Refused; else it is Accepted and counted.
func (s *Sessions[V]) Use(id string, reject bool, expireAfter int, accept func(V) bool) Verdict {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.m[id]
	if !ok || reject || expireAfter > 0 && ss.calls >= expireAfter {
		delete(s.m, id)
		return Gone
	}
	if accept != nil && !accept(ss.v) {
		return Refused
	}
	ss.calls++
	return Accepted
}

// LoadState decodes a simulator state S from JSON, refusing unknown keys;
// errors start "<kind> simulator state: ".
func LoadState[S any](kind string, b []byte) (S, error) {
	var st S
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		var zero S
		return zero, fmt.Errorf("%s simulator state: %w", kind, err)
	}
	return st, nil
}

// Endless writes an answer that never ends, as a product gone wrong may (the
// Endless fault): head, then item, sep, item, sep, ... until the client
// stops reading or goes away (then the handler is aborted, as in Wait). The
// status is 200 with contentType.
func Endless(w http.ResponseWriter, r *http.Request, contentType string, head, item, sep []byte) {
	w.Header().Set("Content-Type", contentType)
	if _, err := w.Write(head); err != nil {
		return
	}
	var chunk bytes.Buffer
	chunk.Write(item)
	for chunk.Len() < 64<<10 {
		chunk.Write(sep)
		chunk.Write(item)
	}
	for r.Context().Err() == nil {
		if _, err := w.Write(chunk.Bytes()); err != nil {
			return
		}
		chunk.Reset()
		for chunk.Len() < 64<<10 {
			chunk.Write(sep)
			chunk.Write(item)
		}
	}
	// The client went away: abort rather than end the answer, whose
	// last chunk would say it is whole (see Wait).
	panic(http.ErrAbortHandler)
}
