package receiver_test

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/usagemeter/usagemeter/internal/receiver"
	"github.com/usagemeter/usagemeter/internal/receiver/protocol"
)

// monthStates is each appliance's state of month in a fleet view.
func monthStates(v receiver.FleetView, month string) map[string]receiver.MonthState {
	out := map[string]receiver.MonthState{}
	for _, a := range v.Appliances {
		for _, m := range a.Months {
			if m.Month == month {
				out[a.ID] = m
			}
		}
	}
	return out
}

// snapshot is the rows a read must not change: the bundles' merge marks,
// the receiver's and the admins' audit logs, the alerts and their mails.
func (f *fleet) snapshot(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, q := range map[string]string{
		"receiver_bundles": `SELECT id, appliance, month, version, state, replaced_by, merged_at FROM receiver_bundles`,
		"receiver_audit":   `SELECT * FROM receiver_audit`,
		"audit_log":        `SELECT * FROM audit_log`,
		"alerts":           `SELECT * FROM alerts`,
		"outbox":           `SELECT * FROM outbox`,
	} {
		var s string
		if err := f.r.Pool.QueryRow(context.Background(), `SELECT coalesce(string_agg(x::text, E'\n' ORDER BY x::text), '') FROM (`+q+`) x`).Scan(&s); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = s
	}
	return out
}

// login logs the browser in to the console.
func (b *browser) login() {
	b.t.Helper()
	resp, body := b.post("/login", url.Values{"username": {consoleUser}, "password": {consolePassword}, "next": {"/"}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("login: %d\n%s", resp.StatusCode, body)
	}
}

// apiGet reads path of the fleet API with c, authorization as given ("":
// none), and returns the status and body.
func apiGet(t *testing.T, c *http.Client, f *fleet, path, authorization string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.url+path, nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	return doHeader(t, c, req)
}

// TestReadsArePure: A sends a new version of March; opening March in the
// console and reading it and the fleet from the API, with each of the
// API's credentials, changes no row (the bundle stays unmarked, nothing is
// audited or alerted); the minute job then marks it merged.
func TestReadsArePure(t *testing.T) {
	ctx := context.Background()
	cf := newConsoleFleet(t)
	f, a := cf.f, cf.a
	exec1(t, a.st, `INSERT INTO usage_spans (product_id, metric, object_key, first_hour, last_hour, quantity, unit, edition, dims_hash, dims)
		SELECT product_id, metric, 'late/vm/3', first_hour, last_hour, 256, unit, edition, dims_hash, dims FROM usage_spans LIMIT 1`)
	if v := a.send(t).Report.Version; v != 3 {
		t.Fatalf("A's third March is version %d", v)
	}
	unmarked := `SELECT count(*) FROM receiver_bundles WHERE state = 'verified' AND replaced_by IS NULL AND merged_at IS NULL`
	if n := f.count(t, unmarked); n != 1 {
		t.Fatalf("%d unmarked bundles, want A's version 3", n)
	}

	br := newBrowser(t, f, a.enr.Client())
	br.login()
	resp, body := br.post("/api-tokens", url.Values{"name": {"billing-export"}}, nil)
	tok := regexp.MustCompile(`id="api-token">(umt_[^<]+)<`).FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || tok == nil {
		t.Fatalf("API token: %d\n%s", resp.StatusCode, body)
	}
	token := html.UnescapeString(tok[1])

	before := f.snapshot(t)
	for _, p := range []string{"/months/2026-03", "/months", "/", "/appliances/" + a.id} {
		br.page(p)
	}
	for _, p := range []string{protocol.PathMonths + "2026-03", protocol.PathFleet} {
		for _, cred := range []string{"Bearer admin-secret", "Bearer " + token} {
			if code, body, _ := apiGet(t, a.enr.Client(), f, p, cred); code != http.StatusOK {
				t.Fatalf("GET %s with %s: %d %s", p, cred[:12], code, body)
			}
		}
		if code, body, _ := apiGet(t, br.c, f, p, ""); code != http.StatusOK {
			t.Fatalf("GET %s with the console's session: %d %s", p, code, body)
		}
	}
	if _, err := f.r.Merge(ctx, "2026-03"); err != nil {
		t.Fatal(err)
	}
	after := f.snapshot(t)
	for name := range before {
		if before[name] != after[name] {
			t.Errorf("reading changed %s:\nbefore:\n%s\nafter:\n%s", name, before[name], after[name])
		}
	}
	if ms := monthStates(f.fleetView(t, a.enr.Client()), "2026-03")[a.id]; ms.State != receiver.MonthVerified || ms.Version != 3 {
		t.Fatalf("A's March before the minute job: %+v", ms)
	}

	// The minute job merges and marks.
	if err := f.r.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.count(t, unmarked); n != 0 {
		t.Fatalf("%d bundles unmarked after the minute job", n)
	}
	for id, ms := range monthStates(f.fleetView(t, a.enr.Client()), "2026-03") {
		if ms.State != receiver.MonthMerged {
			t.Fatalf("%s: March %+v after the minute job", id, ms)
		}
	}
}

// TestAPIAuthentication: the fleet API accepts receiver.admin_token, an API
// token created on the console's page (shown once, audited) and the
// console's session; nothing, a wrong token, a revoked one and an ended
// session get 401 with a JSON error; a cross-origin POST is refused.
func TestAPIAuthentication(t *testing.T) {
	cf := newConsoleFleet(t)
	f, a := cf.f, cf.a
	c := a.enr.Client()
	br := newBrowser(t, f, c)

	// Without a session, the page is behind the login and the API refuses.
	if resp, _ := br.get("/api-tokens"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("API tokens page without a session: %d", resp.StatusCode)
	}
	refused := func(what, authorization string, cl *http.Client, want string) {
		t.Helper()
		code, body, h := apiGet(t, cl, f, protocol.PathFleet, authorization)
		var e struct{ Error string }
		if code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("Content-Type"), "application/json") ||
			json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, want) || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("%s: %d %v %s", what, code, h, body)
		}
		if strings.Contains(body, "admin-secret") {
			t.Fatalf("%s: the refusal names the admin token", what)
		}
	}
	refused("no credentials", "", c, "not logged in")
	refused("a wrong bearer", "Bearer admin-secreT", c, "not valid")
	refused("another scheme", "Basic YWRtaW46YWRtaW4=", c, "not valid")

	br.login()
	// Session: the API answers the logged-in browser.
	if code, body, h := apiGet(t, br.c, f, protocol.PathFleet, ""); code != http.StatusOK || h.Get("Cache-Control") != "no-store" || !strings.Contains(body, a.id) {
		t.Fatalf("fleet API with the session: %d %v %s", code, h, body)
	}

	// A token from the page: shown once, listed by its prefix, audited.
	if resp, body := br.post("/api-tokens", url.Values{"name": {" "}}, nil); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "give the token a name") {
		t.Fatalf("a token without a name: %d\n%s", resp.StatusCode, body)
	}
	resp, body := br.post("/api-tokens", url.Values{"name": {"billing-export"}}, nil)
	tok := regexp.MustCompile(`id="api-token">(umt_[^<]+)<`).FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || tok == nil {
		t.Fatalf("API token: %d\n%s", resp.StatusCode, body)
	}
	token := html.UnescapeString(tok[1])
	if f.count(t, `SELECT count(*) FROM audit_log WHERE action = 'token.create' AND actor = $1 AND ok AND detail = 'name billing-export'`, consoleUser) != 1 {
		t.Fatal("token creation not audited")
	}
	list := br.page("/api-tokens")
	if strings.Contains(list, token) || !strings.Contains(list, token[:10]) || len(attrs(list, "data-api-token")) != 1 {
		t.Fatalf("API tokens page after creating:\n%s", list)
	}
	var m receiver.Month
	if code, body, _ := apiGet(t, c, f, protocol.PathMonths+"2026-03", "Bearer "+token); code != http.StatusOK || json.Unmarshal([]byte(body), &m) != nil || len(m.Lines) == 0 {
		t.Fatalf("months API with the token: %d %s", code, body)
	}
	if code, _, _ := apiGet(t, c, f, protocol.PathFleet, "Bearer admin-secret"); code != http.StatusOK {
		t.Fatalf("fleet API with the admin token: %d", code)
	}
	if code, body, _ := apiGet(t, c, f, protocol.PathMonths+"2026-13", "Bearer "+token); code != http.StatusBadRequest || !strings.Contains(body, `"error"`) {
		t.Fatalf("a bad month: %d %s", code, body)
	}

	// A cross-origin POST with the session is refused: no token is made,
	// and none on the API's path either.
	tokens := f.count(t, `SELECT count(*) FROM api_tokens`)
	for _, p := range []string{"/api-tokens", protocol.PathFleet} {
		if resp, _ := br.post(p, url.Values{"name": {"evil"}}, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-origin POST %s: %d", p, resp.StatusCode)
		}
	}
	if n := f.count(t, `SELECT count(*) FROM api_tokens`); n != tokens {
		t.Fatalf("a cross-origin POST made a token: %d, was %d", n, tokens)
	}

	// Revoked: refused from then on, audited.
	var id int64
	if err := f.r.Pool.QueryRow(context.Background(), `SELECT id FROM api_tokens WHERE name = 'billing-export'`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	resp, _ = br.post("/api-tokens/"+jsonNum(id)+"/revoke", nil, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/api-tokens" {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	refused("a revoked token", "Bearer "+token, c, "revoked")
	if f.count(t, `SELECT count(*) FROM audit_log WHERE action = 'token.revoke' AND actor = $1 AND ok`, consoleUser) != 1 {
		t.Fatal("revocation not audited")
	}
	if resp, _ := br.post("/api-tokens/"+jsonNum(id)+"/revoke", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("revoking twice: %d", resp.StatusCode)
	}
	if !strings.Contains(br.page("/api-tokens"), "data-revoked") {
		t.Fatal("the revoked token not shown revoked")
	}

	// Logged out: the session no longer reads the API.
	if resp, _ := br.post("/logout", nil, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	refused("after logout", "", br.c, "not logged in")
}
