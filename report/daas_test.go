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
	"github.com/usagemeter/usagemeter/collectors/horizondaas/simulator"
	"github.com/usagemeter/usagemeter/internal/store"
)

// daasState is a DaaS service provider with two Enterprise tenants and one
// Standard tenant, with the given numbers of connected users (and one
// disconnected session each, not a connection).
func daasState(ent1, ent2, std int) simulator.State {
	st := simulator.State{User: "svc-meter", Password: "pw", Domain: "SP-DOMAIN"}
	for k, tn := range []struct {
		id, name, edition string
		n                 int
	}{{"1001", "Acme Dental", "ENTERPRISE", ent1}, {"1002", "Borealis Logistics", "ENTERPRISE", ent2}, {"1003", "Cobalt Law", "STANDARD", std}} {
		t := simulator.Tenant{ID: tn.id, Name: tn.name, Edition: tn.edition, Quota: 100}
		for i := range tn.n + 1 {
			s := simulator.Session{ID: fmt.Sprintf("sess-%d-%02d", k, i), Pool: "pool-1", VM: fmt.Sprintf("VDI-%d-%02d", k, i),
				User: fmt.Sprintf("daasuser%d%02d", k, i)}
			if i == tn.n {
				s.State = "DISCONNECTED"
			}
			t.Sessions = append(t.Sessions, s)
		}
		st.Tenants = append(st.Tenants, t)
	}
	return st
}

// TestDaaSSixHourlyMaximum: the Horizon DaaS collector, run against its
// simulator at 6-hourly sampling hours of March 2026 (and just outside it),
// stores spans through the store's hourly merge; the report gives the
// monthly maximum of concurrent connections per edition: the largest hourly
// total of the tenants of that edition, which the hours between samples
// (no span, total 0) and a missed sampling hour (a gap) do not lower. The
// manifest expects one hour in six (124 in March, in UTC and in
// Europe/Berlin), and Hourly_Usage lists only the sampling hours. No tenant
// name, session id or user is in the bundle.
func TestDaaSSixHourlyMaximum(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	ctx := context.Background()
	daas, err := f.st.AddProduct(ctx, store.Product{Kind: "horizon-daas", Endpoint: "https://daas.sp.example", Options: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	at := func(m time.Month, d, h int) time.Time { return time.Date(2026, m, d, h, 0, 0, 0, time.UTC) }
	personal := []string{"Acme Dental", "Borealis Logistics", "Cobalt Law"}
	collect := func(hour time.Time, st simulator.State) {
		t.Helper()
		if !collectors.Due("horizon-daas", hour) {
			t.Fatalf("%s is not a sampling hour", hour)
		}
		for _, tn := range st.Tenants {
			for _, s := range tn.Sessions {
				personal = append(personal, s.ID, s.User)
			}
		}
		sim := simulator.New(st)
		u, thumb := sim.Start(t)
		c, err := collectors.New(collectors.Target{Kind: "horizon-daas", Endpoint: u, Username: `SP-DOMAIN\svc-meter`, Password: collectors.Secret("pw"),
			Thumbprint: thumb, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		obs, err := c.Collect(ctx, hour)
		if err != nil {
			t.Fatal(err)
		}
		if cl, err := f.st.ClaimHour(ctx, daas, hour, "test", time.Minute); err != nil || !cl.Claimed {
			t.Fatalf("claim %s: %+v %v", hour, cl, err)
		}
		if _, err := f.st.CommitHour(ctx, daas, hour, "test", obs); err != nil {
			t.Fatal(err)
		}
	}
	collect(at(2, 28, 18), daasState(40, 40, 40)) // February in UTC and in Berlin (19:00)
	collect(at(3, 1, 0), daasState(3, 2, 1))      // Enterprise 5, Standard 1
	collect(at(3, 1, 6), daasState(1, 3, 2))      // 4, 2
	// March 1 12:00 not collected: a gap.
	collect(at(3, 1, 18), daasState(4, 3, 1)) // the Enterprise peak: 7
	collect(at(3, 2, 0), daasState(1, 1, 3))  // the Standard peak: 3
	collect(at(3, 31, 18), daasState(6, 0, 0))
	collect(at(4, 1, 0), daasState(30, 30, 30)) // April in UTC and in Berlin (02:00)

	for _, zone := range []string{"UTC", "Europe/Berlin"} {
		t.Run(zone, func(t *testing.T) {
			loc, err := time.LoadLocation(zone)
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
					for _, p := range personal {
						if strings.Contains(string(b), p) {
							t.Errorf("%s (%s): tenant name or personal data %q", name, mode, p)
						}
					}
				}
				if mode != anonymize.ModeNone {
					continue
				}
				got := string(files[FileMonthly])
				for _, want := range []string{
					"Horizon DaaS\tEnterprise\tMaximum Concurrent Connections\tcount\t" + num(7) + "\tdaas.sp.example\t\tNo Customer Label\n",
					"Horizon DaaS\tStandard\tMaximum Concurrent Connections\tcount\t" + num(3) + "\tdaas.sp.example\t\tNo Customer Label\n",
				} {
					if !strings.Contains(got, want) {
						t.Errorf("Monthly_Usage lacks %q:\n%s", want, got)
					}
				}
				var man Manifest
				if err := json.Unmarshal(files[FileManifest], &man); err != nil {
					t.Fatal(err)
				}
				found := false
				for _, p := range man.Products {
					if p.Kind == "horizon-daas" {
						found = true
						if p.ExpectedHours != 124 || p.CollectedHours != 5 || p.MissingHours != 119 {
							t.Errorf("horizon-daas hours: expected %d, collected %d, missing %d; want 124, 5, 119",
								p.ExpectedHours, p.CollectedHours, p.MissingHours)
						}
					}
				}
				if !found {
					t.Error("horizon-daas not in the manifest")
				}
				rows := 0
				for _, line := range strings.Split(string(files[FileHourly]), "\n") {
					if !strings.Contains(line, "\tHorizon DaaS\t") {
						continue
					}
					rows++
					h, err := time.Parse(time.RFC3339, strings.SplitN(line, "\t", 2)[0])
					if err != nil {
						t.Fatalf("hour of %q: %v", line, err)
					}
					if h.UTC().Hour()%6 != 0 {
						t.Errorf("Hourly_Usage lists a DaaS hour between samples: %q", line)
					}
				}
				if rows != 2*124 {
					t.Errorf("%d DaaS rows in Hourly_Usage, want 248 (2 editions at 124 sampling hours)", rows)
				}
			}
		})
	}
}
