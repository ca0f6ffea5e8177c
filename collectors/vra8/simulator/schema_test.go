package simulator_test

// The simulator's answers are checked against the IaaS API's published
// schema: swagger/vra-iaas.json of vmware/vra-sdk-go, trimmed to the
// operations served (testdata/openapi/README.md). A field the schema does
// not declare is an error, so that the simulator cannot make one up.

import (
	"net/http"
	"strings"
	"testing"

	"github.com/usagemeter/usagemeter/collectors/internal/openapi"
	"github.com/usagemeter/usagemeter/collectors/vra8/simulator"
)

func TestAnswersMatchPublishedSchema(t *testing.T) {
	doc, err := openapi.Load("testdata/openapi/vra-iaas.json")
	if err != nil {
		t.Fatal(err)
	}
	st := simulator.NewDemoState("meter", "pw", []simulator.VMRef{{VCenterUUID: "564d1a2b-3c4d-5e6f-7a8b-9c0d1e2f3a4b", MoRef: "vm-42"}}, 2)
	st.Machines[0].PowerState = "OFF"
	st.CloudAccounts = append(st.CloudAccounts, simulator.CloudAccount{ID: "vmc-1", Name: "sddc", Type: "vmc"})
	s := simulator.New(st)
	code, m := call(s, http.MethodPost, simulator.CSPLoginPath+"?access_token", "", `{"username":"meter","password":"pw"}`)
	if code != http.StatusOK {
		t.Fatalf("CSP login: %d", code)
	}
	login := record(s, http.MethodPost, simulator.IaaSLoginPath+"?apiVersion=2021-07-15", "", `{"refreshToken":"`+m["refresh_token"].(string)+`"}`)
	_, tokens := call(s, http.MethodPost, simulator.IaaSLoginPath, "", `{"refreshToken":"`+m["refresh_token"].(string)+`"}`)
	tok := tokens["token"].(string)
	for _, tc := range []struct {
		method, docPath, status string
		body                    []byte
	}{
		{http.MethodPost, simulator.IaaSLoginPath, "200", login},
		{http.MethodGet, simulator.MachinesPath, "200", record(s, http.MethodGet, simulator.MachinesPath+"?apiVersion=2021-07-15&$top=3&$skip=1", tok, "")},
		{http.MethodGet, simulator.CloudAccountsPath, "200", record(s, http.MethodGet, simulator.CloudAccountsPath+"?apiVersion=2021-07-15", tok, "")},
		// Errors are ServiceErrorResponse.
		{http.MethodPost, simulator.IaaSLoginPath, "400", record(s, http.MethodPost, simulator.IaaSLoginPath, "", `{"refreshToken":"expired"}`)},
		{http.MethodGet, simulator.MachinesPath, "403", record(s, http.MethodGet, simulator.MachinesPath+"?apiVersion=1999-01-01", tok, "")},
	} {
		schema, err := doc.Response(tc.method, tc.docPath, tc.status)
		if err != nil {
			t.Fatal(err)
		}
		if errs := doc.Validate(schema, tc.body); len(errs) > 0 {
			t.Errorf("%s %s (%s) does not match the published schema:\n  %s", tc.method, tc.docPath, tc.status, strings.Join(errs, "\n  "))
		}
	}
	// The check bites: a made-up field, or a power state the schema does
	// not list, is refused.
	schema, _ := doc.Response(http.MethodGet, simulator.MachinesPath, "200")
	for _, bad := range []string{`{"content":[{"id":"m","powerState":"ON","externalRegionId":"r","_links":{},"vcUuid":"x"}]}`,
		`{"content":[{"id":"m","powerState":"RUNNING","externalRegionId":"r","_links":{}}]}`} {
		if errs := doc.Validate(schema, []byte(bad)); len(errs) == 0 {
			t.Errorf("%s passes the schema", bad)
		}
	}
}
