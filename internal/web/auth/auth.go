// Package auth authenticates the web console and the REST API: local
// admin accounts (argon2id password hashes), session cookies (Secure,
// HttpOnly, SameSite=Strict, with idle and absolute expiry), API tokens for
// scripts (Authorization: Bearer, stored hashed, revocable), login
// throttling per client address and lock-out per account. Every login,
// logout, password and token change is written to the audit log.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/web/service"
)

// Config shapes a Manager; zero fields take the defaults.
type Config struct {
	IdleTimeout     time.Duration // a session unused this long ends (default 30m)
	AbsoluteTimeout time.Duration // a session ends this long after login (default 12h)
	MaxFailures     int           // failed logins in a row that lock an account (default 5)
	LockFor         time.Duration // how long it stays locked (default 15m)
	// ClientFailures failed logins from one address within ClientWindow
	// make it wait (HTTP 429) until the window passes (default 20 in 15m).
	ClientFailures int
	ClientWindow   time.Duration
	// Insecure drops the Secure attribute and the __Host- prefix of the
	// session cookie: only for plain HTTP, configured explicitly.
	Insecure bool
	// CookieName names the session cookie (default usagemeter_session,
	// with the __Host- prefix unless Insecure): a second console on the
	// same host (the receiver's) takes its own, cookies not being kept
	// apart by port.
	CookieName string
	Now        func() time.Time // nil = time.Now (tests inject a clock)
}

func (c *Config) defaults() {
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 30 * time.Minute
	}
	if c.AbsoluteTimeout <= 0 {
		c.AbsoluteTimeout = 12 * time.Hour
	}
	if c.MaxFailures <= 0 {
		c.MaxFailures = 5
	}
	if c.LockFor <= 0 {
		c.LockFor = 15 * time.Minute
	}
	if c.ClientFailures <= 0 {
		c.ClientFailures = 20
	}
	if c.ClientWindow <= 0 {
		c.ClientWindow = 15 * time.Minute
	}
	if c.CookieName == "" {
		c.CookieName = "usagemeter_session"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Backend is what a Manager works on: the store holding the accounts,
// sessions and API tokens (the admin_users, admin_sessions and api_tokens
// tables), and the audit log every login, logout, password and token
// change is written to. The appliance's *service.Service is one; the
// receiver (internal/receiver) is another, over its own database.
type Backend interface {
	Store() *store.Store
	Record(ctx context.Context, a service.Actor, action, target, detail string, err error)
}

// Manager authenticates requests against the accounts of a Backend.
type Manager struct {
	svc Backend
	st  *store.Store
	cfg Config

	mu       sync.Mutex
	failures map[string][]time.Time // client address -> recent failed logins
}

// New returns a Manager over the backend's store.
func New(svc Backend, cfg Config) *Manager {
	cfg.defaults()
	return &Manager{svc: svc, st: svc.Store(), cfg: cfg, failures: map[string][]time.Time{}}
}

// Config is the Manager's configuration with its defaults.
func (m *Manager) Config() Config { return m.cfg }

// User is an authenticated admin.
type User struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
	// Via is how the request was authenticated: "session" or "token".
	Via     string `json:"via"`
	TokenID int64  `json:"token_id,omitempty"`
	// Remote is the client's address (for the audit log).
	Remote string `json:"-"`
}

// actor is u as the audit log names it.
func (u User) actor() service.Actor { return service.Actor{Username: u.Username, Remote: u.Remote} }

type ctxKey struct{}

// WithUser returns ctx carrying u.
func WithUser(ctx context.Context, u User) context.Context {
	return context.WithValue(ctx, ctxKey{}, u)
}

// UserFrom returns the admin a request was authenticated as.
func UserFrom(ctx context.Context) (User, bool) {
	u, ok := ctx.Value(ctxKey{}).(User)
	return u, ok
}

// ActorFrom is the acting admin of r for the service's audit log.
func ActorFrom(r *http.Request) service.Actor {
	u, _ := UserFrom(r.Context())
	return service.Actor{Username: u.Username, Remote: ClientIP(r)}
}

// ClientIP is r's client address (the connection's; no proxy headers are
// trusted).
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Errors of Login and of authentication.
var (
	ErrBadCredentials  = errors.New("wrong user name or password")
	ErrUnauthenticated = errors.New("not logged in: log in, or send an API token as Authorization: Bearer TOKEN")
	ErrSessionExpired  = errors.New("the session has expired: log in again")
	ErrTokenRevoked    = errors.New("the API token was revoked")
	ErrBadToken        = errors.New("the API token is not valid")
)

// LockedError says an account is locked after too many failed logins.
type LockedError struct{ Until time.Time }

func (e *LockedError) Error() string {
	return fmt.Sprintf("too many failed logins: the account is locked until %s", e.Until.UTC().Format(time.RFC3339))
}

// ThrottledError says a client made too many failed logins recently.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed logins from this address: try again in %d seconds", int(e.RetryAfter.Seconds())+1)
}

// CookieName is the session cookie's name.
func (m *Manager) CookieName() string {
	if m.cfg.Insecure {
		return m.cfg.CookieName
	}
	return "__Host-" + m.cfg.CookieName
}

func hash(v string) []byte {
	h := sha256.Sum256([]byte(v))
	return h[:]
}

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// throttled reports how long the client at ip must wait, 0 when it may try.
func (m *Manager) throttled(ip string, now time.Time) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	recent := m.failures[ip][:0]
	for _, t := range m.failures[ip] {
		if now.Sub(t) < m.cfg.ClientWindow {
			recent = append(recent, t)
		}
	}
	if len(recent) == 0 {
		delete(m.failures, ip)
	} else {
		m.failures[ip] = recent
	}
	if len(recent) < m.cfg.ClientFailures {
		return 0
	}
	return recent[0].Add(m.cfg.ClientWindow).Sub(now)
}

// maxClients bounds the addresses whose failures are remembered: past it,
// those whose last failure left the window are forgotten.
const maxClients = 10000

func (m *Manager) failed(ip string, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.failures) >= maxClients {
		for k, ts := range m.failures {
			if now.Sub(ts[len(ts)-1]) >= m.cfg.ClientWindow {
				delete(m.failures, k)
			}
		}
	}
	m.failures[ip] = append(m.failures[ip], now)
}

// Login checks username and password and, when they match, starts a
// session and sets its cookie on w. Errors: ErrBadCredentials (the same
// for an unknown name and a wrong password), *LockedError,
// *ThrottledError; each failure is audited.
func (m *Manager) Login(w http.ResponseWriter, r *http.Request, username, password string) (err error) {
	ctx := r.Context()
	now := m.cfg.Now()
	ip := ClientIP(r)
	actor := service.Actor{Username: username, Remote: ip}
	defer func() {
		if err != nil {
			m.svc.Record(ctx, actor, "login", "user "+username, "", err)
		}
	}()
	if wait := m.throttled(ip, now); wait > 0 {
		return &ThrottledError{RetryAfter: wait}
	}
	u, err := m.st.AdminUserByName(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		_, _ = VerifyPassword(dummyHash(), password)
		m.failed(ip, now)
		return ErrBadCredentials
	}
	if err != nil {
		return err
	}
	if u.LockedUntil != nil && now.Before(*u.LockedUntil) {
		m.failed(ip, now)
		return &LockedError{Until: *u.LockedUntil}
	}
	ok, err := VerifyPassword(u.PasswordHash, password)
	if err != nil {
		return fmt.Errorf("account %s: %w", username, err)
	}
	if !ok {
		m.failed(ip, now)
		_, until, err := m.st.LoginFailed(ctx, u.ID, now, m.cfg.MaxFailures, m.cfg.LockFor)
		if err != nil {
			return err
		}
		if until != nil && now.Before(*until) {
			return &LockedError{Until: *until}
		}
		return ErrBadCredentials
	}
	if err := m.st.LoginSucceeded(ctx, u.ID, now); err != nil {
		return err
	}
	// Sessions past their expiry are removed at each login (they are
	// refused anyway).
	if _, err := m.st.DeleteExpiredSessions(ctx, now, now.Add(-m.cfg.IdleTimeout)); err != nil {
		return err
	}
	tok, err := randomToken()
	if err != nil {
		return err
	}
	expires := now.Add(m.cfg.AbsoluteTimeout)
	if err := m.st.CreateSession(ctx, hash(tok), u.ID, now, expires, ip); err != nil {
		return err
	}
	http.SetCookie(w, m.cookie(tok))
	m.svc.Record(ctx, actor, "login", "user "+username, "session started", nil)
	return nil
}

// cookie is the session cookie holding value ("": cleared). Its lifetime
// is relative (Max-Age), so a client whose clock is off keeps it; the
// server enforces both expiries.
func (m *Manager) cookie(value string) *http.Cookie {
	c := &http.Cookie{Name: m.CookieName(), Value: value, Path: "/", HttpOnly: true, Secure: !m.cfg.Insecure, SameSite: http.SameSiteStrictMode,
		MaxAge: int(m.cfg.AbsoluteTimeout.Seconds())}
	if value == "" {
		c.MaxAge = -1
	}
	return c
}

// Logout ends the request's session (if any) and clears its cookie.
func (m *Manager) Logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(m.CookieName()); err == nil && c.Value != "" {
		_ = m.st.DeleteSession(r.Context(), hash(c.Value))
	}
	http.SetCookie(w, m.cookie(""))
	if u, ok := UserFrom(r.Context()); ok {
		m.svc.Record(r.Context(), u.actor(), "logout", "user "+u.Username, "", nil)
	}
}

// Authenticate finds the admin of r: an API token (Authorization: Bearer)
// or a session cookie. A session's idle expiry restarts with each request.
func (m *Manager) Authenticate(r *http.Request) (User, error) {
	ctx := r.Context()
	now := m.cfg.Now()
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return User{}, ErrBadToken
		}
		t, err := m.st.APITokenByHash(ctx, hash(strings.TrimSpace(tok)))
		if errors.Is(err, store.ErrNotFound) {
			return User{}, ErrBadToken
		}
		if err != nil {
			return User{}, err
		}
		if t.RevokedAt != nil {
			return User{}, ErrTokenRevoked
		}
		if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) > time.Minute {
			_ = m.st.TouchAPIToken(ctx, t.ID, now)
		}
		return User{ID: t.UserID, Username: t.Username, Via: "token", TokenID: t.ID, Remote: ClientIP(r)}, nil
	}
	c, err := r.Cookie(m.CookieName())
	if err != nil || c.Value == "" {
		return User{}, ErrUnauthenticated
	}
	h := hash(c.Value)
	s, err := m.st.Session(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return User{}, ErrUnauthenticated
	}
	if err != nil {
		return User{}, err
	}
	if !now.Before(s.ExpiresAt) || now.Sub(s.LastSeenAt) >= m.cfg.IdleTimeout {
		_ = m.st.DeleteSession(ctx, h)
		return User{}, ErrSessionExpired
	}
	if now.Sub(s.LastSeenAt) > 30*time.Second {
		_ = m.st.TouchSession(ctx, h, now)
	}
	return User{ID: s.UserID, Username: s.Username, Via: "session", Remote: ClientIP(r)}, nil
}

// RequireAPI serves h to authenticated requests only; others get 401 with
// a JSON error ({"error": "..."}).
func (m *Manager) RequireAPI(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := m.Authenticate(r)
		if err != nil {
			status := http.StatusUnauthorized
			if !isAuthError(err) {
				status = http.StatusServiceUnavailable
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="usagemeter"`)
			WriteError(w, status, err.Error())
			return
		}
		h.ServeHTTP(w, r.WithContext(WithUser(r.Context(), u)))
	})
}

// RequirePage serves h to authenticated requests only; others are
// redirected to /login?next=PATH.
func (m *Manager) RequirePage(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := m.Authenticate(r)
		if err != nil {
			if !isAuthError(err) {
				http.Error(w, "the database is unavailable: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		h.ServeHTTP(w, r.WithContext(WithUser(r.Context(), u)))
	})
}

func isAuthError(err error) bool {
	return errors.Is(err, ErrUnauthenticated) || errors.Is(err, ErrSessionExpired) || errors.Is(err, ErrTokenRevoked) || errors.Is(err, ErrBadToken)
}

// WriteError writes {"error": msg} with status.
func WriteError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// SetPassword sets username's password, creating the account when
// missing (`usagemeter admin set-password`, the OVA's first account). All
// its sessions end.
func (m *Manager) SetPassword(ctx context.Context, a service.Actor, username, password string) (created bool, err error) {
	defer func() {
		m.svc.Record(ctx, a, "admin.set_password", "user "+username, map[bool]string{true: "account created"}[created], err)
	}()
	return SetPassword(ctx, m.st, username, password, m.cfg.Now())
}

// SetPassword sets username's password in st (see Manager.SetPassword);
// the command line uses it without a Manager.
func SetPassword(ctx context.Context, st *store.Store, username, password string, now time.Time) (bool, error) {
	if err := CheckPassword(password); err != nil {
		return false, &service.Error{Status: http.StatusBadRequest, Msg: err.Error()}
	}
	h, err := HashPassword(password)
	if err != nil {
		return false, err
	}
	created, err := st.SetAdminPassword(ctx, username, h, now)
	if err != nil && strings.HasPrefix(err.Error(), "user name") {
		return false, &service.Error{Status: http.StatusBadRequest, Msg: err.Error()}
	}
	return created, err
}

// ChangePassword changes u's password after checking the old one; every
// session of u ends (the caller logs in again).
func (m *Manager) ChangePassword(ctx context.Context, u User, old, new string) (err error) {
	a := u.actor()
	defer func() { m.svc.Record(ctx, a, "admin.change_password", "user "+u.Username, "", err) }()
	acc, err := m.st.AdminUserByID(ctx, u.ID)
	if err != nil {
		return err
	}
	ok, err := VerifyPassword(acc.PasswordHash, old)
	if err != nil {
		return err
	}
	if !ok {
		return &service.Error{Status: http.StatusForbidden, Msg: "the current password is wrong"}
	}
	if old == new {
		return &service.Error{Status: http.StatusBadRequest, Msg: "the new password is the current one"}
	}
	_, err = SetPassword(ctx, m.st, acc.Username, new, m.cfg.Now())
	return err
}

// NewToken is an API token just created: Token is shown this once.
type NewToken struct {
	Token string         `json:"token"`
	Info  store.APIToken `json:"info"`
}

// TokenPrefix starts every API token.
const TokenPrefix = "umt_"

// CreateToken creates an API token for u named name.
func (m *Manager) CreateToken(ctx context.Context, u User, name string) (nt NewToken, err error) {
	a := u.actor()
	defer func() {
		m.svc.Record(ctx, a, "token.create", "token "+strconv.FormatInt(nt.Info.ID, 10), "name "+name, err)
	}()
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return nt, service.Invalid("name: give the token a name of 1 to 100 characters (what uses it)")
	}
	raw, err := randomToken()
	if err != nil {
		return nt, err
	}
	tok := TokenPrefix + raw
	now := m.cfg.Now()
	id, err := m.st.CreateAPIToken(ctx, u.ID, name, tok[:len(TokenPrefix)+6], hash(tok), now)
	if err != nil {
		return nt, err
	}
	info, err := m.st.APITokenByHash(ctx, hash(tok))
	if err != nil {
		return nt, err
	}
	info.ID = id
	return NewToken{Token: tok, Info: info}, nil
}

// RevokeToken revokes token id (from then on it is refused).
func (m *Manager) RevokeToken(ctx context.Context, u User, id int64) (err error) {
	a := u.actor()
	defer func() { m.svc.Record(ctx, a, "token.revoke", "token "+strconv.FormatInt(id, 10), "", err) }()
	if _, err := m.st.RevokeAPIToken(ctx, id, m.cfg.Now()); errors.Is(err, store.ErrNotFound) {
		return &service.Error{Status: http.StatusNotFound, Msg: fmt.Sprintf("token %d not found or revoked already", id)}
	} else if err != nil {
		return err
	}
	return nil
}

// Tokens lists the API tokens (never the tokens themselves).
func (m *Manager) Tokens(ctx context.Context) ([]store.APIToken, error) {
	ts, err := m.st.APITokens(ctx)
	if ts == nil {
		ts = []store.APIToken{}
	}
	return ts, err
}
