package vcda

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
	"github.com/usagemeter/usagemeter/collectors/vcda/simulator"
)

var hour = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

func target(u, user, pass, thumb, opts string) collectors.Target {
	return collectors.Target{
		Kind: Kind, Endpoint: u, Username: user, Password: collectors.Secret(pass), Thumbprint: thumb,
		Options: json.RawMessage(opts), Timeout: 5 * time.Second,
	}
}

// kit serves a state and builds a collector pinned to the simulator.
var kit = collectortest.Kit[simulator.State, *simulator.VCDA, *Collector]{
	Sim: simulator.New, Load: simulator.LoadState, New: newCollector,
	Target: func(u, thumb string, st simulator.State, opts string) collectors.Target {
		return target(u, st.User, st.Password, thumb, opts)
	},
	Delay:       func(s *simulator.VCDA, d time.Duration) { s.SetFaults(simulator.Faults{Delay: d}) },
	ExpireAfter: func(s *simulator.VCDA, n int) { s.SetFaults(simulator.Faults{ExpireAfter: n}) },
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

// collectByVM collects a case and returns its observations by metric and
// VM name, checking what every observation must be.
func collectByVM(t *testing.T, st simulator.State, opts string) map[string]collectors.Observation {
	t.Helper()
	_, c := kit.Start(t, st, opts)
	return collectortest.CollectBy(t, c, hour, func(o collectors.Observation) string { return o.Metric + " " + o.Dims[DimVM] },
		func(o collectors.Observation) bool {
			return (o.Metric != collectors.MetricVMProtected && o.Metric != collectors.MetricVMMigrated) ||
				o.Quantity != 1 || o.Unit != collectors.UnitCount || o.Edition != "" || o.Dims[DimRulesVersion] != RulesVersion ||
				o.Dims[DimVCDA] != "127.0.0.1" || !strings.HasSuffix(o.ObjectKey, "/"+o.Dims[DimVMID])
		})
}

const (
	prot = collectors.MetricVMProtected + " "
	migr = collectors.MetricVMMigrated + " "
)

// TestRules checks the VCDA rules on the case states, independently of the
// golden files.
func TestRules(t *testing.T) {
	t.Run("edge cases", func(t *testing.T) {
		got := collectByVM(t, kit.LoadState(t, "testdata/edge-cases/state.json"), "")
		for k, want := range map[string]bool{
			prot + "archive-01": true,  // powered off: still protected
			prot + "billing-01": true,  // protected to one site...
			migr + "billing-01": true,  // ...and migrated to another: once in each
			prot + "mail-01":    true,  // replicated twice (outgoing): once
			prot + "hr-app":     true,  // a VM replication and in a vApp replication: once
			prot + "hr-db":      true,  // a vApp replication's VM, powered off
			migr + "move-01":    true,  // a migrated vApp: each VM
			migr + "move-02":    true,  //
			prot + "deleted-vm": false, // its VM no longer exists
			prot + "":           false,
		} {
			if _, ok := got[k]; ok != want {
				t.Errorf("%s observed: %v, want %v", k, ok, want)
			}
		}
		if len(got) != 8 {
			t.Errorf("%d observations, want 8", len(got))
		}
		if d := got[prot+"mail-01"].Dims; d[DimDirection] != DirOutgoing || d[DimDestSite] != "cloud-fra,cloud-lon" || d[DimSourceSite] != "cloud-ams" {
			t.Errorf("mail-01 dims %v", d)
		}
		if d := got[prot+"hr-app"].Dims; d[DimVApp] != "hr-suite" || d[DimOrg] != "umbrella" || d[DimDirection] != DirIncoming {
			t.Errorf("hr-app dims %v", d)
		}
		if d := got[migr+"billing-01"].Dims; d[DimDirection] != DirOther || d[DimDestSite] != "cloud-lon" {
			t.Errorf("billing-01 migration dims %v", d)
		}
		if got[prot+"billing-01"].ObjectKey != got[migr+"billing-01"].ObjectKey {
			t.Error("the same VM has two identities")
		}
	})
	t.Run("vCenter identity of a replication from on-premises", func(t *testing.T) {
		got := collectByVM(t, kit.LoadState(t, "testdata/small/state.json"), "")
		o := got[prot+"erp-app"]
		if o.ObjectKey != "0c4268dc-1786-404a-bea2-52f1709a732f/moref/vm-1042" || o.Dims[DimVCenterUUID] != "0c4268dc-1786-404a-bea2-52f1709a732f" || o.Dims[DimOrg] != "globex" {
			t.Errorf("erp-app %+v", o)
		}
		if o := got[prot+"web-01"]; o.ObjectKey != "cloud-fra/vm/4e7fa4b1-e8d9-45bd-a91d-852c46b7a001" || o.Dims[DimVApp] != "webshop" {
			t.Errorf("web-01 %+v", o)
		}
		if _, ok := got[migr+"legacy-crm"]; !ok || len(got) != 4 {
			t.Errorf("small: %d observations, legacy-crm migrated: %v", len(got), ok)
		}
	})
	t.Run("several pages", func(t *testing.T) {
		st := kit.LoadState(t, "testdata/several-pages/state.json")
		for _, opts := range []string{`{"page_size": 2}`, `{"page_size": 1}`, `{"page_size": 50}`, ``} {
			got := collectByVM(t, st, opts)
			n := map[string]int{}
			for _, o := range got {
				n[o.Metric]++
			}
			// 13 cloud VMs (2 migrated), 3 on-premises, 3 vApps of 3 VMs (one migrated).
			if n[collectors.MetricVMProtected] != 20 || n[collectors.MetricVMMigrated] != 5 {
				t.Errorf("%s: %v, want 20 protected and 5 migrated", opts, n)
			}
		}
	})
	t.Run("duplicates across pages", func(t *testing.T) {
		st := kit.LoadState(t, "testdata/small/state.json")
		st.VMs = append(st.VMs, simulator.VMReplication{ID: "C4-x", VMID: "4e7fa4b1-0000-4000-8000-000000000009", VMName: "between",
			Source: simulator.End{Site: "cloud-fra", Org: "acme"}, Dest: simulator.End{Site: "cloud-ams", Org: "acme"}}, st.VMs[0])
		if got := collectByVM(t, st, `{"page_size": 2}`); len(got) != 5 {
			t.Errorf("%d observations (want 4 + 1 new, web-01 once on page 3)", len(got))
		}
	})
	t.Run("local site from the options", func(t *testing.T) {
		got := collectByVM(t, kit.LoadState(t, "testdata/edge-cases/state.json"), `{"site": "cloud-lon"}`)
		if d := got[migr+"billing-01"].Dims; d[DimDirection] != DirIncoming {
			t.Errorf("billing-01 to cloud-lon seen from cloud-lon: %v", d)
		}
	})
	t.Run("no VM id", func(t *testing.T) {
		blank := "  "
		obs, skipped := build("s", "h", []replication{
			{vmReplication: vmReplication{VMName: "a", Source: endpoint{Site: "s", VMID: &blank}}},
			{vmReplication: vmReplication{VMName: "b", Source: endpoint{Site: "s"}}},
		})
		if len(obs) != 0 || skipped != 2 {
			t.Fatalf("build = %+v, skipped %d", obs, skipped)
		}
	})
}

func TestThrottled(t *testing.T) {
	s, c := kit.Start(t, kit.LoadState(t, "testdata/several-pages/state.json"), `{"page_size": 2}`)
	collectortest.Throttled(t, c, hour, 25, collectortest.Throttle{TooMany: true, Always: []string{"HTTP 503"},
		Set: func(every int, tooMany bool) {
			s.SetFaults(simulator.Faults{ThrottleEvery: every, Throttle429: tooMany})
		}})
}

func TestFaults(t *testing.T) {
	st := kit.LoadState(t, "testdata/several-pages/state.json")
	for _, tc := range []struct {
		name   string
		faults simulator.Faults
		want   []string
	}{
		{"500 on page 3", simulator.Faults{FailPage: 3},
			[]string{"vcda 127.0.0.1: /vm-replications page 3", "HTTP 500", "General server failure. (GeneralServerFailure)"}},
		{"malformed isMigration", simulator.Faults{MalformField: "isMigration"},
			[]string{"/vm-replications page 1", "malformed body: field items.isMigration: expected a bool"}},
		{"malformed source", simulator.Faults{MalformField: "source"},
			[]string{"/vm-replications page 1", "field items.source"}},
		{"malformed vmName", simulator.Faults{MalformField: "vmName"},
			[]string{"field items.vmName: expected a string, got a JSON number"}},
		{"truncated", simulator.Faults{Truncate: true}, []string{"/vm-replications page 1", "malformed body: truncated JSON"}},
		{"offset ignored", simulator.Faults{IgnoreOffset: true}, []string{"/vm-replications page 2",
			"the answer for offset 2 starts with C4-5e0e0000-0000-4a5b-8c6d-7e8f9a0b1c00 again, as the page before: the server ignores offset"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := kit.FaultError(t, hour, st, `{"page_size": 2}`, func(s *simulator.VCDA) { s.SetFaults(tc.faults) })
			collectortest.WantError(t, err, tc.want, nil)
		})
	}
	t.Run("malformed in a vApp replication", func(t *testing.T) {
		st := kit.LoadState(t, "testdata/edge-cases/state.json")
		st.VMs = nil
		s, c := kit.Start(t, st, "")
		s.SetFaults(simulator.Faults{MalformField: "isMigration"})
		_, err := c.Collect(context.Background(), hour)
		collectortest.WantError(t, err, []string{"/vapp-replications page 1", "field items.vmReplications.isMigration"}, nil)
	})
}

func TestBadInput(t *testing.T) {
	st := kit.LoadState(t, "testdata/small/state.json")
	t.Run("wrong password", func(t *testing.T) {
		s, c := kit.Start(t, st, "", collectortest.WithPassword("nope-not-it"))
		err := collectortest.WrongPasswordTwice(t, c, s.Calls, "nope-not-it", "logging in as meter@System")
		if !errors.Is(err, ErrLogin) || !errors.Is(err, collectors.ErrBadCredentials) {
			t.Fatalf("error %v is not ErrLogin/ErrBadCredentials", err)
		}
	})
	t.Run("session refused", func(t *testing.T) {
		s, c := kit.Start(t, st, "")
		collectortest.SessionRefused(t, c, hour, func() { s.SetFaults(simulator.Faults{RejectAll: true}) }, ErrLogin)
	})
	t.Run("API version not offered", func(t *testing.T) {
		old := st
		old.Versions = []string{"4.0", "4.1", "4.2"}
		_, c := kit.Start(t, old, "")
		_, err := c.Collect(context.Background(), hour)
		collectortest.WantError(t, err, []string{"the VCDA API version 4.5 is not offered", "HTTP 406",
			"UnsupportedApiVersion", "versions offered: 4.0, 4.1, 4.2 (option api_version)"}, nil)
		if errors.Is(err, collectors.ErrAuth) {
			t.Errorf("a missing version is not an authentication failure: %v", err)
		}
		_, c = kit.Start(t, old, `{"api_version": "4.1"}`)
		if obs, err := c.Collect(context.Background(), hour); err != nil || len(obs) != 4 {
			t.Fatalf("4.1: %d observations, %v", len(obs), err)
		}
	})
	t.Run("login types", func(t *testing.T) {
		for _, auth := range []string{AuthVCD, AuthLocal, AuthSSO} {
			_, c := kit.Start(t, st, `{"auth": "`+auth+`"}`)
			if obs, err := c.Collect(context.Background(), hour); err != nil || len(obs) != 4 {
				t.Fatalf("%s: %d observations, %v", auth, len(obs), err)
			}
		}
	})
	t.Run("http endpoint", func(t *testing.T) {
		collectortest.HTTPSOnly(t, target("http://vcda.corp.example", "m", "p", "", ""))
	})
	t.Run("no user", func(t *testing.T) {
		if _, err := collectors.New(target("vcda.corp.example", "", "p", "", "")); err == nil || !strings.Contains(err.Error(), "user name") {
			t.Fatalf("error %v", err)
		}
	})
}

// TestNoSecretsLogged: the password and the session token are in no log
// line and no error, at debug level, through a login, a renewal and a
// refusal.
func TestNoSecretsLogged(t *testing.T) {
	st := kit.LoadState(t, "testdata/small/state.json")
	var buf bytes.Buffer
	s, c := kit.Start(t, st, "", collectortest.LogTo(&buf, slog.LevelDebug))
	collectortest.NoSecretsLogged(t, c, hour, &buf, st.Password, collectortest.Renewal{
		Held: func() []string { return []string{c.token} }, Expire: s.ExpireSessions,
		Reject: func() { s.SetFaults(simulator.Faults{RejectAll: true}) }, Logged: "VCDA session expired"})
}

func TestIdentify(t *testing.T) {
	st := kit.LoadState(t, "testdata/small/state.json")
	_, c := kit.Start(t, st, "")
	id, err := c.Identify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if id.InstanceID != st.InstanceID || id.Name != "cloud-ams" || id.Version == "" {
		t.Fatalf("Identify = %+v", id)
	}
	var _ collectors.Identifier = c
	var _ collectors.Closer = c
	if k, ok := collectors.Lookup(Kind); !ok || k.DisplayName != "Cloud Director Availability" || k.PairsWith != "" {
		t.Fatalf("kind %+v", k)
	}
}

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, ""},
		{`null`, ""},
		{`{"api_version": "4.7", "page_size": 500, "auth": "local", "site": "cloud-ams"}`, ""},
		{`{"api_version": "5.0"}`, `api_version "5.0": must be one of 4.0, 4.1`},
		{`{"auth": "basic"}`, `auth "basic": must be one of vcd, local, sso`},
		{`{"page_size": 5000}`, "page_size 5000: must be between 1 and 1000"},
		{`{"page_size": -1}`, "page_size -1: must be between 1 and 1000"},
		{`{"offset": 1}`, `unknown option "offset"`},
	} {
		o, err := ParseOptions(json.RawMessage(tc.in))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: error %v, want %q", tc.in, err, tc.want)
		}
		if err == nil && (o.PageSize < 1 || o.APIVersion == "" || o.Auth == "") {
			t.Errorf("%s: defaults not filled in: %+v", tc.in, o)
		}
	}
}

// simBody is what the simulator answers to GET path for st, logged in.
func simBody(t testing.TB, st simulator.State, path string) []byte {
	t.Helper()
	s := simulator.New(st)
	do := func(method, p string, body string, hdr http.Header) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "https://vcda.example.net"+p, strings.NewReader(body))
		req.Header = hdr
		req.Header.Set("Accept", mediaType(DefaultAPIVersion))
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code/100 != 2 {
			t.Fatalf("%s %s: %d %s", method, p, rec.Code, rec.Body)
		}
		return rec
	}
	login := do(http.MethodPost, "/sessions", fmt.Sprintf(`{"type":"vcdCredentials","vcdUser":%q,"vcdPassword":%q}`, st.User, st.Password), http.Header{})
	hdr := http.Header{}
	hdr.Set(authHeader, login.Header().Get(authHeader))
	return do(http.MethodGet, path, "", hdr).Body.Bytes()
}

// checkObs is what build must give whatever it was fed.
func checkObs(t *testing.T, obs []collectors.Observation, skipped, records int) {
	if len(obs)+skipped > records || skipped < 0 {
		t.Fatalf("%d observations and %d skipped from %d records", len(obs), skipped, records)
	}
	seen := map[string]bool{}
	for _, o := range obs {
		k := o.Metric + " " + o.ObjectKey
		if seen[k] || o.Quantity != 1 || o.ObjectKey == "" || strings.HasSuffix(o.ObjectKey, "/") ||
			(o.Metric != collectors.MetricVMProtected && o.Metric != collectors.MetricVMMigrated) {
			t.Fatalf("bad observation %+v", o)
		}
		seen[k] = true
	}
}

// FuzzParseVMReplications: a /vm-replications page, then the rules on
// what it parsed.
func FuzzParseVMReplications(f *testing.F) {
	for _, st := range kit.States(f) {
		f.Add(simBody(f, st, "/vm-replications?limit=2"))
	}
	f.Add([]byte(`{"items":[{"source":{"vmId":"x","site":""}}],"total":-1}`))
	f.Add([]byte(`{"items":[{"isMigration":true,"source":{"vmId":"vm-1","vimServerUuid":" "}},{"source":{"vmId":null}}],"total":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePage[vmReplication](b)
		collectortest.WantParseError(t, err)
		if err != nil {
			return
		}
		reps := make([]replication, len(p.Items))
		for i := range p.Items {
			reps[i] = replication{vmReplication: p.Items[i]}
		}
		obs, skipped := build("cloud-ams", "vcda", reps)
		checkObs(t, obs, skipped, len(reps))
	})
}

// FuzzParseVAppReplications: a /vapp-replications page.
func FuzzParseVAppReplications(f *testing.F) {
	for _, st := range kit.States(f) {
		f.Add(simBody(f, st, "/vapp-replications?limit=2"))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePage[vappReplication](b)
		collectortest.WantParseError(t, err)
		if err != nil {
			return
		}
		var reps []replication
		for _, va := range p.Items {
			for _, r := range va.VMReplications {
				r.IsMigration = va.IsMigration
				reps = append(reps, replication{vmReplication: r, vapp: va.Source.VAppName})
			}
		}
		obs, skipped := build("", "vcda", reps)
		checkObs(t, obs, skipped, len(reps))
	})
}

// FuzzParseSessionAndAbout: the login answer, /diagnostics/about and the
// error body.
func FuzzParseSessionAndAbout(f *testing.F) {
	st := kit.States(f)[0]
	f.Add(simBody(f, st, "/sessions"))
	f.Add(simBody(f, st, "/diagnostics/about"))
	s := simulator.New(st)
	for _, accept := range []string{mediaType("4.5"), mediaType("9.9")} {
		req := httptest.NewRequest(http.MethodPost, "https://vcda.example.net/sessions", strings.NewReader(`{"type":"localUser","localUser":"root","localPassword":"x"}`))
		req.Header.Set("Accept", accept)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		f.Add(rec.Body.Bytes())
	}
	f.Add([]byte(`{"authenticatedSites":[{}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := parseSession(b)
		collectortest.WantParseError(t, err)
		_, err = parseAbout(b)
		collectortest.WantParseError(t, err)
		// Invalid UTF-8 decodes to U+FFFD (3 bytes a byte): the message
		// never grows more than that from the body.
		if msg := errorMessage(b); len(msg) > 3*len(b)+3 {
			t.Fatalf("error message of %d bytes from a body of %d", len(msg), len(b))
		}
	})
}

// benchState is 10,000 replications: 8,000 VM replications (one in ten a
// migration, one in five from an on-premises vCenter) and 400 vApp
// replications of 5 VMs.
func benchState() simulator.State {
	st := simulator.State{User: "meter@System", Password: "pw", Site: "cloud-ams", InstanceID: "6959cd85-5bd9-47a2-886b-3d938e3c0856", MaxLimit: 1000}
	src := simulator.End{Site: "cloud-fra", Org: "acme"}
	dst := simulator.End{Site: "cloud-ams", Org: "acme"}
	for i := range 8000 {
		r := simulator.VMReplication{ID: fmt.Sprintf("C4-%08d-0000-4000-8000-000000000000", i), VMID: fmt.Sprintf("4e7fa4b1-0000-4000-8000-%012d", i),
			VMName: fmt.Sprintf("vm-%05d", i), Migration: i%10 == 0, Source: src, Dest: dst}
		if i%5 == 1 {
			r.VMID, r.VimServer, r.Source = fmt.Sprintf("vm-%d", 1000+i), "0c4268dc-1786-404a-bea2-52f1709a732f", simulator.End{Site: "onprem"}
		}
		st.VMs = append(st.VMs, r)
	}
	for a := range 400 {
		va := simulator.VAppReplication{ID: fmt.Sprintf("C4VAPP-%08d", a), VAppID: fmt.Sprintf("vapp-%d", a), VAppName: fmt.Sprintf("vapp-%03d", a), Source: src, Dest: dst}
		for j := range 5 {
			va.VMs = append(va.VMs, simulator.VMReplication{ID: fmt.Sprintf("C4-v%07d-%d", a, j), VMID: fmt.Sprintf("4e7fa4b1-0000-4000-9000-%08d%04d", a, j),
				VMName: fmt.Sprintf("vapp-%03d-%d", a, j), Source: src, Dest: dst})
		}
		st.VApps = append(st.VApps, va)
	}
	return st
}

func BenchmarkCollect10000Replications(b *testing.B) {
	st := benchState()
	for _, ps := range []int{DefaultPageSize, MaxPageSize} {
		b.Run(fmt.Sprintf("page_size=%d", ps), func(b *testing.B) {
			_, c := kit.Start(b, st, fmt.Sprintf(`{"page_size": %d}`, ps))
			collectortest.Bench(b, c, hour, func(n int) bool { return n == 10000 })
		})
	}
}
