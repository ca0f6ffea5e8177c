package horizondaas

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
	"github.com/usagemeter/usagemeter/collectors/horizondaas/simulator"
)

var hour = time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)

func target(u, user, pass, thumb, opts string) collectors.Target {
	return collectors.Target{
		Kind: Kind, Endpoint: u, Username: user, Password: collectors.Secret(pass), Thumbprint: thumb,
		Options: json.RawMessage(opts), Timeout: 5 * time.Second,
	}
}

// login is the case states' user with their domain.
func login(st simulator.State) string { return st.Domain + `\` + st.User }

// kit serves a state and builds a collector pinned to the simulator.
var kit = collectortest.Kit[simulator.State, *simulator.DaaS, *Collector]{
	Sim: simulator.New, Load: simulator.LoadState, New: newCollector,
	Target: func(u, thumb string, st simulator.State, opts string) collectors.Target {
		return target(u, login(st), st.Password, thumb, opts)
	},
	Delay:       func(s *simulator.DaaS, d time.Duration) { s.SetFaults(simulator.Faults{Delay: d}) },
	ExpireAfter: func(s *simulator.DaaS, n int) { s.SetFaults(simulator.Faults{ExpireAfter: n}) },
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

func collectByTenant(t *testing.T, dir, opts string) map[string]collectors.Observation {
	t.Helper()
	_, c := kit.Start(t, kit.LoadState(t, "testdata/"+dir+"/state.json"), opts)
	return collectortest.CollectBy(t, c, hour, func(o collectors.Observation) string { return o.Dims[DimTenant] },
		func(o collectors.Observation) bool {
			return o.Metric != collectors.MetricConnections || o.Unit != collectors.UnitCount || !strings.HasPrefix(o.ObjectKey, "tenant/") ||
				strings.Contains(o.ObjectKey, o.Dims[DimTenant]) || o.Dims[DimRulesVersion] != RulesVersion
		})
}

// TestRules checks the DaaS rules on the case states, independently of the
// golden files.
func TestRules(t *testing.T) {
	t.Run("edge cases", func(t *testing.T) {
		got := collectByTenant(t, "edge-cases", "")
		for name, want := range map[string]struct {
			n       float64
			edition string
		}{
			"Apps Only":    {2, "Apps Standard"}, // no desktop: counted; lower case state; duplicate once; disconnected not
			"No Quota Yet": {1, ""},
			"Idle Tenant":  {0, "Advanced"},
		} {
			o, ok := got[name]
			if !ok || o.Quantity != want.n || o.Edition != want.edition {
				t.Errorf("%s: %+v, want %v connections in %q", name, o, want.n, want.edition)
			}
		}
		if _, ok := got["Suspended Customer"]; ok || len(got) != 3 {
			t.Errorf("a disabled tenant is metered, or %d tenants (want 3)", len(got))
		}
	})
	t.Run("several pages", func(t *testing.T) {
		for _, ps := range []string{`{"page_size": 1}`, `{"page_size": 3}`, `{"page_size": 1000}`} {
			got := collectByTenant(t, "several-pages", ps)
			for name, n := range map[string]float64{"Tenant 1": 6, "Tenant 2": 8, "Tenant 3": 10} {
				if got[name].Quantity != n {
					t.Errorf("%s %s: %v connections, want %v", ps, name, got[name].Quantity, n)
				}
			}
		}
	})
	t.Run("duplicate across pages", func(t *testing.T) {
		st := kit.LoadState(t, "testdata/small/state.json")
		tn := &st.Tenants[0]
		tn.Sessions = append(tn.Sessions, simulator.Session{ID: "s-1001-9", VM: "ACME-VDI-009", User: "zed"}, tn.Sessions[0]) // s-1001-1 again, on page 3
		_, c := kit.Start(t, st, `{"page_size": 2}`)
		obs, err := c.Collect(context.Background(), hour)
		if err != nil || len(obs) != 2 || obs[0].Quantity != 3 {
			t.Fatalf("%+v, %v; want tenant 1001 with 3 connections (2 + 1 new, s-1001-1 once)", obs, err)
		}
	})
	t.Run("editions", func(t *testing.T) {
		for in, want := range map[string]string{"ENTERPRISE": "Enterprise", "apps_advanced": "Apps Advanced", " Standard ": "Standard", "": ""} {
			if got := editionOf([]quota{{Type: "DESKTOPS", Edition: "X"}, {Type: "concurrent_connections", Edition: in}}); got != want {
				t.Errorf("edition of %q = %q, want %q", in, got, want)
			}
		}
	})
	t.Run("user name forms", func(t *testing.T) {
		for _, tc := range []struct{ user, opt, wantUser, wantDomain string }{
			{`SP\meter`, "", "meter", "SP"},
			{"meter@sp.example", "", "meter", "sp.example"},
			{"meter", "SP", "meter", "SP"},
			{"meter", "", "meter", ""},
		} {
			if u, d := credentials(tc.user, tc.opt); u != tc.wantUser || d != tc.wantDomain {
				t.Errorf("%q with domain %q: %q %q", tc.user, tc.opt, u, d)
			}
		}
	})
}

func TestThrottled(t *testing.T) {
	s, c := kit.Start(t, kit.LoadState(t, "testdata/several-pages/state.json"), `{"page_size": 3}`)
	collectortest.Throttled(t, c, hour, 3, collectortest.Throttle{TooMany: true, Always: []string{"HTTP 503"},
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
		{"500 on page 2", simulator.Faults{FailPage: 2},
			[]string{"horizon-daas 127.0.0.1: /session/manager/sessions of tenant 1001 page 2", "HTTP 500", "An internal error occurred. (INTERNAL_ERROR)"}},
		{"malformed total", simulator.Faults{MalformField: "sessionTotalCount"}, []string{"page 1", "malformed body", "sessionTotalCount"}},
		{"negative count", simulator.Faults{MalformField: "sessionCount"}, []string{"page 1", "field sessionCount: negative (-1)"}},
		{"malformed enabled", simulator.Faults{MalformField: "enabled"}, []string{"/security/manager/organizations", "malformed body", "enabled"}},
		{"malformed quota", simulator.Faults{MalformField: "limit"}, []string{"/security/organization/1001/quotas", "malformed body", "limit"}},
		{"truncated", simulator.Faults{Truncate: true}, []string{"page 1", "malformed body"}},
		{"start ignored", simulator.Faults{IgnoreStart: true}, []string{"page 2", "the answer for start 3 repeats the previous page"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := kit.FaultError(t, hour, st, `{"page_size": 3}`, func(s *simulator.DaaS) { s.SetFaults(tc.faults) })
			collectortest.WantError(t, err, tc.want, nil)
		})
	}
}

func TestBadInput(t *testing.T) {
	st := kit.LoadState(t, "testdata/small/state.json")
	t.Run("wrong password", func(t *testing.T) {
		s, c := kit.Start(t, st, "", collectortest.WithPassword("nope-not-it"))
		err := collectortest.WrongPasswordTwice(t, c, s.Calls, "nope-not-it", `logging in as SP-DOMAIN\meter`)
		if !errors.Is(err, ErrLogin) {
			t.Fatalf("error %v is not ErrLogin", err)
		}
	})
	t.Run("no domain", func(t *testing.T) {
		s := simulator.New(st)
		u, thumb := s.Start(t)
		c, err := newCollector(target(u, "meter", st.Password, thumb, ""))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Collect(context.Background(), hour)
		if !errors.Is(err, ErrNoDomain) || s.Calls() != 0 {
			t.Fatalf("error %v after %d calls", err, s.Calls())
		}
		c, _ = newCollector(target(u, "meter", st.Password, thumb, `{"domain": "SP-DOMAIN"}`))
		if obs, err := c.Collect(context.Background(), hour); err != nil || len(obs) != 2 {
			t.Fatalf("domain option: %d observations, %v", len(obs), err)
		}
	})
	t.Run("session refused", func(t *testing.T) {
		s, c := kit.Start(t, st, "")
		collectortest.SessionRefused(t, c, hour, func() { s.SetFaults(simulator.Faults{RejectAll: true}) }, ErrLogin)
	})
	t.Run("permission missing", func(t *testing.T) {
		s, c := kit.Start(t, st, "")
		s.SetFaults(simulator.Faults{Forbid: "/session/manager"})
		_, err := c.Collect(context.Background(), hour)
		collectortest.WantError(t, err, []string{"/session/manager/sessions of tenant 1001 page 1", "HTTP 403",
			"does not have the permission to perform this operation. (ACCESS_DENIED)"}, nil)
		if errors.Is(err, collectors.ErrAuth) || s.Logins() != 1 {
			t.Errorf("a missing permission: %v after %d logins (want one, and no ErrAuth)", err, s.Logins())
		}
	})
	t.Run("API version not offered", func(t *testing.T) {
		other := st
		other.Versions = []string{"v200"}
		_, c := kit.Start(t, other, "")
		_, err := c.Collect(context.Background(), hour)
		collectortest.WantError(t, err, []string{"DaaS REST API v100 is not offered at /dt-rest/v100", "HTTP 404", "versions offered: v200"}, nil)
		if errors.Is(err, collectors.ErrAuth) {
			t.Errorf("a missing version is not an authentication failure: %v", err)
		}
	})
	t.Run("endpoint with the API path", func(t *testing.T) {
		_, c := kit.Start(t, st, "", func(tg *collectors.Target) { tg.Endpoint += "/dt-rest/v100/" })
		if obs, err := c.Collect(context.Background(), hour); err != nil || len(obs) != 2 {
			t.Fatalf("%d observations, %v", len(obs), err)
		}
	})
	t.Run("logout sends the CSRF header", func(t *testing.T) {
		s, c := kit.Start(t, st, "")
		if _, err := c.Collect(context.Background(), hour); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Collect(context.Background(), hour); err != nil || s.Logins() != 2 {
			t.Fatalf("after logout: %v, %d logins", err, s.Logins())
		}
	})
	t.Run("login without a CSRF header", func(t *testing.T) {
		// Reading needs only Authorization: a platform that sends no
		// x-dt-csrf-header is read all the same.
		s, c := kit.Start(t, st, "")
		s.SetFaults(simulator.Faults{NoCSRF: true})
		if obs, err := c.Collect(context.Background(), hour); err != nil || len(obs) != 2 {
			t.Fatalf("%d observations, %v", len(obs), err)
		}
		if err := c.Close(context.Background()); err != nil {
			t.Fatalf("logout refused for want of the CSRF header is not an error: %v", err)
		}
	})
	t.Run("http endpoint", func(t *testing.T) {
		collectortest.HTTPSOnly(t, target("http://daas.example", "m", "p", "", ""))
	})
	t.Run("six-hour cadence", func(t *testing.T) {
		k, ok := collectors.Lookup(Kind)
		if !ok || k.Every != 6*time.Hour || k.DisplayName != "Horizon DaaS" || k.PairsWith != "" || collectors.Cadence(Kind) != 6 {
			t.Fatalf("kind %+v", k)
		}
		for h, want := range map[int]bool{0: true, 3: false, 6: true, 12: true, 17: false, 18: true} {
			if collectors.Due(Kind, time.Date(2026, 11, 1, h, 0, 0, 0, time.UTC)) != want {
				t.Errorf("due at %02d:00 UTC: %v", h, !want)
			}
		}
	})
}

// TestNoSecretsOrPersonalData: the password and the session tokens are in no
// log line and no error, at debug level, through a login, a renewal and a
// refusal; the users the sessions name are in no log line and no
// observation.
func TestNoSecretsOrPersonalData(t *testing.T) {
	st := kit.LoadState(t, "testdata/small/state.json")
	var buf bytes.Buffer
	s, c := kit.Start(t, st, "", collectortest.LogTo(&buf, slog.LevelDebug))
	obs, _ := collectortest.NoSecretsLogged(t, c, hour, &buf, st.Password, collectortest.Renewal{
		Held:   func() []string { return []string{strings.TrimPrefix(c.auth, "Bearer "), c.csrf} },
		Expire: s.ExpireSessions, Reject: func() { s.SetFaults(simulator.Faults{RejectAll: true}) }, Logged: "DaaS session expired"})
	out, _ := json.Marshal(obs)
	for _, tn := range st.Tenants {
		for _, ss := range tn.Sessions {
			for _, personal := range []string{ss.User, ss.ID} {
				if strings.Contains(buf.String(), personal) || strings.Contains(string(out), personal) {
					t.Errorf("%q in the log or the observations", personal)
				}
			}
		}
	}
}

// TestIdentify: the service provider's name, and no instance id (every
// platform's service provider organization is 1000: two platforms must not
// look like one product).
func TestIdentify(t *testing.T) {
	_, c := kit.Start(t, kit.LoadState(t, "testdata/small/state.json"), "")
	id, err := c.Identify(context.Background())
	if err != nil || id.InstanceID != "" || id.Name != "Service Provider" {
		t.Fatalf("Identify = %+v, %v", id, err)
	}
	var _ collectors.Identifier = c
	var _ collectors.Closer = c
}

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, ""},
		{`null`, ""},
		{`{"domain": "SP", "api_version": "v100", "page_size": 500}`, ""},
		{`{"api_version": "v200"}`, `api_version "v200": must be one of v100`},
		{`{"page_size": 5000}`, "page_size 5000: must be between 1 and 1000"},
		{`{"page_size": -1}`, "page_size -1: must be between 1 and 1000"},
		{`{"tenant": "x"}`, `unknown option "tenant"`},
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
	do := func(method, p string, body string, hdr http.Header) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "https://daas.example.net/dt-rest/v100"+p, strings.NewReader(body))
		req.Header = hdr
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code/100 != 2 {
			t.Fatalf("%s %s: %d %s", method, p, rec.Code, rec.Body)
		}
		return rec
	}
	l := do(http.MethodPost, "/system/authenticate/credentials",
		`<DtCredentials type="CREDENTIALS"><username>`+st.User+`</username><password>`+st.Password+`</password><domain>`+st.Domain+`</domain></DtCredentials>`,
		http.Header{"Content-Type": {"application/xml"}})
	return do(http.MethodGet, path, "", http.Header{"Authorization": {l.Header().Get("Authorization")}}).Body.Bytes()
}

// FuzzParseSessions: a session list page, then the rules on what it parsed.
func FuzzParseSessions(f *testing.F) {
	for _, st := range kit.States(f) {
		for _, tn := range st.Tenants {
			f.Add(simBody(f, st, "/session/manager/sessions?orgId="+tn.ID+"&start=0&limit=2"))
		}
	}
	f.Add([]byte(`<DtSessionReport><sessionCount>1</sessionCount><sessionTotalCount>-4</sessionTotalCount><DtSession id="a"><state>CONNECTED</state></DtSession></DtSessionReport>`))
	f.Add([]byte(`<DtSessionReport><DtSession><state> connected </state></DtSession><DtSession id=""/></DtSessionReport>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseSessions(b)
		collectortest.WantParseError(t, err)
		if err != nil {
			return
		}
		n := 0
		for _, s := range p.Sessions {
			if connected(s.State) {
				n++
			}
		}
		obs := build("daas", []tenantUsage{{id: "1001", name: "t", connected: n}})
		if len(obs) != 1 || obs[0].Quantity < 0 || obs[0].Quantity > float64(len(p.Sessions)) || obs[0].ObjectKey != "tenant/1001" {
			t.Fatalf("bad observation %+v from %d sessions", obs, len(p.Sessions))
		}
	})
}

// FuzzParseOrgsAndQuotas: the organization list and a tenant's quotas.
func FuzzParseOrgsAndQuotas(f *testing.F) {
	for _, st := range kit.States(f) {
		f.Add(simBody(f, st, "/security/manager/organizations"))
		for _, tn := range st.Tenants {
			f.Add(simBody(f, st, "/security/organization/"+tn.ID+"/quotas"))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := parseOrgs(b)
		collectortest.WantParseError(t, err)
		if err == nil {
			for i := range l.Orgs {
				metered(&l.Orgs[i])
			}
		}
		q, err := parseQuotas(b)
		collectortest.WantParseError(t, err)
		if err == nil {
			if e := editionOf(q.Quotas); e != strings.TrimSpace(e) {
				t.Fatalf("edition %q not trimmed", e)
			}
		}
	})
}

// FuzzErrorMessage: an error answer's message never grows past the body.
func FuzzErrorMessage(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0"?><DtError><code>AUTHENTICATION_FAILED</code><message>Authentication failed.</message></DtError>`))
	f.Add([]byte(`<DtError><message></message></DtError>`))
	f.Add([]byte("<html>Bad gateway</html>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if msg := errorMessage(b); len(msg) > 3*len(b)+8 {
			t.Fatalf("error message of %d bytes from a body of %d", len(msg), len(b))
		}
	})
}

// benchState is 20 tenants of 500 sessions, all connected: 10,000
// concurrent connections.
func benchState() simulator.State {
	st := simulator.State{User: "meter", Password: "pw", Domain: "SP"}
	eds := []string{"STANDARD", "ADVANCED", "ENTERPRISE", "APPS_STANDARD"}
	for k := range 20 {
		tn := simulator.Tenant{ID: fmt.Sprint(1001 + k), Name: fmt.Sprintf("tenant-%02d", k), Edition: eds[k%4], Quota: 1000}
		for i := range 500 {
			tn.Sessions = append(tn.Sessions, simulator.Session{ID: fmt.Sprintf("s-%d-%d", k, i), Pool: "pool-1",
				VM: fmt.Sprintf("T%02d-VDI-%04d", k, i), User: fmt.Sprintf("user%02d%04d", k, i)})
		}
		st.Tenants = append(st.Tenants, tn)
	}
	return st
}

func BenchmarkCollect10000Connections(b *testing.B) {
	st := benchState()
	for _, ps := range []int{DefaultPageSize, MaxPageSize} {
		b.Run(fmt.Sprintf("page_size=%d", ps), func(b *testing.B) {
			_, c := kit.Start(b, st, fmt.Sprintf(`{"page_size": %d}`, ps))
			collectortest.Bench(b, c, hour, func(n int) bool { return n == 20 })
		})
	}
}
