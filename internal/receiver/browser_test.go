package receiver_test

import (
	"context"
	"flag"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/usagemeter/usagemeter/internal/web/browsertest"
)

var screenshots = flag.Bool("screenshots", false, "write the fleet console's screenshots to docs/screenshots (go test ./internal/receiver -run TestConsoleInChromium -args -screenshots)")

// TestConsoleInChromium: the fleet console in a real headless Chromium
// (fails when Chromium is missing): the login form leads to the page asked
// for, every page fits a 1280 px screen and a 390 px phone (where the
// tables become cards: no header row, each cell labelled), and an
// appliance is revoked through its form.
func TestConsoleInChromium(t *testing.T) {
	cf := newConsoleFleet(t)
	base := cf.f.url
	b := browsertest.New(t, browsertest.Options{})
	b.Open(base + "/months/2026-03")
	b.Fill(map[string]string{"#username": consoleUser, "#password": "Wrong-Passw0rd-123"})
	b.Submit("#login")
	if !b.HasText("the user name or the password is wrong") {
		t.Fatal("a wrong password was not refused on the page")
	}
	b.Fill(map[string]string{"#username": consoleUser, "#password": consolePassword})
	b.Submit("#login")
	if loc := browsertest.Run(b, "location", chromedp.Location()); !strings.HasSuffix(loc, "/months/2026-03") {
		t.Fatalf("after logging in: %s", loc)
	}
	m, err := cf.f.r.Merge(context.Background(), "2026-03")
	if err != nil {
		t.Fatal(err)
	}
	if n := b.Count("#lines tr.line"); n == 0 || n != len(m.Lines) {
		t.Fatalf("%d lines on March, want %d", n, len(m.Lines))
	}
	if n := b.Count("#shared tr[data-shared]"); n != 1 {
		t.Fatalf("%d shared instances shown", n)
	}
	dir := t.TempDir()
	if *screenshots {
		dir = filepath.Join("..", "..", "docs", "screenshots")
	}
	// An API token through the form: shown once, then listed.
	b.Open(base + "/api-tokens")
	b.Fill(map[string]string{"input[name=name]": "billing-export"})
	b.Submit("#create-api-token")
	if tok := b.Text("#api-token"); !strings.HasPrefix(tok, "umt_") || b.Count("tr[data-api-token]") != 1 {
		t.Fatalf("API token through the form: %q", tok)
	}
	shots := map[string]string{"/": "fleet.png", "/months/2026-03": "fleet-month.png"}
	for _, p := range []string{"/", "/months", "/months/2026-03", "/appliances/" + cf.a.id, "/api-tokens", "/audit"} {
		b.Open(base + p)
		if name, ok := shots[p]; ok {
			b.Screenshot(filepath.Join(dir, name), 1280, false)
		}
		if b.Overflows() {
			t.Errorf("%s is wider than 1280 px: %q", p, b.WideElements())
		}
		b.Viewport(390, true)
		if b.Overflows() {
			t.Errorf("%s is wider than a 390 px phone: %q", p, b.WideElements())
		}
		hidden := browsertest.Run(b, "card tables", chromedp.Evaluate[bool](
			`[...document.querySelectorAll('table thead')].every(h => getComputedStyle(h).display === 'none')`))
		if !hidden {
			t.Errorf("%s: the tables are not cards on a phone", p)
		}
		b.ResetViewport()
	}
	b.Open(base + "/")
	if got := b.Text(`tr[data-appliance="` + cf.b.id + `"] [data-silent]`); got != "silent" {
		t.Fatalf("B not flagged silent: %q", got)
	}

	b.Open(base + "/appliances/" + cf.b.id)
	b.Do("confirm", chromedp.Click(chromedp.CSS(`input[name=confirm]`)))
	b.Submit("#revoke")
	if !b.HasText("is revoked") || b.Count("[data-revoked]") != 1 {
		t.Fatal("revoking through the form: no confirmation")
	}
	if n := cf.f.count(t, `SELECT count(*) FROM receiver_appliances WHERE appliance_id = $1 AND revoked_at IS NOT NULL`, cf.b.id); n != 1 {
		t.Fatal("B not revoked")
	}
}
