// Package browsertest drives a real headless Chromium from Go tests, through
// the DevTools protocol (github.com/chromedp/chromedp): it finds the
// system's Chromium (Debian's chromium package, installed by .ci/deps),
// starts it headless with a fresh profile and no background networking (the
// tests run with loopback only, as root in CI, hence --no-sandbox), ignores
// certificate errors (the console is served on a self-signed certificate),
// and gives tests navigation, form, download and screenshot helpers.
//
// When Chromium is missing the tests fail; they never skip.
package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// PathEnv names an environment variable that overrides where Chromium is.
const PathEnv = "USAGEMETER_CHROMIUM"

// Find returns the path of the Chromium binary: $USAGEMETER_CHROMIUM, else
// chromium or chromium-browser on PATH, else /usr/bin/chromium.
func Find() (string, error) {
	if p := os.Getenv(PathEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", PathEnv, p, err)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium", nil
	}
	return "", errors.New("chromium not found (install Debian's chromium package: bash .ci/deps, or set " + PathEnv + ")")
}

// Browser is one headless Chromium with one tab.
type Browser struct {
	t       testing.TB
	ctx     context.Context
	cancel  context.CancelFunc
	Timeout time.Duration // per step; default 20 s

	downloads string
	mu        sync.Mutex
	names     map[string]string // download GUID -> suggested file name
	done      map[string]string // download GUID -> final state
	changed   chan struct{}
}

// Options shape the browser.
type Options struct {
	Width, Height int // the window; default 1280x900
}

// New starts Chromium for the test and stops it at its end. The test fails
// when Chromium is missing or does not start.
func New(t testing.TB, o Options) *Browser {
	t.Helper()
	path, err := Find()
	if err != nil {
		t.Fatal(err)
	}
	if o.Width == 0 {
		o.Width, o.Height = 1280, 900
	}
	dir := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.NoSandbox, // CI runs the tests as root
		chromedp.DisableGPU,
		chromedp.IgnoreCertErrors,
		chromedp.WindowSize(o.Width, o.Height),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("lang", "en-GB"),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(func(format string, args ...any) {
		// Chromium sends events newer than cdproto knows; not our failures.
	}))
	b := &Browser{t: t, ctx: ctx, cancel: func() { cancel(); acancel() }, Timeout: 20 * time.Second,
		downloads: filepath.Join(dir, "downloads"), names: map[string]string{}, done: map[string]string{},
		changed: make(chan struct{}, 1)}
	t.Cleanup(b.cancel)
	if err := os.MkdirAll(b.downloads, 0o700); err != nil {
		t.Fatal(err)
	}
	// The first calls start the browser and open the tab; they must not
	// carry a timeout (it would end the browser or the tab).
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium (%s): %v", path, err)
	}
	if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: b.downloads, EventsEnabled: ptr(true),
	}); err != nil {
		t.Fatalf("chromium (%s): downloads: %v", path, err)
	}
	if err := chromedp.ListenBrowser(ctx, b.onEvent); err != nil {
		t.Fatal(err)
	}
	return b
}

func ptr[T any](v T) *T { return &v }

func (b *Browser) onEvent(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *cdpbrowser.EventDownloadWillBegin:
		b.names[ev.GUID] = ev.SuggestedFilename
	case *cdpbrowser.EventDownloadProgress:
		if ev.State == cdpbrowser.DownloadProgressStateCompleted || ev.State == cdpbrowser.DownloadProgressStateCanceled {
			b.done[ev.GUID] = string(ev.State)
		}
	default:
		return
	}
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

// Context is the tab's context, for chromedp calls the helpers lack.
func (b *Browser) Context() context.Context { return b.ctx }

// Do runs the actions in the tab within the step timeout; the test fails
// with what (a few words of the step) on an error.
func (b *Browser) Do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.Timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v (page %s)", what, err, b.location())
	}
}

func (b *Browser) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	return loc
}

// Run runs one action returning a value, failing the test on an error.
func Run[T any](b *Browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.Timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v (page %s)", what, err, b.location())
	}
	return v
}

// Open navigates to url and waits for the page's body.
func (b *Browser) Open(url string) {
	b.t.Helper()
	b.Do("open "+url, chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("body")))
}

// Text is the visible text of the first element matching the CSS selector.
func (b *Browser) Text(css string) string {
	b.t.Helper()
	return Run(b, "text of "+css, chromedp.Text(chromedp.CSS(css)))
}

// Count is how many elements match the CSS selector now.
func (b *Browser) Count(css string) int {
	b.t.Helper()
	return Run(b, "count "+css, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", css)))
}

// Fill sets the form fields (CSS selector -> value), replacing what they hold.
func (b *Browser) Fill(fields map[string]string) {
	b.t.Helper()
	for sel, v := range fields {
		b.Do("fill "+sel, chromedp.SetValue(chromedp.CSS(sel), v))
	}
}

// Submit clicks the element (a submit button) and waits for the next page
// to load.
func (b *Browser) Submit(css string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.Timeout)
	defer cancel()
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(css))); err != nil {
		b.t.Fatalf("submit %s: %v (page %s)", css, err, b.location())
	}
	b.Do("page after "+css, chromedp.WaitReady(chromedp.CSS("body")))
}

// Download clicks the link matched by css and waits for the download to
// complete; it returns the file's suggested name and its contents.
func (b *Browser) Download(css string) (name string, data []byte) {
	b.t.Helper()
	b.mu.Lock()
	before := len(b.done)
	b.mu.Unlock()
	b.Do("click "+css, chromedp.Click(chromedp.CSS(css)))
	deadline := time.After(b.Timeout)
	for {
		b.mu.Lock()
		if len(b.done) > before {
			for guid, state := range b.done {
				if _, seen := b.names[guid]; !seen || state == "" {
					continue
				}
				name = b.names[guid]
				delete(b.names, guid)
				b.done[guid] = ""
				b.mu.Unlock()
				if state != string(cdpbrowser.DownloadProgressStateCompleted) {
					b.t.Fatalf("download of %s: %s", name, state)
				}
				data, err := os.ReadFile(filepath.Join(b.downloads, guid))
				if err != nil {
					b.t.Fatal(err)
				}
				return name, data
			}
		}
		b.mu.Unlock()
		select {
		case <-b.changed:
		case <-deadline:
			b.t.Fatalf("download from %s: none completed within %s", css, b.Timeout)
		}
	}
}

// Viewport makes the page width px wide (height 800; a full-page
// screenshot grows with the page). mobile emulates a phone: device scale 2,
// touch, the page laid out by its viewport meta tag.
func (b *Browser) Viewport(width int, mobile bool) {
	b.t.Helper()
	opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(1)}
	if mobile {
		opts = []chromedp.EmulateViewportOption{chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch}
	}
	b.Do("viewport", chromedp.EmulateViewport(int64(width), 800, opts...), chromedp.Sleep(100*time.Millisecond))
}

// ResetViewport goes back to the window's size.
func (b *Browser) ResetViewport() {
	b.t.Helper()
	b.Do("viewport reset", chromedp.EmulateReset())
}

// Overflows reports whether the page is wider than the viewport (it
// scrolls sideways: on a phone, unusable).
func (b *Browser) Overflows() bool {
	b.t.Helper()
	return Run(b, "page width", chromedp.Evaluate[bool]("document.documentElement.scrollWidth > window.innerWidth + 1"))
}

// WideElements lists (tag#id.class and width) the elements that reach
// past the viewport's right edge, the innermost first: why a page
// overflows.
func (b *Browser) WideElements() []string {
	b.t.Helper()
	return Run(b, "wide elements", chromedp.Evaluate[[]string](`(() => {
		const out = [];
		for (const e of document.querySelectorAll("body *")) {
			const r = e.getBoundingClientRect();
			if (r.right > window.innerWidth + 1 && !e.closest(".table-wrap")) {
				out.push(e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className && typeof e.className === "string" ? "." + e.className.trim().replace(/ +/g, ".") : "") + " " + Math.round(r.width) + "px");
			}
		}
		return out.reverse().slice(0, 5);
	})()`))
}

// Capture saves a PNG of the whole page to path.
func (b *Browser) Capture(path string) {
	b.t.Helper()
	b.save(path, Run(b, "screenshot", chromedp.FullScreenshot(100)))
}

// CaptureView saves a PNG of what the viewport shows to path.
func (b *Browser) CaptureView(path string) {
	b.t.Helper()
	b.save(path, Run(b, "screenshot", chromedp.CaptureScreenshot()))
}

func (b *Browser) save(path string, png []byte) {
	b.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// Screenshot saves a PNG of the whole page at the given viewport width to
// path, then goes back to the window's size.
func (b *Browser) Screenshot(path string, width int, mobile bool) {
	b.t.Helper()
	b.Viewport(width, mobile)
	b.Capture(path)
	b.ResetViewport()
}

// HasText reports whether the page's body text contains s.
func (b *Browser) HasText(s string) bool {
	b.t.Helper()
	return strings.Contains(b.Text("body"), s)
}
