package receiver_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/internal/receiver"
	"github.com/usagemeter/usagemeter/internal/receiver/protocol"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/web/auth"
	"github.com/usagemeter/usagemeter/report"
)

const (
	consoleUser     = "fleet-admin"
	consolePassword = "Fleet-Console-Passw0rd"
)

// browser is an HTTP client with a cookie jar that does not follow
// redirects, and every page it read (for the secrets check).
type browser struct {
	t     *testing.T
	c     *http.Client
	base  string
	pages map[string]string
}

func newBrowser(t *testing.T, f *fleet, pinned *http.Client) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := *pinned
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: t, c: &c, base: f.url, pages: map[string]string{}}
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	b.pages[req.Method+" "+req.URL.Path] = string(body)
	return resp, string(body)
}

func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.base+path, nil)
	return b.do(req)
}

// post sends a form; header edits the request's headers (nil: a
// same-origin form post, as a browser sends it).
func (b *browser) post(path string, form url.Values, header map[string]string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return b.do(req)
}

// page GETs path and wants 200.
func (b *browser) page(path string) string {
	b.t.Helper()
	resp, body := b.get(path)
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("GET %s: %d\n%s", path, resp.StatusCode, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(body, "<script") {
		b.t.Fatalf("GET %s: CSP %q or a script on the page", path, csp)
	}
	return body
}

// row is the <tr> of a page whose attribute attr is value.
func row(t *testing.T, page, attr, value string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<tr[^>]*\b` + attr + `="` + regexp.QuoteMeta(value) + `"[^>]*>(.*?)</tr>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no row %s=%q on the page:\n%s", attr, value, page)
	}
	return m[1]
}

// attrs lists the values of attribute attr on a page, unescaped.
func attrs(s, attr string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`\b`+attr+`="([^"]*)"`).FindAllStringSubmatch(s, -1) {
		out = append(out, html.UnescapeString(m[1]))
	}
	return out
}

// consoleFleet is a receiver with two appliances, both enrolled on March
// 20 and having sent March on April 1 (merged, their shared vCenter billed
// once; A sent a version 2 an hour later); on May 4 both sent a heartbeat, A (a product failing) again 3 hours
// later: B is silent, and both miss April.
type consoleFleet struct {
	f         *fleet
	a, b      *app
	resB      *report.Result
	usedToken string
	api       receiver.FleetView
}

func newConsoleFleet(t *testing.T) *consoleFleet {
	t.Helper()
	ctx := context.Background()
	clk := newClock(time.Date(2026, 3, 20, 10, 0, 0, 0, time.UTC))
	f := newFleet(t, clk)
	a := newApp(t, f, "a1111111-0000-4000-8000-000000000001", 0x11, "50aaaaaa-0000-4000-8000-00000000000a", 4096, 2048)
	b := newApp(t, f, "b2222222-0000-4000-8000-000000000002", 0x22, "50bbbbbb-0000-4000-8000-00000000000b", 4096, 1024)
	usedToken := f.token(t)
	a.enrol(t, f, usedToken)
	b.enrol(t, f, f.token(t))
	clk.set(time.Date(2026, 4, 1, 8, 0, 0, 0, time.UTC))
	a.send(t)
	resB := b.send(t)
	// A late VM: A's version 2 of March replaces its version 1.
	clk.Add(time.Hour)
	exec1(t, a.st, `INSERT INTO usage_spans (product_id, metric, object_key, first_hour, last_hour, quantity, unit, edition, dims_hash, dims)
		SELECT product_id, metric, 'late/vm/2', first_hour, last_hour, 512, unit, edition, dims_hash, dims FROM usage_spans LIMIT 1`)
	if v := a.send(t).Report.Version; v != 2 {
		t.Fatalf("A's second March is version %d", v)
	}
	var pid int64
	if err := a.st.Pool().QueryRow(ctx, `SELECT min(id) FROM products`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := a.st.RaiseAlert(ctx, store.Alert{Key: "collection_failed:1", Kind: "collection_failed", ProductID: pid, OpenedAt: clk.Now(), LastError: "dial tcp vc-a111.corp.example:443: timeout"}, nil); err != nil {
		t.Fatal(err)
	}
	beat := func(x *app) {
		t.Helper()
		hb, err := protocol.HeartbeatOf(ctx, x.st, "1.2.3", clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := x.enr.SendHeartbeat(ctx, hb); err != nil {
			t.Fatal(err)
		}
	}
	clk.set(time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC))
	beat(a)
	beat(b)
	clk.Add(3 * time.Hour)
	beat(a)
	if err := f.r.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.SetPassword(ctx, f.r.Store, consoleUser, consolePassword, time.Now()); err != nil {
		t.Fatal(err)
	}
	return &consoleFleet{f: f, a: a, b: b, resB: resB, usedToken: usedToken, api: f.fleetView(t, a.enr.Client())}
}

// TestConsole: two appliances upload March and send heartbeats, one goes
// silent; an admin logs in to the receiver's console and sees the fleet,
// the months and the merged March equal to the API's, creates an
// enrolment token that enrols a third appliance, and revokes an appliance,
// whose next upload is refused. Without a session nothing is shown; a
// wrong password and a cross-origin POST are refused; no page carries a
// secret.
func TestConsole(t *testing.T) {
	ctx := context.Background()
	cf := newConsoleFleet(t)
	f, a, b, resB, usedToken, api := cf.f, cf.a, cf.b, cf.resB, cf.usedToken, cf.api

	br := newBrowser(t, f, a.enr.Client())
	// Without a session: sent to the login page; a POST does nothing.
	for _, p := range []string{"/", "/months", "/months/2026-03", "/appliances/" + b.id, "/audit"} {
		resp, _ := br.get(p)
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/login?next="+url.QueryEscape(p) {
			t.Fatalf("GET %s without a session: %d %s", p, resp.StatusCode, loc)
		}
	}
	if resp, _ := br.post("/appliances/"+b.id+"/revoke", url.Values{"confirm": {"yes"}}, nil); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Fatalf("revoke without a session: %d", resp.StatusCode)
	}
	if resp, _ := br.post("/tokens", url.Values{"note": {"x"}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("token without a session: %d", resp.StatusCode)
	}

	// A wrong password: refused, no session.
	resp, body := br.post("/login", url.Values{"username": {consoleUser}, "password": {"Not-The-Passw0rd"}, "next": {"/months"}}, nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "the user name or the password is wrong") || len(resp.Cookies()) != 0 {
		t.Fatalf("wrong password: %d %v\n%s", resp.StatusCode, resp.Cookies(), body)
	}
	if resp, _ := br.get("/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after a wrong password: %d", resp.StatusCode)
	}
	resp, _ = br.post("/login", url.Values{"username": {consoleUser}, "password": {consolePassword}, "next": {"/months"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/months" {
		t.Fatalf("login: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-"+receiver.SessionCookie {
			session = c
		}
	}
	if session == nil || !session.Secure || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/" {
		t.Fatalf("session cookie: %+v", resp.Cookies())
	}

	// The fleet: both appliances, their versions, heartbeats, products'
	// last hours, open alerts and month states; B flagged silent.
	fleet := br.page("/")
	if got := attrs(fleet, "data-appliance"); len(got) != 2 || got[0] != a.id || got[1] != b.id {
		t.Fatalf("fleet rows: %v", got)
	}
	for i, x := range []*app{a, b} {
		r := row(t, fleet, "data-appliance", x.id)
		fa := api.Appliances[i]
		if !strings.Contains(r, `data-version>1.2.3<`) {
			t.Errorf("%s: version not shown:\n%s", x.id, r)
		}
		if silent := strings.Contains(r, "data-silent"); silent != fa.Silent || silent != (x == b) {
			t.Errorf("%s: silent shown %v, API %v", x.id, silent, fa.Silent)
		}
		if len(fa.Products) != 2 {
			t.Fatalf("API products of %s: %+v", x.id, fa.Products)
		}
		for _, p := range fa.Products {
			want := p.LastHour.UTC().Format("2006-01-02 15:00")
			if !regexp.MustCompile(`data-product="` + strings.TrimSpace(jsonNum(p.ID)) + `"[^<]*<span class="nowrap" data-last-hour>` + want).MatchString(r) {
				t.Errorf("%s: product %d last hour %s not shown:\n%s", x.id, p.ID, want, r)
			}
		}
		alerts := attrs(r, "data-alert")
		if (x == a) != (len(alerts) == 1 && alerts[0] == "collection_failed") || len(alerts) != len(fa.OpenAlerts) {
			t.Errorf("%s: alerts shown %v, API %+v", x.id, alerts, fa.OpenAlerts)
		}
		for _, m := range fa.Months {
			if m.Month != "2026-03" && m.Month != "2026-04" {
				continue
			}
			want := m.State
			if m.Missing {
				want = "missing"
			}
			cell := regexp.MustCompile(`data-month="` + m.Month + `">.*?data-state="([a-z]+)"`).FindStringSubmatch(r)
			if cell == nil || cell[1] != want {
				t.Errorf("%s %s: shown %v, want %s", x.id, m.Month, cell, want)
			}
		}
	}
	if !strings.Contains(row(t, fleet, "data-appliance", a.id), `data-month="2026-03"><span class="badge merged"`) ||
		!strings.Contains(row(t, fleet, "data-appliance", b.id), `data-month="2026-04"><span class="badge missing"`) {
		t.Fatalf("March merged and April missing not shown:\n%s", fleet)
	}
	if m := regexp.MustCompile(`id="n-silent">(\d+)<`).FindStringSubmatch(fleet); m == nil || m[1] != "1" {
		t.Errorf("silent count: %v", m)
	}

	// The months: March merged by both, April missing from both.
	months := br.page("/months")
	if r := row(t, months, "data-month", "2026-03"); !strings.Contains(r, "data-merged>2<") {
		t.Errorf("March on the months page:\n%s", r)
	}
	if r := row(t, months, "data-month", "2026-04"); !strings.Contains(r, `data-missing><span class="badge missing">2<`) {
		t.Errorf("April on the months page:\n%s", r)
	}

	// March: the figures of the page are the API's, the shared vCenter
	// listed once and flagged; the versions and the audit trail.
	monthPage := br.page("/months/2026-03")
	req, _ := http.NewRequest(http.MethodGet, f.url+protocol.PathMonths+"2026-03", nil)
	req.Header.Set("Authorization", "Bearer admin-secret")
	code, body := do(t, a.enr.Client(), req)
	var m receiver.Month
	if code != 200 || json.Unmarshal([]byte(body), &m) != nil || len(m.Lines) == 0 {
		t.Fatalf("months API: %d %s", code, body)
	}
	shown := map[string]string{}
	for _, l := range regexp.MustCompile(`data-line="([^"]*)">.*?data-quantity="([^"]*)"`).FindAllStringSubmatch(strings.ReplaceAll(monthPage, "\n", " "), -1) {
		shown[html.UnescapeString(l[1])] = html.UnescapeString(l[2])
	}
	var wantParts []string
	for _, l := range m.Lines {
		k := strings.Join([]string{l.Contract, l.Product, l.Edition, l.Metric, l.Unit, l.Customer}, "|")
		if shown[k] != l.Quantity {
			t.Errorf("%s: page %q, API %q", k, shown[k], l.Quantity)
		}
		for _, p := range l.Parts {
			wantParts = append(wantParts, strings.Join([]string{p.ApplianceID, p.ProductHost, p.Quantity, jsonBool(p.Billed)}, "|"))
		}
	}
	if len(shown) != len(m.Lines) {
		t.Errorf("%d lines on the page, %d in the API", len(shown), len(m.Lines))
	}
	if got := attrs(monthPage, "data-part"); strings.Join(got, "\n") != strings.Join(wantParts, "\n") {
		t.Errorf("parts on the page:\n%s\nAPI:\n%s", strings.Join(got, "\n"), strings.Join(wantParts, "\n"))
	}
	if got := attrs(monthPage, "data-shared"); len(m.Shared) != 1 || len(got) != 1 || got[0] != m.Shared[0].Identity ||
		!strings.Contains(monthPage, "not billed: billed by <code>"+a.id) {
		t.Errorf("shared instance: page %v, API %+v", got, m.Shared)
	}
	if got := attrs(monthPage, "data-event"); !contains(got, "received") {
		t.Errorf("March audit trail: %v", got)
	}
	if got := attrs(monthPage, "data-version"); len(got) != 3 {
		t.Errorf("March versions: %v", got)
	}
	if r := row(t, monthPage, "data-version", a.id+"|1"); !strings.Contains(r, "data-replaced-by>version 2<") {
		t.Errorf("A's version 1 not shown replaced by version 2:\n%s", r)
	}
	if got := attrs(monthPage, "data-event"); !contains(got, "replaced") {
		t.Errorf("March audit trail without the replacement: %v", got)
	}

	// One appliance; an unknown one is not found.
	ap := br.page("/appliances/" + a.id)
	if !strings.Contains(ap, `data-alert="collection_failed"`) || len(attrs(ap, "data-product")) != 2 || !strings.Contains(ap, `id="revoke"`) {
		t.Errorf("appliance page:\n%s", ap)
	}
	if resp, _ := br.get("/appliances/c-unknown"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown appliance: %d", resp.StatusCode)
	}

	// A cross-origin POST is refused before the handler: B stays
	// enrolled, nothing is audited.
	auditRows := func(action string) int {
		return f.count(t, `SELECT count(*) FROM audit_log WHERE action = $1`, action)
	}
	for _, h := range []map[string]string{{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example", "Sec-Fetch-Site": ""}} {
		resp, body := br.post("/appliances/"+b.id+"/revoke", url.Values{"confirm": {"yes"}}, h)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "cross-origin request refused") {
			t.Fatalf("cross-origin revoke: %d %s", resp.StatusCode, body)
		}
	}
	if resp, _ := br.post("/tokens", url.Values{"note": {"evil"}}, map[string]string{"Sec-Fetch-Site": "cross-site"}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin token: %d", resp.StatusCode)
	}
	if n := f.count(t, `SELECT count(*) FROM receiver_appliances WHERE revoked_at IS NOT NULL`); n != 0 || auditRows("appliance.revoke") != 0 || auditRows("enrolment_token.create") != 0 {
		t.Fatalf("a cross-origin POST did something: %d revoked, audit %d %d", n, auditRows("appliance.revoke"), auditRows("enrolment_token.create"))
	}

	// An enrolment token from the console: shown once, audited, and it
	// enrols a third appliance.
	tokens := f.count(t, `SELECT count(*) FROM receiver_tokens`)
	resp, body = br.post("/tokens", url.Values{"note": {"appliance in DC 3"}, "hours": {"2"}}, nil)
	tok := regexp.MustCompile(`id="token">(umr1\.[^<]+)<`).FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || tok == nil || f.count(t, `SELECT count(*) FROM receiver_tokens`) != tokens+1 ||
		f.count(t, `SELECT count(*) FROM audit_log WHERE action = 'enrolment_token.create' AND actor = $1 AND ok AND detail = 'note appliance in DC 3'`, consoleUser) != 1 {
		t.Fatalf("token: %d %v\n%s", resp.StatusCode, tok, body)
	}
	newToken := html.UnescapeString(tok[1])
	pub, _ := report.ExportPublic(a.signer)
	if _, err := protocol.Enrol(ctx, protocol.EnrolOptions{DataDir: t.TempDir(), URL: f.url, Token: newToken, ApplianceID: "c3333333-0000-4000-8000-000000000003", ReportKey: pub}); err != nil {
		t.Fatalf("enrolling with the console's token: %v", err)
	}
	if resp, body := br.post("/tokens", url.Values{"hours": {"0"}}, nil); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "number of hours") {
		t.Fatalf("a token of 0 hours: %d", resp.StatusCode)
	}

	// Revoke B from the console: confirmed, audited; its next upload is
	// refused.
	if resp, body := br.post("/appliances/"+b.id+"/revoke", url.Values{}, nil); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "tick the box") {
		t.Fatalf("revoke unconfirmed: %d", resp.StatusCode)
	}
	resp, _ = br.post("/appliances/"+b.id+"/revoke", url.Values{"confirm": {"yes"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/appliances/"+b.id {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if page := br.page("/appliances/" + b.id); !strings.Contains(page, "is revoked") || !strings.Contains(page, "data-revoked") || strings.Contains(page, `id="revoke"`) {
		t.Fatalf("after revoking:\n%s", page)
	}
	if f.count(t, `SELECT count(*) FROM audit_log WHERE action = 'appliance.revoke' AND actor = $1 AND ok AND target = $2`, consoleUser, "appliance "+b.id) != 1 {
		t.Fatal("revocation not audited")
	}
	data, err := os.ReadFile(resB.Report.Path)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := b.post(t, f, "2026-03", resB.Report.Version+1, data, nil); code != http.StatusForbidden || !strings.Contains(body, "revoked") {
		t.Fatalf("upload after revoking from the console: %d %s", code, body)
	}
	if resp, _ := br.post("/appliances/"+b.id+"/revoke", url.Values{"confirm": {"yes"}}, nil); resp.StatusCode != http.StatusConflict {
		t.Fatalf("revoking twice: %d", resp.StatusCode)
	}
	audit := br.page("/audit")
	for _, action := range []string{"login", "appliance.revoke", "enrolment_token.create"} {
		if !contains(attrs(audit, "data-action"), action) {
			t.Errorf("audit page without %s", action)
		}
	}

	// No page carries a secret: the admin token, enrolment tokens (but the
	// one page that shows a new one), the fleet key, keys, the session,
	// the password.
	key, err := os.ReadFile(filepath.Join(a.dir, protocol.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{"admin token": "admin-secret", "used enrolment token": usedToken, "its secret": strings.Split(usedToken, ".")[1],
		"fleet key (base64)": base64.StdEncoding.EncodeToString(a.enr.FleetKey), "fleet key (hex)": hex.EncodeToString(a.enr.FleetKey),
		"upload key": strings.Split(string(key), "\n")[1], "OpenPGP key": "BEGIN PGP", "session": session.Value, "password": consolePassword}
	for page, body := range br.pages {
		for name, s := range secrets {
			if strings.Contains(body, s) {
				t.Errorf("%s shows the %s", page, name)
			}
		}
		if page != "POST /tokens" && strings.Contains(body, strings.Split(newToken, ".")[1]) {
			t.Errorf("%s shows the new enrolment token", page)
		}
	}

	// Logout ends the session.
	if resp, _ := br.post("/logout", nil, nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := br.get("/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after logout: %d", resp.StatusCode)
	}
	if n := f.count(t, `SELECT count(*) FROM admin_sessions`); n != 0 {
		t.Fatalf("%d sessions after logout", n)
	}
}

func jsonNum(n int64) string { b, _ := json.Marshal(n); return string(b) }
func jsonBool(v bool) string {
	if v {
		return "true"
	}
	return "false"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
