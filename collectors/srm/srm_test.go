package srm

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
	"github.com/usagemeter/usagemeter/collectors/internal/rest"
	"github.com/usagemeter/usagemeter/collectors/srm/simulator"
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
var kit = collectortest.Kit[simulator.State, *simulator.SRM, *Collector]{
	Sim: simulator.New, Load: simulator.LoadState, New: newCollector,
	Target: func(u, thumb string, st simulator.State, opts string) collectors.Target {
		return target(u, st.User, st.Password, thumb, opts)
	},
	Delay:       func(s *simulator.SRM, d time.Duration) { s.SetFaults(simulator.Faults{Delay: d}) },
	ExpireAfter: func(s *simulator.SRM, n int) { s.SetFaults(simulator.Faults{ExpireAfter: n}) },
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

func collectByName(t *testing.T, dir, opts string) map[string]collectors.Observation {
	t.Helper()
	_, c := kit.Start(t, kit.LoadState(t, "testdata/"+dir+"/state.json"), opts)
	return collectortest.CollectBy(t, c, hour, func(o collectors.Observation) string { return o.Dims[DimVM] },
		func(o collectors.Observation) bool {
			return o.Metric != collectors.MetricVMProtected || o.Quantity != 1 || o.Unit != collectors.UnitCount ||
				o.ObjectKey != vcUUID+"/moref/"+o.Dims[DimMoref] || o.Edition != ""
		})
}

// TestRules checks the SRM rules on the case states, independently of the
// golden files.
func TestRules(t *testing.T) {
	t.Run("edge cases", func(t *testing.T) {
		got := collectByName(t, "edge-cases", "")
		for vm, want := range map[string]bool{
			"ledger-01":       true, // powered off: still protected
			"ledger-02":       true, // NOT_CONFIGURED: in the group, protection being configured
			"shared-app":      true, // in two groups: once
			"golden-template": true,
			"deleted-vm":      false, // MISSING_UNPROTECTED_VM
			"gone-01":         false, // the only VM of its group, deleted
			"no-id":           false,
		} {
			if _, ok := got[vm]; ok != want {
				t.Errorf("%s observed: %v, want %v", vm, ok, want)
			}
		}
		if len(got) != 4 {
			t.Errorf("%d protected VMs, want 4", len(got))
		}
		sh := got["shared-app"].Dims
		if sh[DimGroup] != "finance,finance-vvol" || sh[DimReplicationType] != "HBR,VVOL" || sh[DimMoref] != "vm-503" {
			t.Errorf("shared-app dims %v", sh)
		}
	})
	t.Run("several pages and pairings", func(t *testing.T) {
		got := collectByName(t, "several-pages", `{"page_size": 2}`)
		if len(got) != 18 {
			t.Errorf("%d protected VMs, want 18 (15 on pairing 1, 3 on pairing 2)", len(got))
		}
		if _, ok := got["remote-01"]; ok {
			t.Error("a VM of the remote vCenter's group is metered here")
		}
		if rt := got["archive-02"].Dims[DimReplicationType]; rt != "VSAN" {
			t.Errorf("archive-02 replication type %q", rt)
		}
	})
	t.Run("duplicate across pages", func(t *testing.T) {
		st := kit.LoadState(t, "testdata/small/state.json")
		g := &st.Pairings[0].Groups[0]
		g.VMs = append(g.VMs, simulator.VM{ID: "vm-3333", Name: "between"}, g.VMs[0]) // web-01 again, on page 2
		_, c := kit.Start(t, st, `{"page_size": 2}`)
		obs, err := c.Collect(context.Background(), hour)
		if err != nil || len(obs) != 5 {
			t.Fatalf("%d observations (want 4 + 1 new, web-01 once), %v", len(obs), err)
		}
		if got := collectByName(t, "edge-cases", `{"page_size": 1}`); len(got) != 4 {
			t.Errorf("edge cases one VM a page: %d protected VMs, want 4", len(got))
		}
	})
	t.Run("group deleted while read", func(t *testing.T) {
		s, c := kit.Start(t, kit.LoadState(t, "testdata/several-pages/state.json"), `{"page_size": 2}`)
		s.SetFaults(simulator.Faults{GoneGroup: "protection-group-301"})
		obs, err := c.Collect(context.Background(), hour)
		if err != nil || len(obs) != 13 {
			t.Fatalf("%d observations (want 18 less the 5 of the deleted group), %v", len(obs), err)
		}
	})
	t.Run("ids qualified by a server guid", func(t *testing.T) {
		obs, sk := build(vcUUID, "srm", []protectedVM{
			{id: "5022c0de-1111-4222-8333-944455556666:vm-9", name: "a", group: "g", replication: "hbr"},
			{id: "vm-9", name: "a", group: "g2", replication: "HBR"},
			{id: "  ", name: "blank"},
		})
		if len(obs) != 1 || sk.noID != 1 || obs[0].ObjectKey != vcUUID+"/moref/vm-9" || obs[0].Dims[DimGroup] != "g,g2" || obs[0].Dims[DimReplicationType] != "HBR" {
			t.Fatalf("build = %+v, skipped %+v", obs, sk)
		}
	})
}

func TestThrottled(t *testing.T) {
	s, c := kit.Start(t, kit.LoadState(t, "testdata/several-pages/state.json"), `{"page_size": 2}`)
	collectortest.Throttled(t, c, hour, 18, collectortest.Throttle{TooMany: true, Always: []string{"HTTP 503"},
		Set: func(every int, tooMany bool) {
			s.SetFaults(simulator.Faults{ThrottleEvery: every, Throttle429: tooMany})
		}})
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
			[]string{"srm 127.0.0.1: /pairings/pairing-dr-1/protection-management/groups/protection-group-300/vms page 2",
				"HTTP 500", "com.vmware.vcDr.api.fault.ServerFault (InternalServerError)"}, nil},
		{"malformed status", simulator.Faults{MalformField: "protection_status_details"}, 0,
			[]string{"/vms page 1", "malformed body: field list.protection_status_details"}, nil},
		{"malformed id", simulator.Faults{MalformField: "id"}, 0,
			[]string{"malformed body: field list.id: expected a string, got a JSON number"}, nil},
		{"malformed template", simulator.Faults{MalformField: "template"}, 0,
			[]string{"field list.template: expected a bool"}, nil},
		{"truncated", simulator.Faults{Truncate: true}, 0, []string{"malformed body: truncated JSON"}, nil},
		{"offset ignored", simulator.Faults{IgnoreOffset: true}, 0, []string{"/vms page 2", "the answer is for offset 0, asked for 2"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := kit.FaultError(t, hour, st, `{"page_size": 2}`, func(s *simulator.SRM) { s.SetFaults(tc.faults) }, collectortest.WithTimeout(tc.timeout))
			collectortest.WantError(t, err, tc.want, tc.is)
		})
	}
}

func TestBadInput(t *testing.T) {
	st := kit.LoadState(t, "testdata/small/state.json")
	t.Run("wrong password", func(t *testing.T) {
		s, c := kit.Start(t, st, "", collectortest.WithPassword("nope-not-it"))
		err := collectortest.WrongPasswordTwice(t, c, s.Calls, "nope-not-it", "logging in as srm-meter@vsphere.local")
		if !errors.Is(err, ErrLogin) || !errors.Is(err, collectors.ErrBadCredentials) {
			t.Fatalf("error %v is not ErrLogin/ErrBadCredentials", err)
		}
	})
	t.Run("not paired", func(t *testing.T) {
		tg := target("srm01.corp.example", "meter", "x", "", "")
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
		collectortest.SessionRefused(t, c, hour, func() { s.SetFaults(simulator.Faults{RejectAll: true}) }, ErrLogin)
	})
	t.Run("paired with another vCenter", func(t *testing.T) {
		other := st
		other.VCenter.ID = "50aa0000-0000-4000-8000-000000000009"
		_, c := kit.Start(t, other, "")
		_, err := c.Collect(context.Background(), hour)
		collectortest.WantError(t, err, []string{"no pairing has the paired vCenter " + vcUUID, "50aa0000-0000-4000-8000-000000000009"}, nil)
	})
	t.Run("API version not offered", func(t *testing.T) {
		v1 := st
		v1.Versions = []string{"v1"}
		_, c := kit.Start(t, v1, `{"api_version": "v2"}`)
		_, err := c.Collect(context.Background(), hour)
		collectortest.WantError(t, err, []string{"SRM REST API v2 is not offered at /api/rest/srm/v2", "HTTP 404", "versions offered: v1"}, nil)
		if errors.Is(err, collectors.ErrAuth) {
			t.Errorf("a missing version is not an authentication failure: %v", err)
		}
	})
	t.Run("v2", func(t *testing.T) {
		_, c := kit.Start(t, st, `{"api_version": "v2"}`)
		obs, err := c.Collect(context.Background(), hour)
		if err != nil || len(obs) != 4 {
			t.Fatalf("v2: %d observations, %v", len(obs), err)
		}
	})
	t.Run("endpoint with the API path", func(t *testing.T) {
		_, c := kit.Start(t, st, "", func(tg *collectors.Target) { tg.Endpoint += "/api/rest/srm/v1/" })
		if obs, err := c.Collect(context.Background(), hour); err != nil || len(obs) != 4 {
			t.Fatalf("%d observations, %v", len(obs), err)
		}
	})
	t.Run("http endpoint", func(t *testing.T) {
		collectortest.HTTPSOnly(t, target("http://srm01.corp.example", "m", "p", "", ""))
	})
}

// TestNoSecretsLogged: the password and the session id are in no log line
// and no error, at debug level, through a login, a renewal and a refusal.
func TestNoSecretsLogged(t *testing.T) {
	st := kit.LoadState(t, "testdata/small/state.json")
	var buf bytes.Buffer
	s, c := kit.Start(t, st, "", collectortest.LogTo(&buf, slog.LevelDebug))
	collectortest.NoSecretsLogged(t, c, hour, &buf, st.Password, collectortest.Renewal{
		Held: func() []string { return []string{c.session} }, Expire: s.ExpireSessions,
		Reject: func() { s.SetFaults(simulator.Faults{RejectAll: true}) }, Logged: "SRM session expired"})
}

func TestIdentify(t *testing.T) {
	st := kit.LoadState(t, "testdata/small/state.json")
	_, c := kit.Start(t, st, "")
	id, err := c.Identify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if id.InstanceID != st.SRM.ID || id.Name != "srm01.corp.example" {
		t.Fatalf("Identify = %+v", id)
	}
	_, c = kit.Start(t, kit.LoadState(t, "testdata/empty/state.json"), "")
	if id, err := c.Identify(context.Background()); err != nil || id.InstanceID != "" {
		t.Fatalf("unpaired SRM: Identify = %+v, %v", id, err)
	}
	var _ collectors.Identifier = c
	var _ collectors.Closer = c
}

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, ""},
		{`null`, ""},
		{`{"api_version": "v2", "page_size": 500}`, ""},
		{`{"api_version": "v3"}`, `api_version "v3": must be one of v1, v2`},
		{`{"page_size": 5000}`, "page_size 5000: must be between 1 and 1000"},
		{`{"page_size": -1}`, "page_size -1: must be between 1 and 1000"},
		{`{"offset": 1}`, `unknown option "offset"`},
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

// simBody is what the simulator answers to GET path (below the API base)
// for st, logged in.
func simBody(t testing.TB, st simulator.State, path string) []byte {
	t.Helper()
	s := simulator.New(st)
	do := func(method, p string, hdr http.Header) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "https://srm.example.net/api/rest/srm/v1"+p, nil)
		req.Header = hdr
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code/100 != 2 {
			t.Fatalf("%s %s: %d %s", method, p, rec.Code, rec.Body)
		}
		return rec
	}
	login := do(http.MethodPost, "/session", http.Header{"Authorization": {rest.Basic(st.User, st.Password)}})
	id, err := parseSession(login.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return do(http.MethodGet, path, http.Header{"X-Dr-Session": {id}}).Body.Bytes()
}

// FuzzParseVMList: a group's VM list, then the rules on what it parsed.
func FuzzParseVMList(f *testing.F) {
	for _, st := range kit.States(f) {
		for _, p := range st.Pairings {
			for _, g := range p.Groups {
				f.Add(simBody(f, st, "/pairings/"+p.ID+"/protection-management/groups/"+g.ID+"/vms?limit=2"))
			}
		}
	}
	f.Add([]byte(`{"list":[{"id":"vm-1","protection_status_details":{"status":"OK"}}],"_meta":{"total":-1}}`))
	f.Add([]byte(`{"list":[{"id":":","name":"x"}],"_meta":{"links":{"next":{"href":"h"}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseList[groupVM](b)
		collectortest.WantParseError(t, err)
		if err != nil {
			return
		}
		vms := make([]protectedVM, len(p.List))
		for i, v := range p.List {
			vms[i] = protectedVM{id: v.ID, name: v.Name, group: "g", replication: "HBR", status: v.Status.Status}
		}
		obs, sk := build(vcUUID, "srm", vms)
		if len(obs)+sk.missing+sk.noID > len(vms) {
			t.Fatalf("%d observations and %+v skipped from %d records", len(obs), sk, len(vms))
		}
		seen := map[string]bool{}
		for _, o := range obs {
			if seen[o.ObjectKey] || !strings.HasPrefix(o.ObjectKey, vcUUID+"/moref/") || o.ObjectKey == vcUUID+"/moref/" || o.Quantity != 1 {
				t.Fatalf("bad observation %+v", o)
			}
			seen[o.ObjectKey] = true
		}
	})
}

// FuzzParsePairingsAndGroups: the pairing and protection group lists.
func FuzzParsePairingsAndGroups(f *testing.F) {
	for _, st := range kit.States(f) {
		f.Add(simBody(f, st, "/pairings"))
		for _, p := range st.Pairings {
			f.Add(simBody(f, st, "/pairings/"+p.ID+"/protection-management/groups?limit=2"))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := parseList[pairing](b)
		collectortest.WantParseError(t, err)
		_, err = parseList[group](b)
		collectortest.WantParseError(t, err)
	})
}

// FuzzParseSession: the login answer and the error body.
func FuzzParseSession(f *testing.F) {
	for _, st := range kit.States(f)[:1] {
		s := simulator.New(st)
		for _, pw := range []string{st.Password, "wrong"} {
			req := httptest.NewRequest(http.MethodPost, "https://srm.example.net/api/rest/srm/v1/session", nil)
			req.SetBasicAuth(st.User, pw)
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			f.Add(rec.Body.Bytes())
		}
	}
	f.Add([]byte(`{"session_id":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := parseSession(b)
		collectortest.WantParseError(t, err)
		if err == nil && id == "" {
			t.Fatal("empty session id accepted")
		}
		// Invalid UTF-8 decodes to U+FFFD (3 bytes a byte): the message
		// never grows more than that from the body.
		if msg := errorMessage(b); len(msg) > 3*len(b)+3 {
			t.Fatalf("error message of %d bytes from a body of %d", len(msg), len(b))
		}
	})
}

// benchState is one pairing with 20 groups of 500 VMs: 10,000 protected VMs.
func benchState() simulator.State {
	st := simulator.State{User: "meter", Password: "pw", VCenter: simulator.Server{ID: vcUUID, Name: "vc01"}}
	p := simulator.Pairing{ID: "pairing-1", RemoteVC: simulator.Server{ID: "5022c0de-1111-4222-8333-944455556666", Name: "vc02"},
		RemoteSRM: simulator.Server{ID: "7a2b3c4d-5e6f-4071-8293-a4b5c6d7e8f9", Name: "srm02"}}
	types := []string{"HBR", "ABR", "VVOL", "VSAN"}
	for g := range 20 {
		grp := simulator.Group{ID: fmt.Sprintf("protection-group-%d", 100+g), Name: fmt.Sprintf("tenant-%02d", g), ReplicationType: types[g%4]}
		for i := range 500 {
			n := g*500 + i
			grp.VMs = append(grp.VMs, simulator.VM{ID: fmt.Sprintf("vm-%d", 10000+n), Name: fmt.Sprintf("vm-%05d", n)})
		}
		p.Groups = append(p.Groups, grp)
	}
	st.Pairings = []simulator.Pairing{p}
	return st
}

func BenchmarkCollect10000ProtectedVMs(b *testing.B) {
	st := benchState()
	for _, ps := range []int{DefaultPageSize, MaxPageSize} {
		b.Run(fmt.Sprintf("page_size=%d", ps), func(b *testing.B) {
			_, c := kit.Start(b, st, fmt.Sprintf(`{"page_size": %d}`, ps))
			collectortest.Bench(b, c, hour, func(n int) bool { return n == 10000 })
		})
	}
}
