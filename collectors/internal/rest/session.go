package rest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
)

// Session is how a collector keeps a product session between calls (and
// between hours): WithSession logs in when none is held, and logs in again
// once when a call made with a kept session is refused (it expired, the
// product restarted). A refused login is not retried.
type Session struct {
	Active  func() bool                     // whether a session is held
	Login   func(ctx context.Context) error // opens one; its error is returned as it is
	Forget  func()                          // drops the session held
	Refused func(err error) bool            // whether a call's error refuses the session
	// Renewing, if set, is called before logging in again (to log it).
	Renewing func()
}

// WithSession runs call with a session. When a kept session is refused it
// is forgotten, and call runs once more with a new one; when a session
// opened for the call is refused, the error says "session refused right
// after logging in".
func WithSession[T any](ctx context.Context, s *Session, call func() (T, error)) (T, error) {
	var zero T
	for kept := true; ; kept = false {
		if !s.Active() {
			if err := s.Login(ctx); err != nil {
				return zero, err
			}
			kept = false
		}
		v, err := call()
		if err == nil || !s.Refused(err) {
			return v, err
		}
		s.Forget()
		if !kept {
			return zero, fmt.Errorf("session refused right after logging in: %w", err)
		}
		if s.Renewing != nil {
			s.Renewing()
		}
	}
}

// StatusIs reports whether err is an *HTTPError with one of the statuses.
func StatusIs(err error, statuses ...int) bool {
	var he *HTTPError
	if !errors.As(err, &he) {
		return false
	}
	for _, s := range statuses {
		if he.Status == s {
			return true
		}
	}
	return false
}

// EnsureSession logs in with s when it holds no session, so that a refused
// login reads as one; its error then reads "<kind> <host>: <error>".
func (c *Client) EnsureSession(ctx context.Context, s *Session) error {
	if !s.Active() {
		if err := s.Login(ctx); err != nil {
			return fmt.Errorf("%s %s: %w", c.Kind, c.Host(), err)
		}
	}
	return nil
}

// Logout sends the call that ends a session (method on path, hdr carrying
// the session). An answer that refuses the session (401, 403) or has one of
// the statuses gone says it is gone already; another error reads
// "<kind> <host>: logging out: <error>".
func (c *Client) Logout(ctx context.Context, method, path string, hdr http.Header, gone ...int) error {
	_, _, err := c.Do(ctx, method, path, nil, hdr)
	var he *HTTPError
	if err != nil && !(errors.As(err, &he) && (he.AuthFailed() || slices.Contains(gone, he.Status))) {
		return fmt.Errorf("%s %s: logging out: %w", c.Kind, c.Host(), err)
	}
	return nil
}
