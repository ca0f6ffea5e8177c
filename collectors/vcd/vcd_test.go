package vcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/collectortest"
	simvcd "github.com/usagemeter/usagemeter/collectors/vcd/simulator"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

var hour = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

// kit serves a state and builds a collector pinned to the simulator.
var kit = collectortest.Kit[simvcd.State, *simvcd.Server, *Collector]{
	Sim: simvcd.New, Load: simvcd.LoadState, New: newCollector,
	Target: func(u, thumb string, st simvcd.State, opts string) collectors.Target {
		return collectors.Target{
			Kind: Kind, Endpoint: u, Username: st.User, Password: collectors.Secret(st.Password),
			Thumbprint: thumb, Options: json.RawMessage(opts), Timeout: 5 * time.Second,
		}
	},
	Delay:       func(s *simvcd.Server, d time.Duration) { s.SetFaults(simvcd.Faults{Delay: d}) },
	ExpireAfter: func(s *simvcd.Server, n int) { s.SetFaults(simvcd.Faults{ExpireAfter: n}) },
}

// TestConformance runs the suite every REST collector passes, on a state of
// several pages.
func TestConformance(t *testing.T) {
	kit.Conformance(t, "testdata/several-pages/state.json", `{"page_size": 2}`)
}

// TestCases walks testdata/<case>/: state.json is the simulator's state,
// options.json (optional) the product options, expected.json the
// observations, sorted by object key. -update rewrites expected.json.
func TestCases(t *testing.T) {
	kit.Cases(t, hour, collectortest.OneLogin)
}

// TestRules checks the Cloud Director rules on the case states, independently
// of the golden files.
func TestRules(t *testing.T) {
	st := kit.LoadState(t, "testdata/template-and-powered-off/state.json")
	_, c := kit.Start(t, st, "")
	obs, err := c.Collect(context.Background(), hour)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]collectors.Observation{}
	for _, o := range obs {
		byName[o.Dims[DimVM]] = o
		if o.Metric != collectors.MetricVMManaged || o.Quantity != 1 || o.Unit != collectors.UnitCount {
			t.Errorf("%s: %+v", o.Dims[DimVM], o)
		}
	}
	for _, absent := range []string{"ubuntu-template", "being-deleted"} {
		if _, ok := byName[absent]; ok {
			t.Errorf("%s is not under management but was observed", absent)
		}
	}
	for name, vram := range map[string]string{"running": "4096", "stopped": "0", "paused": "0"} {
		if got := byName[name].Dims[DimVRAMMB]; got != vram {
			t.Errorf("%s: vram_mb = %q, want %q", name, got, vram)
		}
	}
	o := byName["running"]
	if o.Dims[DimVCenterUUID] != "564d1a2b-3c4d-5e6f-7a8b-9c0d1e2f3a4b" || o.Dims[DimVMMoref] != "vm-3001" ||
		o.Dims[DimOrg] != "acme" || o.Dims[DimOrgID] != strings.ToLower(st.Orgs[0].ID) || o.Dims[DimOrgID] == "" || o.Dims[DimVDC] != "acme-vdc" || o.Dims[DimVCenter] != "vc-ams-01" {
		t.Errorf("running: dims %v", o.Dims)
	}
	if want := "urn:vcloud:site:0b9c2f7e-61a4-4c55-8f0e-2a1b7c3d4e5f/vm/c0000000-0000-4000-8000-000000000001"; o.ObjectKey != want {
		t.Errorf("object key %q, want %q", o.ObjectKey, want)
	}
}

func TestFaults(t *testing.T) {
	st := kit.LoadState(t, "testdata/several-pages/state.json")
	cases := []struct {
		name    string
		faults  simvcd.Faults
		timeout time.Duration
		want    []string
		is      error
	}{
		{name: "500 on page 3", faults: simvcd.Faults{FailPage: 3},
			want: []string{"adminVM query page 3", "HTTP 500", "internal server error"}},
		{name: "malformed memoryMB", faults: simvcd.Faults{MalformField: "memoryMB"},
			want: []string{"adminVM query page 1", "field record.memoryMB", "expected a int"}},
		{name: "malformed isVAppTemplate", faults: simvcd.Faults{MalformField: "isVAppTemplate"},
			want: []string{"field record.isVAppTemplate"}},
		{name: "truncated body", faults: simvcd.Faults{Truncate: true},
			want: []string{"virtualCenter query page 1", "malformed body"}},
		{name: "session refused after login", faults: simvcd.Faults{RejectTokens: true},
			want: []string{"virtualCenter query page 1", "session refused right after logging in", "HTTP 401"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := kit.FaultError(t, hour, st, `{"page_size": 2}`, func(s *simvcd.Server) { s.SetFaults(tc.faults) }, collectortest.WithTimeout(tc.timeout))
			collectortest.WantError(t, err, tc.want, tc.is)
		})
	}
}

func TestBadInput(t *testing.T) {
	st := kit.LoadState(t, "testdata/small-tenant/state.json")
	t.Run("wrong password", func(t *testing.T) {
		s := simvcd.New(st)
		u, thumb := s.Start(t)
		c, err := newCollector(collectors.Target{Endpoint: u, Username: st.User, Password: "nope", Thumbprint: thumb, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Collect(context.Background(), hour)
		if !errors.Is(err, ErrLogin) || !strings.Contains(err.Error(), "meter@System") {
			t.Fatalf("error %v, want ErrLogin naming the user", err)
		}
		if n := s.Calls(); n != 2 {
			t.Errorf("%d calls for a wrong password, want 2 (versions, login): no retry loop", n)
		}
		if strings.Contains(err.Error(), "nope") {
			t.Errorf("error carries the password: %v", err)
		}
	})
	t.Run("version not offered", func(t *testing.T) {
		_, c := kit.Start(t, st, `{"api_version": "35.0"}`)
		_, err := c.Collect(context.Background(), hour)
		if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "36.0, 37.0, 38.0, 38.1, 39.0") {
			t.Fatalf("error %v, want ErrVersion listing the offered versions", err)
		}
	})
	t.Run("deprecated versions skipped", func(t *testing.T) {
		dep := st
		dep.Versions = []string{"36.0", "37.0", "38.0", "39.0.0-alpha"}
		dep.Deprecated = []string{"38.0"}
		_, c := kit.Start(t, dep, "")
		if _, err := c.Collect(context.Background(), hour); err != nil {
			t.Fatal(err)
		}
		if c.version != "37.0" {
			t.Fatalf("picked %s, want 37.0 (38.0 is deprecated)", c.version)
		}
	})
	t.Run("only old versions", func(t *testing.T) {
		old := st
		old.Versions = []string{"31.0", "32.0"}
		_, c := kit.Start(t, old, "")
		_, err := c.Collect(context.Background(), hour)
		if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "offers 31.0, 32.0") {
			t.Fatalf("error %v, want ErrVersion listing 31.0, 32.0", err)
		}
	})
	t.Run("version refused at login", func(t *testing.T) {
		s, c := kit.Start(t, st, "")
		// the versions document says 39.0, the login endpoint refuses it:
		// VCD answers 406 Not Acceptable.
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/cloudapi/1.0.0/sessions/provider" {
				r.Header.Set("Accept", "application/*;version=99.0")
			}
			s.ServeHTTP(w, r)
		})
		ts := httptest.NewTLSServer(h)
		defer ts.Close()
		c.rc.Base.Host = strings.TrimPrefix(ts.URL, "https://")
		c.rc.HTTP.Transport.(*http.Transport).TLSClientConfig = tlsutil.Config(c.host, tlsutil.Thumbprint(ts.Certificate().Raw), nil)
		_, err := c.Collect(context.Background(), hour)
		if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "HTTP 406") || !strings.Contains(err.Error(), "Supported API versions are: [39.0, 38.1") || !strings.Contains(err.Error(), "offers 36.0") {
			t.Fatalf("error %v, want ErrVersion with 406 and the offered versions", err)
		}
	})
}

func TestIdentify(t *testing.T) {
	st := kit.LoadState(t, "testdata/small-tenant/state.json")
	s, c := kit.Start(t, st, "")
	id, err := c.Identify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := collectors.Identity{InstanceID: st.SiteID, Version: "API 39.0", Name: "vcd-ams"}
	if id != want {
		t.Fatalf("Identify = %+v, want %+v", id, want)
	}
	if _, err := c.Collect(context.Background(), hour); err != nil {
		t.Fatal(err)
	}
	if s.Logins() != 1 {
		t.Errorf("Identify then Collect logged in %d times", s.Logins())
	}
	var _ collectors.Identifier = c
	var _ collectors.Closer = c
}

func TestRegistered(t *testing.T) {
	_, err := collectors.New(collectors.Target{Kind: Kind, Endpoint: "vcd.example.net", Username: "meter", Options: json.RawMessage(`{"page_size": 50}`)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = collectors.New(collectors.Target{Kind: Kind, Endpoint: "http://vcd.example.net", Username: "meter"})
	if err == nil || !strings.Contains(err.Error(), "https") {
		t.Fatalf("http endpoint: %v", err)
	}
}

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, ""},
		{`null`, ""},
		{`{"api_version": "38.0", "page_size": 100}`, ""},
		{`{"pagesize": 10}`, `unknown option "pagesize"`},
		{`{"page_size": "10"}`, "option page_size: expected a int"},
		{`{"page_size": -1}`, "page_size -1: must be positive"},
		{`{"api_version": "32.0"}`, "api_version \"32.0\": must be at least 33.0"},
		{`{"api_version": "v38"}`, "api_version \"v38\": must look like"},
		{`{} {}`, "trailing data"},
	} {
		o, err := ParseOptions(json.RawMessage(tc.in))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.in, err)
		case tc.want == "" && o.PageSize == 0:
			t.Errorf("%s: page size not defaulted", tc.in)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

// simBody returns what the simulator answers to a GET of path for state st
// (a logged-in JSON request), for fuzz seeds.
func simBody(t testing.TB, st simvcd.State, path string) []byte {
	s := simvcd.New(st)
	req := httptest.NewRequest(http.MethodPost, "https://vcd.example.net/cloudapi/1.0.0/sessions/provider", nil)
	req.SetBasicAuth(st.User+"@System", st.Password)
	req.Header.Set("Accept", "application/*;version=39.0")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if path == "login" {
		return rec.Body.Bytes()
	}
	tok := rec.Header().Get("X-VMWARE-VCLOUD-ACCESS-TOKEN")
	req = httptest.NewRequest(http.MethodGet, "https://vcd.example.net"+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/*+json;version=39.0")
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
	}
	return rec.Body.Bytes()
}

func FuzzParseVMPage(f *testing.F) {
	for _, st := range kit.States(f) {
		f.Add(simBody(f, st, "/api/query?type=adminVM&format=records&page=1&pageSize=2"))
	}
	f.Add([]byte(`{"page":1,"pageSize":1,"total":1,"record":[{"memoryMB":"x"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePage[vmRecord](b)
		if err != nil {
			if !strings.Contains(err.Error(), "malformed body") && !strings.Contains(err.Error(), "field ") {
				t.Fatalf("error does not say what is wrong: %v", err)
			}
			return
		}
		bld := builder{site: "s", vcd: "h"}
		for i := range p.Record {
			if o, ok := bld.observe(&p.Record[i]); ok && (o.Quantity != 1 || o.Dims[DimVRAMMB] == "") {
				t.Fatalf("bad observation %+v", o)
			}
		}
	})
}

func FuzzParseNamePage(f *testing.F) {
	for _, st := range kit.States(f) {
		f.Add(simBody(f, st, "/api/query?type=virtualCenter&format=records"))
		f.Add(simBody(f, st, "/api/query?type=organization&format=records"))
		f.Add(simBody(f, st, "/api/query?type=adminOrgVdc&format=records"))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parsePage[vcRecord](b)
		_, _ = parsePage[nameRecord](b)
	})
}

func FuzzParseVersions(f *testing.F) {
	s := simvcd.New(simvcd.State{})
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://vcd.example.net/api/versions", nil))
	f.Add(rec.Body.Bytes())
	f.Add([]byte(`<SupportedVersions><VersionInfo><Version>x</Version></VersionInfo></SupportedVersions>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		vs, err := parseVersions(b)
		if err != nil {
			return
		}
		if len(vs) == 0 {
			t.Fatal("no versions and no error")
		}
		_, _ = pickVersion(vs, "")
	})
}

func FuzzParseSession(f *testing.F) {
	for _, st := range kit.States(f) {
		f.Add(simBody(f, st, "login"))
	}
	f.Add([]byte(`{"location":"abc@host"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseSession(b)
		if err == nil {
			_ = s.siteID()
		}
	})
}

func BenchmarkCollect10000VMs(b *testing.B) {
	st := kit.LoadState(b, "testdata/small-tenant/state.json")
	st.VMs = nil
	for i := range 10000 {
		st.VMs = append(st.VMs, simvcd.VM{
			ID: fmt.Sprintf("e0000000-0000-4000-8000-%012d", i), Name: fmt.Sprintf("vm-%05d", i), VApp: "bench",
			VDC: st.VDCs[0].ID, Moref: fmt.Sprintf("vm-%d", 10000+i), MemoryMB: 1024 << (i % 6), CPUs: 2,
			Status: "POWERED_ON", HostName: fmt.Sprintf("esx-%02d.example.net", i%40),
		})
	}
	_, c := kit.Start(b, st, "")
	collectortest.Bench(b, c, hour, func(n int) bool { return n == 10000 })
}
