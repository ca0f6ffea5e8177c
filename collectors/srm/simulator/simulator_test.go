package simulator_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/usagemeter/usagemeter/collectors/srm/simulator"
)

func state() simulator.State {
	g := simulator.Group{ID: "protection-group-1", Name: "web", ReplicationType: "HBR"}
	for i := range 5 {
		g.VMs = append(g.VMs, simulator.VM{ID: fmt.Sprintf("vm-%d", 100+i), Name: fmt.Sprintf("web-%d", i)})
	}
	return simulator.State{User: "meter@vsphere.local", Password: "pw",
		VCenter:  simulator.Server{ID: "564d1a2b-3c4d-5e6f-7a8b-9c0d1e2f3a4b", Name: "vc01"},
		Pairings: []simulator.Pairing{{ID: "pairing-1", Groups: []simulator.Group{g}}}}
}

// send sends one request to s (with Basic credentials user, password if
// given) and returns the recorded answer.
func send(s *simulator.SRM, method, path, session string, basic ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "https://srm.example"+path, nil)
	if len(basic) == 2 {
		req.SetBasicAuth(basic[0], basic[1])
	}
	if session != "" {
		req.Header.Set("x-dr-session", session)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

// call is send returning the status and decoded body.
func call(s *simulator.SRM, method, path, session string, basic ...string) (int, map[string]any) {
	rec := send(s, method, path, session, basic...)
	var m map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	return rec.Code, m
}

func login(t *testing.T, s *simulator.SRM) string {
	t.Helper()
	code, m := call(s, http.MethodPost, "/api/rest/srm/v1/session", "", "meter@vsphere.local", "pw")
	id, _ := m["session_id"].(string)
	if code != http.StatusOK || id == "" {
		t.Fatalf("login: %d %v", code, m)
	}
	return id
}

// Example: log in, then page through a protection group's VMs.
func Example() {
	s := simulator.New(state())
	_, m := call(s, http.MethodPost, "/api/rest/srm/v1/session", "", "meter@vsphere.local", "pw")
	id := m["session_id"].(string)
	path := "/api/rest/srm/v1/pairings/pairing-1/protection-management/groups/protection-group-1/vms?offset=0&limit=2"
	for path != "" {
		_, page := call(s, http.MethodGet, path, id)
		for _, v := range page["list"].([]any) {
			fmt.Print(v.(map[string]any)["id"], " ")
		}
		next, _ := page["_meta"].(map[string]any)["links"].(map[string]any)["next"].(map[string]any)
		path = ""
		if next != nil {
			path = strings.TrimPrefix(next["href"].(string), "https://srm.example")
		}
	}
	fmt.Println()
	// Output: vm-100 vm-101 vm-102 vm-103 vm-104
}

func TestPaging(t *testing.T) {
	s := simulator.New(state())
	id := login(t, s)
	base := "/api/rest/srm/v1/pairings/pairing-1/protection-management/groups/protection-group-1/vms"
	code, m := call(s, http.MethodGet, base+"?offset=4&limit=2", id)
	meta := m["_meta"].(map[string]any)
	if code != http.StatusOK || len(m["list"].([]any)) != 1 || meta["total"] != 5.0 || meta["links"].(map[string]any)["next"] != nil {
		t.Fatalf("last page: %d %v", code, m)
	}
	if code, m := call(s, http.MethodGet, base, id); code != http.StatusOK || len(m["list"].([]any)) != 5 {
		t.Fatalf("default limit: %d %v", code, m)
	}
	if code, _ := call(s, http.MethodGet, base+"?limit=0", id); code != http.StatusBadRequest {
		t.Fatalf("limit 0: %d", code)
	}
}

func TestRefusals(t *testing.T) {
	s := simulator.New(state())
	if code, m := call(s, http.MethodPost, "/api/rest/srm/v1/session", "", "meter@vsphere.local", "nope"); code != http.StatusUnauthorized || m["error_code"] == nil {
		t.Fatalf("wrong password: %d %v", code, m)
	}
	if code, _ := call(s, http.MethodGet, "/api/rest/srm/v1/pairings", "not-a-session"); code != http.StatusUnauthorized {
		t.Fatalf("unknown session: %d", code)
	}
	id := login(t, s)
	if code, m := call(s, http.MethodGet, "/api/rest/srm/v3/pairings", id); code != http.StatusNotFound || !strings.Contains(m["message"].(string), "supported: v1, v2") {
		t.Fatalf("unknown version: %d %v", code, m)
	}
	if code, _ := call(s, http.MethodGet, "/api/rest/srm/v1/pairings/nope/protection-management/groups", id); code != http.StatusNotFound {
		t.Fatalf("unknown pairing: %d", code)
	}
	if code, _ := call(s, http.MethodDelete, "/api/rest/srm/v1/session", id); code != http.StatusNoContent {
		t.Fatalf("logout: %d", code)
	}
	if code, _ := call(s, http.MethodGet, "/api/rest/srm/v1/pairings", id); code != http.StatusUnauthorized {
		t.Fatalf("after logout: %d", code)
	}
}

func TestLoadStateIsStrict(t *testing.T) {
	if _, err := simulator.LoadState([]byte(`{"user": "u", "pairing": []}`)); err == nil || !strings.Contains(err.Error(), "srm simulator state") {
		t.Fatalf("unknown key: %v", err)
	}
}
