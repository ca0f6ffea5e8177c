package horizon

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
	"github.com/usagemeter/usagemeter/collectors/horizon/simulator"
)

var hour = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

const podGUID = "8a0c3c5e-1d2b-4f6a-9e7d-3b1c2a4d5e6f"

func target(u, user, pass, thumb, opts string) collectors.Target {
	return collectors.Target{
		Kind: Kind, Endpoint: u, Username: user, Password: collectors.Secret(pass), Thumbprint: thumb,
		Options: json.RawMessage(opts), Timeout: 5 * time.Second,
	}
}

// kit serves a state and builds a collector pinned to the simulator.
var kit = collectortest.Kit[simulator.State, *simulator.Horizon, *Collector]{
	Sim: simulator.New, Load: simulator.LoadState, New: newCollector,
	Target: func(u, thumb string, st simulator.State, opts string) collectors.Target {
		return target(u, st.Domain+`\`+st.User, st.Password, thumb, opts)
	},
}

// conformanceSim gives the conformance kit its fault switches. A renewed
// access token counts as a login there: Horizon renews it with the refresh
// token first, which is what the kit's "a new login mid-collection" means.
type conformanceSim struct{ *simulator.Horizon }

func (s conformanceSim) SetDelay(d time.Duration) { s.SetFaults(simulator.Faults{Delay: d}) }
func (s conformanceSim) ExpireAfter(n int)        { s.SetFaults(simulator.Faults{ExpireAfter: n}) }
func (s conformanceSim) Logins() int              { return s.Horizon.Logins() + s.Refreshes() }

// TestConformance runs the suite every REST collector passes, on a state of
// several pages.
func TestConformance(t *testing.T) {
	collectortest.Conformance(t, collectortest.Product{Start: func(t *testing.T) (collectortest.Sim, collectors.Target) {
		st := kit.LoadState(t, "testdata/several-pages/state.json")
		s := simulator.New(st)
		u, thumb := s.Start(t)
		return conformanceSim{s}, target(u, st.User, st.Password, thumb, `{"page_size": 2, "domain": "CORP"}`)
	}})
}

// TestCases walks testdata/<case>/: state.json (simulator state), optional
// options.json, expected.json (observations sorted by object key; -update
// rewrites it).
func TestCases(t *testing.T) {
	kit.Cases(t, hour, func(t *testing.T, s *simulator.Horizon) {
		if s.Logins() != 1 || s.Refreshes() != 0 {
			t.Errorf("logins = %d, refreshes = %d, want 1 and 0", s.Logins(), s.Refreshes())
		}
	})
}

// collectByKey collects a case and checks the shape of every observation.
func collectByKey(t *testing.T, st simulator.State, opts string) map[string]collectors.Observation {
	t.Helper()
	_, c := kit.Start(t, st, opts)
	obs, err := c.Collect(context.Background(), hour)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]collectors.Observation{}
	for _, o := range obs {
		ok := o.Unit == collectors.UnitCount && o.Dims[DimRulesVersion] == RulesVersion && strings.HasPrefix(o.ObjectKey, podGUID+"/")
		switch o.Metric {
		case collectors.MetricDesktopVM:
			ok = ok && o.Quantity == 1 && strings.HasPrefix(o.ObjectKey, podGUID+"/machine/")
		case collectors.MetricRDSHSession:
			ok = ok && o.Quantity >= 1 && strings.HasPrefix(o.ObjectKey, podGUID+"/farm/")
		default:
			ok = false
		}
		if !ok {
			t.Errorf("bad observation %+v", o)
		}
		if _, dup := m[o.ObjectKey]; dup {
			t.Errorf("%s observed twice", o.ObjectKey)
		}
		m[o.ObjectKey] = o
	}
	return m
}

func key(kind, id string) string { return podGUID + "/" + kind + "/" + id }

// TestRules checks the Horizon rules on the case states, independently of
// the golden files.
func TestRules(t *testing.T) {
	t.Run("edge cases", func(t *testing.T) {
		got := collectByKey(t, kit.LoadState(t, "testdata/edge-cases/state.json"), `{"page_size": 2}`)
		for k, want := range map[string]float64{
			key("machine", "m-401"):  1, // in a disabled pool: still under management
			key("machine", "m-402"):  1, // listed twice, on two pages: once
			key("machine", "m-403"):  0, // missing in vCenter: the pool's VM no longer exists
			key("machine", "m-404"):  0, // being deleted
			key("machine", "m-405"):  0, // a physical machine in no pool
			key("machine", "m-406"):  1, // its pool was created after the pool list was read
			key("farm", "farm-x"):    2, // s-0001 (listed twice; its farm from its RDS server) and s-0004, in a disabled farm
			key("farm", UnknownFarm): 1, // s-0003: on an RDS server no longer listed
		} {
			if o, ok := got[k]; (want == 0) == ok || o.Quantity != want {
				t.Errorf("%s: %+v (observed %v), want quantity %v", k, o, ok, want)
			}
		}
		if len(got) != 5 {
			t.Errorf("%d observations, want 5", len(got))
		}
		for _, o := range got {
			if o.Edition != EditionAppsAdvanced || o.Dims[DimUsageModel] != "NAMED_USER" {
				t.Errorf("%s: edition %q usage %q, want Apps Advanced from the only licensed, known licence", o.ObjectKey, o.Edition, o.Dims[DimUsageModel])
			}
		}
		if d := got[key("machine", "m-406")].Dims; d[DimPool] != "pool-created-meanwhile" || d[DimPoolType] != "" {
			t.Errorf("machine of an unlisted pool: dims %v", d)
		}
	})
	t.Run("several pages", func(t *testing.T) {
		got := collectByKey(t, kit.LoadState(t, "testdata/several-pages/state.json"), `{"page_size": 2}`)
		if got[key("farm", "farm-a")].Quantity != 5 || got[key("farm", "farm-b")].Quantity != 3 || len(got) != 9 {
			t.Errorf("got %d observations, farm-a %v, farm-b %v; want 7 desktops, 5 and 3 sessions (a pending one counts)",
				len(got), got[key("farm", "farm-a")].Quantity, got[key("farm", "farm-b")].Quantity)
		}
	})
	t.Run("duplicates across pages", func(t *testing.T) {
		st := kit.LoadState(t, "testdata/small/state.json")
		st.Machines = append(st.Machines, simulator.Machine{ID: "m-104", Name: "FIN-W11-004", PoolID: "pool-win11", State: "AVAILABLE"}, st.Machines[0])
		st.Sessions = append(st.Sessions, st.Sessions[1], st.Sessions[2])
		got := collectByKey(t, st, `{"page_size": 2}`)
		if len(got) != 5 || got[key("farm", "farm-apps")].Quantity != 3 {
			t.Fatalf("%d observations (want 4 desktops and 1 farm), farm %v sessions (want 3)", len(got), got[key("farm", "farm-apps")].Quantity)
		}
	})
	t.Run("editions", func(t *testing.T) {
		for _, tc := range []struct {
			ls   []license
			want string
		}{
			{nil, ""},
			{[]license{{Edition: "HORIZON_ENTERPRISE_NAMED_USER", Licensed: false}}, ""},
			{[]license{{Edition: "horizon_apps_standard_concurrent_user", Licensed: true}}, EditionAppsStandard},
			{[]license{{Edition: "HORIZON_APPS_ADVANCED_NAMED_USER", Licensed: true}, {Edition: "HORIZON_STANDARD_CONCURRENT_USER", Licensed: true}}, EditionStandard},
			{[]license{{Edition: "ENTERPRISE_CONCURRENT_USER", Licensed: true}}, EditionEnterprise},
			{[]license{{Edition: "WS1_ENTERPRISE_WITH_VDI_NAMED_USER", Licensed: true}}, EditionEnterprise},
		} {
			if got, _, _ := editionOf(tc.ls); got != tc.want {
				t.Errorf("%+v: edition %q, want %q", tc.ls, got, tc.want)
			}
		}
	})
}

// TestTokenRefresh: an expired access token is renewed with the refresh
// token, not a new login; a refused refresh token falls back to a login.
func TestTokenRefresh(t *testing.T) {
	s, c := kit.Start(t, kit.LoadState(t, "testdata/several-pages/state.json"), `{"page_size": 2}`)
	ctx := context.Background()
	first, err := c.Collect(ctx, hour)
	if err != nil {
		t.Fatal(err)
	}
	s.ExpireAccessTokens()
	if obs, err := c.Collect(ctx, hour); err != nil || len(obs) != len(first) {
		t.Fatalf("after the access token expired: %d observations, %v", len(obs), err)
	}
	if s.Logins() != 1 || s.Refreshes() != 1 {
		t.Fatalf("logins %d, refreshes %d: want the refresh token used, not a new login", s.Logins(), s.Refreshes())
	}
	s.SetFaults(simulator.Faults{ExpireAfter: 2}) // mid-pages, several times
	if obs, err := c.Collect(ctx, hour); err != nil || len(obs) != len(first) {
		t.Fatalf("access token expiring every 2 calls: %d observations, %v", len(obs), err)
	}
	if s.Logins() != 1 || s.Refreshes() < 3 {
		t.Fatalf("logins %d, refreshes %d", s.Logins(), s.Refreshes())
	}
	s.SetFaults(simulator.Faults{})
	s.ExpireSessions() // refresh token gone too
	if _, err := c.Collect(ctx, hour); err != nil || s.Logins() != 2 {
		t.Fatalf("after both tokens expired: %v, logins %d", err, s.Logins())
	}
	s.SetFaults(simulator.Faults{BrokenRefresh: true})
	s.ExpireAccessTokens()
	if _, err := c.Collect(ctx, hour); err != nil || s.Logins() != 3 {
		t.Fatalf("refresh answering 500: %v, logins %d (want a login instead)", err, s.Logins())
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestThrottled(t *testing.T) {
	st := kit.LoadState(t, "testdata/several-pages/state.json")
	s, c := kit.Start(t, st, `{"page_size": 2}`)
	collectortest.Throttled(t, c, hour, 9, collectortest.Throttle{
		Always: []string{"HTTP 429", "API throttling limit have been exceeded", "common.api-throttle-limit.exceeded.error"},
		Set:    func(every int, _ bool) { s.SetFaults(simulator.Faults{ThrottleEvery: every}) }})

	// X-Rate-Limit-Retry-After-Seconds is honoured: one 429 asking for 1 s.
	s, c = kit.Start(t, st, "")
	s.SetFaults(simulator.Faults{ThrottleEvery: 4, RetryAfter: 1})
	before := time.Now()
	if _, err := c.Collect(context.Background(), hour); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(before); took < time.Second {
		t.Fatalf("collection took %s: the 1 s X-Rate-Limit-Retry-After-Seconds was not waited out", took)
	}
}

func TestFaults(t *testing.T) {
	st := kit.LoadState(t, "testdata/several-pages/state.json")
	for _, tc := range []struct {
		name   string
		faults simulator.Faults
		want   []string
	}{
		{"500 on page 2", simulator.Faults{FailPage: 2},
			[]string{"horizon 127.0.0.1: /inventory/v1/machines page 2", "HTTP 500", "Internal Server Error (common.internal.error)"}},
		{"malformed id", simulator.Faults{MalformField: "id"},
			[]string{"/inventory/v1/machines page 1", "malformed body: field id: expected a string, got a JSON number"}},
		{"malformed session type", simulator.Faults{MalformField: "session_type"},
			[]string{"/inventory/v1/sessions page 1", "field session_type: expected a string"}},
		{"malformed machine data", simulator.Faults{MalformField: "managed_machine_data"},
			[]string{"/inventory/v1/machines page 1", "field managed_machine_data"}},
		{"malformed missing_in_vcenter", simulator.Faults{MalformField: "missing_in_vcenter"},
			[]string{"field managed_machine_data.missing_in_vcenter: expected a bool"}},
		{"truncated", simulator.Faults{Truncate: true}, []string{"/inventory/v1/machines page 1", "malformed body: truncated JSON"}},
		{"page ignored", simulator.Faults{IgnorePage: true}, []string{"/inventory/v1/rds-servers page 2", "repeats page 1"}},
		{"no licence privilege", simulator.Faults{Forbidden: "config/v1/licenses"},
			[]string{"/config/v1/licenses", "HTTP 403", "needs the GLOBAL_CONFIG_VIEW privilege"}},
		{"no machine privilege", simulator.Faults{Forbidden: "inventory/v1/machines"},
			[]string{"/inventory/v1/machines page 1", "HTTP 403 Forbidden: Access to the resource is forbidden"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := kit.FaultError(t, hour, st, `{"page_size": 2}`, func(s *simulator.Horizon) { s.SetFaults(tc.faults) })
			collectortest.WantError(t, err, tc.want, nil)
		})
	}
}

func TestBadInput(t *testing.T) {
	st := kit.LoadState(t, "testdata/small/state.json")
	t.Run("wrong password", func(t *testing.T) {
		s, c := kit.Start(t, st, "", collectortest.WithPassword("nope-not-it"))
		err := collectortest.WrongPasswordTwice(t, c, s.Calls, "nope-not-it", `logging in as CORP\svc-meter`)
		if !errors.Is(err, ErrLogin) {
			t.Fatalf("error %v is not ErrLogin", err)
		}
	})
	t.Run("wrong domain", func(t *testing.T) {
		s := simulator.New(st)
		u, thumb := s.Start(t)
		c, _ := newCollector(target(u, "svc-meter", st.Password, thumb, `{"domain": "OTHER"}`))
		if _, err := c.Collect(context.Background(), hour); !errors.Is(err, collectors.ErrAuth) || !strings.Contains(err.Error(), `OTHER\svc-meter`) {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("user names", func(t *testing.T) {
		if _, err := collectors.New(target("hz.corp.example", `CORP\svc-meter`, "x", "", `{"domain": "OTHER"}`)); err == nil ||
			!strings.Contains(err.Error(), `the user name's domain "CORP" and the domain option "OTHER" differ`) {
			t.Errorf("two domains: error %v", err)
		}
		// A user name the API cannot log in with: refused at the first
		// login, without a call, as bad credentials (never retried).
		s := simulator.New(st)
		u, thumb := s.Start(t)
		for user, want := range map[string]string{"svc-meter@corp.example": "does not accept UPN logins", "svc-meter": "a domain is required"} {
			c, err := collectors.New(target(u, user, "x", thumb, ""))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Collect(context.Background(), hour)
			if !errors.Is(err, collectors.ErrAuth) || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %v, want ErrAuth saying %q", user, err, want)
			}
		}
		if s.Calls() != 0 {
			t.Errorf("%d calls for user names that cannot log in", s.Calls())
		}
		if _, err := collectors.New(target("hz.corp.example", "svc-meter", "x", "", `{"domain": "CORP"}`)); err != nil {
			t.Error(err)
		}
	})
	t.Run("session refused", func(t *testing.T) {
		s, c := kit.Start(t, st, "")
		collectortest.SessionRefused(t, c, hour, func() { s.SetFaults(simulator.Faults{RejectAll: true}) }, ErrLogin)
	})
	t.Run("another pod", func(t *testing.T) {
		s := simulator.New(st)
		u, thumb := s.Start(t)
		tg := target(u, `CORP\svc-meter`, st.Password, thumb, "")
		tg.InstanceID = "00000000-0000-4000-8000-000000000001"
		c, _ := newCollector(tg)
		_, err := c.Collect(context.Background(), hour)
		collectortest.WantError(t, err, []string{"belongs to the pod " + podGUID, "not to the pod 00000000-0000-4000-8000-000000000001"}, nil)
	})
	t.Run("endpoint with the API path", func(t *testing.T) {
		_, c := kit.Start(t, st, "", func(tg *collectors.Target) { tg.Endpoint += "/rest/" })
		if obs, err := c.Collect(context.Background(), hour); err != nil || len(obs) != 4 {
			t.Fatalf("%d observations, %v", len(obs), err)
		}
	})
	t.Run("http endpoint", func(t *testing.T) {
		collectortest.HTTPSOnly(t, target("http://hz.corp.example", `CORP\m`, "p", "", ""))
	})
}

// personal is every piece of personal data a case state holds: user names,
// their SIDs, session ids and client names.
func personal(st simulator.State) []string {
	var out []string
	for _, s := range st.Sessions {
		out = append(out, s.ID, s.User, simulator.SID(s.User), s.Client)
		if _, u, ok := strings.Cut(s.User, `\`); ok {
			out = append(out, u)
		}
	}
	for _, m := range st.Machines {
		for _, u := range m.Users {
			out = append(out, u, simulator.SID(u))
		}
	}
	return out
}

// TestPersonalData: session user names and ids, session ids and client
// names are in no observation and no log line (debug level), through a
// login, a refresh, skipped records and an error; no dimension is about a
// user.
func TestPersonalData(t *testing.T) {
	for _, dir := range []string{"small", "edge-cases", "several-pages"} {
		t.Run(dir, func(t *testing.T) {
			st := kit.LoadState(t, "testdata/"+dir+"/state.json")
			s := simulator.New(st)
			u, thumb := s.Start(t)
			var buf bytes.Buffer
			tg := target(u, `CORP\svc-meter`, st.Password, thumb, `{"page_size": 2}`)
			tg.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			c, err := collectors.New(tg)
			if err != nil {
				t.Fatal(err)
			}
			obs, err := c.Collect(context.Background(), hour)
			if err != nil {
				t.Fatal(err)
			}
			s.ExpireAccessTokens()
			more, err := c.Collect(context.Background(), hour)
			if err != nil {
				t.Fatal(err)
			}
			s.SetFaults(simulator.Faults{FailPage: 1})
			_, failed := c.Collect(context.Background(), hour)
			all, _ := json.Marshal(append(obs, more...))
			for _, p := range personal(st) {
				if strings.Contains(string(all), p) || strings.Contains(buf.String(), p) || strings.Contains(fmt.Sprint(failed), p) {
					t.Errorf("personal data %q in the observations, log or error", p)
				}
			}
			for _, secret := range []string{st.Password, "access.", "refresh."} {
				if strings.Contains(buf.String(), secret) || strings.Contains(string(all), secret) {
					t.Errorf("secret %q in the log or observations", secret)
				}
			}
			for _, o := range obs {
				for k := range o.Dims {
					if strings.Contains(k, "user") && k != DimUsageModel || strings.Contains(k, "client") || strings.Contains(k, "session") {
						t.Errorf("dimension %q on %s", k, o.ObjectKey)
					}
				}
			}
		})
	}
}

func TestIdentify(t *testing.T) {
	_, c := kit.Start(t, kit.LoadState(t, "testdata/small/state.json"), "")
	id, err := c.Identify(context.Background())
	if err != nil || id.InstanceID != podGUID || id.Name != "HZ-POD-PARIS" {
		t.Fatalf("Identify = %+v, %v", id, err)
	}
	var _ collectors.Identifier = c
	var _ collectors.Closer = c
	if k, ok := collectors.Lookup(Kind); !ok || k.DisplayName != "Horizon" || k.PairsWith != "" {
		t.Fatalf("registered kind %+v", k)
	}
}

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, ""},
		{`null`, ""},
		{`{"domain": "CORP", "page_size": 500, "edition": "Apps Advanced"}`, ""},
		{`{"page_size": 5000}`, "page_size 5000: must be between 1 and 1000"},
		{`{"page_size": -1}`, "page_size -1: must be between 1 and 1000"},
		{`{"edition": "Platinum"}`, `edition "Platinum": must be one of Apps Standard, Apps Advanced, Standard, Advanced, Enterprise`},
		{`{"size": 1}`, `unknown option "size"`},
		{`{"page_size": "10"}`, "option page_size: expected a int"},
	} {
		o, err := ParseOptions(json.RawMessage(tc.in))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: error %v, want %q", tc.in, err, tc.want)
		}
		if err == nil && o.PageSize < 1 {
			t.Errorf("%s: defaults not filled in: %+v", tc.in, o)
		}
	}
}

// simBody is what the simulator answers to GET path (below /rest) for st,
// logged in.
func simBody(t testing.TB, st simulator.State, path string) []byte {
	t.Helper()
	s := simulator.New(st)
	do := func(method, p string, body []byte, hdr http.Header) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "https://hz.example.net/rest"+p, bytes.NewReader(body))
		req.Header = hdr
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code/100 != 2 {
			t.Fatalf("%s %s: %d %s", method, p, rec.Code, rec.Body)
		}
		return rec
	}
	b, _ := json.Marshal(map[string]string{"domain": st.Domain, "username": st.User, "password": st.Password})
	tk, err := parseTokens(do(http.MethodPost, "/login", b, http.Header{"Content-Type": {"application/json"}}).Body.Bytes(), true)
	if err != nil {
		t.Fatal(err)
	}
	return do(http.MethodGet, path, nil, http.Header{"Authorization": {"Bearer " + tk.Access}}).Body.Bytes()
}

// checkObs checks what build made of fuzzed records.
func checkObs(t *testing.T, obs []collectors.Observation, machines, sessions int) {
	var desktops, total float64
	seen := map[string]bool{}
	for _, o := range obs {
		if seen[o.ObjectKey] || !strings.HasPrefix(o.ObjectKey, podGUID+"/") || o.Quantity < 1 {
			t.Fatalf("bad observation %+v", o)
		}
		seen[o.ObjectKey] = true
		if o.Metric == collectors.MetricDesktopVM {
			desktops++
		} else {
			total += o.Quantity
		}
	}
	if desktops > float64(machines) || total > float64(sessions) {
		t.Fatalf("%v desktops from %d machines, %v sessions from %d records", desktops, machines, total, sessions)
	}
}

// FuzzParseMachines: a machine list page, then the rules on what it parsed.
func FuzzParseMachines(f *testing.F) {
	for _, st := range kit.States(f) {
		f.Add(simBody(f, st, "/inventory/v1/machines?page=1&size=3"))
	}
	f.Add([]byte(`[{"id":"m","desktop_pool_id":"p","managed_machine_data":null},{"id":"m","desktop_pool_id":"p"}]`))
	f.Add([]byte(`[{"id":"","state":"DELETING","managed_machine_data":{"missing_in_vcenter":true}}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := parseList[machine](b)
		collectortest.WantParseError(t, err)
		if err != nil {
			return
		}
		obs, _ := build("hz", &inventory{pod: environment{ClusterGUID: podGUID}, machines: ms})
		checkObs(t, obs, len(ms), 0)
	})
}

// FuzzParseSessions: a session list page, then the rules on what it parsed.
func FuzzParseSessions(f *testing.F) {
	for _, st := range kit.States(f) {
		f.Add(simBody(f, st, "/inventory/v1/sessions?page=1&size=4"))
	}
	f.Add([]byte(`[{"id":"s","rds_server_id":"r"},{"id":"s","farm_id":"f"},{"session_type":"DESKTOP"}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ss, err := parseList[session](b)
		collectortest.WantParseError(t, err)
		if err != nil {
			return
		}
		in := &inventory{pod: environment{ClusterGUID: podGUID}, sessions: ss, servers: []rdsServer{{ID: "r", FarmID: "f"}}}
		obs, _ := build("hz", in)
		checkObs(t, obs, 0, len(ss))
	})
}

// FuzzParseLists: desktop pools, farms, RDS servers, licences and the
// environment.
func FuzzParseLists(f *testing.F) {
	for _, st := range kit.States(f) {
		for _, p := range []string{"/inventory/v1/desktop-pools", "/inventory/v1/farms", "/inventory/v1/rds-servers", "/config/v1/environment-properties"} {
			f.Add(simBody(f, st, p))
		}
		if !st.NoLicenseAPI {
			f.Add(simBody(f, st, "/config/v1/licenses"))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := parseList[desktopPool](b)
		collectortest.WantParseError(t, err)
		_, err = parseList[farm](b)
		collectortest.WantParseError(t, err)
		_, err = parseList[rdsServer](b)
		collectortest.WantParseError(t, err)
		ls, err := parseList[license](b)
		collectortest.WantParseError(t, err)
		if e, _, _ := editionOf(ls); e != "" && editionRank(e) < 0 {
			t.Fatalf("edition %q not in the ladder", e)
		}
		e, err := parseEnvironment(b)
		collectortest.WantParseError(t, err)
		if err == nil && e.ClusterGUID == "" {
			t.Fatal("empty cluster_guid accepted")
		}
	})
}

// FuzzParseTokens: the login and refresh answers and the error body.
func FuzzParseTokens(f *testing.F) {
	st := kit.States(f)[0]
	s := simulator.New(st)
	for _, pw := range []string{st.Password, "wrong"} {
		b, _ := json.Marshal(map[string]string{"domain": st.Domain, "username": st.User, "password": pw})
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "https://hz.example.net/rest/login", bytes.NewReader(b)))
		f.Add(rec.Body.Bytes())
	}
	f.Add([]byte(`{"access_token":"a"}`))
	f.Add([]byte(`{"status":"TOO_MANY_REQUESTS","errors":[{"error_key":"k","error_message":"m"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tk, err := parseTokens(b, true)
		collectortest.WantParseError(t, err)
		if err == nil && (tk.Access == "" || tk.Refresh == "") {
			t.Fatal("empty token accepted")
		}
		if _, err := parseTokens(b, false); err != nil {
			collectortest.WantParseError(t, err)
		}
		// Invalid UTF-8 decodes to U+FFFD (3 bytes a byte); the message is
		// cut at 200 bytes a part.
		if msg := errorMessage(b); len(msg) > 3*len(b)+420 {
			t.Fatalf("error message of %d bytes from a body of %d", len(msg), len(b))
		}
	})
}

// benchState is a pod with 10,000 desktop VMs (20 pools of 500) and 10,000
// RDSH sessions (10 farms of 10 servers, 100 sessions each).
func benchState() simulator.State {
	st := simulator.State{Domain: "CORP", User: "meter", Password: "pw", Pod: simulator.Pod{ClusterGUID: podGUID, ClusterName: "bench"},
		Licenses: []simulator.License{{Edition: "HORIZON_ENTERPRISE_CONCURRENT_USER", UsageModel: "CONCURRENT_USER", Licensed: true}}}
	for p := range 20 {
		pool := fmt.Sprintf("pool-%02d", p)
		st.DesktopPools = append(st.DesktopPools, simulator.DesktopPool{ID: pool, Name: "tenant-" + pool, Type: "AUTOMATED", Source: "INSTANT_CLONE", Enabled: true})
		for i := range 500 {
			n := p*500 + i
			st.Machines = append(st.Machines, simulator.Machine{ID: fmt.Sprintf("m-%05d", n), Name: fmt.Sprintf("VDI-%05d", n), PoolID: pool,
				State: "CONNECTED", Users: []string{fmt.Sprintf("user%05d", n)}})
		}
	}
	for f := range 10 {
		farmID := fmt.Sprintf("farm-%02d", f)
		st.Farms = append(st.Farms, simulator.Farm{ID: farmID, Name: "apps-" + farmID, Enabled: true})
		for r := range 10 {
			srv := fmt.Sprintf("rds-%02d-%02d", f, r)
			st.RDSServers = append(st.RDSServers, simulator.RDSServer{ID: srv, Name: srv, FarmID: farmID, Enabled: true})
			for i := range 100 {
				n := (f*10+r)*100 + i
				st.Sessions = append(st.Sessions, simulator.Session{ID: fmt.Sprintf("s-%05d", n), Type: "APPLICATION", State: "CONNECTED",
					FarmID: farmID, RDSServerID: srv, User: fmt.Sprintf(`CORP\user%05d`, n), Client: fmt.Sprintf("PC-%05d", n)})
			}
		}
	}
	return st
}

// BenchmarkCollect10000DesktopsAndSessions: 10,000 desktop VMs and 10,000
// RDSH sessions; 10,010 observations (10,000 desktops, 10 farms).
func BenchmarkCollect10000DesktopsAndSessions(b *testing.B) {
	st := benchState()
	for _, ps := range []int{100, DefaultPageSize} {
		b.Run(fmt.Sprintf("page_size=%d", ps), func(b *testing.B) {
			_, c := kit.Start(b, st, fmt.Sprintf(`{"page_size": %d}`, ps))
			collectortest.Bench(b, c, hour, func(n int) bool { return n == 10010 })
		})
	}
}
