package simulator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func do(s *Server, method, path string, hdr map[string]string, user, pass string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "https://vcd.example.net"+path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

// TestProtocol pins the behaviours the package comment cites.
func TestProtocol(t *testing.T) {
	st := State{User: "meter", Password: "pw", Orgs: []Org{{ID: "o1", Name: "acme"}},
		VDCs: []VDC{{ID: "d1", Name: "vdc", Org: "o1", VCenter: "v1"}}, VCenters: []VCenter{{ID: "v1", Name: "vc", UUID: "u"}}}
	for i := range 30 {
		st.VMs = append(st.VMs, VM{ID: NewID(), Name: "vm", VDC: "d1", Status: "POWERED_ON", MemoryMB: 1024 + i})
	}
	s := New(st)

	if r := do(s, http.MethodGet, "/api/versions", nil, "", ""); r.Code != 200 || !strings.Contains(r.Body.String(), "<Version>39.0</Version>") {
		t.Fatalf("versions: %d %s", r.Code, r.Body)
	}
	r := do(s, http.MethodPost, "/cloudapi/1.0.0/sessions/provider", map[string]string{"Accept": "application/*;version=30.0"}, "meter@System", "pw")
	if r.Code != http.StatusNotAcceptable || !strings.Contains(r.Body.String(), "Supported API versions are: [39.0, 38.1, 38.0, 37.0, 36.0]") {
		t.Fatalf("unsupported version: %d %s", r.Code, r.Body)
	}
	if r := do(s, http.MethodPost, "/cloudapi/1.0.0/sessions/provider", map[string]string{"Accept": "application/*;version=39.0"}, "meter@acme", "pw"); r.Code != http.StatusUnauthorized {
		t.Fatalf("tenant user on the provider endpoint: %d", r.Code)
	}
	r = do(s, http.MethodPost, "/cloudapi/1.0.0/sessions/provider", map[string]string{"Accept": "application/*;version=39.0"}, "meter@System", "pw")
	tok := r.Header().Get("X-VMWARE-VCLOUD-ACCESS-TOKEN")
	if r.Code != 200 || tok == "" {
		t.Fatalf("login: %d, token %q", r.Code, tok)
	}
	q := func(path string) *httptest.ResponseRecorder {
		return do(s, http.MethodGet, path, map[string]string{"Accept": "application/*+json;version=39.0", "Authorization": "Bearer " + tok}, "", "")
	}
	r = q("/api/query?type=adminVM&format=records&page=1&pageSize=500")
	var page QueryResultRecords
	if err := json.Unmarshal(r.Body.Bytes(), &page); err != nil || page.PageSize != MaxPageSize || page.Total != 30 || len(page.Record) != 30 {
		t.Fatalf("clamped page: %v %+v", err, page)
	}
	r = q("/api/query?type=adminVM&format=records&page=2&pageSize=10")
	_ = json.Unmarshal(r.Body.Bytes(), &page)
	rels := map[string]bool{}
	for _, l := range page.Link {
		rels[l.Rel] = true
	}
	if !rels["nextPage"] || !rels["previousPage"] || len(page.Record) != 10 {
		t.Fatalf("page 2 of 3: links %v, %d records", rels, len(page.Record))
	}
	if r := q("/api/query?type=adminVM&format=records&page=4&pageSize=10"); r.Code != http.StatusBadRequest {
		t.Fatalf("page past the end: %d", r.Code)
	}
	if r := do(s, http.MethodGet, "/api/query?type=adminVM", map[string]string{"Accept": "application/*+json;version=39.0", "Authorization": "Bearer nope"}, "", ""); r.Code != http.StatusUnauthorized {
		t.Fatalf("bad token: %d", r.Code)
	}
}
