package console_test

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	govsim "github.com/vmware/govmomi/simulator"

	vcsim "github.com/usagemeter/usagemeter/collectors/vcenter/simulator"
	"github.com/usagemeter/usagemeter/internal/web/browsertest"
)

// TestBrowser drives the console in a real headless Chromium, end to end
// over HTTPS on a self-signed certificate: log in, add a simulated vCenter
// by accepting its thumbprint, see its first collection in the journal, see
// an alert open (the vCenter down) and resolve (back up), register, generate
// and download a report, change the password and log in again.
func TestBrowser(t *testing.T) {
	s := newSite(t, nil)
	sim, err := vcsim.New(vcsim.Options{Clusters: 1, HostsPerCluster: 2, Shape: func(m *govsim.Model) { m.Machine = 2 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	b := browsertest.New(t, browsertest.Options{})
	base := s.srv.URL

	// An anonymous visit lands on the login page; a wrong password is
	// refused in plain words, the right one opens the dashboard.
	b.Open(base + "/")
	if loc := location(b); !strings.HasSuffix(loc, "/login?next=%2F") {
		t.Fatalf("an anonymous visit ends at %s, want the login page", loc)
	}
	login(b, "wrong-password")
	if msg := b.Text(".msg.error"); !strings.Contains(msg, "the user name or the password is wrong") {
		t.Fatalf("a wrong password says %q", msg)
	}
	login(b, adminPassword)
	if h := b.Text("h1"); h != "Dashboard" {
		t.Fatalf("after logging in: %q, want the dashboard", h)
	}

	// Add the vCenter: its address, then its certificate's thumbprint to
	// accept, then the account.
	b.Do("products", chromedp.Click(chromedp.CSS(`nav a[href="/products"]`)), chromedp.WaitVisible(chromedp.CSS("#add-product")))
	b.Submit("#add-product")
	b.Fill(map[string]string{"#kind": "vcenter", "#endpoint": sim.URL()})
	b.Submit("#preview")
	if got := b.Text("#thumbprint"); got != sim.Thumbprint() {
		t.Fatalf("the certificate shown has thumbprint %q, the vCenter's is %q", got, sim.Thumbprint())
	}
	b.Fill(map[string]string{"#username": sim.User(), "#password": sim.Password()})
	b.Submit("#add") // not accepted yet: refused, nothing added
	if msg := b.Text(".msg.error"); !strings.Contains(msg, "accept the certificate") {
		t.Fatalf("adding without accepting the thumbprint says %q", msg)
	}
	if n := len(mustProducts(t, s)); n != 0 {
		t.Fatalf("%d products after a refused add", n)
	}
	b.Fill(map[string]string{"#username": sim.User(), "#password": sim.Password()})
	b.Do("accept", chromedp.Click(chromedp.CSS("#accept")))
	b.Submit("#add")
	if msg := flash(t, b, "adding the vCenter"); !strings.Contains(msg, "added") {
		t.Fatalf("after adding: %q", msg)
	}
	m := regexp.MustCompile(`/products/(\d+)$`).FindStringSubmatch(location(b))
	if m == nil {
		t.Fatalf("after adding, the page is %s, want the product's", location(b))
	}
	id, _ := strconv.ParseInt(m[1], 10, 64)

	// Its first collection shows in the journal.
	hour := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	if err := s.collect(id, hour); err != nil {
		t.Fatalf("first collection: %v", err)
	}
	b.Open(base + "/journal?product=" + m[1])
	row := b.Text("#journal tbody tr")
	if !strings.Contains(row, hour.Format("2006-01-02 15:00")) || !strings.Contains(row, "done") {
		t.Fatalf("the journal's first row is %q, want hour %s done", row, hour.Format("2006-01-02 15:00"))
	}

	// The vCenter goes down: the next hour fails and an alert opens; it
	// comes back: the alert resolves.
	if err := sim.Down(); err != nil {
		t.Fatal(err)
	}
	if err := s.collect(id, hour.Add(time.Hour)); err == nil {
		t.Fatal("a collection from a vCenter that is down succeeded")
	}
	b.Open(base + "/alerts")
	if open := b.Text("#open-alerts tbody"); !strings.Contains(open, "collection_failed") || !strings.Contains(open, sim.Addr()) {
		t.Fatalf("open alerts: %q", open)
	}
	b.Open(base + "/")
	if n := b.Text("#h-alerts + .stat"); n != "1" {
		t.Fatalf("the dashboard counts %q open alerts, want 1", n)
	}
	if err := sim.Up(); err != nil {
		t.Fatal(err)
	}
	if err := s.collect(id, hour.Add(2*time.Hour)); err != nil {
		t.Fatalf("collection after the vCenter came back: %v", err)
	}
	b.Open(base + "/alerts")
	if open := b.Text("#open-alerts tbody"); !strings.Contains(open, "No open alert") {
		t.Fatalf("open alerts after the recovery: %q", open)
	}
	if hist := b.Text("#alert-history tbody"); !strings.Contains(hist, "collection_failed") {
		t.Fatalf("alert history: %q", hist)
	}

	// A report of last month: register, generate, download.
	prev := time.Date(hour.Year(), hour.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -1, 0)
	if err := s.collect(id, prev.Add(5*time.Hour)); err != nil {
		t.Fatalf("collecting an hour of last month: %v", err)
	}
	b.Open(base + "/registration")
	b.Fill(map[string]string{`input[name=contract]`: "CN-4711", `select[name=program]`: "rental"})
	b.Submit("#register-form button")
	if got := b.Text("#contract"); got != "CN-4711" {
		t.Fatalf("after registering, the contract shows %q", got)
	}
	b.Open(base + "/reports")
	b.Fill(map[string]string{"#month": prev.Format("2006-01")})
	b.Submit("#generate")
	if msg := flash(t, b, "generating the report"); !strings.Contains(msg, "The report of "+prev.Format("2006-01")+" is generated") {
		t.Fatalf("generating the report: %q", msg)
	}
	name, data := b.Download(`#reports a[id^="bundle-"]`)
	if !strings.HasPrefix(name, "usage-") && !strings.Contains(name, prev.Format("2006-01")) || len(data) < 100 || !bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		t.Fatalf("downloaded %q, %d bytes (%x...), want the month's gzip bundle", name, len(data), data[:min(4, len(data))])
	}

	// Change the password: every session ends, the new one logs in.
	b.Open(base + "/account")
	newPassword := "Another-Horse-43"
	b.Fill(map[string]string{"#current": adminPassword, "#new": newPassword, "#repeat": newPassword})
	b.Submit("#change-password")
	if msg := flash(t, b, "changing the password"); !strings.Contains(location(b), "/login") || !strings.Contains(msg, "Password changed") {
		t.Fatalf("after changing the password: %s %q", location(b), msg)
	}
	login(b, adminPassword)
	if !strings.Contains(errorText(b), "wrong") {
		t.Fatal("the old password still logs in")
	}
	login(b, newPassword)
	if h := b.Text("h1"); h != "Dashboard" {
		t.Fatalf("after logging in with the new password: %q", h)
	}
}

func login(b *browsertest.Browser, password string) {
	b.Fill(map[string]string{"#username": adminUser, "#password": password})
	b.Submit("#login")
}

func location(b *browsertest.Browser) string {
	return browsertest.Run(b, "location", chromedp.Location())
}

// flash is the page's message after a change; the test fails at once with
// the page's error when it shows one instead.
func flash(t *testing.T, b *browsertest.Browser, what string) string {
	t.Helper()
	if e := errorText(b); e != "" {
		t.Fatalf("%s: the page says %q", what, e)
	}
	if b.Count(".msg.ok") == 0 {
		t.Fatalf("%s: no message on %s", what, location(b))
	}
	return b.Text(".msg.ok")
}

// errorText is the page's error message, or "".
func errorText(b *browsertest.Browser) string {
	if b.Count(".msg.error") == 0 {
		return ""
	}
	return b.Text(".msg.error")
}

func mustProducts(t *testing.T, s *site) []int64 {
	ps, err := s.app.Store.Products(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, p := range ps {
		ids = append(ids, p.ID)
	}
	return ids
}
