package collectortest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// Sim is what the conformance suite needs of a product simulator.
type Sim interface {
	Calls() int // requests served so far
	// SetDelay delays every answer by d (0: none).
	SetDelay(d time.Duration)
}

// SessionSim is a simulator of a product with sessions (a login, then a
// token or cookie): the suite then checks the session is kept between hours
// and renewed when it expires, also in the middle of the pages.
type SessionSim interface {
	Sim
	Logins() int
	ExpireSessions()
	// ExpireAfter makes every session die after n calls (0: never).
	ExpireAfter(n int)
}

// Product describes a REST product kind to the conformance suite.
type Product struct {
	// Start starts the kind's simulator with a state of several pages and
	// returns it with a target for it: the right credentials, the
	// simulator's thumbprint accepted, and Kind set (collectors.New builds
	// the collector, as the appliance does).
	Start func(t *testing.T) (Sim, collectors.Target)
}

// Conformance runs the suite every REST collector passes.
func Conformance(t *testing.T, p Product) {
	hour := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	collect := func(t *testing.T, tgt collectors.Target) ([]collectors.Observation, error) {
		t.Helper()
		c, err := collectors.New(tgt)
		if err != nil {
			t.Fatal(err)
		}
		if cl, ok := c.(collectors.Closer); ok {
			t.Cleanup(func() { _ = cl.Close(context.Background()) })
		}
		return c.Collect(context.Background(), hour)
	}

	t.Run("session kept and renewed", func(t *testing.T) {
		s, tgt := p.Start(t)
		c, err := collectors.New(tgt)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		first, err := c.Collect(ctx, hour)
		if err != nil {
			t.Fatal(err)
		}
		if len(first) == 0 {
			t.Fatal("the conformance state yields no observation")
		}
		if _, err := c.Collect(ctx, hour); err != nil {
			t.Fatal(err)
		}
		ss, ok := s.(SessionSim)
		if !ok {
			return // a product without sessions (HTTP Basic on each call)
		}
		if n := ss.Logins(); n != 1 {
			t.Fatalf("two collections logged in %d times, want 1 (session kept)", n)
		}
		ss.ExpireSessions()
		if _, err := c.Collect(ctx, hour); err != nil {
			t.Fatalf("after the session expired between hours: %v", err)
		}
		if n := ss.Logins(); n != 2 {
			t.Fatalf("logins = %d after expiry, want 2", n)
		}
		// Expired in the middle of the pages: recovered, nothing lost or doubled.
		ss.ExpireAfter(3)
		obs, err := c.Collect(ctx, hour)
		ss.ExpireAfter(0)
		if err != nil {
			t.Fatalf("session expiring every 3 calls: %v", err)
		}
		if len(obs) != len(first) {
			t.Fatalf("%d observations with the session expiring mid-collection, want %d", len(obs), len(first))
		}
		if n := ss.Logins(); n < 3 {
			t.Fatalf("logins = %d, want a new login mid-collection", n)
		}
		if cl, ok := c.(collectors.Closer); ok {
			if err := cl.Close(ctx); err != nil {
				t.Fatalf("close: %v", err)
			}
		}
	})

	t.Run("wrong password is ErrAuth, not retried", func(t *testing.T) {
		s, tgt := p.Start(t)
		const wrong = "Wr0ng-Passw0rd-7f3a"
		tgt.Password = collectors.Secret(wrong)
		if tgt.Paired != nil { // the paired product's password stays right
			paired := *tgt.Paired
			tgt.Paired = &paired
		}
		before := s.Calls()
		_, err := collect(t, tgt)
		if !errors.Is(err, collectors.ErrAuth) {
			t.Fatalf("error %v, want collectors.ErrAuth", err)
		}
		if strings.Contains(err.Error(), wrong) {
			t.Fatalf("the error carries the password: %v", err)
		}
		if !strings.Contains(err.Error(), tgt.Username) {
			t.Errorf("the error does not name the user %s: %v", tgt.Username, err)
		}
		if n := s.Calls() - before; n > 3 {
			t.Errorf("%d calls for a wrong password: a retry loop (an account lock-out risk)", n)
		}
	})

	t.Run("deadline per call", func(t *testing.T) {
		s, tgt := p.Start(t)
		s.SetDelay(2 * time.Second)
		tgt.Timeout = 100 * time.Millisecond
		_, err := collect(t, tgt)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "deadline") {
			t.Fatalf("error %v, want a deadline error that says so", err)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		s, tgt := p.Start(t)
		const delay = 10 * time.Second
		s.SetDelay(delay)
		tgt.Timeout = time.Minute
		c, err := collectors.New(tgt)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, err = c.Collect(ctx, hour)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
		// Without honouring ctx it would wait out the product's delay.
		if took := time.Since(start); took >= delay {
			t.Fatalf("Collect returned %s after its context was cancelled", took)
		}
	})

	t.Run("certificate pinning", func(t *testing.T) {
		_, tgt := p.Start(t)
		accepted := tgt.Thumbprint
		for _, tc := range []struct {
			name, thumb string
			want        error
		}{
			{"untrusted", "", tlsutil.ErrUntrusted},
			{"changed", strings.Repeat("AB:", 31) + "AB", tlsutil.ErrChanged},
			{"pinned, other spelling", strings.ToLower(strings.ReplaceAll(accepted, ":", "")), nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tgt := tgt
				tgt.Thumbprint = tc.thumb
				_, err := collect(t, tgt)
				if tc.want == nil {
					if err != nil {
						t.Fatal(err)
					}
					return
				}
				var ce *tlsutil.CertError
				if !errors.As(err, &ce) || !errors.Is(err, tc.want) || ce.Seen != accepted {
					t.Fatalf("error %v, want a *tlsutil.CertError %v seeing %s", err, tc.want, accepted)
				}
			})
		}
	})
}
