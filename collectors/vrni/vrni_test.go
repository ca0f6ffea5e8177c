package vrni

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
	"github.com/usagemeter/usagemeter/collectors/vrni/simulator"
)

var hour = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

const (
	vcUUID  = "564d1a2b-3c4d-5e6f-7a8b-9c0d1e2f3a4b"
	otherVC = "5022c0de-1111-4222-8333-944455556666" // vc02, known by option vcenter_uuids
	domain  = `{"domain": "corp.example"}`
)

func target(u, user, pass, thumb, opts string) collectors.Target {
	return collectors.Target{
		Kind: Kind, Endpoint: u, Username: user, Password: collectors.Secret(pass), Thumbprint: thumb,
		Options: json.RawMessage(opts), Timeout: 5 * time.Second,
		Paired: &collectors.Target{Kind: "vcenter", Endpoint: "https://VC01.corp.example/sdk", InstanceID: vcUUID},
	}
}

// kit serves a state and builds a collector pinned to the simulator.
var kit = collectortest.Kit[simulator.State, *simulator.NI, *Collector]{
	Sim: simulator.New, Load: simulator.LoadState, New: newCollector,
	Target: func(u, thumb string, st simulator.State, opts string) collectors.Target {
		return target(u, st.User, st.Password, thumb, opts)
	},
	Delay:       func(s *simulator.NI, d time.Duration) { s.SetFaults(simulator.Faults{Delay: d}) },
	ExpireAfter: func(s *simulator.NI, n int) { s.SetFaults(simulator.Faults{ExpireAfter: n}) },
}

// TestConformance runs the suite every REST collector passes, on a state of
// several pages.
func TestConformance(t *testing.T) {
	kit.Conformance(t, "testdata/several-pages/state.json", `{"domain": "corp.example", "page_size": 2}`)
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

const edgeOpts = `{"domain": "corp.example", "mode": "standalone", "page_size": 3, "vcenter_uuids": {"10.0.0.12": "5022C0DE-1111-4222-8333-944455556666"}}`

func TestRules(t *testing.T) {
	t.Run("edge cases", func(t *testing.T) {
		got := collectByName(t, "edge-cases", edgeOpts)
		for vm, want := range map[string]bool{
			"app-01":    true, // listed twice, on pages 1 and 3: once
			"off-01":    true, // powered off: still monitored
			"mapped-01": true, // vc02, its UUID from vcenter_uuids by its IP
			"lab-01":    true, // vc03, not known: its own key
			"aws-01":    false,
			"no-moref":  false,
		} {
			if _, ok := got[vm]; ok != want {
				t.Errorf("%s observed: %v, want %v", vm, ok, want)
			}
		}
		if len(got) != 4 {
			t.Errorf("%d monitored VMs, want 4", len(got))
		}
		for vm, key := range map[string]string{"app-01": vcUUID + "/moref/vm-501", "mapped-01": otherVC + "/moref/vm-61", "lab-01": "vc03.lab.example/moref/vm-77"} {
			if got[vm].ObjectKey != key {
				t.Errorf("%s: key %s, want %s", vm, got[vm].ObjectKey, key)
			}
		}
		if d := got["app-01"].Dims; d[DimVCenter] != "VC01.corp.example" || d[DimVRNI] != "127.0.0.1" { // the paired address as given
			t.Errorf("app-01 dims %v", d)
		}
		// The expired Enterprise licence does not count, SDWAN bills no VM edition: Advanced.
		if ed := got["off-01"].Edition; ed != "Advanced (standalone)" {
			t.Errorf("edition %q", ed)
		}
	})
	t.Run("several pages, highest licence", func(t *testing.T) {
		got := collectByName(t, "several-pages", `{"domain": "corp.example", "page_size": 4}`)
		if len(got) != 15 {
			t.Errorf("%d monitored VMs, want 15", len(got))
		}
		if ed := got["tenant-14"].Edition; ed != "Enterprise (Flex add-on)" {
			t.Errorf("edition %q, want Enterprise (Flex add-on) (the default mode)", ed)
		}
	})
	t.Run("unjoined named in the summary", func(t *testing.T) {
		st := kit.LoadState(t, "testdata/edge-cases/state.json")
		var buf bytes.Buffer
		_, c := kit.Start(t, st, edgeOpts, collectortest.LogTo(&buf, slog.LevelInfo))
		if _, err := c.Collect(context.Background(), hour); err != nil {
			t.Fatal(err)
		}
		for _, w := range []string{"unjoined_vms=2", otherVC + " (1 VMs)", "vc03.lab.example (1 VMs)", "listed_twice=1", "not_in_a_vcenter=1", "without_vcenter_or_moref=1"} {
			if !strings.Contains(buf.String(), w) {
				t.Errorf("the log does not say %q:\n%s", w, buf.String())
			}
		}
	})
	t.Run("licence editions", func(t *testing.T) {
		for _, tc := range []struct {
			ls   []license
			want string
		}{
			{[]license{{Edition: "ADVANCED"}, {Edition: "UNIVERSAL"}}, EditionEnterprise},
			{[]license{{Edition: "ENTERPRISE", Suspended: true}, {Edition: "advanced"}}, EditionAdvanced},
			{[]license{{Edition: "ENTERPRISE", Evaluation: true}}, EditionEnterprise},
			{[]license{{Edition: "NAV"}}, ""},
		} {
			if got := edition(tc.ls); got != tc.want {
				t.Errorf("%+v: %q, want %q", tc.ls, got, tc.want)
			}
		}
	})
}

func TestFaults(t *testing.T) {
	st := kit.LoadState(t, "testdata/several-pages/state.json")
	const opts = `{"domain": "corp.example", "page_size": 4}`
	for _, tc := range []struct {
		name   string
		faults simulator.Faults
		want   []string
	}{
		{"500 on page 2", simulator.Faults{FailPage: 2}, []string{"vrni 127.0.0.1: /entities/vms page 2", "HTTP 500", "the query service failed"}},
		{"500 on fetch", simulator.Faults{FailFetch: true}, []string{"page 1", "fetching 1 VCenterManager entities", "HTTP 500"}},
		{"malformed vcenter_manager", simulator.Faults{MalformField: "vcenter_manager"}, []string{"/entities/vms page 1", "malformed body: field results.entity.vcenter_manager"}},
		{"malformed vendor_id", simulator.Faults{MalformField: "vendor_id"}, []string{"field results.entity.vendor_id: expected a string, got a JSON number"}},
		{"malformed name", simulator.Faults{MalformField: "name"}, []string{"field results.entity.name: expected a string"}},
		{"truncated", simulator.Faults{Truncate: true}, []string{"/entities/vms page 1", "malformed body: truncated JSON"}},
		{"stuck cursor", simulator.Faults{StuckCursor: true}, []string{"/entities/vms page 2", "the cursor does not advance"}},
		{"always busy", simulator.Faults{ThrottleEvery: 1}, []string{"HTTP 503"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := kit.FaultError(t, hour, st, opts, func(s *simulator.NI) { s.SetFaults(tc.faults) })
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

// TestTokens: the token is kept, created again when its expiry has passed
// and when refused mid-paging, and deleted at the end.
func TestTokens(t *testing.T) {
	st := kit.LoadState(t, "testdata/several-pages/state.json")
	const opts = `{"domain": "corp.example", "page_size": 2}`
	t.Run("expired mid-paging", func(t *testing.T) {
		s, c := kit.Start(t, st, opts)
		s.SetFaults(simulator.Faults{ExpireAfter: 2})
		obs, err := c.Collect(context.Background(), hour)
		if err != nil || len(obs) != 15 {
			t.Fatalf("%d observations, %v", len(obs), err)
		}
		if s.Logins() < 5 {
			t.Errorf("%d logins", s.Logins())
		}
	})
	t.Run("expiry passed", func(t *testing.T) {
		s, c := kit.Start(t, st, opts)
		if _, err := c.Collect(context.Background(), hour); err != nil {
			t.Fatal(err)
		}
		c.Tok.Expires = time.Now().Add(-time.Second) // as the expiry the login answered has passed
		if _, err := c.Collect(context.Background(), hour); err != nil {
			t.Fatal(err)
		}
		if s.Logins() != 2 {
			t.Errorf("%d logins, want 2", s.Logins())
		}
	})
	t.Run("deleted", func(t *testing.T) {
		s, c := kit.Start(t, st, opts)
		if _, err := c.Collect(context.Background(), hour); err != nil {
			t.Fatal(err)
		}
		tok := c.Tok.Value
		if err := c.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodGet, "https://ni.example/api/ni/settings/licensing", nil)
		req.Header.Set("Authorization", "NetworkInsight "+tok)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("the deleted token still works: %d", rec.Code)
		}
	})
}

func TestBadInput(t *testing.T) {
	st := kit.LoadState(t, "testdata/small/state.json")
	t.Run("wrong password", func(t *testing.T) {
		s, c := kit.Start(t, st, domain, collectortest.WithPassword("nope-not-it"))
		err := collectortest.WrongPasswordTwice(t, c, s.Calls, "nope-not-it", "logging in as ni-meter")
		if !errors.Is(err, ErrLogin) {
			t.Fatalf("error %v is not ErrLogin", err)
		}
	})
	t.Run("local user instead of LDAP", func(t *testing.T) {
		_, c := kit.Start(t, st, "")
		if _, err := c.Collect(context.Background(), hour); !errors.Is(err, ErrLogin) {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("not paired", func(t *testing.T) {
		tg := target("ni.corp.example", "meter", "x", "", "")
		tg.Paired = nil
		if _, err := collectors.New(tg); !errors.Is(err, ErrNotPaired) {
			t.Fatalf("unpaired: %v", err)
		}
	})
	t.Run("token refused for good", func(t *testing.T) {
		s, c := kit.Start(t, st, domain)
		if _, err := c.Collect(context.Background(), hour); err != nil {
			t.Fatal(err)
		}
		s.SetFaults(simulator.Faults{RejectAll: true})
		if _, err := c.Collect(context.Background(), hour); !errors.Is(err, ErrLogin) {
			t.Fatalf("error %v, want ErrLogin", err)
		}
	})
}

// TestNoSecretsLogged: the password and the token are in no log line and
// no error, at debug level, through a login, a renewal and a refusal.
func TestNoSecretsLogged(t *testing.T) {
	st := kit.LoadState(t, "testdata/small/state.json")
	var buf bytes.Buffer
	s, c := kit.Start(t, st, domain, collectortest.LogTo(&buf, slog.LevelDebug))
	collectortest.NoSecretsLogged(t, c, hour, &buf, st.Password, collectortest.Renewal{
		Held: func() []string { return []string{c.Tok.Value} }, Expire: s.ExpireSessions,
		Reject: func() { s.SetFaults(simulator.Faults{RejectAll: true}) }, Logged: "token refused (expired)"})
}

func TestIdentify(t *testing.T) {
	_, c := kit.Start(t, kit.LoadState(t, "testdata/small/state.json"), domain)
	id, err := c.Identify(context.Background())
	if err != nil || id.Version != "API 1.2.0" {
		t.Fatalf("Identify = %+v, %v", id, err)
	}
	var _ collectors.Identifier = c
	var _ collectors.Closer = c
}

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, ""},
		{`{"mode": "standalone", "page_size": 1000, "domain": "corp", "vcenter_uuids": {"VC02.corp.example.": "5022c0de-1111-4222-8333-944455556666"}}`, ""},
		{`{"mode": "flex"}`, `mode "flex": must be one of addon, standalone`},
		{`{"page_size": 1001}`, "page_size 1001: must be between 1 and 1000"},
		{`{"vcenter_uuids": {"vc02": "nope"}}`, `vcenter_uuids["vc02"]: "nope" is not a vCenter instance UUID`},
		{`{"vcenter_uuids": {"https://vc02/sdk": "5022c0de-1111-4222-8333-944455556666"}}`, "is not a vCenter fqdn or IP address"},
		{`{"size": 1}`, `unknown option "size"`},
	} {
		o, err := ParseOptions(json.RawMessage(tc.in))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: error %v, want %q", tc.in, err, tc.want)
		}
		if err == nil && (o.PageSize < 1 || o.Mode == "") {
			t.Errorf("%s: defaults not filled in: %+v", tc.in, o)
		}
	}
	if o, _ := ParseOptions(json.RawMessage(`{"vcenter_uuids": {"VC02.corp.example.": "5022C0DE-1111-4222-8333-944455556666"}}`)); o.VCenterUUIDs["vc02.corp.example"] != otherVC {
		t.Errorf("addresses and UUIDs are not normalised: %v", o.VCenterUUIDs)
	}
}

// simCall is what the simulator answers to method path (below /api/ni)
// with body for st, logged in.
func simCall(t testing.TB, st simulator.State, method, path, body string) []byte {
	t.Helper()
	s := simulator.New(st)
	do := func(method, p string, body string, hdr http.Header) []byte {
		req := httptest.NewRequest(method, "https://ni.example.net/api/ni"+p, strings.NewReader(body))
		req.Header = hdr
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code/100 != 2 {
			t.Fatalf("%s %s: %d %s", method, p, rec.Code, rec.Body)
		}
		return rec.Body.Bytes()
	}
	cred, _ := json.Marshal(map[string]any{"username": st.User, "password": st.Password, "domain": map[string]string{"domain_type": "LDAP", "value": st.Domain}})
	tk, err := parseToken(do(http.MethodPost, "/auth/token", string(cred), http.Header{}))
	if err != nil {
		t.Fatal(err)
	}
	return do(method, path, body, http.Header{"Authorization": {"NetworkInsight " + tk.Token}})
}

// FuzzParseRefs: a page of references (VMs, vCenter managers).
func FuzzParseRefs(f *testing.F) {
	for _, st := range kit.States(f) {
		f.Add(simCall(f, st, http.MethodGet, "/entities/vms?size=3", ""))
		f.Add(simCall(f, st, http.MethodGet, "/entities/vcenter-managers", ""))
	}
	f.Add([]byte(`{"results":[],"cursor":"x","total_count":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := parseRefs(b)
		collectortest.WantParseError(t, err)
	})
}

// FuzzParseFetchedVMs: a fetch of VM entities, then the rules on what it
// parsed.
func FuzzParseFetchedVMs(f *testing.F) {
	for _, st := range kit.States(f) {
		var ids []map[string]string
		for i := range min(len(st.VMs), 4) {
			ids = append(ids, map[string]string{"entity_id": fmt.Sprintf("10000:1:%d", 5000+i), "entity_type": "VirtualMachine"})
		}
		body, _ := json.Marshal(map[string]any{"entity_ids": ids})
		f.Add(simCall(f, st, http.MethodPost, "/entities/fetch", string(body)))
	}
	f.Add([]byte(`{"results":[{"entity":{"vendor_id":" ","vcenter_manager":{"entity_id":""}}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fe, err := parseFetched[vmEntity](b)
		collectortest.WantParseError(t, err)
		if err != nil {
			return
		}
		vms := make([]aria.VM, len(fe.Results))
		for i, r := range fe.Results {
			vms[i] = aria.VM{Name: r.Entity.Name, MoRef: r.Entity.VendorID}
			if r.Entity.VCenterManager == nil {
				vms[i].Skip = skipNoVCenter
			} else {
				vms[i].VCenter = r.Entity.VCenterManager.ID
			}
		}
		obs, sum := aria.Product{Kind: Kind, VCenterUUID: vcUUID, Mode: collectors.AriaAddon}.Build(vms)
		if len(obs)+sum.Skipped[skipNoVCenter]+sum.NoID+sum.Duplicates != len(vms) {
			t.Fatalf("%d observations and %+v from %d records", len(obs), sum, len(vms))
		}
		for _, o := range obs {
			if vc, moref, ok := strings.Cut(o.ObjectKey, "/moref/"); !ok || vc == "" || moref == "" {
				t.Fatalf("bad key %q", o.ObjectKey)
			}
		}
	})
}

// FuzzParseFetchedVCenters: a fetch of vCenter managers, then the UUID
// rule.
func FuzzParseFetchedVCenters(f *testing.F) {
	for _, st := range kit.States(f) {
		var ids []map[string]string
		for _, v := range st.VCenters {
			ids = append(ids, map[string]string{"entity_id": v.ID, "entity_type": "VCenterManager"})
		}
		body, _ := json.Marshal(map[string]any{"entity_ids": ids})
		f.Add(simCall(f, st, http.MethodPost, "/entities/fetch", string(body)))
	}
	c, err := newCollector(target("ni.example", "u", "p", "", edgeOpts))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fe, err := parseFetched[vcEntity](b)
		collectortest.WantParseError(t, err)
		if err != nil {
			return
		}
		for _, r := range fe.Results {
			if u := c.uuidOf(r.Entity); strings.Contains(u, "/moref/") {
				t.Fatalf("vCenter %q", u)
			}
		}
	})
}

// FuzzParseLicensingAndToken: the licences, the login answer and the error
// body.
func FuzzParseLicensingAndToken(f *testing.F) {
	for _, st := range kit.States(f) {
		f.Add(simCall(f, st, http.MethodGet, "/settings/licensing", ""))
	}
	f.Add([]byte(`{"token":"abc==","expiry":1509332642427}`))
	f.Add([]byte(`{"token":"","expiry":-1}`))
	f.Add([]byte(`{"code":401,"message":"Invalid user name or password."}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := parseLicensing(b)
		collectortest.WantParseError(t, err)
		if err == nil {
			if ed := edition(l.Result.Licenses); ed != "" && ed != EditionAdvanced && ed != EditionEnterprise {
				t.Fatalf("edition %q", ed)
			}
		}
		tk, err := parseToken(b)
		collectortest.WantParseError(t, err)
		if err == nil && (tk.Token == "" || tk.Expiry < 0) {
			t.Fatalf("token %+v accepted", tk)
		}
		if msg := errorMessage(b); len(msg) > 3*len(b)+3 {
			t.Fatalf("error message of %d bytes from a body of %d", len(msg), len(b))
		}
	})
}

func BenchmarkCollect10000MonitoredVMs(b *testing.B) {
	refs := make([]simulator.VMRef, 10000)
	for i := range refs {
		refs[i] = simulator.VMRef{VCenter: vcUUID, MoRef: fmt.Sprintf("vm-%d", 10000+i), Name: fmt.Sprintf("vm-%05d", i)}
	}
	for _, ps := range []int{DefaultPageSize, MaxPageSize} {
		b.Run(fmt.Sprintf("page_size=%d", ps), func(b *testing.B) {
			s := simulator.Monitoring("meter", "pw", "ENTERPRISE", map[string]string{vcUUID: "vc01.corp.example"}, refs, 10000)
			u, thumb := s.Start(b)
			c, err := newCollector(target(u, "meter", "pw", thumb, fmt.Sprintf(`{"page_size": %d}`, ps)))
			if err != nil {
				b.Fatal(err)
			}
			collectortest.Bench(b, c, hour, func(n int) bool { return n == 10000 })
		})
	}
}
