// Package service is what an admin can see and do on the appliance, as
// the REST API (/api/v1) and the web console both use it: plain structs
// with JSON tags over internal/appliance, internal/store and report. The
// command line shares the same code below (appliance.AddProduct,
// appliance.SetProduct, the store). Every method that changes something
// takes the acting admin and writes an audit entry (who, what, when),
// whether the change succeeded or not.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/store"
)

// Actor is who makes a change: an admin's user name and, for a web
// request, the client's address.
type Actor struct {
	Username string `json:"username"`
	Remote   string `json:"remote,omitempty"`
}

// Service is the admin operations of one opened appliance.
type Service struct {
	app     *appliance.App
	version string
	now     func() time.Time
	health  func(ctx context.Context) Health
	log     *slog.Logger
}

// Options shape a Service.
type Options struct {
	Version string           // the binary's version
	Now     func() time.Time // nil = time.Now (tests inject a clock)
	// Health, if set, reports the daemon's /healthz view (the HTTP
	// server's); else the database is pinged.
	Health func(ctx context.Context) Health
}

// New returns the Service of app.
func New(app *appliance.App, o Options) *Service {
	s := &Service{app: app, version: o.Version, now: o.Now, health: o.Health, log: app.Log}
	if s.now == nil {
		s.now = time.Now
	}
	if s.version == "" {
		s.version = "dev"
	}
	return s
}

// App is the appliance the service runs on.
func (s *Service) App() *appliance.App { return s.app }

// Store is the appliance's store (for the auth package and tests).
func (s *Service) Store() *store.Store { return s.app.Store }

// Version is the binary version the service was built with ("dev" when
// not set).
func (s *Service) Version() string { return s.version }

// Now is the service's clock.
func (s *Service) Now() time.Time { return s.now() }

// Error is an error with the HTTP status it maps to and, for a product
// whose certificate is not trusted, the certificate to accept.
type Error struct {
	Status      int          // e.g. http.StatusBadRequest
	Msg         string       // names the cause; no secrets
	Certificate *Certificate // set when a thumbprint must be accepted
	Err         error
}

func (e *Error) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Invalid is a bad-input error (400) naming the field and the cause.
func Invalid(format string, a ...any) error {
	return &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf(format, a...)}
}

// rejected is an error of the product or change itself (422): it was
// checked and refused (unreachable, bad credentials, another instance).
func rejected(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, store.ErrNotFound) {
		return &Error{Status: http.StatusNotFound, Err: err}
	}
	if errors.Is(err, store.ErrDuplicate) {
		return &Error{Status: http.StatusConflict, Err: err}
	}
	return &Error{Status: http.StatusUnprocessableEntity, Err: err}
}

// StatusOf is the HTTP status of err: the Error's, 404 for
// store.ErrNotFound, 409 for store.ErrDuplicate, else 500.
func StatusOf(err error) int {
	var e *Error
	switch {
	case errors.As(err, &e) && e.Status != 0:
		return e.Status
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, store.ErrDuplicate):
		return http.StatusConflict
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func notFound(what string, id any) error {
	return &Error{Status: http.StatusNotFound, Msg: fmt.Sprintf("%s %v not found", what, id), Err: store.ErrNotFound}
}

// audit records a change by a (see Audit).
func (s *Service) audit(ctx context.Context, a Actor, action, target, detail string, err error) {
	Audit(ctx, s.app.Store, s.log, s.now(), a, action, target, detail, err)
}

// Audit records a change by a at at in st's audit log; a failed change is
// recorded too (ok false, with its error). An audit entry that cannot be
// written is logged: the change itself stands. The receiver's console
// records through it as well.
func Audit(ctx context.Context, st *store.Store, log *slog.Logger, at time.Time, a Actor, action, target, detail string, err error) {
	e := store.AuditEntry{At: at, Actor: a.Username, Action: action, Target: target, Detail: detail, Remote: a.Remote, OK: err == nil}
	if err != nil {
		msg := err.Error()
		if detail != "" {
			msg = detail + ": " + msg
		}
		e.Detail = firstLine(msg)
	}
	if e.Actor == "" {
		e.Actor = "unknown"
	}
	if aerr := st.AddAudit(context.WithoutCancel(ctx), e); aerr != nil {
		log.Error("writing the audit log", "action", action, "actor", e.Actor, "err", aerr)
	}
}

// Record writes an audit entry for an event that is not a change made
// through the Service (a login, a logout, a password or token change by
// the auth package).
func (s *Service) Record(ctx context.Context, a Actor, action, target, detail string, err error) {
	s.audit(ctx, a, action, target, detail, err)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 500 {
		s = s[:500] + "..."
	}
	return s
}

// Audit lists audit entries by f (newest first).
func (s *Service) Audit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	out, err := s.app.Store.Audit(ctx, f)
	if out == nil {
		out = []store.AuditEntry{}
	}
	return out, err
}
