package vra7

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/collectortest"
	"github.com/usagemeter/usagemeter/collectors/vra7/simulator"
)

var hour = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

const vcUUID = "564d1a2b-3c4d-5e6f-7a8b-9c0d1e2f3a4b"

func target(u, user, pass, thumb, opts string) collectors.Target {
	return collectors.Target{
		Kind: Kind, Endpoint: u, Username: user, Password: collectors.Secret(pass), Thumbprint: thumb,
		Options: json.RawMessage(opts), Timeout: 5 * time.Second,
	}
}

// kit serves a state and builds a collector pinned to the simulator.
var kit = collectortest.Kit[simulator.State, *simulator.VRA, *Collector]{
	Sim: simulator.New, Load: simulator.LoadState, New: newCollector,
	Target: func(u, thumb string, st simulator.State, opts string) collectors.Target {
		return target(u, st.User, st.Password, thumb, opts)
	},
	Delay:       func(s *simulator.VRA, d time.Duration) { s.SetFaults(simulator.Faults{Delay: d}) },
	ExpireAfter: func(s *simulator.VRA, n int) { s.SetFaults(simulator.Faults{ExpireAfter: n}) },
}

// TestConformance runs the suite every REST collector passes, on a state of
// several pages.
func TestConformance(t *testing.T) {
	kit.Conformance(t, "testdata/several-pages/state.json", `{"page_size": 4}`)
}

// TestCases walks testdata/<case>/: state.json (simulator state), optional
// options.json, expected.json (observations sorted by object key; -update
// rewrites it).
func TestCases(t *testing.T) {
	kit.Cases(t, hour, collectortest.OneLogin)
}

func collectByName(t *testing.T, c *Collector) map[string]collectors.Observation {
	t.Helper()
	return collectortest.CollectBy(t, c, hour, func(o collectors.Observation) string { return o.Dims[DimVM] },
		func(o collectors.Observation) bool {
			return o.Metric != collectors.MetricVMManaged || o.Quantity != 1 || o.Unit != collectors.UnitCount || o.Edition != ""
		})
}

// TestRules checks the Aria Automation 7 rules on the case states,
// independently of the golden files.
func TestRules(t *testing.T) {
	t.Run("edge cases", func(t *testing.T) {
		var buf bytes.Buffer
		_, c := kit.Start(t, kit.LoadState(t, "testdata/edge-cases/state.json"), `{"page_size": 2}`, collectortest.LogTo(&buf, slog.LevelInfo))
		got := collectByName(t, c)
		for vm, want := range map[string]struct{ key, join string }{
			"ledger-01":  {vcUUID + "/moref/vm-501", Joined},  // powered off: managed
			"shared-app": {vcUUID + "/moref/vm-503", Joined},  // upper-case UUID; listed twice across pages
			"orphan-01":  {"127.0.0.1/machine/r-5", Unjoined}, // its vCenter endpoint is not known
			"no-moref":   {"127.0.0.1/machine/r-6", Unjoined}, // no MoRef
			"hyperv-01":  {},                                  // not vSphere
			"gone-01":    {},                                  // DELETED
			"no-id":      {},                                  // no id
		} {
			o, ok := got[vm]
			if ok != (want.key != "") || o.ObjectKey != want.key || o.Dims[DimVCenterJoin] != want.join {
				t.Errorf("%s: observed %v, %+v; want %+v", vm, ok, o, want)
			}
		}
		if len(got) != 4 || got["ledger-01"].Dims[DimPowerState] != "Off" || got["ledger-01"].Dims[DimBusinessGroup] != "Finance" {
			t.Errorf("%d machines (want 4); ledger-01 %v", len(got), got["ledger-01"].Dims)
		}
		sum := c.last
		if !slices.Equal(sum.Unjoined, []string{"no-moref", "orphan-01"}) || sum.Duplicates != 1 || sum.NoID != 1 || sum.Deleted != 1 ||
			sum.NotVSphere != 1 || !slices.Equal(sum.Interfaces, []string{"Hyper-V"}) {
			t.Errorf("summary %+v", sum)
		}
		for _, w := range []string{"vSphere machines counted unjoined", "machines=no-moref,orphan-01", "types=Hyper-V", "without_id=1"} {
			if !strings.Contains(buf.String(), w) {
				t.Errorf("the log does not say %q:\n%s", w, buf.String())
			}
		}
	})
	t.Run("vCenters registered on the appliance", func(t *testing.T) {
		const vc2 = "5022c0de-1111-4222-8333-944455556666"
		var buf bytes.Buffer
		_, c := kit.Start(t, kit.LoadState(t, "testdata/several-pages/state.json"), `{"page_size": 5}`, collectortest.LogTo(&buf, slog.LevelInfo), func(tg *collectors.Target) {
			tg.VCenters = func(context.Context) ([]string, error) { return []string{vcUUID}, nil }
		})
		got := collectByName(t, c)
		if o := got["dr-00"]; o.Dims[DimVCenterJoin] != Unjoined || o.ObjectKey != vc2+"/moref/vm-300" || got["app-00"].Dims[DimVCenterJoin] != Joined {
			t.Errorf("dr-00 %+v, app-00 %v", o, got["app-00"].Dims)
		}
		if len(got) != 17 || len(c.last.Unjoined) != 6 || !slices.Equal(c.last.Unregistered, []string{vc2}) ||
			!strings.Contains(buf.String(), "unregistered_vcenters="+vc2) {
			t.Errorf("%d machines; summary %+v; log:\n%s", len(got), c.last, buf.String())
		}
	})
	t.Run("several pages, deployments filtered out", func(t *testing.T) {
		for _, ps := range []int{1, 4, 17, 100} {
			_, c := kit.Start(t, kit.LoadState(t, "testdata/several-pages/state.json"), fmt.Sprintf(`{"page_size": %d}`, ps))
			if got := collectByName(t, c); len(got) != 17 {
				t.Errorf("page_size %d: %d machines, want 17", ps, len(got))
			}
		}
	})
	t.Run("other resource types in the answer", func(t *testing.T) {
		obs, sum := build("vra", "t", []resource{{ID: "d", ResourceTypeRef: struct {
			ID string `json:"id"`
		}{"composition.resource.type.deployment"}}}, nil)
		if len(obs) != 0 || sum.OtherType != 1 {
			t.Fatalf("a deployment: %v, %+v", obs, sum)
		}
	})
}

func TestTokenExpiry(t *testing.T) {
	s, c := kit.Start(t, kit.LoadState(t, "testdata/several-pages/state.json"), `{"page_size": 2}`)
	s.SetFaults(simulator.Faults{ExpireAfter: 3})
	obs, err := c.Collect(context.Background(), hour)
	if err != nil || len(obs) != 17 {
		t.Fatalf("token expiring every 3 calls: %d observations, %v", len(obs), err)
	}
	if s.Logins() < 3 {
		t.Errorf("%d logins, want renewals mid-collection", s.Logins())
	}
}

func TestThrottled(t *testing.T) {
	s, c := kit.Start(t, kit.LoadState(t, "testdata/several-pages/state.json"), `{"page_size": 2}`)
	collectortest.Throttled(t, c, hour, 17, collectortest.Throttle{Always: []string{"HTTP 503"},
		Set: func(every int, _ bool) { s.SetFaults(simulator.Faults{ThrottleEvery: every}) }})
}

func TestFaults(t *testing.T) {
	st := kit.LoadState(t, "testdata/several-pages/state.json")
	for _, tc := range []struct {
		name    string
		faults  simulator.Faults
		timeout time.Duration
		want    []string
		is      error
	}{
		{"500 on page 2", simulator.Faults{FailPage: 2}, 0,
			[]string{"vra7 127.0.0.1: /catalog-service/api/consumer/resources page 2", "HTTP 500", "java.lang.NullPointerException (error 10000)"}, nil},
		{"malformed resourceData", simulator.Faults{MalformField: "resourceData"}, 0,
			[]string{"resources page 1", "malformed body", "content"}, nil},
		{"malformed resourceTypeRef", simulator.Faults{MalformField: "resourceTypeRef"}, 0,
			[]string{"malformed body: field content.resourceTypeRef"}, nil},
		{"malformed id", simulator.Faults{MalformField: "id"}, 0,
			[]string{"malformed body: field content.id: expected a string, got a JSON number"}, nil},
		{"truncated", simulator.Faults{Truncate: true}, 0, []string{"malformed body: truncated JSON"}, nil},
		{"page ignored", simulator.Faults{IgnorePage: true}, 0, []string{"resources page 2", "the answer is page 1, asked for 2"}, nil},
		{"slow product", simulator.Faults{Delay: 300 * time.Millisecond}, 100 * time.Millisecond,
			[]string{"no answer within the 100ms deadline"}, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := kit.FaultError(t, hour, st, `{"page_size": 2}`, func(s *simulator.VRA) { s.SetFaults(tc.faults) }, collectortest.WithTimeout(tc.timeout))
			collectortest.WantError(t, err, tc.want, tc.is)
		})
	}
	t.Run("slow but in time", func(t *testing.T) {
		s, c := kit.Start(t, st, `{"page_size": 6}`)
		s.SetFaults(simulator.Faults{Delay: 20 * time.Millisecond})
		if obs, err := c.Collect(context.Background(), hour); err != nil || len(obs) != 17 {
			t.Fatalf("%d observations, %v", len(obs), err)
		}
	})
}

func TestBadInput(t *testing.T) {
	st := kit.LoadState(t, "testdata/small/state.json")
	for _, four := range []bool{false, true} {
		t.Run(fmt.Sprintf("wrong password, answered 400: %v", four), func(t *testing.T) {
			st := st
			st.AuthFailure400 = four
			s, c := kit.Start(t, st, "", collectortest.WithPassword("nope-not-it"))
			collectortest.WrongPasswordTwice(t, c, s.Calls, "nope-not-it", "logging in as meter@corp.example to tenant vsphere.local", "Authentication failed (error 90135)")
		})
	}
	t.Run("tenant", func(t *testing.T) {
		other := st
		other.Tenant = "acme"
		_, c := kit.Start(t, other, "")
		if _, err := c.Collect(context.Background(), hour); !errors.Is(err, ErrLogin) || !strings.Contains(err.Error(), "tenant vsphere.local") {
			t.Fatalf("default tenant on another: %v", err)
		}
		_, c = kit.Start(t, other, `{"tenant": "acme"}`)
		got := collectByName(t, c)
		if len(got) != 4 || got["dev-001"].Dims[DimTenant] != "acme" {
			t.Fatalf("tenant acme: %v", got)
		}
	})
	t.Run("session refused", func(t *testing.T) {
		s, c := kit.Start(t, st, "")
		collectortest.SessionRefused(t, c, hour, func() { s.SetFaults(simulator.Faults{RejectAll: true}) }, ErrLogin)
	})
	t.Run("logout", func(t *testing.T) {
		s, c := kit.Start(t, st, "")
		if _, err := c.Collect(context.Background(), hour); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(context.Background()); err != nil || c.token != "" {
			t.Fatalf("close: %v", err)
		}
		if _, err := c.Collect(context.Background(), hour); err != nil || s.Logins() != 2 {
			t.Fatalf("after close: %v, %d logins", err, s.Logins())
		}
	})
	t.Run("http endpoint", func(t *testing.T) {
		collectortest.HTTPSOnly(t, target("http://vra7.corp.example", "m", "p", "", ""))
	})
}

// TestNoSecretsLogged: the password and the token are in no log line and
// no error, at debug level, through a login, a renewal and a refusal.
func TestNoSecretsLogged(t *testing.T) {
	st := kit.LoadState(t, "testdata/small/state.json")
	var buf bytes.Buffer
	s, c := kit.Start(t, st, "", collectortest.LogTo(&buf, slog.LevelDebug))
	collectortest.NoSecretsLogged(t, c, hour, &buf, st.Password, collectortest.Renewal{
		Held: func() []string { return []string{c.token} }, Expire: s.ExpireSessions,
		Reject: func() { s.SetFaults(simulator.Faults{RejectAll: true}) }, Logged: "token expired"})
}

func TestIdentify(t *testing.T) {
	_, c := kit.Start(t, kit.LoadState(t, "testdata/small/state.json"), "")
	id, err := c.Identify(context.Background())
	if err != nil || id.Name != "127.0.0.1/vsphere.local" {
		t.Fatalf("Identify = %+v, %v", id, err)
	}
	var _ collectors.Identifier = c
	var _ collectors.Closer = c
}

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, ""},
		{`null`, ""},
		{`{"tenant": "acme", "page_size": 500}`, ""},
		{`{"tenant": "acme/x"}`, `tenant "acme/x": must be the tenant's URL name`},
		{`{"page_size": 5000}`, "page_size 5000: must be between 1 and 1000"},
		{`{"page_size": -1}`, "page_size -1: must be between 1 and 1000"},
		{`{"domain": "x"}`, `unknown option "domain"`},
		{`{"page_size": "10"}`, "option page_size: expected a int"},
	} {
		o, err := ParseOptions(json.RawMessage(tc.in))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: error %v, want %q", tc.in, err, tc.want)
		}
		if err == nil && (o.PageSize < 1 || o.Tenant == "") {
			t.Errorf("%s: defaults not filled in: %+v", tc.in, o)
		}
	}
}

// simBody is what the simulator answers to GET path for st, logged in.
func simBody(t testing.TB, st simulator.State, path string) []byte {
	t.Helper()
	s := simulator.New(st)
	do := func(method, p, body string, hdr http.Header) []byte {
		req := httptest.NewRequest(method, "https://vra7.example.net"+p, strings.NewReader(body))
		for k, v := range hdr {
			req.Header[k] = v
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code/100 != 2 {
			t.Fatalf("%s %s: %d %s", method, p, rec.Code, rec.Body)
		}
		return rec.Body.Bytes()
	}
	b, _ := json.Marshal(map[string]string{"username": st.User, "password": st.Password, "tenant": st.Tenant})
	tok, err := parseToken(do(http.MethodPost, tokensPath, string(b), nil))
	if err != nil {
		t.Fatal(err)
	}
	return do(http.MethodGet, path, "", http.Header{"Authorization": {"Bearer " + tok}})
}

// FuzzParseResources: a resource list page, then the rules on what it
// parsed.
func FuzzParseResources(f *testing.F) {
	for _, dir := range collectortest.Dirs(f) {
		st := kit.LoadState(f, filepath.Join(dir, "state.json"))
		f.Add(simBody(f, st, resourcesPath+"?withExtendedData=true&limit=3&"+url.Values{"$filter": {vmFilter}}.Encode()))
	}
	f.Add([]byte(`{"content":[{"id":"r","resourceData":{"entries":[{"key":"EXTERNAL_REFERENCE_ID","value":{"type":"integer","value":12}},{"key":"MachineStatus","value":null}]}}],"metadata":{"totalPages":-1}}`))
	f.Add([]byte(`{"content":[{"id":" ","resourceData":{"entries":[{"key":"endpointExternalReferenceId","value":{"value":{"x":1}}}]}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePage(b)
		collectortest.WantParseError(t, err)
		if err != nil {
			return
		}
		obs, sum := build("vra", "vsphere.local", p.Content, nil)
		if len(obs)+sum.Duplicates+sum.NoID+sum.OtherType+sum.Deleted+sum.NotVSphere != len(p.Content) || sum.Machines != len(obs) {
			t.Fatalf("%d observations and %+v from %d records", len(obs), sum, len(p.Content))
		}
		seen := map[string]bool{}
		for _, o := range obs {
			if seen[o.ObjectKey] || o.ObjectKey == "" || strings.HasSuffix(o.ObjectKey, "/") || o.Quantity != 1 {
				t.Fatalf("bad observation %+v", o)
			}
			seen[o.ObjectKey] = true
		}
	})
}

// FuzzParseToken: the login answer and the error body.
func FuzzParseToken(f *testing.F) {
	st := kit.LoadState(f, "testdata/small/state.json")
	s := simulator.New(st)
	for _, pw := range []string{st.Password, "wrong"} {
		b, _ := json.Marshal(map[string]string{"username": st.User, "password": pw, "tenant": st.Tenant})
		req := httptest.NewRequest(http.MethodPost, "https://vra7.example.net"+tokensPath, bytes.NewReader(b))
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		f.Add(rec.Body.Bytes())
	}
	f.Add([]byte(`{"id":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := parseToken(b)
		collectortest.WantParseError(t, err)
		if err == nil && id == "" {
			t.Fatal("empty token accepted")
		}
		if msg := errorMessage(b); len(msg) > 3*len(b)+40 {
			t.Fatalf("error message of %d bytes from a body of %d", len(msg), len(b))
		}
	})
}

// benchState: 10,000 vSphere machines on two vCenters in 20 business
// groups, and 200 deployments the filter leaves out.
func benchState() simulator.State {
	st := simulator.State{User: "meter", Password: "pw", Tenant: DefaultTenant}
	for i := range 10000 {
		vc := vcUUID
		if i%2 == 1 {
			vc = "5022c0de-1111-4222-8333-944455556666"
		}
		st.Resources = append(st.Resources, simulator.Resource{ID: fmt.Sprintf("res-%05d", i), Name: fmt.Sprintf("vm-%05d", i),
			VCenter: vc, MoRef: fmt.Sprintf("vm-%d", 10000+i), Group: fmt.Sprintf("group-%02d", i%20)})
		if i%50 == 0 {
			st.Resources = append(st.Resources, simulator.Resource{ID: fmt.Sprintf("dep-%05d", i), Name: "deployment", Type: "composition.resource.type.deployment"})
		}
	}
	return st
}

func BenchmarkCollect10000Machines(b *testing.B) {
	st := benchState()
	for _, ps := range []int{DefaultPageSize, MaxPageSize} {
		b.Run(fmt.Sprintf("page_size=%d", ps), func(b *testing.B) {
			_, c := kit.Start(b, st, fmt.Sprintf(`{"page_size": %d}`, ps))
			collectortest.Bench(b, c, hour, func(n int) bool { return n == 10000 })
		})
	}
}

// BenchmarkParse10000Machines is the collector's own share of a collection
// of 10,000 machines: decoding the 10 pages of 1,000 (as the simulator
// sends them) and building the observations, without HTTP or simulator.
func BenchmarkParse10000Machines(b *testing.B) {
	st := benchState()
	var pages [][]byte
	for n := 1; n <= 11; n++ {
		pages = append(pages, simBody(b, st, resourcesPath+"?withExtendedData=true&limit=1000&page="+fmt.Sprint(n)+"&"+url.Values{"$filter": {vmFilter}}.Encode()))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		var res []resource
		for _, body := range pages {
			p, err := parsePage(body)
			if err != nil {
				b.Fatal(err)
			}
			res = append(res, p.Content...)
		}
		if obs, _ := build("vra", "vsphere.local", res, map[string]bool{vcUUID: true}); len(obs) != 10000 {
			b.Fatalf("%d observations", len(obs))
		}
	}
}
