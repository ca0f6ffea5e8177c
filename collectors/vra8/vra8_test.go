package vra8

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/collectortest"
	"github.com/usagemeter/usagemeter/collectors/vra8/simulator"
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
	kit.Conformance(t, "testdata/several-pages/state.json", `{"page_size": 3}`)
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
			return o.Metric != collectors.MetricVMManaged || o.Quantity != 1 || o.Unit != collectors.UnitCount || o.Edition == ""
		})
}

// TestRules checks the Aria Automation 8 rules on the case states,
// independently of the golden files.
func TestRules(t *testing.T) {
	t.Run("small: one line per cloud", func(t *testing.T) {
		_, c := kit.Start(t, kit.LoadState(t, "testdata/small/state.json"), "")
		got := collectByName(t, c)
		for vm, want := range map[string]struct{ edition, key string }{
			"web-01":       {"vSphere", vcUUID + "/moref/vm-1001"},
			"web-02":       {"vSphere", vcUUID + "/moref/vm-1002"}, // powered off: still managed
			"api-aws-01":   {"AWS", "aws/i-0a1b2c3d4e5f60718"},
			"api-azure-01": {"Azure", "azure//subscriptions/3c1f0b4e-1d2c-4e5f-8a9b-0c1d2e3f4a5b/resourceGroups/api/providers/Microsoft.Compute/virtualMachines/api-azure-01"},
			"batch-gcp-01": {"GCP", "gcp/4815162342108"},
		} {
			if o := got[vm]; o.Edition != want.edition || o.ObjectKey != want.key {
				t.Errorf("%s: edition %q key %q, want %q %q", vm, o.Edition, o.ObjectKey, want.edition, want.key)
			}
		}
		if got["web-01"].Dims[DimVCenterJoin] != Joined || got["api-aws-01"].Dims[DimVCenterJoin] != "" {
			t.Errorf("join dims: %v / %v", got["web-01"].Dims, got["api-aws-01"].Dims)
		}
	})
	t.Run("edge cases", func(t *testing.T) {
		var buf bytes.Buffer
		_, c := kit.Start(t, kit.LoadState(t, "testdata/edge-cases/state.json"), `{"page_size": 2}`, collectortest.LogTo(&buf, slog.LevelInfo))
		got := collectByName(t, c)
		for vm, want := range map[string]struct{ edition, key, join string }{
			"ledger-01":  {"vSphere", vcUUID + "/moref/vm-501", Joined},  // powered off
			"ledger-02":  {"vSphere", vcUUID + "/moref/vm-502", Joined},  // vCenter from its cloud account
			"shared-app": {"vSphere", vcUUID + "/moref/vm-503", Joined},  // upper-case vcUuid; listed twice across pages
			"orphan-01":  {"vSphere", "127.0.0.1/machine/m-4", Unjoined}, // its vCenter is not registered
			"no-moref":   {"vSphere", "127.0.0.1/machine/m-5", Unjoined}, // no MoRef
			"sddc-vm-01": {"vmc", "vmc/vmc-ext-0001", ""},                // a type METERING.md does not name
			"aws-once":   {"AWS", "aws/i-0feedbeef0000001", ""},          // through two cloud accounts
			"nowhere":    {CloudUnknown, CloudUnknown + "/ext-9", ""},    // no cloud account
		} {
			o, ok := got[vm]
			if !ok || o.Edition != want.edition || o.ObjectKey != want.key || o.Dims[DimVCenterJoin] != want.join {
				t.Errorf("%s: observed %v, %+v; want %+v", vm, ok, o, want)
			}
		}
		if len(got) != 8 {
			t.Errorf("%d machines, want 8", len(got))
		}
		sum := c.last
		if !slices.Equal(sum.UnknownTypes, []string{CloudUnknown, "vmc"}) || !slices.Equal(sum.Unjoined, []string{"no-moref", "orphan-01"}) ||
			sum.Duplicates != 2 || sum.NoID != 1 || sum.ByCloud[CloudVSphere] != 5 {
			t.Errorf("summary %+v", sum)
		}
		for _, w := range []string{"types=unknown,vmc", "vSphere machines counted unjoined", "machines=no-moref,orphan-01", "without an id skipped"} {
			if !strings.Contains(buf.String(), w) {
				t.Errorf("the log does not say %q:\n%s", w, buf.String())
			}
		}
	})
	t.Run("vCenters registered on the appliance", func(t *testing.T) {
		const vc2 = "5022c0de-1111-4222-8333-944455556666"
		var buf bytes.Buffer
		registered := []string{strings.ToUpper(vcUUID)} // vc02 is not registered here
		_, c := kit.Start(t, kit.LoadState(t, "testdata/several-pages/state.json"), `{"page_size": 5}`, collectortest.LogTo(&buf, slog.LevelInfo), func(tg *collectors.Target) {
			tg.VCenters = func(context.Context) ([]string, error) { return registered, nil }
		})
		got := collectByName(t, c)
		if o := got["app-00"]; o.Dims[DimVCenterJoin] != Joined || o.ObjectKey != vcUUID+"/moref/vm-2000" {
			t.Errorf("a VM of the registered vCenter: %+v", o)
		}
		if o := got["dr-00"]; o.Dims[DimVCenterJoin] != Unjoined || o.ObjectKey != vc2+"/moref/vm-300" {
			t.Errorf("a VM of a vCenter not registered: %+v (counted, keyed on its identity, unjoined)", o)
		}
		if len(got) != 18 || len(c.last.Unjoined) != 4 || !slices.Equal(c.last.Unregistered, []string{vc2}) {
			t.Errorf("%d machines; summary %+v", len(got), c.last)
		}
		if !strings.Contains(buf.String(), "unregistered_vcenters="+vc2) || !strings.Contains(buf.String(), "machines=dr-00,dr-01,dr-02,dr-03") {
			t.Errorf("the log does not name them:\n%s", buf.String())
		}
		// The list cannot be read (the database is away): counted all the
		// same, joined on the machines' own data, and said.
		buf.Reset()
		_, c = kit.Start(t, kit.LoadState(t, "testdata/several-pages/state.json"), `{"page_size": 5}`, collectortest.LogTo(&buf, slog.LevelInfo), func(tg *collectors.Target) {
			tg.VCenters = func(context.Context) ([]string, error) { return nil, errors.New("database unreachable") }
		})
		if got := collectByName(t, c); len(got) != 18 || got["dr-00"].Dims[DimVCenterJoin] != Joined {
			t.Errorf("without the registered vCenters: %d machines, dr-00 %v", len(got), got["dr-00"].Dims)
		}
		if !strings.Contains(buf.String(), "the registered vCenters could not be read") {
			t.Errorf("not logged:\n%s", buf.String())
		}
	})
	t.Run("several pages, without totalElements", func(t *testing.T) {
		st := kit.LoadState(t, "testdata/several-pages/state.json")
		st.OmitTotal = true
		for _, ps := range []int{1, 3, 18, 100} {
			_, c := kit.Start(t, st, fmt.Sprintf(`{"page_size": %d}`, ps))
			if got := collectByName(t, c); len(got) != 18 {
				t.Errorf("page_size %d: %d machines, want 18", ps, len(got))
			}
		}
	})
	t.Run("pages capped by the server", func(t *testing.T) {
		st := kit.LoadState(t, "testdata/several-pages/state.json")
		st.MaxTop = 4
		for _, omit := range []bool{false, true} {
			st.OmitTotal = omit
			_, c := kit.Start(t, st, `{"page_size": 100}`)
			if got := collectByName(t, c); len(got) != 18 {
				t.Errorf("$top capped at 4, totalElements omitted %v: %d machines, want 18", omit, len(got))
			}
		}
	})
	t.Run("a VM listed once more on a later page", func(t *testing.T) {
		st := kit.LoadState(t, "testdata/small/state.json")
		st.Machines = append(st.Machines, simulator.Machine{ID: "m-999", Name: "between", CloudAccounts: []string{"ca-aws-1"}, ExternalID: "i-9"}, st.Machines[0])
		_, c := kit.Start(t, st, `{"page_size": 2}`)
		if got := collectByName(t, c); len(got) != 6 {
			t.Errorf("%d machines, want 5 + 1 new (web-01 once)", len(got))
		}
	})
}

// TestTokenExpiry: the bearer token dies in the middle of the pages (its
// refresh token still good: exchanged again, no password login), then both
// die (a new login with the password).
func TestTokenExpiry(t *testing.T) {
	st := kit.LoadState(t, "testdata/several-pages/state.json")
	s, c := kit.Start(t, st, `{"page_size": 2}`)
	s.SetFaults(simulator.Faults{ExpireAfter: 3})
	obs, err := c.Collect(context.Background(), hour)
	if err != nil || len(obs) != 18 {
		t.Fatalf("token expiring every 3 calls: %d observations, %v", len(obs), err)
	}
	if s.Logins() < 3 {
		t.Errorf("%d tokens issued, want renewals mid-collection", s.Logins())
	}
	s.SetFaults(simulator.Faults{})
	before := s.Calls()
	s.ExpireSessions()
	s.ExpireRefreshTokens()
	if obs, err := c.Collect(context.Background(), hour); err != nil || len(obs) != 18 {
		t.Fatalf("after both tokens expired: %d observations, %v", len(obs), err)
	}
	// refused call, refused refresh token, password login, exchange, 2 + 10 pages.
	if n := s.Calls() - before; n != 4+2+10 {
		t.Errorf("%d calls to log in again and collect, want 16", n)
	}
}

func TestThrottled(t *testing.T) {
	s, c := kit.Start(t, kit.LoadState(t, "testdata/several-pages/state.json"), `{"page_size": 2}`)
	collectortest.Throttled(t, c, hour, 18, collectortest.Throttle{Always: []string{"HTTP 503"},
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
			[]string{"vra8 127.0.0.1: /iaas/api/machines page 2", "HTTP 500", "unexpected failure while listing machines"}, nil},
		{"malformed cloudAccountIds", simulator.Faults{MalformField: "cloudAccountIds"}, 0,
			[]string{"/iaas/api/machines page 1", "malformed body: field content.cloudAccountIds"}, nil},
		{"malformed customProperties", simulator.Faults{MalformField: "customProperties"}, 0,
			[]string{"malformed body: field content.customProperties"}, nil},
		{"malformed id", simulator.Faults{MalformField: "id"}, 0,
			[]string{"malformed body: field content.id: expected a string, got a JSON number"}, nil},
		{"truncated", simulator.Faults{Truncate: true}, 0, []string{"malformed body: truncated JSON"}, nil},
		{"$skip ignored", simulator.Faults{IgnoreSkip: true}, 0, []string{"/iaas/api/machines page 2", "the answer repeats page 1 ($skip=2 ignored?)"}, nil},
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
		if obs, err := c.Collect(context.Background(), hour); err != nil || len(obs) != 18 {
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
			collectortest.WrongPasswordTwice(t, c, s.Calls, "nope-not-it", "logging in as meter@corp.example", "Invalid username or password")
		})
	}
	t.Run("directory user", func(t *testing.T) {
		ad := st
		ad.Domain = "corp.example"
		_, c := kit.Start(t, ad, "")
		if _, err := c.Collect(context.Background(), hour); !errors.Is(err, ErrLogin) {
			t.Fatalf("without the domain: %v", err)
		}
		_, c = kit.Start(t, ad, `{"domain": "corp.example"}`)
		if obs, err := c.Collect(context.Background(), hour); err != nil || len(obs) != 5 {
			t.Fatalf("with the domain: %d observations, %v", len(obs), err)
		}
	})
	t.Run("session refused", func(t *testing.T) {
		s, c := kit.Start(t, st, "")
		collectortest.SessionRefused(t, c, hour, func() { s.SetFaults(simulator.Faults{RejectAll: true}) }, ErrLogin)
	})
	t.Run("API version not offered", func(t *testing.T) {
		old := st
		old.APIVersions = []string{"2019-01-15"}
		_, c := kit.Start(t, old, "")
		_, err := c.Collect(context.Background(), hour)
		collectortest.WantError(t, err, []string{"exchanging the refresh token", "HTTP 400", "Invalid apiVersion 2021-07-15", "Supported versions: 2019-01-15"}, nil)
		if errors.Is(err, collectors.ErrAuth) {
			t.Errorf("a missing version is not an authentication failure: %v", err)
		}
		_, c = kit.Start(t, old, `{"api_version": "2019-01-15"}`)
		if obs, err := c.Collect(context.Background(), hour); err != nil || len(obs) != 5 {
			t.Fatalf("api_version 2019-01-15: %d observations, %v", len(obs), err)
		}
	})
	t.Run("endpoint with the API path", func(t *testing.T) {
		_, c := kit.Start(t, st, "", func(tg *collectors.Target) { tg.Endpoint += "/iaas/api/" })
		if obs, err := c.Collect(context.Background(), hour); err != nil || len(obs) != 5 {
			t.Fatalf("%d observations, %v", len(obs), err)
		}
	})
	t.Run("http endpoint", func(t *testing.T) {
		collectortest.HTTPSOnly(t, target("http://vra.corp.example", "m", "p", "", ""))
	})
}

// TestNoSecretsLogged: the password and the tokens are in no log line and
// no error, at debug level, through a login, a renewal and a refusal.
func TestNoSecretsLogged(t *testing.T) {
	st := kit.LoadState(t, "testdata/small/state.json")
	var buf bytes.Buffer
	s, c := kit.Start(t, st, "", collectortest.LogTo(&buf, slog.LevelDebug))
	collectortest.NoSecretsLogged(t, c, hour, &buf, st.Password, collectortest.Renewal{
		Held: func() []string { return []string{c.token, c.refresh} }, Expire: s.ExpireSessions,
		Reject: func() { s.SetFaults(simulator.Faults{RejectAll: true}) }, Logged: "token expired"})
}

func TestIdentify(t *testing.T) {
	_, c := kit.Start(t, kit.LoadState(t, "testdata/small/state.json"), "")
	id, err := c.Identify(context.Background())
	if err != nil || id.Name != "127.0.0.1" || id.Version != simulator.DefaultAPIVersions[0] {
		t.Fatalf("Identify = %+v, %v", id, err)
	}
	var _ collectors.Identifier = c
}

// TestDemo: the demo's constructor serves the given vCenter VMs and N
// machines per public cloud.
func TestDemo(t *testing.T) {
	const vc2 = "5022c0de-1111-4222-8333-944455556666"
	s := simulator.NewDemo("meter", "pw", []simulator.VMRef{{VCenterUUID: vcUUID, MoRef: "vm-42"}, {VCenterUUID: vcUUID, MoRef: "vm-43", Name: "db"},
		{VCenterUUID: vc2, MoRef: "vm-42", Name: "dr-42"}}, 4)
	u, thumb := s.Start(t)
	c, err := newCollector(target(u, "meter", "pw", thumb, ""))
	if err != nil {
		t.Fatal(err)
	}
	got := collectByName(t, c)
	if len(got) != 3+3*4 || got["db"].ObjectKey != vcUUID+"/moref/vm-43" {
		t.Fatalf("%d machines: %v", len(got), got["db"])
	}
	if want := map[string]int{CloudVSphere: 3, CloudAWS: 4, CloudAzure: 4, CloudGCP: 4}; fmt.Sprint(c.last.ByCloud) != fmt.Sprint(want) {
		t.Errorf("by cloud %v, want %v", c.last.ByCloud, want)
	}
}

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, ""},
		{`null`, ""},
		{`{"api_version": "2019-01-15", "page_size": 500, "domain": "corp.example"}`, ""},
		{`{"api_version": "latest"}`, `api_version "latest": must be a date, yyyy-MM-dd`},
		{`{"page_size": 5000}`, "page_size 5000: must be between 1 and 1000"},
		{`{"page_size": -1}`, "page_size -1: must be between 1 and 1000"},
		{`{"tenant": "x"}`, `unknown option "tenant"`},
		{`{"page_size": "10"}`, "option page_size: expected a int"},
	} {
		o, err := ParseOptions(json.RawMessage(tc.in))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: error %v, want %q", tc.in, err, tc.want)
		}
		if err == nil && (o.PageSize < 1 || o.APIVersion == "") {
			t.Errorf("%s: defaults not filled in: %+v", tc.in, o)
		}
	}
}

// simBody is what the simulator answers to GET path for st, logged in.
func simBody(t testing.TB, st simulator.State, path string) []byte {
	t.Helper()
	s := simulator.New(st)
	do := func(method, p, body string, hdr http.Header) []byte {
		req := httptest.NewRequest(method, "https://vra.example.net"+p, strings.NewReader(body))
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
	b, _ := json.Marshal(map[string]string{"username": st.User, "password": st.Password})
	rt, err := parseRefreshToken(do(http.MethodPost, cspLoginPath, string(b), nil))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := parseAuth(do(http.MethodPost, iaasLoginPath, `{"refreshToken":"`+rt+`"}`, nil))
	if err != nil {
		t.Fatal(err)
	}
	return do(http.MethodGet, path, "", http.Header{"Authorization": {"Bearer " + tok}})
}

// FuzzParseMachines: a machine list page, then the rules on what it parsed
// (with the cloud accounts of the small case).
func FuzzParseMachines(f *testing.F) {
	for _, st := range kit.States(f) {
		f.Add(simBody(f, st, machinesPath+"?$top=3"))
	}
	f.Add([]byte(`{"content":[{"id":"m","customProperties":{"vcUuid":"","__moref":":"}}],"totalElements":-1}`))
	f.Add([]byte(`{"content":[{"id":"","externalId":" ","cloudAccountIds":["ca-vsphere-1"]}],"numberOfElements":1}`))
	accounts := map[string]*cloudAccount{}
	for _, a := range kit.LoadState(f, "testdata/edge-cases/state.json").CloudAccounts {
		accounts[a.ID] = &cloudAccount{ID: a.ID, Name: a.Name, Type: a.Type, CustomProperties: map[string]string{PropVCenterUUID: a.VCenterUUID}}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePage[machine](b)
		collectortest.WantParseError(t, err)
		if err != nil {
			return
		}
		obs, sum := build("vra", accounts, p.Content, nil)
		if len(obs)+sum.Duplicates+sum.NoID != len(p.Content) || sum.Machines != len(obs) {
			t.Fatalf("%d observations and %+v from %d records", len(obs), sum, len(p.Content))
		}
		seen := map[string]bool{}
		for _, o := range obs {
			if seen[o.ObjectKey] || o.ObjectKey == "" || strings.HasSuffix(o.ObjectKey, "/") || o.Quantity != 1 || o.Edition == "" || o.Dims[DimCloud] == "" {
				t.Fatalf("bad observation %+v", o)
			}
			seen[o.ObjectKey] = true
		}
	})
}

// FuzzParseCloudAccounts: the cloud account list.
func FuzzParseCloudAccounts(f *testing.F) {
	for _, st := range kit.States(f) {
		f.Add(simBody(f, st, cloudAccountsPath))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := parsePage[cloudAccount](b)
		collectortest.WantParseError(t, err)
	})
}

// FuzzParseLogin: the two login answers and the error body.
func FuzzParseLogin(f *testing.F) {
	st := kit.LoadState(f, "testdata/small/state.json")
	s := simulator.New(st)
	for _, pw := range []string{st.Password, "wrong"} {
		b, _ := json.Marshal(map[string]string{"username": st.User, "password": pw})
		req := httptest.NewRequest(http.MethodPost, "https://vra.example.net"+cspLoginPath, bytes.NewReader(b))
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		f.Add(rec.Body.Bytes())
	}
	f.Add([]byte(`{"tokenType":"Bearer","token":"abc"}`))
	f.Add([]byte(`{"refresh_token":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rt, err := parseRefreshToken(b)
		collectortest.WantParseError(t, err)
		if err == nil && rt == "" {
			t.Fatal("empty refresh token accepted")
		}
		tok, err := parseAuth(b)
		collectortest.WantParseError(t, err)
		if err == nil && tok == "" {
			t.Fatal("empty token accepted")
		}
		if msg := errorMessage(b); len(msg) > 3*len(b)+3 {
			t.Fatalf("error message of %d bytes from a body of %d", len(msg), len(b))
		}
	})
}

// benchState: 10,000 machines, 4,000 on two vCenters and 2,000 in each
// public cloud.
func benchState() simulator.State {
	var vms []simulator.VMRef
	for i := range 4000 {
		vc := vcUUID
		if i%2 == 1 {
			vc = "5022c0de-1111-4222-8333-944455556666"
		}
		vms = append(vms, simulator.VMRef{VCenterUUID: vc, MoRef: fmt.Sprintf("vm-%d", 10000+i)})
	}
	return simulator.NewDemoState("meter", "pw", vms, 2000)
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
	for skip := 0; skip < 10000; skip += 1000 {
		pages = append(pages, simBody(b, st, fmt.Sprintf("%s?$top=1000&$skip=%d", machinesPath, skip)))
	}
	accounts := map[string]*cloudAccount{}
	for _, a := range st.CloudAccounts {
		accounts[a.ID] = &cloudAccount{ID: a.ID, Name: a.Name, Type: a.Type, CustomProperties: map[string]string{PropVCenterUUID: a.VCenterUUID}}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		var ms []machine
		for _, body := range pages {
			p, err := parsePage[machine](body)
			if err != nil {
				b.Fatal(err)
			}
			ms = append(ms, p.Content...)
		}
		if obs, _ := build("vra", accounts, ms, map[string]bool{vcUUID: true}); len(obs) != 10000 {
			b.Fatalf("%d observations", len(obs))
		}
	}
}
