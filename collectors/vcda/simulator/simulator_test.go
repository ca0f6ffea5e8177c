package simulator_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/usagemeter/usagemeter/collectors/vcda/simulator"
)

const accept = "application/vnd.vmware.h4-v4.5+json"

func state() simulator.State {
	st := simulator.State{User: "meter@System", Password: "pw", Site: "cloud-ams", InstanceID: "6959cd85-5bd9-47a2-886b-3d938e3c0856"}
	for i := range 5 {
		st.VMs = append(st.VMs, simulator.VMReplication{ID: fmt.Sprintf("C4-%d", i), VMID: fmt.Sprintf("vm-uuid-%d", i), VMName: fmt.Sprintf("web-%d", i),
			Source: simulator.End{Site: "cloud-fra", Org: "acme"}, Dest: simulator.End{Site: "cloud-ams", Org: "acme"}})
	}
	return st
}

// call sends one request to s and returns the answer.
func call(s *simulator.VCDA, method, path, token, body, version string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "https://vcda.example"+path, strings.NewReader(body))
	req.Header.Set("Accept", version)
	if token != "" {
		req.Header.Set("X-VCAV-Auth", token)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

func decode(rec *httptest.ResponseRecorder) map[string]any {
	var m map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	return m
}

const creds = `{"type":"vcdCredentials","vcdUser":"meter@System","vcdPassword":"pw"}`

// Example: log in, then page through the VM replications.
func Example() {
	s := simulator.New(state())
	tok := call(s, http.MethodPost, "/sessions", "", creds, accept).Header().Get("X-VCAV-Auth")
	for offset := 0; ; {
		page := decode(call(s, http.MethodGet, fmt.Sprintf("/vm-replications?offset=%d&limit=2", offset), tok, "", accept))
		items := page["items"].([]any)
		for _, it := range items {
			fmt.Print(it.(map[string]any)["vmName"], " ")
		}
		offset += len(items)
		if len(items) == 0 || offset >= int(page["total"].(float64)) {
			break
		}
	}
	fmt.Println()
	// Output: web-0 web-1 web-2 web-3 web-4
}

func TestLoginAndVersions(t *testing.T) {
	s := simulator.New(state())
	for _, tc := range []struct {
		name, body, version string
		want                int
	}{
		{"vcd credentials", creds, accept, http.StatusOK},
		{"local user", `{"type":"localUser","localUser":"meter@System","localPassword":"pw"}`, accept, http.StatusOK},
		{"sso", `{"type":"ssoCredentials","username":"meter@System","password":"pw"}`, accept, http.StatusOK},
		{"wrong password", `{"type":"vcdCredentials","vcdUser":"meter@System","vcdPassword":"no"}`, accept, http.StatusUnauthorized},
		{"unknown type", `{"type":"basic"}`, accept, http.StatusBadRequest},
		{"version not offered", creds, "application/vnd.vmware.h4-v3.0+json", http.StatusNotAcceptable},
		{"no version", creds, "application/json", http.StatusNotAcceptable},
	} {
		rec := call(s, http.MethodPost, "/sessions", "", tc.body, tc.version)
		if rec.Code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, rec.Code, rec.Body, tc.want)
		}
		if tok := rec.Header().Get("X-VCAV-Auth"); (tok != "") != (tc.want == http.StatusOK) {
			t.Errorf("%s: token %q", tc.name, tok)
		}
	}
	if m := decode(call(s, http.MethodGet, "/sessions", "", "", "application/vnd.vmware.h4-v4.0+json")); !strings.Contains(m["msg"].(string), "4.5, 4.6, 4.7") {
		t.Errorf("the version error does not name the versions offered: %v", m)
	}
	if rec := call(s, http.MethodGet, "/vm-replications", "bogus", "", accept); rec.Code != http.StatusUnauthorized || decode(rec)["code"] != "NotAuthenticated" {
		t.Errorf("unknown token: %d %s", rec.Code, rec.Body)
	}
}

func TestPagingAndFaults(t *testing.T) {
	st := state()
	st.MaxLimit = 3
	s := simulator.New(st)
	tok := call(s, http.MethodPost, "/sessions", "", creds, accept).Header().Get("X-VCAV-Auth")
	n := func(path string) int {
		return len(decode(call(s, http.MethodGet, path, tok, "", accept))["items"].([]any))
	}
	if n("/vm-replications?offset=0&limit=3") != 3 || n("/vm-replications?offset=3&limit=3") != 2 || n("/vm-replications?limit=4") != 5 {
		t.Error("offset/limit, or the limit over the server's one (defaults to 100), not served")
	}
	s.SetFaults(simulator.Faults{FailPage: 2})
	if rec := call(s, http.MethodGet, "/vm-replications?offset=2&limit=2", tok, "", accept); rec.Code != http.StatusInternalServerError {
		t.Errorf("FailPage: %d", rec.Code)
	}
	s.SetFaults(simulator.Faults{ExpireAfter: 1})
	call(s, http.MethodGet, "/vm-replications", tok, "", accept)
	if rec := call(s, http.MethodGet, "/vm-replications", tok, "", accept); rec.Code != http.StatusUnauthorized {
		t.Errorf("ExpireAfter: %d", rec.Code)
	}
	if s.Logins() != 1 || s.Calls() < 6 {
		t.Errorf("logins %d, calls %d", s.Logins(), s.Calls())
	}
}

func TestLoadStateRefusesUnknownKeys(t *testing.T) {
	if _, err := simulator.LoadState([]byte(`{"user":"u","vms":[]}`)); err == nil || !strings.Contains(err.Error(), "vcda simulator state") {
		t.Fatalf("error %v", err)
	}
}
