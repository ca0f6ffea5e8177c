package simulator_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/usagemeter/usagemeter/collectors/vrni/simulator"
)

const vc = "564d1a2b-3c4d-5e6f-7a8b-9c0d1e2f3a4b"

func refs(n int) []simulator.VMRef {
	r := make([]simulator.VMRef, n)
	for i := range r {
		r[i] = simulator.VMRef{VCenter: vc, MoRef: fmt.Sprintf("vm-%d", 100+i)}
	}
	return r
}

// call sends one request to s and returns the status and decoded body.
func call(s *simulator.NI, method, path, token, body string) (int, map[string]any) {
	req := httptest.NewRequest(method, "https://ni.example"+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "NetworkInsight "+token)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	var m map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	return rec.Code, m
}

const local = `{"username":"meter","password":"pw","domain":{"domain_type":"LOCAL","value":"local"}}`

// Example: the demo's use: monitor 3 of the vCenter's VMs, log in, page
// through them with the cursor and fetch each page's entities.
func Example() {
	s := simulator.Monitoring("meter", "pw", "ENTERPRISE", map[string]string{vc: "127.0.0.1"}, refs(5), 3)
	_, m := call(s, http.MethodPost, "/api/ni/auth/token", "", local)
	tok := m["token"].(string)
	cursor := ""
	for {
		_, p := call(s, http.MethodGet, "/api/ni/entities/vms?size=2&cursor="+cursor, tok, "")
		ids, _ := json.Marshal(map[string]any{"entity_ids": p["results"]})
		_, f := call(s, http.MethodPost, "/api/ni/entities/fetch", tok, string(ids))
		for _, r := range f["results"].([]any) {
			fmt.Print(r.(map[string]any)["entity"].(map[string]any)["vendor_id"], " ")
		}
		c, _ := p["cursor"].(string)
		if c == "" {
			break
		}
		cursor = c
	}
	fmt.Println()
	// Output: vm-100 vm-101 vm-102
}

func TestRefusals(t *testing.T) {
	s := simulator.Monitoring("meter", "pw", "ADVANCED", nil, refs(2), 10)
	if code, _ := call(s, http.MethodPost, "/api/ni/auth/token", "", strings.Replace(local, `"pw"`, `"nope"`, 1)); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", code)
	}
	if code, _ := call(s, http.MethodGet, "/api/ni/entities/vms", "not-a-token", ""); code != http.StatusUnauthorized {
		t.Fatalf("unknown token: %d", code)
	}
	_, m := call(s, http.MethodPost, "/api/ni/auth/token", "", local)
	tok := m["token"].(string)
	if code, m := call(s, http.MethodGet, "/api/ni/entities/vcenter-managers", tok, ""); code != http.StatusOK || len(m["results"].([]any)) != 1 {
		t.Fatalf("vCenter managers: %d %v", code, m)
	}
	if code, _ := call(s, http.MethodGet, "/api/ni/entities/vms?size=0", tok, ""); code != http.StatusBadRequest {
		t.Fatalf("size 0: %d", code)
	}
	if code, _ := call(s, http.MethodGet, "/api/ni/entities/vms?cursor=%25%25", tok, ""); code != http.StatusBadRequest {
		t.Fatalf("bad cursor: %d", code)
	}
	many := make([]map[string]string, simulator.MaxFetch+1)
	body, _ := json.Marshal(map[string]any{"entity_ids": many})
	if code, _ := call(s, http.MethodPost, "/api/ni/entities/fetch", tok, string(body)); code != http.StatusBadRequest {
		t.Fatalf("fetch of %d: %d", len(many), code)
	}
	if code, _ := call(s, http.MethodDelete, "/api/ni/auth/token", tok, ""); code != http.StatusNoContent {
		t.Fatalf("logout: %d", code)
	}
	if code, _ := call(s, http.MethodGet, "/api/ni/settings/licensing", tok, ""); code != http.StatusUnauthorized {
		t.Fatalf("after logout: %d", code)
	}
}

func TestLoadStateIsStrict(t *testing.T) {
	if _, err := simulator.LoadState([]byte(`{"user": "u", "vm": []}`)); err == nil || !strings.Contains(err.Error(), "vrni simulator state") {
		t.Fatalf("unknown key: %v", err)
	}
}
