package simulator_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/usagemeter/usagemeter/collectors/horizon/simulator"
)

func state() simulator.State {
	st := simulator.State{Domain: "CORP", User: "meter", Password: "pw",
		Licenses:     []simulator.License{{Edition: "HORIZON_ENTERPRISE_CONCURRENT_USER", Licensed: true}},
		DesktopPools: []simulator.DesktopPool{{ID: "pool-1", Name: "vdi", Type: "AUTOMATED", Enabled: true}}}
	for i := range 5 {
		st.Machines = append(st.Machines, simulator.Machine{ID: fmt.Sprintf("m-%d", 100+i), Name: fmt.Sprintf("VDI-%d", i), PoolID: "pool-1", State: "AVAILABLE"})
	}
	st.Sessions = []simulator.Session{{ID: "s-1", Type: "DESKTOP", State: "CONNECTED", MachineID: "m-100", User: `CORP\alice`, Client: "ALICE-PC"}}
	return st
}

// call sends one request to s and returns the status, headers and body.
func call(s *simulator.Horizon, method, path, bearer string, body any) (int, http.Header, []byte) {
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req := httptest.NewRequest(method, "https://hz.example"+path, rd)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec.Code, rec.Header(), rec.Body.Bytes()
}

func login(t testing.TB, s *simulator.Horizon) (access, refresh string) {
	code, _, b := call(s, http.MethodPost, "/rest/login", "", map[string]string{"domain": "CORP", "username": "meter", "password": "pw"})
	var tk struct {
		Access  string `json:"access_token"`
		Refresh string `json:"refresh_token"`
	}
	_ = json.Unmarshal(b, &tk)
	if code != http.StatusOK || tk.Access == "" || tk.Refresh == "" {
		t.Fatalf("login: %d %s", code, b)
	}
	return tk.Access, tk.Refresh
}

// Example: log in, then page through the machines while HAS_MORE_RECORDS
// says more follow.
func Example() {
	s := simulator.New(state())
	_, _, b := call(s, http.MethodPost, "/rest/login", "", map[string]string{"domain": "CORP", "username": "meter", "password": "pw"})
	var tk struct {
		Access string `json:"access_token"`
	}
	_ = json.Unmarshal(b, &tk)
	for page := 1; ; page++ {
		_, hdr, body := call(s, http.MethodGet, fmt.Sprintf("/rest/inventory/v1/machines?page=%d&size=2", page), tk.Access, nil)
		var ms []struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(body, &ms)
		for _, m := range ms {
			fmt.Print(m.ID, " ")
		}
		if hdr.Get("HAS_MORE_RECORDS") != "true" {
			break
		}
	}
	fmt.Println()
	// Output: m-100 m-101 m-102 m-103 m-104
}

func TestPaging(t *testing.T) {
	s := simulator.New(state())
	at, _ := login(t, s)
	for _, tc := range []struct {
		q    string
		code int
		n    int
		more string
	}{
		{"", 200, 5, ""},
		{"?page=3&size=2", 200, 1, ""},
		{"?page=1&size=2", 200, 2, "true"},
		{"?page=9&size=2", 200, 0, ""},
		{"?size=2", 400, 0, ""},
		{"?page=0&size=2", 400, 0, ""},
		{"?page=1&size=1001", 400, 0, ""},
	} {
		code, hdr, b := call(s, http.MethodGet, "/rest/inventory/v1/machines"+tc.q, at, nil)
		var l []any
		_ = json.Unmarshal(b, &l)
		if code != tc.code || len(l) != tc.n || hdr.Get("HAS_MORE_RECORDS") != tc.more {
			t.Errorf("%s: %d, %d records, more %q: %s", tc.q, code, len(l), hdr.Get("HAS_MORE_RECORDS"), b)
		}
	}
}

func TestTokens(t *testing.T) {
	s := simulator.New(state())
	if code, _, b := call(s, http.MethodPost, "/rest/login", "", map[string]string{"domain": "CORP", "username": "meter", "password": "nope"}); code != http.StatusUnauthorized || !strings.Contains(string(b), "error_key") {
		t.Fatalf("wrong password: %d %s", code, b)
	}
	at, rt := login(t, s)
	s.ExpireAccessTokens()
	if code, _, _ := call(s, http.MethodGet, "/rest/inventory/v1/farms", at, nil); code != http.StatusUnauthorized {
		t.Fatalf("expired access token: %d", code)
	}
	code, _, b := call(s, http.MethodPost, "/rest/refresh", "", map[string]string{"refresh_token": rt})
	var tk struct {
		Access string `json:"access_token"`
	}
	_ = json.Unmarshal(b, &tk)
	if code != http.StatusOK || tk.Access == "" || s.Refreshes() != 1 || s.Logins() != 1 {
		t.Fatalf("refresh: %d %s", code, b)
	}
	if code, _, _ := call(s, http.MethodGet, "/rest/config/v1/environment-properties", tk.Access, nil); code != http.StatusOK {
		t.Fatalf("refreshed token: %d", code)
	}
	if code, _, _ := call(s, http.MethodPost, "/rest/logout", tk.Access, map[string]string{"refresh_token": rt}); code != http.StatusOK {
		t.Fatalf("logout: %d", code)
	}
	if code, _, _ := call(s, http.MethodPost, "/rest/refresh", "", map[string]string{"refresh_token": rt}); code != http.StatusBadRequest {
		t.Fatalf("refresh after logout: %d", code)
	}
}

func TestPersonalDataServed(t *testing.T) {
	s := simulator.New(state())
	at, _ := login(t, s)
	_, _, b := call(s, http.MethodGet, "/rest/inventory/v1/sessions", at, nil)
	if !strings.Contains(string(b), simulator.SID(`CORP\alice`)) || !strings.Contains(string(b), "ALICE-PC") {
		t.Fatalf("the simulator does not serve the personal data a real pod does: %s", b)
	}
}

func TestThrottleAndNoLicenseAPI(t *testing.T) {
	st := state()
	st.NoLicenseAPI = true
	s := simulator.New(st)
	at, _ := login(t, s)
	if code, _, _ := call(s, http.MethodGet, "/rest/config/v1/licenses", at, nil); code != http.StatusNotFound {
		t.Fatalf("no licence API: %d", code)
	}
	s.SetFaults(simulator.Faults{ThrottleEvery: 1, RetryAfter: 7})
	code, hdr, b := call(s, http.MethodGet, "/rest/inventory/v1/farms", at, nil)
	if code != http.StatusTooManyRequests || hdr.Get("X-Rate-Limit-Retry-After-Seconds") != "7" || !strings.Contains(string(b), "TOO_MANY_REQUESTS") {
		t.Fatalf("throttled: %d %v %s", code, hdr, b)
	}
}

func TestLoadStateIsStrict(t *testing.T) {
	if _, err := simulator.LoadState([]byte(`{"user": "u", "pools": []}`)); err == nil || !strings.Contains(err.Error(), "horizon simulator state") {
		t.Fatalf("unknown key: %v", err)
	}
}
