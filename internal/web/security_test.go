package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/web/auth"
	"github.com/usagemeter/usagemeter/internal/web/service"
)

// TestSessionCookie: the session cookie is Secure, HttpOnly,
// SameSite=Strict, __Host- prefixed; logout ends the session on the
// server, so a copy of the cookie no longer works.
func TestSessionCookie(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.login(nil, adminUser, adminPass)
	mustStatus(t, r, http.StatusOK)
	cs := r.Cookies()
	if len(cs) != 1 {
		t.Fatalf("cookies: %v", cs)
	}
	c := cs[0]
	if c.Name != "__Host-usagemeter_session" || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" || len(c.Value) < 40 {
		t.Fatalf("session cookie: %+v", c)
	}
	var count int
	if err := e.app.Store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM admin_sessions WHERE token_hash = sha256(convert_to($1, 'UTF8'))`, c.Value).Scan(&count); err != nil || count != 1 {
		t.Fatalf("the session is stored by the hash of its cookie: %d %v", count, err)
	}
	e.auditHas("login", adminUser, true)

	copyOf := e.newClient()
	copyOf.Jar.SetCookies(mustURL(t, e.srv.URL), []*http.Cookie{{Name: c.Name, Value: c.Value, Path: "/"}})
	mustStatus(t, e.do(copyOf, "GET", Prefix+"/me", nil), http.StatusOK)
	r = e.do(nil, "POST", Prefix+"/logout", nil)
	mustStatus(t, r, http.StatusNoContent)
	if cs := r.Cookies(); len(cs) != 1 || cs[0].MaxAge >= 0 {
		t.Fatalf("logout does not clear the cookie: %v", cs)
	}
	e.auditHas("logout", adminUser, true)
	mustStatus(t, e.do(nil, "GET", Prefix+"/me", nil), http.StatusUnauthorized)
	mustStatus(t, e.do(copyOf, "GET", Prefix+"/me", nil), http.StatusUnauthorized)
}

// TestLoginThrottling: wrong passwords lock the account after
// MaxFailures (even the right password is refused until the lock
// passes), an unknown user gets the same answer as a wrong password, and
// one address that keeps failing is made to wait (429).
func TestLoginThrottling(t *testing.T) {
	e := newEnv(t, envOptions{auth: auth.Config{MaxFailures: 3, LockFor: 10 * time.Minute, ClientFailures: 6, ClientWindow: time.Hour}})
	for i := 1; i <= 2; i++ {
		r := e.login(nil, adminUser, "wrong-password-"+strconv.Itoa(i))
		mustStatus(t, r, http.StatusUnauthorized)
		if msg := r.errorText(t); msg != "wrong user name or password" {
			t.Fatalf("failure %d: %q", i, msg)
		}
	}
	r := e.login(nil, "nobody", "whatever-password")
	mustStatus(t, r, http.StatusUnauthorized)
	if msg := r.errorText(t); msg != "wrong user name or password" {
		t.Fatalf("unknown user: %q", msg)
	}
	r = e.login(nil, adminUser, "wrong-password-3")
	mustStatus(t, r, http.StatusForbidden)
	if msg := r.errorText(t); !strings.Contains(msg, "locked until 2026-05-04T10:30:00Z") {
		t.Fatalf("lock-out: %q", msg)
	}
	r = e.login(nil, adminUser, adminPass)
	mustStatus(t, r, http.StatusForbidden)
	if len(r.Cookies()) != 0 {
		t.Fatal("a locked account got a session")
	}
	e.auditHas("login", adminUser, false)

	e.clock.Add(10*time.Minute + time.Second)
	mustStatus(t, e.login(nil, adminUser, adminPass), http.StatusOK)
	u, err := e.app.Store.AdminUserByName(context.Background(), adminUser)
	if err != nil || u.FailedLogins != 0 || u.LockedUntil != nil {
		t.Fatalf("a login clears the failures: %+v %v", u, err)
	}

	// The address has failed 5 times (and once while locked): the 7th
	// attempt within the hour waits, whatever the account.
	mustStatus(t, e.login(e.newClient(), "someone", "x-password-1"), http.StatusUnauthorized)
	r = e.login(e.newClient(), "someone-else", "x-password-2")
	mustStatus(t, r, http.StatusTooManyRequests)
	if ra, _ := strconv.Atoi(r.Header.Get("Retry-After")); ra < 60 || !strings.Contains(r.errorText(t), "too many failed logins from this address") {
		t.Fatalf("throttled: Retry-After %q, %s", r.Header.Get("Retry-After"), r.body)
	}
	mustStatus(t, e.login(e.newClient(), adminUser, adminPass), http.StatusTooManyRequests)
	e.clock.Add(time.Hour)
	mustStatus(t, e.login(e.newClient(), adminUser, adminPass), http.StatusOK)
	// The session of the login before has been idle for an hour.
	mustStatus(t, e.do(nil, "GET", Prefix+"/me", nil), http.StatusUnauthorized)
}

// TestSessionExpiry: a session ends after IdleTimeout without a request,
// and AbsoluteTimeout after login however busy.
func TestSessionExpiry(t *testing.T) {
	e := newEnv(t, envOptions{auth: auth.Config{IdleTimeout: 10 * time.Minute, AbsoluteTimeout: time.Hour}})
	mustStatus(t, e.login(nil, adminUser, adminPass), http.StatusOK)
	e.clock.Add(9 * time.Minute)
	mustStatus(t, e.do(nil, "GET", Prefix+"/me", nil), http.StatusOK)
	e.clock.Add(9 * time.Minute) // 18 minutes after login, 9 after the last request
	mustStatus(t, e.do(nil, "GET", Prefix+"/me", nil), http.StatusOK)
	e.clock.Add(10 * time.Minute)
	r := e.do(nil, "GET", Prefix+"/me", nil)
	mustStatus(t, r, http.StatusUnauthorized)
	if msg := r.errorText(t); !strings.Contains(msg, "expired") {
		t.Fatalf("idle expiry: %q", msg)
	}
	mustStatus(t, e.do(nil, "GET", Prefix+"/me", nil), http.StatusUnauthorized) // gone, not revived

	mustStatus(t, e.login(nil, adminUser, adminPass), http.StatusOK)
	var sessions int
	if err := e.app.Store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM admin_sessions`).Scan(&sessions); err != nil || sessions != 1 {
		t.Fatalf("expired sessions are removed at login: %d %v", sessions, err)
	}
	for i := 0; i < 7; i++ { // busy: a request every 8 minutes
		e.clock.Add(8 * time.Minute)
		mustStatus(t, e.do(nil, "GET", Prefix+"/me", nil), http.StatusOK)
	}
	e.clock.Add(5 * time.Minute) // 61 minutes after login
	r = e.do(nil, "GET", Prefix+"/me", nil)
	mustStatus(t, r, http.StatusUnauthorized)
	if msg := r.errorText(t); !strings.Contains(msg, "expired") {
		t.Fatalf("absolute expiry: %q", msg)
	}
}

// TestTokens: an API token works as Bearer, is listed without its
// secret, and stops working the moment it is revoked, between two
// requests of a script using it.
func TestTokens(t *testing.T) {
	e := newEnv(t, envOptions{})
	mustStatus(t, e.login(nil, adminUser, adminPass), http.StatusOK)
	mustStatus(t, e.do(nil, "POST", Prefix+"/tokens", map[string]string{"name": " "}), http.StatusBadRequest)
	var nt auth.NewToken
	r := e.do(nil, "POST", Prefix+"/tokens", map[string]string{"name": "billing export"})
	mustStatus(t, r, http.StatusCreated)
	r.json(t, &nt)
	if !strings.HasPrefix(nt.Token, "umt_") || len(nt.Token) < 40 || nt.Info.Name != "billing export" || !strings.HasPrefix(nt.Token, nt.Info.Prefix) {
		t.Fatalf("token: %s", r.body)
	}
	e.secrets = append(e.secrets, nt.Token) // never shown again
	e.auditHas("token.create", adminUser, true)

	script := e.newClient()
	bearer := header("Authorization", "Bearer "+nt.Token)
	var me auth.User
	r = e.do(script, "GET", Prefix+"/me", nil, bearer)
	mustStatus(t, r, http.StatusOK)
	r.json(t, &me)
	if me.Username != adminUser || me.Via != "token" || me.TokenID != nt.Info.ID {
		t.Fatalf("me by token: %s", r.body)
	}
	// A change by token is audited under the token's admin.
	mustStatus(t, e.do(script, "POST", Prefix+"/customer-rules", map[string]string{"label": "ACME", "object_type": "folder", "object_name": "acme"}, bearer), http.StatusCreated)
	e.auditHas("customer.add", adminUser, true)
	var ts []store.APIToken
	e.do(nil, "GET", Prefix+"/tokens", nil).json(t, &ts)
	if len(ts) != 1 || ts[0].LastUsedAt == nil || ts[0].RevokedAt != nil {
		t.Fatalf("tokens: %+v", ts)
	}

	mustStatus(t, e.do(nil, "DELETE", fmt.Sprintf("%s/tokens/%d", Prefix, nt.Info.ID), nil), http.StatusNoContent)
	r = e.do(script, "GET", Prefix+"/products", nil, bearer)
	mustStatus(t, r, http.StatusUnauthorized)
	if msg := r.errorText(t); msg != "the API token was revoked" {
		t.Fatalf("revoked token: %q", msg)
	}
	mustStatus(t, e.do(nil, "DELETE", fmt.Sprintf("%s/tokens/%d", Prefix, nt.Info.ID), nil), http.StatusNotFound)
	if a := e.auditHas("token.revoke", adminUser, true); a.Remote != "127.0.0.1" {
		t.Fatalf("the revocation's audit entry has no client address: %+v", a)
	}
	mustStatus(t, e.do(script, "GET", Prefix+"/me", nil, header("Authorization", "Basic YWRtaW46eA==")), http.StatusUnauthorized)
}

// TestChangePassword: the current password is required, a short one is
// refused, and after the change every session of the account ends and
// only the new password logs in.
func TestChangePassword(t *testing.T) {
	e := newEnv(t, envOptions{})
	const newPass = "An0ther-L0ng-Passphrase"
	e.secrets = append(e.secrets, newPass)
	mustStatus(t, e.login(nil, adminUser, adminPass), http.StatusOK)
	other := e.newClient()
	mustStatus(t, e.login(other, adminUser, adminPass), http.StatusOK)

	r := e.do(nil, "POST", Prefix+"/password", map[string]string{"current": "not-it-at-all", "new": newPass})
	mustStatus(t, r, http.StatusForbidden)
	if msg := r.errorText(t); msg != "the current password is wrong" {
		t.Fatalf("wrong current: %q", msg)
	}
	r = e.do(nil, "POST", Prefix+"/password", map[string]string{"current": adminPass, "new": "short"})
	mustStatus(t, r, http.StatusBadRequest)
	if msg := r.errorText(t); !strings.Contains(msg, "at least 12 characters") {
		t.Fatalf("short: %q", msg)
	}
	mustStatus(t, e.do(nil, "POST", Prefix+"/password", map[string]string{"current": adminPass, "new": newPass}), http.StatusNoContent)
	e.auditHas("admin.change_password", adminUser, true)
	e.auditHas("admin.change_password", adminUser, false)
	mustStatus(t, e.do(nil, "GET", Prefix+"/me", nil), http.StatusUnauthorized)
	mustStatus(t, e.do(other, "GET", Prefix+"/me", nil), http.StatusUnauthorized)
	mustStatus(t, e.login(nil, adminUser, adminPass), http.StatusUnauthorized)
	mustStatus(t, e.login(nil, adminUser, newPass), http.StatusOK)
	u, err := e.app.Store.AdminUserByName(context.Background(), adminUser)
	if err != nil || !strings.HasPrefix(u.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(u.PasswordHash, newPass) {
		t.Fatalf("stored hash: %q %v", u.PasswordHash, err)
	}
}

// TestCrossOrigin: a state-changing request from another origin is
// refused (403, JSON) before it reaches the API, even with a valid
// session; nothing changes and nothing is audited. The same request from
// the appliance's own pages, or from a script, passes.
func TestCrossOrigin(t *testing.T) {
	e := newEnv(t, envOptions{})
	mustStatus(t, e.login(nil, adminUser, adminPass), http.StatusOK)
	rule := map[string]string{"label": "ACME", "object_type": "folder", "object_name": "acme"}
	for name, opts := range map[string][]reqOpt{
		"Sec-Fetch-Site": {header("Sec-Fetch-Site", "cross-site")},
		"Origin":         {header("Origin", "https://evil.example")},
		"same-site":      {header("Sec-Fetch-Site", "same-site"), header("Origin", "https://other.appliance.example")},
	} {
		r := e.do(nil, "POST", Prefix+"/customer-rules", rule, opts...)
		mustStatus(t, r, http.StatusForbidden)
		if msg := r.errorText(t); !strings.Contains(msg, "cross-origin request refused") {
			t.Fatalf("%s: %q", name, msg)
		}
		r = e.do(e.newClient(), "POST", Prefix+"/login", map[string]string{"username": adminUser, "password": adminPass}, opts...)
		mustStatus(t, r, http.StatusForbidden)
	}
	if rules, _ := e.app.Store.CustomerRules(context.Background()); len(rules) != 0 {
		t.Fatalf("a cross-origin request changed something: %+v", rules)
	}
	if es, _ := e.app.Store.Audit(context.Background(), store.AuditFilter{Action: "customer."}); len(es) != 0 {
		t.Fatalf("a refused request was audited: %+v", es)
	}
	// Reading is allowed; the same POST from the appliance's own page is too.
	mustStatus(t, e.do(nil, "GET", Prefix+"/customer-rules", nil, header("Sec-Fetch-Site", "cross-site")), http.StatusOK)
	mustStatus(t, e.do(nil, "POST", Prefix+"/customer-rules", rule, header("Sec-Fetch-Site", "same-origin"), header("Origin", e.srv.URL)), http.StatusCreated)
}

// TestOversizedBodies: a body over the limit is refused with 413 and a
// JSON error, declared (Content-Length) or not (chunked).
func TestOversizedBodies(t *testing.T) {
	e := newEnv(t, envOptions{})
	mustStatus(t, e.login(nil, adminUser, adminPass), http.StatusOK)
	big := `{"label":"` + strings.Repeat("A", DefaultMaxBody) + `","object_type":"folder","object_name":"x"}`
	r := e.do(nil, "POST", Prefix+"/customer-rules", big)
	mustStatus(t, r, http.StatusRequestEntityTooLarge)
	if msg := r.errorText(t); msg != "request body too large: the limit is 1 MiB" {
		t.Fatalf("declared: %q", msg)
	}
	req, err := http.NewRequest("POST", e.srv.URL+Prefix+"/customer-rules", &chunked{s: big})
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = -1
	res, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked: %d", res.StatusCode)
	}
	// Also before authentication.
	r = e.do(e.newClient(), "POST", Prefix+"/login", `{"username":"admin","password":"`+strings.Repeat("p", 2*DefaultMaxBody)+`"}`)
	mustStatus(t, r, http.StatusRequestEntityTooLarge)
	if rules, _ := e.app.Store.CustomerRules(context.Background()); len(rules) != 0 {
		t.Fatal("an oversized body was stored")
	}
}

// chunked reads s without telling its length.
type chunked struct {
	s string
	i int
}

func (c *chunked) Read(p []byte) (int, error) {
	if c.i >= len(c.s) {
		return 0, io.EOF
	}
	n := copy(p, c.s[c.i:])
	c.i += n
	return n, nil
}

// TestSecurityHeaders: every response carries the CSP (no inline script,
// no framing), HSTS over TLS, nosniff; API responses are not cached;
// /metrics needs its bearer token.
func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, path := range []string{"/healthz", Prefix + "/openapi.json", Prefix + "/me", "/"} {
		r := e.do(e.newClient(), "GET", path, nil)
		h := r.Header
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") ||
			h.Get("Strict-Transport-Security") != "max-age=31536000" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" {
			t.Fatalf("%s: headers %v", path, h)
		}
		if strings.HasPrefix(path, Prefix) && h.Get("Cache-Control") != "no-store" {
			t.Fatalf("%s: Cache-Control %q", path, h.Get("Cache-Control"))
		}
	}
	r := e.do(e.newClient(), "GET", "/metrics", nil)
	mustStatus(t, r, http.StatusUnauthorized)
	r = e.do(e.newClient(), "GET", "/metrics", nil, header("Authorization", "Bearer metrics-T0ken"))
	mustStatus(t, r, http.StatusOK)
	if !strings.Contains(string(r.body), "usagemeter_build_info") {
		t.Fatalf("/metrics: %.300s", r.body)
	}
	// Without TLS (http.tls: off) there is no HSTS.
	plain := New(Options{Service: e.svc, Auth: e.auth})
	rec := newRecorder()
	plain.ServeHTTP(rec, mustRequest(t, "GET", "/api/v1/openapi.json"))
	if rec.Header().Get("Strict-Transport-Security") != "" || rec.Header().Get("Content-Security-Policy") == "" {
		t.Fatalf("plain HTTP headers: %v", rec.Header())
	}
}

// TestConsoleHook: the console's handler is mounted at / with the
// service and auth, behind the same protections.
func TestConsoleHook(t *testing.T) {
	e := newEnv(t, envOptions{})
	var gotSvc *service.Service
	var gotAuth *auth.Manager
	h := New(Options{Service: e.svc, Auth: e.auth, TLS: true, Console: func(s *service.Service, a *auth.Manager) http.Handler {
		gotSvc, gotAuth = s, a
		return a.RequirePage(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, _ := auth.UserFrom(r.Context())
			fmt.Fprintf(w, "dashboard of %s", u.Username)
		}))
	}})
	if gotSvc != e.svc || gotAuth != e.auth {
		t.Fatal("the console was not given the service and auth")
	}
	rec := newRecorder()
	h.ServeHTTP(rec, mustRequest(t, "GET", "/products?x=1"))
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/login?next=%2Fproducts%3Fx%3D1" {
		t.Fatalf("a page without a session: %d %v", rec.Code, rec.Header())
	}
	rec = newRecorder()
	req := mustRequest(t, "POST", "/products")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("a cross-origin POST to a page: %d", rec.Code)
	}
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func mustRequest(t *testing.T, method, path string) *http.Request {
	t.Helper()
	return httptest.NewRequest(method, path, nil)
}
