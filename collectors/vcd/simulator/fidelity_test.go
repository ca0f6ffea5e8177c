package simulator

// The fidelity suite: the simulator driven by Cloud Director's own public Go
// client, github.com/vmware/go-vcloud-director/v2 (govcd, the version pinned
// in go.mod), which nobody here wrote. A gap it finds is a place where the
// simulator does not answer as Cloud Director does.

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/vmware/go-vcloud-director/v2/govcd"
	"github.com/vmware/go-vcloud-director/v2/types/v56"
)

// fidelityState has two orgs, two VDCs, one vCenter and 60 VMs (some of
// them templates), enough for govcd to page at its default 25.
func fidelityState() State {
	st := State{User: "meter", Password: "pw", SiteName: "site-a",
		Orgs:     []Org{{ID: "11111111-0000-0000-0000-000000000001", Name: "acme"}, {ID: "11111111-0000-0000-0000-000000000002", Name: "globex"}},
		VCenters: []VCenter{{ID: "33333333-0000-0000-0000-000000000001", Name: "vc-01", UUID: "0b3c1c0e-7c36-4f0c-9d4b-000000000001", URL: "https://vc-01.example.net"}},
	}
	st.VDCs = []VDC{
		{ID: "22222222-0000-0000-0000-000000000001", Name: "acme-vdc", Org: st.Orgs[0].ID, VCenter: st.VCenters[0].ID},
		{ID: "22222222-0000-0000-0000-000000000002", Name: "globex-vdc", Org: st.Orgs[1].ID, VCenter: st.VCenters[0].ID},
	}
	for i := range 60 {
		st.VMs = append(st.VMs, VM{ID: fmt.Sprintf("44444444-0000-0000-0000-%012d", i), Name: fmt.Sprintf("vm-%02d", i),
			VApp: "vapp", VDC: st.VDCs[i%2].ID, Moref: fmt.Sprintf("vm-%d", 1000+i), MemoryMB: 1024, CPUs: 2,
			Status: "POWERED_ON", HostName: "esx-01", Template: i%10 == 0})
	}
	return st
}

// login starts the simulator and logs govcd in as a provider.
func login(t *testing.T, s *Server, opts ...govcd.VCDClientOption) (*govcd.VCDClient, string) {
	t.Helper()
	t.Setenv("GOVCD_SKIP_LOG_TRACING", "1")
	base, _ := s.Start(t)
	u, err := url.Parse(base + "/api")
	if err != nil {
		t.Fatal(err)
	}
	c := govcd.NewVCDClient(*u, true, opts...)
	if err := c.Authenticate("meter", "pw", "System"); err != nil {
		t.Fatalf("govcd login: %v", err)
	}
	if c.Client.VCDToken == "" || !c.Client.IsSysAdmin {
		t.Fatalf("govcd login: token %q, sysadmin %v", c.Client.VCDToken, c.Client.IsSysAdmin)
	}
	return c, base
}

func TestGovcdLoginAndVersions(t *testing.T) {
	s := New(fidelityState())
	c, _ := login(t, s, govcd.WithAPIVersion("38.0"))
	max, err := c.Client.MaxSupportedVersion()
	if err != nil || max != "39.0" {
		t.Fatalf("MaxSupportedVersion: %q %v", max, err)
	}
	if ok := c.Client.APIVCDMaxVersionIs(">= 38.0"); !ok {
		t.Fatal("APIVCDMaxVersionIs(>= 38.0) is false")
	}
	// A version the server does not offer fails the login.
	u, _ := url.Parse(strings.TrimSuffix(c.Client.VCDHREF.String(), "/api") + "/api")
	bad := govcd.NewVCDClient(*u, true, govcd.WithAPIVersion("30.0"))
	if err := bad.Authenticate("meter", "pw", "System"); err == nil {
		t.Fatal("login at an unoffered version succeeded")
	}
	// Bad credentials.
	wrong := govcd.NewVCDClient(*u, true)
	if err := wrong.Authenticate("meter", "nope", "System"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("bad password: %v", err)
	}
}

func TestGovcdSessionInfo(t *testing.T) {
	c, _ := login(t, New(fidelityState()))
	info, err := c.Client.GetSessionInfo()
	if err != nil {
		t.Fatalf("GetSessionInfo: %v", err)
	}
	if info.User.Name != "meter" || info.Org.Name != "System" || len(info.Roles) == 0 || info.ID == "" {
		t.Fatalf("session info: %+v", info)
	}
}

func TestGovcdOrgList(t *testing.T) {
	c, _ := login(t, New(fidelityState()))
	list, err := c.GetOrgList()
	if err != nil {
		t.Fatalf("GetOrgList: %v", err)
	}
	var names []string
	for _, o := range list.Org {
		names = append(names, o.Name)
		if !strings.Contains(o.HREF, "/api/org/") {
			t.Errorf("org %s href %q", o.Name, o.HREF)
		}
	}
	if strings.Join(names, ",") != "acme,globex" {
		t.Fatalf("orgs: %v", names)
	}
}

// TestGovcdSetToken: a client given a token (as from another process) checks
// it with GET /api/org, sending the token in X-Vmware-Vcloud-Access-Token and
// as "Authorization: bearer" (lower case).
func TestGovcdSetToken(t *testing.T) {
	c, _ := login(t, New(fidelityState()))
	c2 := govcd.NewVCDClient(c.Client.VCDHREF, true)
	if err := c2.SetToken("System", govcd.BearerTokenHeader, c.Client.VCDToken); err != nil {
		t.Fatalf("SetToken: %v", err)
	}
	if _, err := c2.GetOrgList(); err != nil {
		t.Fatalf("GetOrgList with a set token: %v", err)
	}
	c3 := govcd.NewVCDClient(c.Client.VCDHREF, true)
	if err := c3.SetToken("System", govcd.BearerTokenHeader, strings.Repeat("x", 64)); err == nil {
		t.Fatal("SetToken with a made-up token succeeded")
	}
}

// TestAuthHeaderForms: the auth scheme is case-insensitive (RFC 9110 11.1)
// and the token may come in X-Vmware-Vcloud-Access-Token alone.
func TestAuthHeaderForms(t *testing.T) {
	s := New(fidelityState())
	c, base := login(t, s)
	tok := c.Client.VCDToken
	for name, h := range map[string]http.Header{
		"Bearer":       {"Authorization": {"Bearer " + tok}},
		"bearer":       {"Authorization": {"bearer " + tok}},
		"BEARER":       {"Authorization": {"BEARER " + tok}},
		"access token": {"X-Vmware-Vcloud-Access-Token": {tok}},
	} {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/query?type=organization&format=records", nil)
		req.Header = h
		req.Header.Set("Accept", "application/*+json;version=39.0")
		resp, err := c.Client.Http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", name, resp.StatusCode)
		}
	}
}

func TestGovcdQueryPaging(t *testing.T) {
	c, _ := login(t, New(fidelityState()))
	all, err := c.Client.QueryVmList(types.VmQueryFilterAll)
	if err != nil {
		t.Fatalf("QueryVmList: %v", err)
	}
	if len(all) != 60 {
		t.Fatalf("QueryVmList(all): %d VMs, want 60 over 3 pages", len(all))
	}
	vm := all[7]
	if vm.Name != "vm-07" || vm.MemoryMB != 1024 || vm.Cpus != 2 || vm.Status != "POWERED_ON" || vm.Moref != "vm-1007" ||
		!strings.Contains(vm.VdcHREF, "/api/vdc/") || vm.HostName != "esx-01" {
		t.Fatalf("record vm-07 as govcd decodes it: %+v", vm)
	}
	vdcs, err := c.Client.QueryAllVdcs()
	if err != nil || len(vdcs) != 2 {
		t.Fatalf("QueryAllVdcs: %d %v", len(vdcs), err)
	}
	vcs, err := govcd.QueryVirtualCenters(c, "")
	if err != nil || len(vcs) != 1 || vcs[0].Name != "vc-01" {
		t.Fatalf("QueryVirtualCenters: %+v %v", vcs, err)
	}
}

// TestGovcdQueryFilters: govcd's by-name and by-kind lookups rely on filter=;
// a simulator that ignored it would hand them everything.
func TestGovcdQueryFilters(t *testing.T) {
	c, _ := login(t, New(fidelityState()))
	deployed, err := c.Client.QueryVmList(types.VmQueryFilterOnlyDeployed)
	if err != nil || len(deployed) != 54 {
		t.Fatalf("QueryVmList(only deployed): %d %v, want 54", len(deployed), err)
	}
	for _, vm := range deployed {
		if vm.VAppTemplate {
			t.Fatalf("template %s among the deployed", vm.Name)
		}
	}
	templates, err := c.Client.QueryVmList(types.VmQueryFilterOnlyTemplates)
	if err != nil || len(templates) != 6 {
		t.Fatalf("QueryVmList(only templates): %d %v, want 6", len(templates), err)
	}
	vcs, err := govcd.QueryVirtualCenters(c, "name==vc-01")
	if err != nil || len(vcs) != 1 {
		t.Fatalf("QueryVirtualCenters(name==vc-01): %+v %v", vcs, err)
	}
	vcs, err = govcd.QueryVirtualCenters(c, "name==nope")
	if err != nil || len(vcs) != 0 {
		t.Fatalf("QueryVirtualCenters(name==nope): %d records %v", len(vcs), err)
	}
	byName, err := govcd.QueryVmList(types.VmQueryFilterOnlyDeployed, &c.Client, map[string]string{"name": "vm-0*"})
	if err != nil || len(byName) != 9 {
		t.Fatalf("QueryVmList(name==vm-0*): %d %v, want 9", len(byName), err)
	}
	// An attribute the record type does not have is refused, as VCD does.
	_, err = govcd.QueryVirtualCenters(c, "colour==blue")
	if err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("filter on an unknown attribute: %v", err)
	}
}

// TestGovcdErrors: govcd decodes VCD's XML Error body; a JSON body would
// leave it with "error parsing error body".
func TestGovcdErrors(t *testing.T) {
	c, _ := login(t, New(fidelityState()))
	_, err := c.Client.QueryWithNotEncodedParams(nil, map[string]string{"type": "adminVM", "page": "9", "pageSize": "25"})
	if err == nil || !strings.Contains(err.Error(), "API Error: 400") || !strings.Contains(err.Error(), "out of range") {
		t.Fatalf("page past the end: %v", err)
	}
	_, err = c.Client.QueryWithNotEncodedParams(nil, map[string]string{"type": "noSuchType"})
	if err == nil || !strings.Contains(err.Error(), "API Error: 400") {
		t.Fatalf("unknown query type: %v", err)
	}
}

// TestNegotiation: /api answers in the media type and API version asked for,
// errors included.
func TestNegotiation(t *testing.T) {
	s := New(fidelityState())
	c, base := login(t, s)
	tok := c.Client.VCDToken
	get := func(path, accept string) (int, string, string) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Accept", accept)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := c.Client.Http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	for _, tc := range []struct {
		path, accept string
		code         int
		ctype, body  string
	}{
		{"/api/query?type=organization", "application/*+xml;version=38.0", 200, "application/vnd.vmware.vcloud.query.records+xml;version=38.0", "<QueryResultRecords"},
		{"/api/query?type=organization", "application/*+json;version=38.0", 200, "application/vnd.vmware.vcloud.query.records+json;version=38.0", `"record":`},
		{"/api/query?type=nope", "application/*+xml;version=38.0", 400, "application/vnd.vmware.vcloud.error+xml;version=38.0", "<Error"},
		{"/api/query?type=nope", "application/*+json;version=37.0", 400, "application/vnd.vmware.vcloud.error+json;version=37.0", `"minorErrorCode":"BAD_REQUEST"`},
		{"/api/org", "application/*+xml;version=39.0", 200, "application/vnd.vmware.vcloud.orgList+xml;version=39.0", "<OrgList"},
		{"/api/nothing", "application/*+xml;version=38.0", 404, "application/vnd.vmware.vcloud.error+xml;version=38.0", `minorErrorCode="RESOURCE_NOT_FOUND"`},
	} {
		code, ctype, body := get(tc.path, tc.accept)
		if code != tc.code || ctype != tc.ctype || !strings.Contains(body, tc.body) {
			t.Errorf("GET %s as %s: %d %q %.200s; want %d %q with %s", tc.path, tc.accept, code, ctype, body, tc.code, tc.ctype, tc.body)
		}
	}
}
