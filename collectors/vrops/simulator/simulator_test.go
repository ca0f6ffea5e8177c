package simulator_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/usagemeter/usagemeter/collectors/vrops/simulator"
)

func refs(n int) []simulator.VMRef {
	r := make([]simulator.VMRef, n)
	for i := range r {
		r[i] = simulator.VMRef{VCenter: "564d1a2b-3c4d-5e6f-7a8b-9c0d1e2f3a4b", MoRef: fmt.Sprintf("vm-%d", 100+i)}
	}
	return r
}

// call sends one request to s and returns the status and decoded body.
func call(s *simulator.Ops, method, path, token, body string) (int, map[string]any) {
	req := httptest.NewRequest(method, "https://ops.example"+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "OpsToken "+token)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	var m map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	return rec.Code, m
}

func login(t *testing.T, s *simulator.Ops, pw string) (int, string) {
	t.Helper()
	code, m := call(s, http.MethodPost, "/suite-api/api/auth/token/acquire", "", `{"username":"meter","password":"`+pw+`"}`)
	tok, _ := m["token"].(string)
	return code, tok
}

// Example: the demo's use: monitor 3 of the vCenter's VMs, log in, page
// through them.
func Example() {
	s := simulator.Monitoring("meter", "pw", "Advanced", refs(5), 3)
	_, m := call(s, http.MethodPost, "/suite-api/api/auth/token/acquire", "", `{"username":"meter","password":"pw"}`)
	tok := m["token"].(string)
	for page := 0; ; page++ {
		_, p := call(s, http.MethodGet, fmt.Sprintf("/suite-api/api/resources?resourceKind=VirtualMachine&page=%d&pageSize=2", page), tok, "")
		list := p["resourceList"].([]any)
		if len(list) == 0 {
			break
		}
		for _, r := range list {
			for _, id := range r.(map[string]any)["resourceKey"].(map[string]any)["resourceIdentifiers"].([]any) {
				if id.(map[string]any)["identifierType"].(map[string]any)["name"] == "VMEntityObjectID" {
					fmt.Print(id.(map[string]any)["value"], " ")
				}
			}
		}
	}
	fmt.Println()
	// Output: vm-100 vm-101 vm-102
}

func TestRefusals(t *testing.T) {
	s := simulator.Monitoring("meter", "pw", "Enterprise", refs(2), 10)
	if code, _ := login(t, s, "nope"); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", code)
	}
	if code, _ := call(s, http.MethodGet, "/suite-api/api/resources", "not-a-token", ""); code != http.StatusUnauthorized {
		t.Fatalf("unknown token: %d", code)
	}
	_, tok := login(t, s, "pw")
	if code, m := call(s, http.MethodGet, "/suite-api/api/resources?page=0&pageSize=10", tok, ""); code != http.StatusOK || len(m["resourceList"].([]any)) != 2 {
		t.Fatalf("list: %d %v", code, m)
	}
	if code, m := call(s, http.MethodGet, "/suite-api/api/deployment/licenses", tok, ""); code != http.StatusOK || !strings.Contains(fmt.Sprint(m), "Enterprise") {
		t.Fatalf("licences: %d %v", code, m)
	}
	if code, _ := call(s, http.MethodGet, "/suite-api/api/resources?pageSize=0", tok, ""); code != http.StatusBadRequest {
		t.Fatalf("pageSize 0: %d", code)
	}
	if code, _ := call(s, http.MethodPost, "/suite-api/api/auth/token/release", tok, ""); code != http.StatusOK {
		t.Fatalf("release: %d", code)
	}
	if code, _ := call(s, http.MethodGet, "/suite-api/api/resources", tok, ""); code != http.StatusUnauthorized {
		t.Fatalf("after release: %d", code)
	}
}

func TestLoadStateIsStrict(t *testing.T) {
	if _, err := simulator.LoadState([]byte(`{"user": "u", "vm": []}`)); err == nil || !strings.Contains(err.Error(), "vrops simulator state") {
		t.Fatalf("unknown key: %v", err)
	}
}
