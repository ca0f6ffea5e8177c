package simulator_test

// Horizon's answers are checked against the Horizon Server API OpenAPI
// document, version 2111 (api/openapi.yaml of umich-vci/gohorizon, generated
// from a Connection Server's /rest/swagger.json), trimmed to the operations
// the simulator serves and converted to JSON (testdata/openapi/README.md).
// The licence list is not in 2111 and is not checked here.

import (
	"net/http"
	"strings"
	"testing"

	"github.com/usagemeter/usagemeter/collectors/horizon/simulator"
	"github.com/usagemeter/usagemeter/collectors/internal/openapi"
)

func TestAnswersMatchPublishedOpenAPI(t *testing.T) {
	doc, err := openapi.Load("testdata/openapi/horizon-server-api-2111.json")
	if err != nil {
		t.Fatal(err)
	}
	st := state()
	st.Machines[1].Type = "UNMANAGED_MACHINE"
	st.Machines[2].MissingInVCenter = true
	st.Machines[3].Users = []string{"S-1-5-21-1004336348-1177238915-682003330-512"}
	st.Farms = []simulator.Farm{{ID: "farm-1", Name: "rds", Type: "AUTOMATED", Enabled: true}}
	st.RDSServers = []simulator.RDSServer{{ID: "rds-1", Name: "RDS-01", FarmID: "farm-1", Enabled: true}}
	st.Sessions = append(st.Sessions, simulator.Session{ID: "s-2", Type: "APPLICATION", State: "DISCONNECTED", FarmID: "farm-1", User: `CORP\bob`})
	s := simulator.New(st)
	code, _, b := call(s, http.MethodPost, "/rest/login", "", map[string]string{"domain": "CORP", "username": "meter", "password": "pw"})
	if code != http.StatusOK {
		t.Fatalf("login: %d", code)
	}
	check := func(method, docPath string, body []byte) {
		t.Helper()
		schema, err := doc.Response(method, docPath, "200")
		if err != nil {
			t.Fatal(err)
		}
		if errs := doc.Validate(schema, body); len(errs) > 0 {
			t.Errorf("%s %s does not match the published schema:\n  %s", method, docPath, strings.Join(errs, "\n  "))
		}
	}
	check(http.MethodPost, "/login", b)
	at, rt := login(t, s)
	code, _, b = call(s, http.MethodPost, "/rest/refresh", "", map[string]string{"refresh_token": rt})
	if code != http.StatusOK {
		t.Fatalf("refresh: %d", code)
	}
	check(http.MethodPost, "/refresh", b)
	for _, p := range []string{"/config/v1/environment-properties", "/inventory/v1/desktop-pools", "/inventory/v1/farms",
		"/inventory/v1/machines", "/inventory/v1/rds-servers", "/inventory/v1/sessions"} {
		code, _, b := call(s, http.MethodGet, "/rest"+p, at, nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, code, b)
		}
		check(http.MethodGet, p, b)
	}
}
