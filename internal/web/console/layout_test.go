package console_test

import (
	"context"
	"flag"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/usagemeter/usagemeter/internal/web/browsertest"
	"github.com/usagemeter/usagemeter/internal/web/service"
)

var screenshots = flag.Bool("screenshots", false, "write the main pages' screenshots to docs/screenshots (go test ./internal/web/console -run TestLayout -args -screenshots)")

// TestLayout shows a provider's appliance with history (8 products, last
// month and this month so far, an open alert, a report) in Chromium at
// 1280 px and at a phone's 390 px: every main page fits the width (no
// sideways scrolling of the page; wide tables scroll in their box), the
// dashboard draws a daily chart per product. With -screenshots the
// captures go to docs/screenshots for the README.
func TestLayout(t *testing.T) {
	s := newSite(t, nil)
	ctx := context.Background()
	now := time.Now().UTC()
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	ids := seed(t, s, history{Products: 8, Objects: 60, From: month.AddDate(0, -1, 0), To: now.Truncate(time.Hour)})
	openAlert(t, s, ids[3], now.Add(-3*time.Hour), `Post "https://vc-004.provider.example/sdk": dial tcp 10.20.4.14:443: connect: connection timed out`)
	if err := s.app.Store.Register(ctx, "CN-4711", "rental", now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.svc.GenerateReport(ctx, service.Actor{Username: adminUser}, month.AddDate(0, -1, 0).Format("2006-01")); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	if *screenshots {
		dir = filepath.Join("..", "..", "..", "docs", "screenshots")
	}
	b := browsertest.New(t, browsertest.Options{})
	b.Open(s.srv.URL + "/login")
	login(b, adminPassword)
	if n := b.Count("#dashboard-products svg.chart path.bar"); n < 8 {
		t.Errorf("the dashboard draws %d bars, want a chart per product", n)
	}
	pages := []struct{ name, path string }{
		{"dashboard", "/"},
		{"products", "/products"},
		{"product", fmt.Sprintf("/products/%d", ids[3])},
		{"journal", "/journal"},
		{"alerts", "/alerts"},
		{"reports", "/reports"},
		{"account", "/account"},
	}
	for _, p := range pages {
		b.Open(s.srv.URL + p.path)
		if b.Overflows() {
			t.Errorf("%s is wider than 1280 px: %q", p.path, b.WideElements())
		}
		if p.name != "product" && p.name != "alerts" && p.name != "account" {
			capture(t, b, filepath.Join(dir, p.name+".png"), 1280, false)
		}
		b.Viewport(390, true)
		if b.Overflows() {
			t.Errorf("%s is wider than a 390 px phone: the page scrolls sideways (%q)", p.path, b.WideElements())
		}
		b.ResetViewport()
	}
	b.Open(s.srv.URL + "/")
	capture(t, b, filepath.Join(dir, "dashboard-phone.png"), 390, true)
	b.Viewport(390, true) // the README shows the phone's first screen
	b.Do("scroll", chromedp.Evaluate[chromedp.Void]("window.scrollTo(0, document.getElementById('h-month').getBoundingClientRect().top - 8)"))
	b.CaptureView(filepath.Join(dir, "dashboard-phone.png"))
	b.ResetViewport()
	if *screenshots {
		t.Logf("screenshots written to %s", dir)
	}
}

// capture takes a screenshot and checks it is a PNG of the width asked for.
func capture(t *testing.T, b *browsertest.Browser, path string, width int, mobile bool) {
	t.Helper()
	b.Screenshot(path, width, mobile)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	want := width
	if mobile {
		want *= 2
	}
	if w := img.Bounds().Dx(); w != want || !strings.HasSuffix(path, ".png") {
		t.Errorf("%s is %d px wide, want %d", path, w, want)
	}
}
