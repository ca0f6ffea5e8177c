package nsxv

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/collectortest"
	"github.com/usagemeter/usagemeter/collectors/internal/rest"
	simnsxv "github.com/usagemeter/usagemeter/collectors/nsxv/simulator"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

var hour = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

const (
	vcUser = "svc-meter@vsphere.local"
	vcPass = "Gr3en-Tea!42"
)

// vcenterSpec is testdata/<case>/vcenter.json: the paired vCenter's
// portgroups and VMs, by name.
type vcenterSpec struct {
	Portgroups []string `json:"portgroups"`
	VMs        []struct {
		Name     string   `json:"name"`
		Networks []string `json:"networks"`
		Template bool     `json:"template,omitempty"`
		Off      bool     `json:"powered_off,omitempty"`
	} `json:"vms"`
}

// simVC is a govmomi simulator shaped by a spec.
type simVC struct {
	m      *simulator.Model
	s      *simulator.Server
	uuid   string
	morefs map[string]string // "vm:<name>" / "pg:<name>" -> MoRef
}

// simVCInstanceUUID is the simulated vCenter's instance UUID, the first part
// of every ObjectKey in testdata/*/expected.json.
const simVCInstanceUUID = "2c2278bc-60e4-5a5f-a585-21b3e6167371"

// newSimVC builds a simulated vCenter holding exactly the spec's VMs and
// portgroups (renamed from the model's), plus the plain "VM Network".
func newSimVC(t testing.TB, spec vcenterSpec) *simVC {
	t.Helper()
	m := simulator.VPX()
	// govmomi derives about.instanceUuid from this machine's hardware
	// address; the golden files compare it, so it is pinned here.
	m.ServiceContent.About.InstanceUuid = simVCInstanceUUID
	m.Machine = (len(spec.VMs) + 1) / 2
	m.Portgroup = max(1, len(spec.Portgroups))
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	m.Service.TLS = new(tls.Config)
	m.Service.Listen = &url.URL{User: url.UserPassword(vcUser, vcPass)}
	v := &simVC{m: m, morefs: map[string]string{}}
	reg := m.Map()
	var pgs []*simulator.DistributedVirtualPortgroup
	for _, e := range reg.All("DistributedVirtualPortgroup") {
		pg := e.(*simulator.DistributedVirtualPortgroup)
		if strings.Contains(pg.Name, "DVUplinks") {
			continue
		}
		pgs = append(pgs, pg)
	}
	sort.Slice(pgs, func(i, j int) bool { return pgs[i].Name < pgs[j].Name })
	for i, name := range spec.Portgroups {
		pgs[i].Name = name
		v.morefs["pg:"+name] = pgs[i].Self.Value
	}
	var plain types.ManagedObjectReference
	for _, e := range reg.All("Network") {
		if e.Entity().Name == "VM Network" {
			plain = e.Reference()
		}
	}
	v.morefs["pg:VM Network"] = plain.Value
	for _, kind := range []string{"ClusterComputeResource", "HostSystem"} {
		prefix := map[string]string{"ClusterComputeResource": "cl:", "HostSystem": "host:"}[kind]
		for _, e := range reg.All(kind) {
			v.morefs[prefix+e.Entity().Name] = e.Reference().Value
		}
	}
	var vms []*simulator.VirtualMachine
	for _, e := range reg.All("VirtualMachine") {
		vms = append(vms, e.(*simulator.VirtualMachine))
	}
	sort.Slice(vms, func(i, j int) bool { return vms[i].Name < vms[j].Name })
	for i, vm := range vms {
		if i >= len(spec.VMs) {
			vm.Network = []types.ManagedObjectReference{plain}
			vm.Config.Template = true // not part of the case
			continue
		}
		s := spec.VMs[i]
		vm.Name = s.Name
		vm.Network = nil
		for _, n := range s.Networks {
			ref := plain
			if n != "VM Network" {
				ref = pgs[indexOf(spec.Portgroups, n)].Self
			}
			vm.Network = append(vm.Network, ref)
		}
		vm.Config.Template = s.Template
		if s.Off {
			vm.Runtime.PowerState = types.VirtualMachinePowerStatePoweredOff
		}
		v.morefs["vm:"+s.Name] = vm.Self.Value
	}
	v.uuid = m.ServiceContent.About.InstanceUuid
	v.s = m.Service.NewServer()
	t.Cleanup(func() {
		v.s.Close()
		m.Remove()
	})
	return v
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	panic("unknown portgroup " + s)
}

var placeholder = regexp.MustCompile(`\{(vm|pg|cl|host):[^}]*\}`)

// resolve replaces {vm:NAME}, {pg:NAME}, {cl:NAME} and {host:NAME} in a
// state file with MoRefs.
func (v *simVC) resolve(t testing.TB, b []byte) simnsxv.State {
	t.Helper()
	s := string(b)
	for k, ref := range v.morefs {
		s = strings.ReplaceAll(s, "{"+k+"}", ref)
	}
	if m := placeholder.FindString(s); m != "" {
		t.Fatalf("unresolved reference %s", m)
	}
	st, err := simnsxv.LoadState([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (v *simVC) paired() *collectors.Target {
	return &collectors.Target{
		Kind: "vcenter", Endpoint: "https://" + v.s.URL.Host + "/sdk", Username: vcUser, Password: vcPass,
		Thumbprint: tlsutil.Thumbprint(v.s.Certificate().Raw), InstanceID: v.uuid, Timeout: 10 * time.Second,
	}
}

type env struct {
	vc  *simVC
	sim *simnsxv.Server
	c   *Collector
	st  simnsxv.State
}

// setup reads a case folder and starts the vCenter, the NSX-V simulator and
// a collector pinned to both.
func setup(t testing.TB, dir, opts string) *env {
	t.Helper()
	var spec vcenterSpec
	b, err := os.ReadFile(filepath.Join(dir, "vcenter.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	vc := newSimVC(t, spec)
	b, err = os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	st := vc.resolve(t, b)
	s := simnsxv.New(st)
	u, thumb := s.Start(t)
	if opts == "" {
		opts = collectortest.Options(dir)
	}
	c, err := newCollector(collectors.Target{Kind: Kind, Endpoint: u, Username: st.User, Password: collectors.Secret(st.Password),
		Thumbprint: thumb, Options: json.RawMessage(opts), Timeout: 5 * time.Second, Paired: vc.paired()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return &env{vc: vc, sim: s, c: c, st: st}
}

// conformanceSim gives the conformance kit the NSX-V fault switches. NSX-V
// authenticates every call (HTTP Basic): it has no sessions to renew.
type conformanceSim struct{ *simnsxv.Server }

func (s conformanceSim) SetDelay(d time.Duration) { s.SetFaults(simnsxv.Faults{Delay: d}) }

// TestConformance runs the suite every REST collector passes, on a state of
// several pages with its paired vCenter.
func TestConformance(t *testing.T) {
	collectortest.Conformance(t, collectortest.Product{Start: func(t *testing.T) (collectortest.Sim, collectors.Target) {
		e := setup(t, "testdata/several-pages", "")
		return conformanceSim{e.sim}, e.c.t
	}})
}

// TestCases walks testdata/<case>/: vcenter.json (the paired vCenter),
// state.json (the NSX-V simulator's state, VMs and portgroups written
// {vm:NAME} and {pg:NAME}), optional options.json, expected.json.
func TestCases(t *testing.T) {
	collectortest.Cases(t, func(t *testing.T, dir string) {
		e := setup(t, dir, "")
		collectortest.Golden(t, dir, e.c, hour)
	})
}

// TestEditionRules checks the edition map on the case states, independently
// of the golden files.
func TestEditionRules(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		want map[string]string // vm -> edition, "" = not observed
	}{
		{"plain-portgroup-vs-logical-switch", map[string]string{"on-portgroup": "", "on-switch": EditionBase, "both": EditionBase}},
		{"dfw-non-default-rule", map[string]string{"web-1": EditionAdvanced, "db-1": EditionBase, "app-1": EditionAdvanced, "pg-only": EditionAdvanced, "other": ""}},
		{"template-and-powered-off", map[string]string{"running": EditionBase, "stopped": EditionBase, "golden-image": ""}},
		{"dfw-applied-to-cluster-and-host", map[string]string{"in-cluster-1": EditionAdvanced, "in-cluster-2": EditionAdvanced, "standalone-1": EditionBase, "standalone-2": ""}},
		{"edges-and-enterprise", map[string]string{"behind-esg": EditionBase, "l2vpn-ext": EditionEnterprise, "stretched": EditionEnterprise, "routed": EditionBase, "inspected": EditionAdvanced}},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			e := setup(t, "testdata/"+tc.dir, "")
			obs, err := e.c.Collect(context.Background(), hour)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]collectors.Observation{}
			for _, o := range obs {
				if o.Metric != collectors.MetricNSXVM || o.Quantity != 1 || !strings.HasPrefix(o.ObjectKey, e.vc.uuid+"/vm/") {
					t.Errorf("bad observation %+v", o)
				}
				got[o.Dims[DimVM]] = o
			}
			collectortest.WantEditions(t, got, tc.want, DimFeatures)
			if o, ok := got["stopped"]; ok && o.Dims[DimPowerState] != "poweredOff" {
				t.Errorf("stopped: power_state %q", o.Dims[DimPowerState])
			}
		})
	}
}

func TestFaults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		faults  simnsxv.Faults
		timeout time.Duration
		want    []string
		is      error
	}{
		{"500 on page 2", simnsxv.Faults{FailPage: 2}, 0, []string{"logical switches page 2", "HTTP 500", "Internal server error"}, nil},
		{"malformed vdnId", simnsxv.Faults{MalformField: "vdnId"}, 0, []string{"logical switches page 1", "element virtualWires>dataPage>virtualWire>vdnId", `"five-thousand" is not a valid number`}, nil},
		{"malformed isUniversal", simnsxv.Faults{MalformField: "isUniversal"}, 0, []string{"virtualWire>isUniversal", "boolean"}, nil},
		{"broken XML", simnsxv.Faults{MalformField: "name"}, 0, []string{"malformed body: invalid XML"}, nil},
		{"truncated", simnsxv.Faults{Truncate: true}, 0, []string{"logical switches page 1", "malformed body"}, nil},
		{"wrong password", simnsxv.Faults{RejectAll: true}, 0, []string{"as admin", "incorrect user name or password", "HTTP 403"}, ErrLogin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, "testdata/several-pages", "")
			if tc.timeout > 0 {
				e.c.t.Timeout = tc.timeout
			}
			e.sim.SetFaults(tc.faults)
			_, err := e.c.Collect(context.Background(), hour)
			collectortest.WantError(t, err, tc.want, tc.is)
			if tc.is == ErrLogin && e.sim.Calls() != 1 {
				t.Errorf("%d calls with a wrong password, want 1 (no retry)", e.sim.Calls())
			}
		})
	}
}

func TestVCenterSession(t *testing.T) {
	e := setup(t, "testdata/small-tenant", "")
	ctx := context.Background()
	var logins int
	sm := e.vc.m.Map().Get(*e.vc.m.ServiceContent.SessionManager).(*simulator.SessionManager)
	sm.ValidLogin = func(req *types.Login) bool {
		logins++
		return req.UserName == vcUser && req.Password == vcPass
	}
	for range 2 {
		if _, err := e.c.Collect(ctx, hour); err != nil {
			t.Fatal(err)
		}
	}
	if logins != 1 {
		t.Fatalf("vCenter logins = %d over two collections, want 1", logins)
	}
	// The vCenter session ends behind the collector's back (expiry, vCenter
	// restart): the next collection logs in once more and succeeds.
	if err := session.NewManager(e.c.vc.vc).Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Collect(ctx, hour); err != nil {
		t.Fatal(err)
	}
	if logins != 2 {
		t.Fatalf("vCenter logins = %d after the session ended, want 2", logins)
	}
	if err := e.c.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestBadInput(t *testing.T) {
	t.Run("not paired", func(t *testing.T) {
		tg := collectors.Target{Kind: Kind, Endpoint: "nsxv.example.net", Username: "admin"}
		if _, err := collectors.New(tg); !errors.Is(err, ErrNotPaired) {
			t.Fatalf("unpaired: %v", err)
		}
	})
	t.Run("wrong vCenter password", func(t *testing.T) {
		e := setup(t, "testdata/small-tenant", "")
		e.c.t.Paired.Password = "nope"
		_, err := e.c.Collect(context.Background(), hour)
		if !errors.Is(err, ErrLogin) || !strings.Contains(err.Error(), "paired vCenter") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("vCenter replaced", func(t *testing.T) {
		e := setup(t, "testdata/small-tenant", "")
		e.c.t.Paired.InstanceID = "00000000-0000-0000-0000-000000000000"
		_, err := e.c.Collect(context.Background(), hour)
		if err == nil || !strings.Contains(err.Error(), "re-pair") {
			t.Fatalf("error %v", err)
		}
	})
}

// TestTLS: the paired vCenter's certificate is pinned too (the NSX Manager's
// is checked by TestConformance).
func TestTLS(t *testing.T) {
	e := setup(t, "testdata/small-tenant", "")
	for _, tc := range []struct {
		name  string
		edit  func(tg *collectors.Target)
		want  error
		where string
	}{
		{"vcenter changed", func(tg *collectors.Target) { tg.Paired.Thumbprint = strings.Repeat("EF:", 31) + "EF" }, tlsutil.ErrChanged, "paired vCenter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := e.c.t
			p := *tg.Paired
			tg.Paired = &p
			tc.edit(&tg)
			c, err := newCollector(tg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Collect(context.Background(), hour)
			var ce *tlsutil.CertError
			if !errors.As(err, &ce) || !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.where) {
				t.Fatalf("error %v, want *tlsutil.CertError %v", err, tc.want)
			}
		})
	}
}

func TestIdentify(t *testing.T) {
	e := setup(t, "testdata/small-tenant", "")
	id, err := e.c.Identify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := collectors.Identity{InstanceID: "nsxv:" + e.vc.uuid, Version: "6.4.14", Build: "17803445", Name: "nsxv-mgr-01"}
	if id != want {
		t.Fatalf("Identify = %+v, want %+v", id, want)
	}
	var _ collectors.Identifier = e.c
	var _ collectors.Closer = e.c
}

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, ""},
		{`{"page_size": 100}`, ""},
		{`{"page_size": 2000}`, "page_size 2000: must be between 1 and 1024"},
		{`{"pagesize": 1}`, `unknown option "pagesize"`},
		{`{"page_size": "1"}`, "option page_size: expected a int"},
	} {
		_, err := ParseOptions(json.RawMessage(tc.in))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

// simBody is what the NSX-V simulator answers to GET path for the state of
// a case (with its placeholders left as they are).
func simBody(t testing.TB, dir, path string) []byte {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := simnsxv.LoadState(b)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "https://nsxv.example.net"+path, nil)
	req.SetBasicAuth(st.User, st.Password)
	rec := httptest.NewRecorder()
	simnsxv.New(st).ServeHTTP(rec, req)
	return rec.Body.Bytes()
}

func FuzzParseVirtualWires(f *testing.F) {
	for _, d := range collectortest.Dirs(f) {
		f.Add(simBody(f, d, "/api/2.0/vdn/virtualwires?startindex=0&pagesize=2"))
	}
	f.Add([]byte(`<virtualWires><dataPage><virtualWire><vdnId>x</vdnId></virtualWire></dataPage></virtualWires>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p virtualWires
		if err := rest.DecodeXML(b, &p); err != nil && !strings.Contains(err.Error(), "malformed body") {
			t.Fatalf("unhelpful error %v", err)
		}
	})
}

func FuzzParseFirewallAndEdges(f *testing.F) {
	for _, d := range collectortest.Dirs(f) {
		f.Add(simBody(f, d, "/api/4.0/firewall/globalroot-0/config"))
		f.Add(simBody(f, d, "/api/4.0/edges"))
		f.Add(simBody(f, d, "/api/4.0/edges/edge-1"))
		f.Add(simBody(f, d, "/api/4.0/edges/edge-2"))
		f.Add(simBody(f, d, "/api/2.0/services/licensing/capacityusage"))
		f.Add(simBody(f, d, "/api/2.0/services/securitygroup/securitygroup-10/translation/virtualmachines"))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fw firewallConfig
		if rest.DecodeXML(b, &fw) == nil {
			st := &nsxState{fw: fw, groups: map[string][]string{}}
			_, _ = build("vc", "nsx", st, []vcVM{{moref: "vm-1", uuid: "u1", networks: []string{"dvportgroup-1"}}})
		}
		var el pagedEdgeList
		_ = rest.DecodeXML(b, &el)
		var e edge
		_ = rest.DecodeXML(b, &e)
		var cu capacityUsage
		_ = rest.DecodeXML(b, &cu)
		var n vmNodes
		_ = rest.DecodeXML(b, &n)
	})
}

// addVMs registers n more VMs, copies of the spec's first VM, on the given
// portgroups in turn. Creating 10,000 VMs through the model takes minutes;
// registering copies takes milliseconds and reads back the same.
func (v *simVC) addVMs(t testing.TB, first string, n int, pgs []string) {
	t.Helper()
	reg := v.m.Map()
	tmpl, ok := reg.Get(types.ManagedObjectReference{Type: "VirtualMachine", Value: v.morefs["vm:"+first]}).(*simulator.VirtualMachine)
	if !ok {
		t.Fatalf("no VM %s", first)
	}
	folder := reg.Get(*tmpl.Parent).(*simulator.Folder)
	for i := range n {
		c := *tmpl
		c.Self = types.ManagedObjectReference{Type: "VirtualMachine", Value: fmt.Sprintf("vm-b%d", i)}
		c.Name = fmt.Sprintf("vm-%05d", i)
		cfg := *tmpl.Config
		cfg.InstanceUuid = fmt.Sprintf("5003b000-0000-4000-8000-%012d", i)
		cfg.Name = c.Name
		cfg.Template = false
		c.Config = &cfg
		c.Network = []types.ManagedObjectReference{{Type: "DistributedVirtualPortgroup", Value: v.morefs["pg:"+pgs[i%len(pgs)]]}}
		reg.PutEntity(folder, &c)
		folder.ChildEntity = append(folder.ChildEntity, c.Self)
		v.morefs["vm:"+c.Name] = c.Self.Value
	}
}

func BenchmarkCollect10000VMs(b *testing.B) {
	spec := vcenterSpec{}
	for i := range 20 {
		spec.Portgroups = append(spec.Portgroups, fmt.Sprintf("ls-%02d", i))
	}
	spec.VMs = append(spec.VMs, struct {
		Name     string   `json:"name"`
		Networks []string `json:"networks"`
		Template bool     `json:"template,omitempty"`
		Off      bool     `json:"powered_off,omitempty"`
	}{Name: "template-source", Networks: []string{"VM Network"}, Template: true})
	vc := newSimVC(b, spec)
	vc.addVMs(b, "template-source", 10000, spec.Portgroups)
	st := simnsxv.State{User: "admin", Password: "VMware1!VMware1!"}
	for i := range 20 {
		st.VirtualWires = append(st.VirtualWires, simnsxv.VirtualWire{ID: fmt.Sprintf("virtualwire-%d", i+1), Name: fmt.Sprintf("ls-%02d", i), Portgroup: vc.morefs[fmt.Sprintf("pg:ls-%02d", i)]})
	}
	st.SecurityGroups = []simnsxv.SecurityGroup{{ID: "securitygroup-10"}}
	for i := 0; i < 10000; i += 4 {
		st.SecurityGroups[0].Members = append(st.SecurityGroups[0].Members, vc.morefs[fmt.Sprintf("vm:vm-%05d", i)])
	}
	st.Sections = []simnsxv.Section{
		{ID: "1005", Name: "web", Rules: []simnsxv.Rule{{ID: "1010", Name: "https", AppliedTo: []string{"SecurityGroup:securitygroup-10"}}}},
		{ID: "1003", Name: "Default Section Layer3", Rules: []simnsxv.Rule{{ID: "1001", Name: "Default Rule"}}},
	}
	st.Edges = []simnsxv.Edge{{ID: "edge-1", Name: "esg", Type: "gatewayServices", Networks: []string{"virtualwire-1"}, Features: []string{"firewall", "nat"}}}
	s := simnsxv.New(st)
	u, thumb := s.Start(b)
	c, err := newCollector(collectors.Target{Kind: Kind, Endpoint: u, Username: st.User, Password: collectors.Secret(st.Password),
		Thumbprint: thumb, Timeout: 60 * time.Second, Paired: vc.paired()})
	if err != nil {
		b.Fatal(err)
	}
	collectortest.Bench(b, c, hour, func(n int) bool { return n == 10000 })
}
