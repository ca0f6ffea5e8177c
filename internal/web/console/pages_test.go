package console_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestPagesRender logs in over HTTPS and fetches every page of an empty
// appliance: each answers 200 with its heading, and no page carries
// inline script or style (the CSP refuses both); the footer shows the
// version the service was built with.
func TestPagesRender(t *testing.T) {
	s := newSite(t, nil)
	anon := s.srv.Client()
	anon.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := anon.Get(s.srv.URL + "/products")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Fproducts" {
		t.Fatalf("an anonymous page view: %s to %q, want 303 to the login page", resp.Status, resp.Header.Get("Location"))
	}
	c := s.client()
	inline := regexp.MustCompile(`(?i)<script|\sstyle=|\son[a-z]+=`)
	for path, want := range map[string]string{
		"/":             "<h1>Dashboard</h1>",
		"/products":     "<h1>Products</h1>",
		"/products/new": "<h1>Add a product</h1>",
		"/journal":      "<h1>Collection journal</h1>",
		"/alerts":       "<h1>Alerts</h1>",
		"/reports":      "<h1>Reports</h1>",
		"/customers":    "<h1>Customer rules</h1>",
		"/licences":     "<h1>Licences</h1>",
		"/registration": "<h1>Registration</h1>",
		"/settings":     "<h1>Settings</h1>",
		"/audit":        "<h1>Audit log</h1>",
		"/account":      "<h1>Account: admin</h1>",
	} {
		code, body := get(t, c, s.srv.URL+path)
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("%s: %d, want 200 with %q:\n%s", path, code, want, body)
			continue
		}
		if !strings.Contains(body, "<footer>usagemeter test ·") {
			t.Errorf("%s: the footer does not show the service's version (test):\n%s", path, body)
		}
		if m := inline.FindString(body); m != "" {
			t.Errorf("%s carries inline script or style (%q)", path, m)
		}
	}
	if code, body := get(t, c, s.srv.URL+"/products/99"); code != http.StatusNotFound || !strings.Contains(body, "product 99 not found") {
		t.Errorf("/products/99: %d\n%s", code, body)
	}
	if code, _ := get(t, c, s.srv.URL+"/no-such-page"); code != http.StatusNotFound {
		t.Errorf("/no-such-page: %d, want 404", code)
	}
	if code, body := get(t, c, s.srv.URL+"/static/style.css"); code != http.StatusOK || !strings.Contains(body, "--brand") {
		t.Errorf("/static/style.css: %d", code)
	}
}
