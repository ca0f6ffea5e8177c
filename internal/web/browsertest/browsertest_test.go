package browsertest

import (
	"bytes"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// TestHarness drives a page over a self-signed TLS listener: a form posted
// and answered with a redirect, a download, and screenshots at two widths.
func TestHarness(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><html><head><meta name="viewport" content="width=device-width"></head><body><p id="said">%s</p>
<form method="post" action="/say"><input id="word" name="word"><button id="go">Go</button></form>
<a id="dl" href="/file" download>file</a></body></html>`, r.URL.Query().Get("said"))
	})
	mux.HandleFunc("POST /say", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/?said="+r.FormValue("word"), http.StatusSeeOther)
	})
	mux.HandleFunc("GET /file", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Disposition", `attachment; filename="report.txt"`)
		fmt.Fprint(w, "the contents")
	})
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()

	b := New(t, Options{})
	b.Open(srv.URL)
	b.Fill(map[string]string{"#word": "hello"})
	b.Submit("#go")
	if got := b.Text("#said"); got != "hello" {
		t.Fatalf("after the post the page says %q, want hello", got)
	}
	name, data := b.Download("#dl")
	if name != "report.txt" || string(data) != "the contents" {
		t.Fatalf("downloaded %q %q", name, data)
	}
	dir := t.TempDir()
	for _, c := range []struct {
		width  int
		mobile bool
		want   int
	}{{1280, false, 1280}, {390, true, 780}} {
		p := filepath.Join(dir, fmt.Sprint(c.width)+".png")
		b.Screenshot(p, c.width, c.mobile)
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if w := img.Bounds().Dx(); w != c.want {
			t.Errorf("screenshot at %d px is %d px wide, want %d", c.width, w, c.want)
		}
	}
}
