package simulator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestProtocol pins the session and paging behaviours the package comment
// cites.
func TestProtocol(t *testing.T) {
	st := State{User: "admin", Password: "pw"}
	for i := range 5 {
		st.VMs = append(st.VMs, VM{ExternalID: string(rune('a' + i)), Name: "vm", InstanceUUID: "u"})
	}
	s := New(st)
	form := url.Values{"j_username": {"admin"}, "j_password": {"bad"}}
	req := httptest.NewRequest(http.MethodPost, "https://nsx/api/session/create", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("bad password: %d", rec.Code)
	}
	form.Set("j_password", "pw")
	req = httptest.NewRequest(http.MethodPost, "https://nsx/api/session/create", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	xsrf := rec.Header().Get("X-XSRF-TOKEN")
	var cookie *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == "JSESSIONID" {
			cookie = c
		}
	}
	if rec.Code != 200 || xsrf == "" || cookie == nil {
		t.Fatalf("session: %d xsrf %q cookie %v", rec.Code, xsrf, cookie)
	}
	get := func(path string, withXSRF bool) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "https://nsx"+path, nil)
		req.AddCookie(cookie)
		if withXSRF {
			req.Header.Set("X-XSRF-TOKEN", xsrf)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec
	}
	if r := get("/api/v1/fabric/virtual-machines", false); r.Code != http.StatusForbidden {
		t.Fatalf("missing X-XSRF-TOKEN: %d", r.Code)
	}
	var page struct {
		Results     []json.RawMessage `json:"results"`
		ResultCount int               `json:"result_count"`
		Cursor      string            `json:"cursor"`
	}
	seen := 0
	path := "/api/v1/fabric/virtual-machines?page_size=2"
	for {
		r := get(path, true)
		page.Cursor = "" // absent on the last page
		if err := json.Unmarshal(r.Body.Bytes(), &page); err != nil || r.Code != 200 {
			t.Fatalf("%s: %d %v", path, r.Code, err)
		}
		seen += len(page.Results)
		if page.Cursor == "" {
			break
		}
		path = "/api/v1/fabric/virtual-machines?page_size=2&cursor=" + url.QueryEscape(page.Cursor)
	}
	if seen != 5 || page.ResultCount != 5 {
		t.Fatalf("paged %d of %d", seen, page.ResultCount)
	}
	s.ExpireSessions()
	if r := get("/api/v1/fabric/virtual-machines", true); r.Code != http.StatusUnauthorized {
		t.Fatalf("expired session: %d", r.Code)
	}
}
