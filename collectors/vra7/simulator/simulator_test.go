package simulator_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/usagemeter/usagemeter/collectors/vra7/simulator"
)

func state() simulator.State {
	st := simulator.State{User: "meter", Password: "pw"}
	for i := range 3 {
		st.Resources = append(st.Resources, simulator.Resource{ID: fmt.Sprintf("r-%d", i), Name: fmt.Sprintf("vm-%d", i),
			VCenter: "564d1a2b-3c4d-5e6f-7a8b-9c0d1e2f3a4b", MoRef: fmt.Sprintf("vm-%d", 100+i)})
	}
	st.Resources = append(st.Resources, simulator.Resource{ID: "d-1", Name: "deployment", Type: "composition.resource.type.deployment"})
	return st
}

// call sends one request to s and returns the status and decoded body.
func call(s *simulator.VRA, method, path, bearer, body string) (int, map[string]any) {
	req := httptest.NewRequest(method, "https://vra7.example"+path, strings.NewReader(body))
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	var m map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	return rec.Code, m
}

// Example: log in to the tenant, then page through its virtual machines.
func Example() {
	s := simulator.New(state())
	_, tok := call(s, http.MethodPost, simulator.TokensPath, "", `{"username":"meter","password":"pw","tenant":"vsphere.local"}`)
	q := url.Values{"withExtendedData": {"true"}, "limit": {"2"}, "$filter": {"resourceType/id eq 'Infrastructure.Virtual'"}}
	for page := 1; ; page++ {
		q.Set("page", fmt.Sprint(page))
		_, p := call(s, http.MethodGet, simulator.ResourcesPath+"?"+q.Encode(), tok["id"].(string), "")
		for _, r := range p["content"].([]any) {
			fmt.Print(r.(map[string]any)["name"], " ")
		}
		if page >= int(p["metadata"].(map[string]any)["totalPages"].(float64)) {
			break
		}
	}
	fmt.Println()
	// Output: vm-0 vm-1 vm-2
}

func TestLogin(t *testing.T) {
	s := simulator.New(state())
	if code, m := call(s, http.MethodPost, simulator.TokensPath, "", `{"username":"meter","password":"no","tenant":"vsphere.local"}`); code != http.StatusUnauthorized ||
		!strings.Contains(fmt.Sprint(m["errors"]), "90135") {
		t.Fatalf("wrong password: %d %v", code, m)
	}
	code, m := call(s, http.MethodPost, simulator.TokensPath, "", `{"username":"meter","password":"pw","tenant":"vsphere.local"}`)
	tok, _ := m["id"].(string)
	if code != http.StatusOK || tok == "" {
		t.Fatalf("login: %d %v", code, m)
	}
	if code, _ := call(s, http.MethodGet, simulator.ResourcesPath, "", ""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	if code, p := call(s, http.MethodGet, simulator.ResourcesPath, tok, ""); code != http.StatusOK || len(p["content"].([]any)) != 4 {
		t.Fatalf("unfiltered: %d %v", code, p)
	}
	if code, _ := call(s, http.MethodDelete, simulator.TokensPath+"/"+url.PathEscape(tok), tok, ""); code != http.StatusNoContent {
		t.Fatalf("logout: %d", code)
	}
	if code, _ := call(s, http.MethodGet, simulator.ResourcesPath, tok, ""); code != http.StatusUnauthorized {
		t.Fatalf("after logout: %d", code)
	}
}
