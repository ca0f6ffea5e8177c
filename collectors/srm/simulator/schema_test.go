package simulator_test

// SRM has no public Go client, so the simulator's answers are checked
// against SRM's published OpenAPI document instead: srm-api-v2.json of
// vmware-samples/site-recovery-manager-rest-api-examples ("VMware Site
// Recovery Manager REST API Gateway" 2.0.0), trimmed to the operations the
// simulator serves and the schemas they use (testdata/openapi/README.md).

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/usagemeter/usagemeter/collectors/internal/openapi"
	"github.com/usagemeter/usagemeter/collectors/srm/simulator"
)

func TestAnswersMatchPublishedOpenAPI(t *testing.T) {
	doc, err := openapi.Load("testdata/openapi/srm-api-v2.json")
	if err != nil {
		t.Fatal(err)
	}
	st := state()
	st.Pairings[0].Groups[0].VMs[1].Template = true
	st.Pairings[0].Groups[0].VMs[2].Status = "MISSING_UNPROTECTED_VM"
	st.Pairings[0].Groups = append(st.Pairings[0].Groups, simulator.Group{ID: "protection-group-2", Name: "db", ReplicationType: "ABR"})
	s := simulator.New(st)
	const base = "/api/rest/srm/v2"
	get := func(path, session string) *httptest.ResponseRecorder {
		return send(s, http.MethodGet, base+path, session)
	}
	login := send(s, http.MethodPost, base+"/session", "", "meter@vsphere.local", "pw")
	var sess struct {
		SessionID string `json:"session_id"`
	}
	if err := json.Unmarshal(login.Body.Bytes(), &sess); err != nil || sess.SessionID == "" {
		t.Fatalf("login: %d %s", login.Code, login.Body)
	}
	id := sess.SessionID
	for _, tc := range []struct {
		method, path, docPath string
		rec                   *httptest.ResponseRecorder
	}{
		{http.MethodPost, "/session", "/session", login},
		{http.MethodGet, "/session", "/session", get("/session", id)},
		{http.MethodGet, "/pairings", "/pairings", get("/pairings", id)},
		{http.MethodGet, "/pairings/pairing-1/protection-management/groups", "/pairings/{pairing_id}/protection-management/groups",
			get("/pairings/pairing-1/protection-management/groups?limit=1", id)},
		{http.MethodGet, "/pairings/pairing-1/protection-management/groups/protection-group-1/vms", "/pairings/{pairing_id}/protection-management/groups/{group_id}/vms",
			get("/pairings/pairing-1/protection-management/groups/protection-group-1/vms?offset=1&limit=3", id)},
	} {
		status := "200"
		if tc.rec.Code != http.StatusOK {
			t.Fatalf("%s %s: %d %s", tc.method, tc.path, tc.rec.Code, tc.rec.Body)
		}
		schema, err := doc.Response(tc.method, tc.docPath, status)
		if err != nil {
			t.Fatal(err)
		}
		if errs := doc.Validate(schema, tc.rec.Body.Bytes()); len(errs) > 0 {
			t.Errorf("%s %s does not match the published schema:\n  %s", tc.method, tc.path, strings.Join(errs, "\n  "))
		}
	}
	// Errors are ResponseError.
	for _, tc := range []struct{ path, docPath string }{
		{"/pairings/nope/protection-management/groups", "/pairings/{pairing_id}/protection-management/groups"},
	} {
		rec := get(tc.path, id)
		if rec.Code != http.StatusNotFound {
			t.Fatalf("GET %s: %d", tc.path, rec.Code)
		}
		schema, err := doc.Response(http.MethodGet, tc.docPath, "500")
		if err != nil {
			t.Fatal(err)
		}
		if errs := doc.Validate(schema, rec.Body.Bytes()); len(errs) > 0 {
			t.Errorf("GET %s error body does not match ResponseError:\n  %s", tc.path, strings.Join(errs, "\n  "))
		}
	}
}
