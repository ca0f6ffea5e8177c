package vrops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/collectortest"
	"github.com/usagemeter/usagemeter/collectors/internal/aria"
	"github.com/usagemeter/usagemeter/collectors/vrops/simulator"
)

var hour = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

const (
	vcUUID  = "564d1a2b-3c4d-5e6f-7a8b-9c0d1e2f3a4b"
	otherVC = "5022c0de-1111-4222-8333-944455556666"
)

func target(u, user, pass, thumb, opts string) collectors.Target {
	return collectors.Target{
		Kind: Kind, Endpoint: u, Username: user, Password: collectors.Secret(pass), Thumbprint: thumb,
		Options: json.RawMessage(opts), Timeout: 5 * time.Second,
		Paired: &collectors.Target{Kind: "vcenter", Endpoint: "vc01.corp.example", InstanceID: vcUUID},
	}
}

// kit serves a state and builds a collector pinned to the simulator.
var kit = collectortest.Kit[simulator.State, *simulator.Ops, *Collector]{
	Sim: simulator.New, Load: simulator.LoadState, New: newCollector,
	Target: func(u, thumb string, st simulator.State, opts string) collectors.Target {
		return target(u, st.User, st.Password, thumb, opts)
	},
	Delay:       func(s *simulator.Ops, d time.Duration) { s.SetFaults(simulator.Faults{Delay: d}) },
	ExpireAfter: func(s *simulator.Ops, n int) { s.SetFaults(simulator.Faults{ExpireAfter: n}) },
}

const ldap = `{"auth_source": "corp-ldap"}`

// TestConformance runs the suite every REST collector passes, on a state of
// several pages.
func TestConformance(t *testing.T) {
	kit.Conformance(t, "testdata/several-pages/state.json", `{"auth_source": "corp-ldap", "page_size": 2}`)
}

// TestCases walks testdata/<case>/: state.json (simulator state),
// options.json, expected.json (observations sorted by object key; -update
// rewrites it).
func TestCases(t *testing.T) {
	kit.Cases(t, hour, collectortest.OneLogin)
}

func collectByName(t *testing.T, dir, opts string) map[string]collectors.Observation {
	t.Helper()
	_, c := kit.Start(t, kit.LoadState(t, "testdata/"+dir+"/state.json"), opts)
	return collectortest.CollectBy(t, c, hour, func(o collectors.Observation) string { return o.Dims[DimVM] },
		func(o collectors.Observation) bool {
			return o.Metric != collectors.MetricMonitoredVM || o.Quantity != 1 || o.Unit != collectors.UnitCount ||
				o.ObjectKey != o.Dims[DimVCenterUUID]+"/moref/"+o.Dims[DimMoref] || collectors.AriaMode(o.Edition) != o.Dims[DimMode]
		})
}

// TestRules checks the rules on the case states, independently of the
// golden files.
func TestRules(t *testing.T) {
	t.Run("edge cases", func(t *testing.T) {
		got := collectByName(t, "edge-cases", `{"auth_source": "corp-ldap", "mode": "standalone", "page_size": 3}`)
		for vm, want := range map[string]bool{
			"app-01":        true, // listed twice, across pages (the second time with an upper-case vCenter UUID): once
			"off-01":        true, // powered off: still monitored
			"remote-01":     true, // a vCenter that is not the paired one: its own key
			"maintained-01": true,
			"deleted-01":    false, // NOT_EXISTING
			"no-moref":      false,
			"cloud-vm":      false, // not the vSphere adapter
		} {
			if _, ok := got[vm]; ok != want {
				t.Errorf("%s observed: %v, want %v", vm, ok, want)
			}
		}
		if len(got) != 4 {
			t.Errorf("%d monitored VMs, want 4", len(got))
		}
		if o := got["remote-01"]; o.ObjectKey != otherVC+"/moref/vm-77" || o.Dims[DimVCenter] != "" {
			t.Errorf("remote-01: %+v", o)
		}
		if o := got["app-01"]; o.ObjectKey != vcUUID+"/moref/vm-501" || o.Dims[DimVCenter] != "vc01.corp.example" {
			t.Errorf("app-01: %+v", o)
		}
		// The expired Enterprise licence does not count: Advanced.
		if ed := got["off-01"].Edition; ed != "Advanced (standalone)" {
			t.Errorf("edition %q", ed)
		}
	})
	t.Run("several pages, highest licence", func(t *testing.T) {
		got := collectByName(t, "several-pages", `{"auth_source": "corp-ldap", "page_size": 4}`)
		if len(got) != 15 {
			t.Errorf("%d monitored VMs, want 15", len(got))
		}
		if ed := got["tenant-00"].Edition; ed != "Enterprise (Flex add-on)" {
			t.Errorf("edition %q, want Enterprise (Flex add-on) (the default mode)", ed)
		}
	})
	t.Run("page size capped by the server", func(t *testing.T) {
		// Asked 5000, served ... all: the total ends the paging, not a short page.
		if got := collectByName(t, "several-pages", `{"auth_source": "corp-ldap", "page_size": 5000}`); len(got) != 15 {
			t.Errorf("%d monitored VMs", len(got))
		}
	})
	t.Run("unjoined named in the summary", func(t *testing.T) {
		st := kit.LoadState(t, "testdata/edge-cases/state.json")
		var buf bytes.Buffer
		_, c := kit.Start(t, st, ldap, collectortest.LogTo(&buf, slog.LevelInfo))
		if _, err := c.Collect(context.Background(), hour); err != nil {
			t.Fatal(err)
		}
		for _, w := range []string{"unjoined_vms=1", otherVC + " (1 VMs)", "listed_twice=1", "no_longer_in_vcenter=1", "without_vcenter_or_moref=1", "other_adapter=1"} {
			if !strings.Contains(buf.String(), w) {
				t.Errorf("the log does not say %q:\n%s", w, buf.String())
			}
		}
	})
	t.Run("no licence edition", func(t *testing.T) {
		p := aria.Product{Kind: Kind, VCenterUUID: vcUUID, Mode: collectors.AriaAddon, Edition: edition([]license{{Edition: "Evaluation"}}, hour)}
		obs, _ := p.Build([]aria.VM{{Name: "a", MoRef: "vm-1", VCenter: vcUUID}})
		if len(obs) != 1 || obs[0].Edition != "(Flex add-on)" {
			t.Fatalf("%+v", obs)
		}
		if ed := edition([]license{{Edition: "VROPS_ADVANCED"}, {Edition: "vRealize Operations Standard"}}, hour); ed != EditionAdvanced {
			t.Fatalf("edition %q", ed)
		}
	})
}

func TestFaults(t *testing.T) {
	st := kit.LoadState(t, "testdata/several-pages/state.json")
	const opts = `{"auth_source": "corp-ldap", "page_size": 4}`
	for _, tc := range []struct {
		name   string
		faults simulator.Faults
		want   []string
	}{
		{"500 on page 2", simulator.Faults{FailPage: 2}, []string{"vrops 127.0.0.1: /resources page 2", "HTTP 500", "Internal Server error, cause unknown."}},
		{"malformed identifiers", simulator.Faults{MalformField: "resourceIdentifiers"}, []string{"/resources page 1", "malformed body: field resourceList.resourceKey.resourceIdentifiers"}},
		{"malformed identifier value", simulator.Faults{MalformField: "value"}, []string{"field resourceList.resourceKey.resourceIdentifiers.value: expected a string, got a JSON number"}},
		{"malformed status", simulator.Faults{MalformField: "resourceStatusStates"}, []string{"field resourceList.resourceStatusStates"}},
		{"malformed identifier", simulator.Faults{MalformField: "identifier"}, []string{"field resourceList.identifier: expected a string"}},
		{"truncated", simulator.Faults{Truncate: true}, []string{"malformed body: truncated JSON"}},
		{"page ignored", simulator.Faults{IgnorePage: true}, []string{"/resources page 2", "the answer is for page 0, asked for 1"}},
		{"always busy", simulator.Faults{ThrottleEvery: 1}, []string{"HTTP 503"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := kit.FaultError(t, hour, st, opts, func(s *simulator.Ops) { s.SetFaults(tc.faults) })
			collectortest.WantError(t, err, tc.want, nil)
		})
	}
	t.Run("busy now and then", func(t *testing.T) {
		s, c := kit.Start(t, st, opts)
		s.SetFaults(simulator.Faults{ThrottleEvery: 3})
		if obs, err := c.Collect(context.Background(), hour); err != nil || len(obs) != 15 {
			t.Fatalf("%d observations, %v", len(obs), err)
		}
	})
	t.Run("slow product", func(t *testing.T) {
		s, c := kit.Start(t, st, opts)
		s.SetFaults(simulator.Faults{Delay: 300 * time.Millisecond})
		c.t.Timeout = 50 * time.Millisecond
		_, err := c.Collect(context.Background(), hour)
		collectortest.WantError(t, err, []string{"no answer within the 50ms deadline"}, context.DeadlineExceeded)
	})
}

// TestTokens: the token is kept, renewed when its validity has passed and
// when refused mid-paging, and released at the end.
func TestTokens(t *testing.T) {
	st := kit.LoadState(t, "testdata/several-pages/state.json")
	const opts = `{"auth_source": "corp-ldap", "page_size": 2}`
	t.Run("expired mid-paging", func(t *testing.T) {
		s, c := kit.Start(t, st, opts)
		s.SetFaults(simulator.Faults{ExpireAfter: 2})
		obs, err := c.Collect(context.Background(), hour)
		if err != nil || len(obs) != 15 {
			t.Fatalf("%d observations, %v", len(obs), err)
		}
		if s.Logins() < 4 { // 1 licence call + 8 pages, 2 calls a token
			t.Errorf("%d logins", s.Logins())
		}
	})
	t.Run("validity passed", func(t *testing.T) {
		s, c := kit.Start(t, st, opts)
		if _, err := c.Collect(context.Background(), hour); err != nil {
			t.Fatal(err)
		}
		c.Tok.Expires = time.Now().Add(-time.Second) // as the validity the login answered has passed
		if _, err := c.Collect(context.Background(), hour); err != nil {
			t.Fatal(err)
		}
		if s.Logins() != 2 {
			t.Errorf("%d logins, want 2: a new token once the validity passed", s.Logins())
		}
	})
	t.Run("released", func(t *testing.T) {
		s, c := kit.Start(t, st, opts)
		if _, err := c.Collect(context.Background(), hour); err != nil {
			t.Fatal(err)
		}
		tok := c.Tok.Value
		if err := c.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodGet, "https://ops.example/suite-api/api/deployment/licenses", nil)
		req.Header.Set("Authorization", "OpsToken "+tok)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("the released token still works: %d", rec.Code)
		}
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("closing twice: %v", err)
		}
	})
}

func TestBadInput(t *testing.T) {
	st := kit.LoadState(t, "testdata/small/state.json")
	t.Run("wrong password", func(t *testing.T) {
		s, c := kit.Start(t, st, ldap, collectortest.WithPassword("nope-not-it"))
		err := collectortest.WrongPasswordTwice(t, c, s.Calls, "nope-not-it", "logging in as ops-meter@corp.example")
		if !errors.Is(err, ErrLogin) {
			t.Fatalf("error %v is not ErrLogin", err)
		}
	})
	t.Run("wrong auth source", func(t *testing.T) {
		_, c := kit.Start(t, st, "")
		if _, err := c.Collect(context.Background(), hour); !errors.Is(err, ErrLogin) {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("not paired", func(t *testing.T) {
		tg := target("ops.corp.example", "meter", "x", "", "")
		tg.Paired = nil
		if _, err := collectors.New(tg); !errors.Is(err, ErrNotPaired) {
			t.Fatalf("unpaired: %v", err)
		}
	})
	t.Run("token refused for good", func(t *testing.T) {
		s, c := kit.Start(t, st, ldap)
		if _, err := c.Collect(context.Background(), hour); err != nil {
			t.Fatal(err)
		}
		s.SetFaults(simulator.Faults{RejectAll: true})
		if _, err := c.Collect(context.Background(), hour); !errors.Is(err, ErrLogin) {
			t.Fatalf("error %v, want ErrLogin", err)
		}
	})
	t.Run("endpoint with the API path", func(t *testing.T) {
		_, c := kit.Start(t, st, ldap, func(tg *collectors.Target) { tg.Endpoint += "/suite-api/api/" })
		if obs, err := c.Collect(context.Background(), hour); err != nil || len(obs) != 4 {
			t.Fatalf("%d observations, %v", len(obs), err)
		}
	})
}

// TestNoSecretsLogged: the password and the token are in no log line and
// no error, at debug level, through a login, a renewal and a refusal.
func TestNoSecretsLogged(t *testing.T) {
	st := kit.LoadState(t, "testdata/small/state.json")
	var buf bytes.Buffer
	s, c := kit.Start(t, st, ldap, collectortest.LogTo(&buf, slog.LevelDebug))
	collectortest.NoSecretsLogged(t, c, hour, &buf, st.Password, collectortest.Renewal{
		Held: func() []string { return []string{c.Tok.Value} }, Expire: s.ExpireSessions,
		Reject: func() { s.SetFaults(simulator.Faults{RejectAll: true}) }, Logged: "token refused (expired)"})
}

func TestIdentify(t *testing.T) {
	_, c := kit.Start(t, kit.LoadState(t, "testdata/small/state.json"), ldap)
	id, err := c.Identify(context.Background())
	if err != nil || !strings.HasPrefix(id.Version, "VMware Aria Operations") || id.Build == "" {
		t.Fatalf("Identify = %+v, %v", id, err)
	}
	var _ collectors.Identifier = c
	var _ collectors.Closer = c
}

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, ""},
		{`{"mode": "standalone", "page_size": 500, "auth_source": "ldap"}`, ""},
		{`{"mode": "flex"}`, `mode "flex": must be one of addon, standalone`},
		{`{"page_size": 9000}`, "page_size 9000: must be between 1 and 5000"},
		{`{"pagesize": 1}`, `unknown option "pagesize"`},
		{`{"mode": 1}`, "option mode: expected a string"},
	} {
		o, err := ParseOptions(json.RawMessage(tc.in))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: error %v, want %q", tc.in, err, tc.want)
		}
		if err == nil && (o.PageSize < 1 || o.Mode == "") {
			t.Errorf("%s: defaults not filled in: %+v", tc.in, o)
		}
	}
	if o, _ := ParseOptions(nil); o.Mode != collectors.AriaAddon {
		t.Errorf("default mode %q", o.Mode)
	}
}

// simBody is what the simulator answers to GET path (below the suite API)
// for st, logged in.
func simBody(t testing.TB, st simulator.State, path string) []byte {
	t.Helper()
	s := simulator.New(st)
	do := func(method, p string, body string, hdr http.Header) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "https://ops.example.net/suite-api/api"+p, strings.NewReader(body))
		req.Header = hdr
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code/100 != 2 {
			t.Fatalf("%s %s: %d %s", method, p, rec.Code, rec.Body)
		}
		return rec
	}
	cred, _ := json.Marshal(map[string]string{"username": st.User, "password": st.Password, "authSource": st.AuthSource})
	login := do(http.MethodPost, "/auth/token/acquire", string(cred), http.Header{})
	tk, err := parseToken(login.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return do(http.MethodGet, path, "", http.Header{"Authorization": {"OpsToken " + tk.Token}}).Body.Bytes()
}

// FuzzParseResources: a page of the resource list, then the rules on what
// it parsed.
func FuzzParseResources(f *testing.F) {
	for _, st := range kit.States(f) {
		f.Add(simBody(f, st, "/resources?resourceKind=VirtualMachine&page=0&pageSize=3"))
	}
	f.Add([]byte(`{"pageInfo":{"totalCount":-1},"resourceList":[]}`))
	f.Add([]byte(`{"resourceList":[{"resourceKey":{"adapterKindKey":"VMWARE","resourceIdentifiers":[{"identifierType":{"name":"VMEntityObjectID"},"value":" "}]}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseResources(b)
		collectortest.WantParseError(t, err)
		if err != nil {
			return
		}
		vms := make([]aria.VM, len(p.ResourceList))
		for i := range p.ResourceList {
			r := &p.ResourceList[i]
			vms[i] = aria.VM{Name: r.ResourceKey.Name, MoRef: r.ident("VMEntityObjectID"), VCenter: r.ident("VMEntityVCID"), Skip: skipOf(r)}
		}
		obs, sum := aria.Product{Kind: Kind, VCenterUUID: vcUUID, Mode: collectors.AriaStandalone}.Build(vms)
		if len(obs)+sum.Skipped[skipGone]+sum.Skipped[skipOtherAdapter]+sum.NoID+sum.Duplicates != len(vms) {
			t.Fatalf("%d observations and %+v from %d records", len(obs), sum, len(vms))
		}
		seen := map[string]bool{}
		for _, o := range obs {
			vc, moref, ok := strings.Cut(o.ObjectKey, "/moref/")
			if seen[o.ObjectKey] || !ok || vc == "" || moref == "" || o.Quantity != 1 {
				t.Fatalf("bad observation %+v", o)
			}
			seen[o.ObjectKey] = true
		}
	})
}

// FuzzParseLicenses: the licence list, then the edition rule.
func FuzzParseLicenses(f *testing.F) {
	for _, st := range kit.States(f) {
		f.Add(simBody(f, st, "/deployment/licenses"))
	}
	f.Add([]byte(`{"solutionLicenses":[{"edition":"Enterprise Advanced","expirationDate":-5}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := parseLicenses(b)
		collectortest.WantParseError(t, err)
		if err != nil {
			return
		}
		switch ed := edition(l.List, hour); ed {
		case "", EditionStandard, EditionAdvanced, EditionEnterprise:
		default:
			t.Fatalf("edition %q", ed)
		}
	})
}

// FuzzParseToken: the login answer and the error body.
func FuzzParseToken(f *testing.F) {
	st := kit.States(f)[0]
	s := simulator.New(st)
	for _, pw := range []string{st.Password, "wrong"} {
		cred, _ := json.Marshal(map[string]string{"username": st.User, "password": pw, "authSource": st.AuthSource})
		req := httptest.NewRequest(http.MethodPost, "https://ops.example.net/suite-api/api/auth/token/acquire", bytes.NewReader(cred))
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		f.Add(rec.Body.Bytes())
	}
	f.Add([]byte(`{"token":"","validity":1}`))
	f.Add([]byte(`{"token":"x","validity":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tk, err := parseToken(b)
		collectortest.WantParseError(t, err)
		if err == nil && (tk.Token == "" || tk.Validity < 0) {
			t.Fatalf("token %+v accepted", tk)
		}
		if msg := errorMessage(b); len(msg) > 3*len(b)+3 {
			t.Fatalf("error message of %d bytes from a body of %d", len(msg), len(b))
		}
	})
}

// benchRefs are 10,000 VMs of two vCenters.
func benchRefs() []simulator.VMRef {
	refs := make([]simulator.VMRef, 10000)
	for i := range refs {
		vc := vcUUID
		if i%10 == 9 {
			vc = otherVC
		}
		refs[i] = simulator.VMRef{VCenter: vc, MoRef: fmt.Sprintf("vm-%d", 10000+i), Name: fmt.Sprintf("vm-%05d", i)}
	}
	return refs
}

func BenchmarkCollect10000MonitoredVMs(b *testing.B) {
	for _, ps := range []int{DefaultPageSize, MaxPageSize} {
		b.Run(fmt.Sprintf("page_size=%d", ps), func(b *testing.B) {
			s := simulator.Monitoring("meter", "pw", "Advanced", benchRefs(), 10000)
			u, thumb := s.Start(b)
			c, err := newCollector(target(u, "meter", "pw", thumb, fmt.Sprintf(`{"page_size": %d}`, ps)))
			if err != nil {
				b.Fatal(err)
			}
			collectortest.Bench(b, c, hour, func(n int) bool { return n == 10000 })
		})
	}
}
