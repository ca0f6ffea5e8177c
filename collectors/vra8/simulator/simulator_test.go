package simulator_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/usagemeter/usagemeter/collectors/vra8/simulator"
)

// send sends one request to s.
func send(s *simulator.VRA, method, path, bearer, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "https://vra.example"+path, strings.NewReader(body))
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

// record is the body of send's answer.
func record(s *simulator.VRA, method, path, bearer, body string) []byte {
	return send(s, method, path, bearer, body).Body.Bytes()
}

// call sends one request to s and returns the status and decoded body.
func call(s *simulator.VRA, method, path, bearer, body string) (int, map[string]any) {
	rec := send(s, method, path, bearer, body)
	var m map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	return rec.Code, m
}

func login(s *simulator.VRA, user, password string) (string, int) {
	code, m := call(s, http.MethodPost, simulator.CSPLoginPath+"?access_token", "", fmt.Sprintf(`{"username":%q,"password":%q}`, user, password))
	if code != http.StatusOK {
		return "", code
	}
	code, m = call(s, http.MethodPost, simulator.IaaSLoginPath, "", fmt.Sprintf(`{"refreshToken":%q}`, m["refresh_token"]))
	tok, _ := m["token"].(string)
	return tok, code
}

// Example: the demo's Aria Automation, logged in, its machines paged
// through with $top and $skip.
func Example() {
	s := simulator.NewDemo("meter", "pw", []simulator.VMRef{{VCenterUUID: "564d1a2b-3c4d-5e6f-7a8b-9c0d1e2f3a4b", MoRef: "vm-42"}}, 1)
	tok, _ := login(s, "meter", "pw")
	for skip := 0; ; skip += 2 {
		_, page := call(s, http.MethodGet, fmt.Sprintf("%s?apiVersion=2021-07-15&$top=2&$skip=%d", simulator.MachinesPath, skip), tok, "")
		content := page["content"].([]any)
		for _, m := range content {
			m := m.(map[string]any)
			fmt.Println(m["name"], m["cloudAccountIds"], m["customProperties"].(map[string]any)["__moref"])
		}
		if len(content) < 2 {
			break
		}
	}
	// Output:
	// vm-42 [vsphere-1] VirtualMachine:vm-42
	// aws-vm-000 [aws-1] <nil>
	// azure-vm-000 [azure-1] <nil>
	// gcp-vm-000 [gcp-1] <nil>
}

func TestLoginAndFaults(t *testing.T) {
	s := simulator.New(simulator.State{User: "u", Password: "p", Machines: []simulator.Machine{{ID: "m-1", Name: "a"}, {ID: "m-2", Name: "b"}}})
	if _, code := login(s, "u", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", code)
	}
	tok, code := login(s, "u", "p")
	if code != http.StatusOK || tok == "" || s.Logins() != 1 {
		t.Fatalf("login: %d %q", code, tok)
	}
	if code, _ := call(s, http.MethodGet, simulator.MachinesPath, "nope", ""); code != http.StatusUnauthorized {
		t.Fatalf("unknown token: %d", code)
	}
	if code, m := call(s, http.MethodGet, simulator.MachinesPath+"?apiVersion=2030-01-01", tok, ""); code != http.StatusBadRequest ||
		!strings.Contains(fmt.Sprint(m["message"]), "Invalid apiVersion") {
		t.Fatalf("unknown apiVersion: %d %v", code, m)
	}
	s.SetFaults(simulator.Faults{FailPage: 2})
	if code, _ := call(s, http.MethodGet, simulator.MachinesPath+"?$top=1&$skip=1", tok, ""); code != http.StatusInternalServerError {
		t.Fatalf("page 2: %d", code)
	}
	s.SetFaults(simulator.Faults{ExpireAfter: 1})
	call(s, http.MethodGet, simulator.MachinesPath, tok, "")
	if code, _ := call(s, http.MethodGet, simulator.MachinesPath, tok, ""); code != http.StatusUnauthorized {
		t.Fatalf("expired token: %d", code)
	}
	s.ExpireRefreshTokens()
	if code, _ := call(s, http.MethodPost, simulator.IaaSLoginPath, "", `{"refreshToken":"x"}`); code != http.StatusBadRequest {
		t.Fatalf("unknown refresh token: %d", code)
	}
}
