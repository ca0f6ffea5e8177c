package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/store"
)

// TestMonthTablesPrivateOrTemporary: a month opened by the database's owner
// puts its tables in a schema of its own (usagemeter_month_<pid>), which is
// gone once the month is closed, and two months open at once do not share
// it; a role that may not create schemas gets temporary tables instead.
// Both give the same figures, customers (folder rules) included.
func TestMonthTablesPrivateOrTemporary(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t)
	owner, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(owner.Close)
	s := store.New(owner, nil)
	pid := addProduct(t, s)
	m := store.MonthIn(time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), time.UTC)
	for i := range 40 {
		insertSpan(t, s, pid, collectors.MetricVMVRAM, fmt.Sprintf("vc/vm/%d", i), m.Start, m.End.Add(-time.Hour), 1024, "MB", "ent",
			map[string]string{"vm": fmt.Sprintf("vm-%d", i), "folder": fmt.Sprintf("/dc/vm/tenant-%d/app", i%4)})
	}
	for i := range 2 {
		if _, err := s.AddCustomerRule(ctx, store.CustomerRule{Label: fmt.Sprintf("Tenant %d", i), ObjectType: "folder", ObjectName: fmt.Sprintf("tenant-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}

	schemas := func() []string {
		t.Helper()
		var names []string
		if err := owner.QueryRow(ctx, `SELECT coalesce(array_agg(nspname::text ORDER BY nspname), '{}') FROM pg_namespace WHERE nspname LIKE 'usagemeter_month_%'`).Scan(&names); err != nil {
			t.Fatal(err)
		}
		return names
	}
	where := func(d *store.MonthData) string {
		t.Helper()
		var schema string
		if err := d.QueryRow(ctx, `SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'month_spans'::regclass`).Scan(&schema); err != nil {
			t.Fatal(err)
		}
		return schema
	}

	a, err := s.OpenMonth(ctx, m, []string{collectors.MetricVMVRAM})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.OpenMonth(ctx, m, []string{collectors.MetricVMVRAM})
	if err != nil {
		t.Fatal(err)
	}
	sa, sb := where(a), where(b)
	if sa == sb || len(sa) <= len("usagemeter_month_") || sa[:len("usagemeter_month_")] != "usagemeter_month_" {
		t.Fatalf("months open at once: tables in %q and %q, want two schemas usagemeter_month_<pid>", sa, sb)
	}
	want, err := a.AverageFigures(ctx, []string{collectors.MetricVMVRAM})
	if err != nil {
		t.Fatal(err)
	}
	a.Close(ctx)
	b.Close(ctx)
	if left := schemas(); len(left) != 0 {
		t.Fatalf("schemas left after the months were closed: %v", left)
	}
	customers := map[string]float64{}
	for _, f := range want {
		customers[f.Customer] += f.Value
	}
	// 40 VMs of 1 GB all month, by folder tenant-0..3; rules for two.
	if len(customers) != 3 || !near(customers["Tenant 0"], 10) || !near(customers["Tenant 1"], 10) || !near(customers[""], 20) {
		t.Fatalf("GB by customer: %v, want Tenant 0 10, Tenant 1 10, none 20", customers)
	}

	// A role with the rights of an application on the tables, but not
	// the owner's CREATE on the database.
	if _, err := owner.Exec(ctx, `CREATE ROLE month_reader LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO month_reader`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = owner.Exec(context.Background(), `DROP OWNED BY month_reader; DROP ROLE month_reader`)
	})
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.User = "month_reader"
	reader, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reader.Close)
	r, err := store.New(reader, nil).OpenMonth(ctx, m, []string{collectors.MetricVMVRAM})
	if err != nil {
		t.Fatalf("a role that may not create schemas: %v", err)
	}
	defer r.Close(ctx)
	if s := where(r); s[:len("pg_temp")] != "pg_temp" {
		t.Fatalf("a role that may not create schemas: tables in %q, want temporary ones", s)
	}
	got, err := r.AverageFigures(ctx, []string{collectors.MetricVMVRAM})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("figures from temporary tables:\n%v\nfrom the private schema:\n%v", got, want)
	}
}

// TestHistoryInBatches: the history is read in batches by a goroutine of
// its own; every row arrives once, in order, across batches, and a
// callback's error stops the reading and leaves the month usable.
func TestHistoryInBatches(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	pid := addProduct(t, s)
	m := store.MonthIn(time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), time.UTC)
	const vms = 1300 // two full batches and a part
	if _, err := s.Pool().Exec(ctx, `INSERT INTO usage_spans (product_id, metric, object_key, first_hour, last_hour, quantity, unit, edition, dims_hash, dims)
		SELECT $1, $2, 'vc/vm/' || lpad(i::text, 5, '0'), $3, $4, 1024, 'MB', 'ent', '\x00', jsonb_build_object('vm', 'vm-' || i)
		  FROM generate_series(1, $5) i`, pid, collectors.MetricVMVRAM, m.Start, m.End.Add(-time.Hour), vms); err != nil {
		t.Fatal(err)
	}
	d, err := s.OpenMonth(ctx, m, []string{collectors.MetricVMVRAM})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctx)
	n := 0
	if err := d.History(ctx, []string{collectors.MetricVMVRAM}, func(h *store.HistoryRow) error {
		n++
		if want := fmt.Sprintf("vc/vm/%05d", n); h.ObjectKey != want || h.VM != fmt.Sprintf("vm-%d", n) {
			return fmt.Errorf("row %d: %s %s, want %s", n, h.ObjectKey, h.VM, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != vms {
		t.Fatalf("%d rows, want %d", n, vms)
	}

	stop := fmt.Errorf("enough")
	n = 0
	err = d.History(ctx, []string{collectors.MetricVMVRAM}, func(h *store.HistoryRow) error {
		if n++; n == 700 {
			return stop
		}
		return nil
	})
	if err != stop || n != 700 {
		t.Fatalf("after the callback's error: %v, %d rows read; want %v at row 700", err, n, stop)
	}
	figs, err := d.CountFigures(ctx, []string{collectors.MetricVMVRAM})
	if err != nil || len(figs) != 1 || !near(figs[0].Value, vms) {
		t.Fatalf("the month after a stopped history: %v %+v", err, figs)
	}
}
