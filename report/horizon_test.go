package report

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/anonymize"
	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/horizon/simulator"
)

// hzState is a Horizon pod with desktops VDI machines and, on farm-apps and
// farm-b, the given numbers of RDSH sessions (and one VDI session, not
// billed as a session).
func hzState(desktops, apps, b int) simulator.State {
	st := simulator.State{Domain: "CORP", User: "svc-meter", Password: "pw",
		Pod:          simulator.Pod{ClusterGUID: "8a0c3c5e-1d2b-4f6a-9e7d-3b1c2a4d5e6f", ClusterName: "HZ-POD-PARIS"},
		Licenses:     []simulator.License{{Edition: "HORIZON_ENTERPRISE_CONCURRENT_USER", UsageModel: "CONCURRENT_USER", Licensed: true}},
		DesktopPools: []simulator.DesktopPool{{ID: "pool-1", Name: "win11", Type: "AUTOMATED", Source: "INSTANT_CLONE", Enabled: true}},
		Farms:        []simulator.Farm{{ID: "farm-apps", Name: "office-apps", Enabled: true}, {ID: "farm-b", Name: "desktops-b", Enabled: true}},
		RDSServers:   []simulator.RDSServer{{ID: "rds-1", Name: "RDSH-01", FarmID: "farm-apps", Enabled: true}, {ID: "rds-2", Name: "RDSH-02", FarmID: "farm-b", Enabled: true}},
	}
	for i := range desktops {
		st.Machines = append(st.Machines, simulator.Machine{ID: fmt.Sprintf("m-%d", i), Name: fmt.Sprintf("W11-%02d", i), PoolID: "pool-1",
			State: "CONNECTED", Users: []string{fmt.Sprintf("vdiuser%02d", i)}})
	}
	st.Sessions = append(st.Sessions, simulator.Session{ID: "sess-vdi-0", Type: "DESKTOP", State: "CONNECTED", MachineID: "m-0",
		User: `CORP\vdiuser00`, Client: "LAPTOP-VDI00"})
	for i := range apps + b {
		farm, srv := "farm-apps", "rds-1"
		if i >= apps {
			farm, srv = "farm-b", "rds-2"
		}
		st.Sessions = append(st.Sessions, simulator.Session{ID: fmt.Sprintf("sess-rdsh-%02d", i), Type: "APPLICATION", State: "CONNECTED",
			FarmID: farm, RDSServerID: srv, User: fmt.Sprintf(`CORP\appuser%02d`, i), Client: fmt.Sprintf("LAPTOP-APP%02d", i)})
	}
	return st
}

// TestHorizonMonthlyMaximum: the Horizon collector, run against its
// simulator on a few hours of March 2026 (and on the hours just outside it),
// stores spans through the store's hourly merge; the report gives the
// monthly maximum of desktop VMs and of RDSH sessions: the largest hourly
// total in the month, whatever the gap between the collected hours (a
// missing hour does not lower a maximum; it is counted in the manifest),
// with the month's edges in the report's time zone. No session user, SID,
// session id or client name is in the spans or in the bundle.
func TestHorizonMonthlyMaximum(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	ctx := context.Background()
	at := func(m time.Month, d, h int) time.Time { return time.Date(2026, m, d, h, 0, 0, 0, time.UTC) }
	var personal []string
	collect := func(hour time.Time, st simulator.State) {
		t.Helper()
		for _, s := range st.Sessions {
			personal = append(personal, s.ID, s.User, strings.TrimPrefix(s.User, `CORP\`), simulator.SID(s.User), s.Client)
		}
		sim := simulator.New(st)
		u, thumb := sim.Start(t)
		c, err := collectors.New(collectors.Target{Kind: "horizon", Endpoint: u, Username: `CORP\svc-meter`, Password: collectors.Secret("pw"),
			Thumbprint: thumb, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		obs, err := c.Collect(ctx, hour)
		if err != nil {
			t.Fatal(err)
		}
		if cl, err := f.st.ClaimHour(ctx, f.hz, hour, "test", time.Minute); err != nil || !cl.Claimed {
			t.Fatalf("claim %s: %+v %v", hour, cl, err)
		}
		if _, err := f.st.CommitHour(ctx, f.hz, hour, "test", obs); err != nil {
			t.Fatal(err)
		}
	}
	collect(at(2, 28, 23), hzState(6, 7, 2)) // February in UTC, March 1 00:00 in Berlin
	collect(at(3, 1, 0), hzState(3, 3, 0))
	collect(at(3, 1, 1), hzState(3, 3, 0))
	collect(at(3, 1, 2), hzState(3, 2, 1))
	// March 1 03:00 to March 10 08:00 not collected: a gap.
	collect(at(3, 10, 9), hzState(5, 4, 2)) // the peak: 5 desktops, 6 sessions
	collect(at(3, 10, 10), hzState(3, 3, 0))
	collect(at(3, 31, 23), hzState(4, 1, 0)) // April in Berlin
	collect(at(4, 1, 0), hzState(10, 20, 5)) // April

	spans, err := f.st.Spans(ctx, f.hz)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(spans)
	if len(spans) == 0 {
		t.Fatal("no spans stored")
	}

	for _, tc := range []struct {
		zone               string
		desktops, sessions float64
		missing            int
	}{
		{"UTC", 5, 6, 744 - 6},
		{"Europe/Berlin", 6, 9, 743 - 6},
	} {
		t.Run(tc.zone, func(t *testing.T) {
			loc, err := time.LoadLocation(tc.zone)
			if err != nil {
				t.Fatal(err)
			}
			for _, mode := range []anonymize.Mode{anonymize.ModeNone, anonymize.ModeHashed} {
				g, err := New(Options{Store: f.st, Location: loc, Mode: mode, Secret: secretA, Dir: t.TempDir(), Now: func() time.Time { return fixedAt }})
				if err != nil {
					t.Fatal(err)
				}
				m, _ := ParseMonth("2026-03", loc)
				files := buildFiles(t, g, m, 1)
				for name, b := range files {
					for _, p := range append(personal, "svc-meter") {
						if strings.Contains(string(b), p) {
							t.Errorf("%s (%s): personal data %q", name, mode, p)
						}
					}
				}
				if mode != anonymize.ModeNone {
					continue
				}
				got := string(files[FileMonthly])
				for _, want := range []string{
					"Horizon\tEnterprise\tMaximum Desktop VMs under Management\tcount\t" + num(tc.desktops) + "\thorizon01.corp.example\t\tNo Customer Label\n",
					"Horizon\tEnterprise\tMaximum RDSH Sessions under Management\tcount\t" + num(tc.sessions) + "\thorizon01.corp.example\t\tNo Customer Label\n",
				} {
					if !strings.Contains(got, want) {
						t.Errorf("Monthly_Usage lacks %q:\n%s", want, got)
					}
				}
				var man Manifest
				if err := json.Unmarshal(files[FileManifest], &man); err != nil {
					t.Fatal(err)
				}
				for _, p := range man.Products {
					if p.Kind == "horizon" && p.MissingHours != tc.missing {
						t.Errorf("horizon missing hours %d, want %d", p.MissingHours, tc.missing)
					}
				}
			}
		})
	}
	for _, p := range personal {
		if strings.Contains(string(raw), p) {
			t.Errorf("personal data %q in the stored spans", p)
		}
	}
}
