package nsxt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/collectortest"
	simnsxt "github.com/usagemeter/usagemeter/collectors/nsxt/simulator"
)

var hour = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

const vcUUID = "564d1a2b-3c4d-5e6f-7a8b-9c0d1e2f3a4b"

func target(u, user, pass, thumb, opts string) collectors.Target {
	return collectors.Target{
		Kind: Kind, Endpoint: u, Username: user, Password: collectors.Secret(pass), Thumbprint: thumb,
		Options: json.RawMessage(opts), Timeout: 5 * time.Second,
		Paired: &collectors.Target{Kind: "vcenter", InstanceID: vcUUID},
	}
}

// kit serves a state and builds a collector pinned to the simulator.
var kit = collectortest.Kit[simnsxt.State, *simnsxt.Server, *Collector]{
	Sim: simnsxt.New, Load: simnsxt.LoadState, New: newCollector,
	Target: func(u, thumb string, st simnsxt.State, opts string) collectors.Target {
		return target(u, st.User, st.Password, thumb, opts)
	},
	Delay:       func(s *simnsxt.Server, d time.Duration) { s.SetFaults(simnsxt.Faults{Delay: d}) },
	ExpireAfter: func(s *simnsxt.Server, n int) { s.SetFaults(simnsxt.Faults{ExpireAfter: n}) },
}

// TestConformance runs the suite every REST collector passes, on a state of
// several pages.
func TestConformance(t *testing.T) {
	kit.Conformance(t, "testdata/several-pages/state.json", `{"page_size": 2}`)
}

// TestCases walks testdata/<case>/: state.json (simulator state), optional
// options.json, expected.json (observations sorted by object key; -update
// rewrites it).
func TestCases(t *testing.T) {
	kit.Cases(t, hour, collectortest.OneLogin)
}

func editions(t *testing.T, dir string) map[string]collectors.Observation {
	t.Helper()
	_, c := kit.Start(t, kit.LoadState(t, "testdata/"+dir+"/state.json"), "")
	obs, err := c.Collect(context.Background(), hour)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]collectors.Observation{}
	for _, o := range obs {
		if o.Metric != collectors.MetricNSXVM || o.Quantity != 1 || o.Unit != collectors.UnitCount || !strings.HasPrefix(o.ObjectKey, vcUUID+"/vm/") {
			t.Errorf("bad observation %+v", o)
		}
		m[o.Dims[DimVM]] = o
	}
	return m
}

// TestEditionRules checks the edition map on the case states, independently
// of the golden files.
func TestEditionRules(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		want map[string]string // vm -> edition, "" = not observed
	}{
		{"plain-portgroup-vs-segment", map[string]string{"on-portgroup": "", "on-segment": EditionProfessional, "both": EditionProfessional}},
		{"dfw-non-default-rule", map[string]string{"web-1": EditionAdvanced, "db-1": EditionProfessional, "app-1": EditionProfessional, "portgroup-web": EditionAdvanced}},
		{"template-and-powered-off", map[string]string{"running": EditionProfessional, "stopped": EditionProfessional, "edge-node-1": "", "no-instance-uuid": ""}},
		{"lb-vpn-ids", map[string]string{"lb-member": EditionAdvanced, "behind-vpn": EditionAdvanced, "ids-watched": EditionEnterprisePlus, "plain": EditionProfessional}},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			got := editions(t, tc.dir)
			collectortest.WantEditions(t, got, tc.want, DimFeatures)
		})
	}
	if got := editions(t, "template-and-powered-off")["stopped"].Dims[DimPowerState]; got != "VM_STOPPED" {
		t.Errorf("power_state %q", got)
	}
}

func TestThrottled(t *testing.T) {
	st := kit.LoadState(t, "testdata/several-pages/state.json")
	s, c := kit.Start(t, st, `{"page_size": 2}`)
	collectortest.Throttled(t, c, hour, len(st.VMs), collectortest.Throttle{Always: []string{"HTTP 429"},
		Set: func(every int, _ bool) { s.SetFaults(simnsxt.Faults{ThrottleEvery: every}) }})
}

func TestBasicAuth(t *testing.T) {
	st := kit.LoadState(t, "testdata/small-tenant/state.json")
	s, c := kit.Start(t, st, `{"auth": "basic"}`)
	obs, err := c.Collect(context.Background(), hour)
	if err != nil || len(obs) != 3 || s.Logins() != 0 {
		t.Fatalf("basic auth: %d observations, %d sessions, %v", len(obs), s.Logins(), err)
	}
	c.t.Password = "wrong"
	_, err = c.Collect(context.Background(), hour)
	if !errors.Is(err, ErrLogin) {
		t.Fatalf("wrong password with basic auth: %v", err)
	}
}

func TestFaults(t *testing.T) {
	st := kit.LoadState(t, "testdata/several-pages/state.json")
	for _, tc := range []struct {
		name    string
		faults  simnsxt.Faults
		timeout time.Duration
		want    []string
		is      error
	}{
		{"500 on page 2", simnsxt.Faults{FailPage: 2}, 0,
			[]string{"/api/v1/fabric/virtual-machines page 2", "HTTP 500", "General error has occurred"}, nil},
		{"malformed power_state", simnsxt.Faults{MalformField: "power_state"}, 0,
			[]string{"/api/v1/fabric/virtual-machines page 1", "field results.power_state"}, nil},
		{"malformed compute_ids", simnsxt.Faults{MalformField: "compute_ids"}, 0,
			[]string{"field results.compute_ids"}, nil},
		{"truncated", simnsxt.Faults{Truncate: true}, 0, []string{"malformed body: truncated JSON"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := kit.FaultError(t, hour, st, `{"page_size": 2}`, func(s *simnsxt.Server) { s.SetFaults(tc.faults) }, collectortest.WithTimeout(tc.timeout))
			collectortest.WantError(t, err, tc.want, tc.is)
		})
	}
}

func TestBadInput(t *testing.T) {
	st := kit.LoadState(t, "testdata/small-tenant/state.json")
	t.Run("wrong password", func(t *testing.T) {
		s, c := kit.Start(t, st, "", collectortest.WithPassword("nope"))
		err := collectortest.WrongPasswordTwice(t, c, s.Calls, "nope", "logging in as admin")
		if !errors.Is(err, ErrLogin) {
			t.Fatalf("error %v is not ErrLogin", err)
		}
	})
	t.Run("not paired", func(t *testing.T) {
		tg := target("nsx.example.net", "admin", "x", "", "")
		tg.Paired = nil
		if _, err := collectors.New(tg); !errors.Is(err, ErrNotPaired) {
			t.Fatalf("unpaired: %v", err)
		}
		tg.Paired = &collectors.Target{Kind: "vcenter"}
		if _, err := collectors.New(tg); !errors.Is(err, ErrNotPaired) {
			t.Fatalf("paired with a vCenter of unknown identity: %v", err)
		}
	})
	t.Run("session refused", func(t *testing.T) {
		s, c := kit.Start(t, st, "")
		collectortest.SessionRefused(t, c, hour, func() { s.SetFaults(simnsxt.Faults{RejectAll: true}) }, ErrLogin)
	})
}

func TestIdentify(t *testing.T) {
	st := kit.LoadState(t, "testdata/small-tenant/state.json")
	_, c := kit.Start(t, st, "")
	id, err := c.Identify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if id.InstanceID != st.ClusterID || id.Version == "" || id.Name != "nsxmgr-01" {
		t.Fatalf("Identify = %+v", id)
	}
	var _ collectors.Identifier = c
	var _ collectors.Closer = c
}

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, ""},
		{`{"auth": "basic", "page_size": 100}`, ""},
		{`{"auth": "kerberos"}`, `auth "kerberos": must be`},
		{`{"page_size": 5000}`, "page_size 5000: must be between 1 and 1000"},
		{`{"cursor": "x"}`, `unknown option "cursor"`},
		{`{"page_size": true}`, "option page_size: expected a int"},
	} {
		_, err := ParseOptions(json.RawMessage(tc.in))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

// simBody is what the simulator answers to GET path for st (Basic auth).
func simBody(t testing.TB, st simnsxt.State, path string) []byte {
	s := simnsxt.New(st)
	req := httptest.NewRequest(http.MethodGet, "https://nsx.example.net"+path, nil)
	req.SetBasicAuth(st.User, st.Password)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
	}
	return rec.Body.Bytes()
}

func FuzzParseVMList(f *testing.F) {
	for _, st := range kit.States(f) {
		f.Add(simBody(f, st, "/api/v1/fabric/virtual-machines?page_size=2"))
	}
	f.Add([]byte(`{"results":[{"compute_ids":"x"}],"result_count":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseList[vm](b)
		if err != nil {
			if !strings.Contains(err.Error(), "malformed body") && !strings.Contains(err.Error(), "field ") {
				t.Fatalf("unhelpful error %v", err)
			}
			return
		}
		in := &inventory{vms: p.Results, reach: map[string]map[string]bool{}, segments: map[string][]string{}}
		for _, v := range p.Results {
			in.add(v.ExternalID, FeatureSegment)
		}
		obs, _ := build(vcUUID, "nsx", in)
		for _, o := range obs {
			if o.Edition != EditionProfessional || !strings.HasPrefix(o.ObjectKey, vcUUID+"/vm/") {
				t.Fatalf("bad observation %+v", o)
			}
		}
	})
}

func FuzzParsePolicyObjects(f *testing.F) {
	for _, st := range kit.States(f) {
		f.Add(simBody(f, st, "/policy/api/v1/infra/segments"))
		f.Add(simBody(f, st, "/api/v1/fabric/vifs"))
		f.Add(simBody(f, st, "/policy/api/v1/infra/domains/default/security-policies"))
		for _, p := range st.Policies {
			f.Add(simBody(f, st, "/policy/api/v1/infra/domains/default/security-policies/"+p.ID+"/rules"))
		}
		for _, g := range st.Segments {
			f.Add(simBody(f, st, "/policy/api/v1/infra/segments/"+g.ID+"/ports"))
		}
		f.Add(simBody(f, st, "/policy/api/v1/search/query?query="+url.QueryEscape("resource_type:IPSecVpnService")))
		f.Add(simBody(f, st, "/api/v1/licenses"))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseList[segment](b)
		_, _ = parseList[segmentPort](b)
		_, _ = parseList[vif](b)
		_, _ = parseList[policy](b)
		_, _ = parseList[rule](b)
		_, _ = parseList[member](b)
		_, _ = parseList[lbPool](b)
		_, _ = parseList[searchHit](b)
		_, _ = parseList[license](b)
	})
}

func BenchmarkCollect10000VMs(b *testing.B) {
	st := kit.LoadState(b, "testdata/dfw-non-default-rule/state.json")
	st.VMs = nil
	st.Segments = nil
	for i := range 50 {
		st.Segments = append(st.Segments, simnsxt.Segment{ID: fmt.Sprintf("seg-%02d", i), Name: fmt.Sprintf("seg-%02d", i), Connectivity: "/infra/tier-1s/t1-acme"})
	}
	st.Groups = []simnsxt.Group{{ID: "web"}, {ID: "db"}}
	for i := range 10000 {
		v := simnsxt.VM{ExternalID: fmt.Sprintf("5003a1b2-0000-4000-8000-%012d", i), Name: fmt.Sprintf("vm-%05d", i),
			PowerState: "VM_RUNNING", InstanceUUID: fmt.Sprintf("5003c4d5-1111-4000-8000-%012d", i), Moref: fmt.Sprintf("vm-%d", 1000+i), HostID: "h1"}
		if i%10 != 0 {
			v.NICs = []simnsxt.NIC{{Segment: fmt.Sprintf("seg-%02d", i%50)}}
		} else {
			v.NICs = []simnsxt.NIC{{}}
		}
		if i%4 == 0 {
			st.Groups[0].Members = append(st.Groups[0].Members, v.ExternalID)
		}
		st.VMs = append(st.VMs, v)
	}
	_, c := kit.Start(b, st, "")
	collectortest.Bench(b, c, hour, func(n int) bool { return n >= 9000 })
}
