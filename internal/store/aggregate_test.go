package store_test

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/store"
)

// insertSpan writes a span directly (the merge is tested in store_test.go).
func insertSpan(t testing.TB, s *store.Store, pid int64, metric, key string, first, last time.Time, qty float64, unit, edition string, dims map[string]string) {
	t.Helper()
	if dims == nil {
		dims = map[string]string{}
	}
	d, _ := json.Marshal(dims)
	_, err := s.Pool().Exec(context.Background(), `INSERT INTO usage_spans (product_id, metric, object_key, first_hour, last_hour, quantity, unit, edition, dims_hash, dims)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '\x00', $9)`, pid, metric, key, first.UTC(), last.UTC(), qty, unit, edition, string(d))
	if err != nil {
		t.Fatal(err)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestAverageMonthEdges: a VM present all along counts its full vRAM; spans
// crossing the month's start and end count only their hours inside it; the
// hours in month follow the report's time zone.
func TestAverageMonthEdges(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	cases := []struct {
		name  string
		month store.Month
		hours int
	}{
		{"28 days", store.MonthIn(time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC), time.UTC), 672},
		{"29 days", store.MonthIn(time.Date(2028, 2, 10, 0, 0, 0, 0, time.UTC), time.UTC), 696},
		{"30 days", store.MonthIn(time.Date(2026, 4, 10, 0, 0, 0, 0, time.UTC), time.UTC), 720},
		{"31 days", store.MonthIn(time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), time.UTC), 744},
		{"Berlin March, DST starts", store.MonthIn(time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), berlin), 743},
		{"Berlin October, DST ends", store.MonthIn(time.Date(2026, 10, 10, 0, 0, 0, 0, time.UTC), berlin), 745},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.month.Hours(); got != c.hours {
				t.Fatalf("hours in %s: %d, want %d", c.month, got, c.hours)
			}
			s := newStore(t)
			pid := addProduct(t, s)
			m := c.month
			// All month and beyond on both sides: 1024 MB = 1 GB average.
			insertSpan(t, s, pid, collectors.MetricVMVRAM, "vc/vm/all", m.Start.AddDate(0, -1, 0), m.End.AddDate(0, 1, 0), 1024, "MB", "ent", nil)
			// Crossing the start: 5 hours before, 10 inside.
			insertSpan(t, s, pid, collectors.MetricVMVRAM, "vc/vm/start", m.Start.Add(-5*time.Hour), m.Start.Add(9*time.Hour), 2048, "MB", "ent", nil)
			// Crossing the end: 3 hours inside, 7 after.
			insertSpan(t, s, pid, collectors.MetricVMVRAM, "vc/vm/end", m.End.Add(-3*time.Hour), m.End.Add(6*time.Hour), 1024, "MB", "ent", nil)
			// Wholly outside.
			insertSpan(t, s, pid, collectors.MetricVMVRAM, "vc/vm/before", m.Start.Add(-50*time.Hour), m.Start.Add(-time.Hour), 4096, "MB", "ent", nil)
			insertSpan(t, s, pid, collectors.MetricVMVRAM, "vc/vm/after", m.End, m.End.Add(50*time.Hour), 4096, "MB", "ent", nil)

			figs, err := s.AverageFigures(context.Background(), m, []string{collectors.MetricVMVRAM})
			if err != nil {
				t.Fatal(err)
			}
			if len(figs) != 1 {
				t.Fatalf("figures: %+v", figs)
			}
			f := figs[0]
			want := 1 + (2048.0*10+1024*3)/1024/float64(c.hours)
			if !near(f.Value, want) || f.Unit != "GB" || f.Objects != 3 || !near(f.Hours, float64(c.hours+13)) || !f.Reportable {
				t.Errorf("figure %+v, want value %v GB, 3 objects, %d hours", f, want, c.hours+13)
			}
		})
	}
}

func TestCountMaximumUnique(t *testing.T) {
	s := newStore(t)
	pid := addProduct(t, s)
	ctx := context.Background()
	m := store.MonthIn(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), time.UTC) // 720 hours
	// vm.managed: one VM all month, one half the month.
	insertSpan(t, s, pid, collectors.MetricVMManaged, "a", m.Start, m.End.Add(-time.Hour), 1, "count", "", nil)
	insertSpan(t, s, pid, collectors.MetricVMManaged, "b", m.Start, m.Start.Add(359*time.Hour), 1, "count", "", nil)
	cnt, err := s.CountFigures(ctx, m, []string{collectors.MetricVMManaged})
	if err != nil || len(cnt) != 1 || !near(cnt[0].Value, 1.5) {
		t.Fatalf("count: %+v %v", cnt, err)
	}
	// connections: 10 all month; 5 then 30 for two hours overlapping the 10: max 40.
	insertSpan(t, s, pid, collectors.MetricConnections, "pool1", m.Start, m.End.Add(-time.Hour), 10, "count", "Enterprise", nil)
	insertSpan(t, s, pid, collectors.MetricConnections, "pool2", m.Start.Add(100*time.Hour), m.Start.Add(199*time.Hour), 5, "count", "Enterprise", nil)
	insertSpan(t, s, pid, collectors.MetricConnections, "pool2", m.Start.Add(200*time.Hour), m.Start.Add(201*time.Hour), 30, "count", "Enterprise", nil)
	// Before the month: a higher value that must not count.
	insertSpan(t, s, pid, collectors.MetricConnections, "pool3", m.Start.Add(-10*time.Hour), m.Start.Add(-time.Hour), 500, "count", "Enterprise", nil)
	mx, err := s.MaximumFigures(ctx, m, []string{collectors.MetricConnections})
	if err != nil || len(mx) != 1 || !near(mx[0].Value, 40) || mx[0].Objects != 2 {
		t.Fatalf("maximum: %+v %v", mx, err)
	}
	// vm.protected: three spans of two objects.
	insertSpan(t, s, pid, collectors.MetricVMProtected, "x", m.Start, m.Start.Add(10*time.Hour), 1, "count", "", nil)
	insertSpan(t, s, pid, collectors.MetricVMProtected, "x", m.Start.Add(20*time.Hour), m.Start.Add(30*time.Hour), 1, "count", "", nil)
	insertSpan(t, s, pid, collectors.MetricVMProtected, "y", m.End.Add(-time.Hour), m.End.Add(10*time.Hour), 1, "count", "", nil)
	u, err := s.UniqueFigures(ctx, m, []string{collectors.MetricVMProtected})
	if err != nil || len(u) != 1 || u[0].Value != 2 {
		t.Fatalf("unique: %+v %v", u, err)
	}
}

func TestNotReportable(t *testing.T) {
	s := newStore(t)
	pid := addProduct(t, s)
	ctx := context.Background()
	m := store.MonthIn(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), time.UTC)
	insertSpan(t, s, pid, collectors.MetricVMVRAM, "rental", m.Start, m.End, 1024, "MB", "ent", map[string]string{"license_key": "K-RENT"})
	insertSpan(t, s, pid, collectors.MetricVMVRAM, "eval", m.Start, m.End, 1024, "MB", "ent", map[string]string{"not_reportable": "true"})
	insertSpan(t, s, pid, collectors.MetricVMVRAM, "perp", m.Start, m.End, 1024, "MB", "ent", map[string]string{"license_key": "K-PERP"})
	if err := s.SetLicenseCategory(ctx, "K-PERP", store.LicensePerpetual); err != nil {
		t.Fatal(err)
	}
	if err := s.NoteLicense(ctx, "K-RENT", "ent"); err != nil {
		t.Fatal(err)
	}
	figs, err := s.AverageFigures(ctx, m, []string{collectors.MetricVMVRAM})
	if err != nil {
		t.Fatal(err)
	}
	if len(figs) != 2 || figs[0].Reportable || figs[0].Objects != 2 || !figs[1].Reportable || figs[1].Objects != 1 || !near(figs[1].Value, 1) {
		t.Fatalf("figures: %+v", figs)
	}
	ls, err := s.Licenses(ctx)
	if err != nil || len(ls) != 2 || ls[0].Category != store.LicensePerpetual || ls[1].Category != store.LicenseRental {
		t.Fatalf("licenses: %+v %v", ls, err)
	}
	insertSpan(t, s, pid, collectors.MetricVMVRAM, "new", m.Start, m.End, 1024, "MB", "ent", map[string]string{"license_key": "K-NEW", "license_edition": "ent+"})
	if n, err := s.SyncLicenses(ctx, m.Start); err != nil || n != 1 {
		t.Fatalf("sync: %d %v", n, err)
	}
	ls, _ = s.Licenses(ctx)
	if len(ls) != 3 || ls[0].Key != "K-NEW" || ls[0].Edition != "ent+" || ls[0].Category != store.LicenseRental || ls[1].Category != store.LicensePerpetual {
		t.Fatalf("after sync: %+v", ls)
	}
}

func TestCustomerRulePrecedence(t *testing.T) {
	s := newStore(t)
	pid := addProduct(t, s)
	ctx := context.Background()
	rules := []store.CustomerRule{
		{Label: "VCCo", ObjectType: "vcenter", ObjectName: "vc1.example"},
		{Label: "ClusterCo", ObjectType: "cluster", ObjectName: "C1"},
		{Label: "HostCo", ObjectType: "host", ObjectName: "esx9"},
		{Label: "Acme", ObjectType: "folder", ObjectName: "Tenants/Acme"},
		{Label: "AcmeSpecial", ObjectType: "folder", ObjectName: "/DC1/vm/Tenants/Acme/special/"},
		{Label: "PoolCo", ObjectType: "resource-pool", ObjectName: "rp-gold"},
		{Label: "OrgCo", ObjectType: "vcd-org", ObjectName: "org1"},
	}
	for _, r := range rules {
		if _, err := s.AddCustomerRule(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AddCustomerRule(ctx, store.CustomerRule{Label: "Other", ObjectType: "cluster", ObjectName: "C1"}); err == nil {
		t.Fatal("a second label on one object was accepted")
	}
	if _, err := s.AddCustomerRule(ctx, store.CustomerRule{Label: "X", ObjectType: "galaxy", ObjectName: "C1"}); err == nil {
		t.Fatal("an unknown object type was accepted")
	}
	m := store.MonthIn(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), time.UTC)
	cases := map[string]struct {
		dims map[string]string
		want string
	}{
		"vc-only":       {map[string]string{"vcenter": "vc1.example", "cluster": "C2"}, "VCCo"},
		"cluster":       {map[string]string{"vcenter": "vc1.example", "cluster": "C1", "host": "esx1"}, "ClusterCo"},
		"host":          {map[string]string{"vcenter": "vc1.example", "cluster": "C1", "host": "esx9"}, "HostCo"},
		"folder":        {map[string]string{"vcenter": "vc1.example", "cluster": "C1", "host": "esx9", "folder": "/DC1/vm/Tenants/Acme"}, "Acme"},
		"child-folder":  {map[string]string{"vcenter": "vc1.example", "folder": "/DC1/vm/Tenants/Acme/web/db"}, "Acme"},
		"deeper-folder": {map[string]string{"vcenter": "vc1.example", "folder": "/DC1/vm/Tenants/Acme/special/x"}, "AcmeSpecial"},
		"not-a-segment": {map[string]string{"folder": "/DC1/vm/Tenants/AcmeCorp"}, ""},
		"pool":          {map[string]string{"vcenter": "vc1.example", "host": "esx9", "resource_pool": "rp-gold"}, "PoolCo"},
		"pool-vs-fold":  {map[string]string{"folder": "/DC1/vm/Tenants/Acme", "resource_pool": "rp-gold"}, "Acme"},
		"org":           {map[string]string{"org": "org1", "folder": "/DC1/vm/Tenants/Acme"}, "OrgCo"},
		"none":          {map[string]string{"vcenter": "vc2.example"}, ""},
	}
	for key, c := range cases {
		insertSpan(t, s, pid, collectors.MetricVMVRAM, key, m.Start, m.Start, 1024, "MB", "", c.dims)
	}
	got := map[string]string{}
	err := s.History(ctx, m, []string{collectors.MetricVMVRAM}, func(h *store.HistoryRow) error {
		got[h.ObjectKey] = h.Customer
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for key, c := range cases {
		if got[key] != c.want {
			t.Errorf("%s: customer %q, want %q", key, got[key], c.want)
		}
	}
	list, err := s.CustomerRules(ctx)
	if err != nil || len(list) != len(rules) {
		t.Fatalf("rules: %v %v", list, err)
	}
	if err := s.RemoveCustomerRuleFor(ctx, "cluster", "C1"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveCustomerRule(ctx, list[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveCustomerRule(ctx, list[0].ID); err == nil {
		t.Fatal("removing a removed rule succeeded")
	}
}

func TestMonthGapsAndHourly(t *testing.T) {
	s := newStore(t)
	pid := addProduct(t, s)
	ctx := context.Background()
	m := store.MonthIn(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), time.UTC)
	// Collected hours 0..9 and 12..719: hours 10 and 11 are missing.
	for h := 0; h < 720; h++ {
		if h == 10 || h == 11 {
			continue
		}
		if _, err := s.Pool().Exec(ctx, `INSERT INTO collection_runs (product_id, hour, state) VALUES ($1, $2, 'done')`, pid, m.Start.Add(time.Duration(h)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	gaps, err := s.MonthGaps(ctx, m, m.End.Add(time.Hour))
	if err != nil || len(gaps) != 1 || gaps[0].Missing != 2 || gaps[0].Expected != 720 {
		t.Fatalf("gaps: %+v %v", gaps, err)
	}
	// Asked in the middle of the month: hours after now are not missing.
	gaps, err = s.MonthGaps(ctx, m, m.Start.Add(100*time.Hour+30*time.Minute))
	if err != nil || len(gaps) != 1 || gaps[0].Expected != 100 || gaps[0].Missing != 2 {
		t.Fatalf("gaps mid-month: %+v %v", gaps, err)
	}

	insertSpan(t, s, pid, collectors.MetricVMVRAM, "a", m.Start.Add(-time.Hour), m.Start.Add(9*time.Hour), 1024, "MB", "e", nil)
	insertSpan(t, s, pid, collectors.MetricVMVRAM, "b", m.Start.Add(5*time.Hour), m.End, 512, "MB", "e", nil)
	insertSpan(t, s, pid, collectors.MetricVMVRAM, "c", m.Start.Add(5*time.Hour), m.End, 512, "MB", "e", map[string]string{"not_reportable": "true"})
	var rows []store.HourlyTotal
	err = s.HourlyTotals(ctx, m, []string{collectors.MetricVMVRAM}, func(h store.HourlyTotal) error {
		rows = append(rows, h)
		return nil
	})
	if err != nil || len(rows) != 720 {
		t.Fatalf("hourly: %d rows, %v", len(rows), err)
	}
	check := func(i int, q float64, n int64, collected bool) {
		t.Helper()
		r := rows[i]
		if !r.Hour.Equal(m.Start.Add(time.Duration(i)*time.Hour)) || r.Quantity != q || r.Objects != n || r.Collected != collected {
			t.Errorf("hour %d: %+v, want %v MB, %d objects, collected %v", i, r, q, n, collected)
		}
	}
	check(0, 1024, 1, true)
	check(5, 1536, 2, true)
	check(9, 1536, 2, true)
	check(10, 512, 1, false)
	check(719, 512, 1, true)
}

func TestReportsVersionsAndAnonMap(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	berlin := mustLoc(t, "Europe/Berlin")
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, berlin)
	if _, err := s.LatestReport(ctx, start); err == nil {
		t.Fatal("a report exists in a new database")
	}
	r1, err := s.InsertReport(ctx, store.Report{Month: start, Version: 1, RulesVersion: "r", FiguresSHA256: "f1", BundleSHA256: "b1", Path: "/x/1",
		Channels: map[string]store.ChannelStatus{"email": {State: store.ChannelPending}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.InsertReport(ctx, store.Report{Month: start, Version: 1, RulesVersion: "r", FiguresSHA256: "f2", BundleSHA256: "b2", Path: "/x/2"}); err == nil {
		t.Fatal("a duplicate version was stored")
	}
	if _, err := s.InsertReport(ctx, store.Report{Month: start, Version: 2, RulesVersion: "r", FiguresSHA256: "f2", BundleSHA256: "b2", Path: "/x/2"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetReportChannel(ctx, r1.ID, "upload", store.ChannelStatus{State: store.ChannelSent, Attempts: 3, Detail: "HTTP 201"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReportByID(ctx, r1.ID)
	if err != nil || got.Channels["upload"].Attempts != 3 || got.Channels["email"].State != store.ChannelPending || got.Month.Format("2006-01-02") != "2026-03-01" {
		t.Fatalf("report: %+v %v", got, err)
	}
	latest, err := s.LatestReport(ctx, start)
	if err != nil || latest.Version != 2 {
		t.Fatalf("latest: %+v %v", latest, err)
	}
	all, err := s.Reports(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("reports: %v %v", all, err)
	}

	n, err := s.SaveAnonMap(ctx, []store.AnonEntry{{"h1", "vm", "web01"}, {"h2", "host", "esx1"}}, start)
	if err != nil || n != 2 {
		t.Fatalf("save: %d %v", n, err)
	}
	n, err = s.SaveAnonMap(ctx, []store.AnonEntry{{"h1", "folder", "web01"}, {"h3", "vm", "db"}}, start)
	if err != nil || n != 1 {
		t.Fatalf("save again: %d %v", n, err)
	}
	am, err := s.AnonMap(ctx)
	if err != nil || len(am) != 3 || am["h1"].Kind != "vm" {
		t.Fatalf("map: %v %v", am, err)
	}
}

// TestAggregateAfterMerge: hours written through ClaimHour/CommitHour (the
// span merge) aggregate to the hour-by-hour sum.
func TestAggregateAfterMerge(t *testing.T) {
	s := newStore(t)
	pid := addProduct(t, s)
	ctx := context.Background()
	m := store.MonthIn(h0, time.UTC) // March 2026, 744 hours
	// The last hour of February, then six hours of March; web changes size at hour 3.
	for i := -1; i < 6; i++ {
		mb := 2048.0
		if i >= 3 {
			mb = 4096
		}
		collect(t, s, pid, h0.Add(time.Duration(i)*time.Hour), vm("vc/vm/web", mb, "web"), vm("vc/vm/db", 1024, "db"))
	}
	figs, err := s.AverageFigures(ctx, m, []string{collectors.MetricVMVRAM})
	if err != nil || len(figs) != 1 {
		t.Fatalf("figures: %+v %v", figs, err)
	}
	want := (2048.0*3 + 4096*3 + 1024*6) / 1024 / 744
	if !near(figs[0].Value, want) || figs[0].Objects != 2 || figs[0].Hours != 12 {
		t.Fatalf("figure %+v, want %v GB over 12 VM-hours", figs[0], want)
	}
	var spans []string
	err = s.History(ctx, m, []string{collectors.MetricVMVRAM}, func(h *store.HistoryRow) error {
		spans = append(spans, h.ObjectKey+" "+h.First.UTC().Format("15")+"-"+h.Last.UTC().Format("15")+" "+h.VM)
		return nil
	})
	if err != nil || len(spans) != 3 || spans[0] != "vc/vm/db 00-05 db" || spans[1] != "vc/vm/web 00-02 web" || spans[2] != "vc/vm/web 03-05 web" {
		t.Fatalf("history: %q %v", spans, err)
	}
	gaps, err := s.MonthGaps(ctx, m, h0.Add(6*time.Hour))
	if err != nil || len(gaps) != 1 || gaps[0].Expected != 6 || gaps[0].Missing != 0 {
		t.Fatalf("gaps: %+v %v", gaps, err)
	}
}
