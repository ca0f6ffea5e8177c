package report

import (
	"context"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/anonymize"
	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/migrations"
)

// TestMigratedMonth: the golden month written with the schema before
// migration 005_spans_by_object (one usage_spans row per span, dims in
// each), migrated forward by it
// (spans by object, dims once), gives the golden report byte for byte; and
// the merge carries on from the migrated spans: an unchanged object's span
// is extended, not split.
func TestMigratedMonth(t *testing.T) {
	ctx := context.Background()
	v, err := migrations.VersionOf("spans_by_object")
	if err != nil {
		t.Fatal(err)
	}
	conn, f := goldenMonthAt(t, v-1) // INSERT INTO usage_spans, the table before the migration
	var spans int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM usage_spans`).Scan(&spans); err != nil {
		t.Fatal(err)
	}

	if _, _, err := migrations.Apply(ctx, conn); err != nil {
		t.Fatal(err)
	}
	var kind string
	if err := conn.QueryRow(ctx, `SELECT relkind::text FROM pg_class WHERE relname = 'usage_spans'`).Scan(&kind); err != nil || kind != "v" {
		t.Fatalf("usage_spans after the migration: relkind %q, %v; want a view", kind, err)
	}
	var after int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM usage_spans`).Scan(&after); err != nil || after != spans {
		t.Fatalf("%d spans after the migration (%v), %d before", after, err, spans)
	}

	files := buildFiles(t, f.generator(t, anonymize.ModeHashed, secretA), march, 1)
	for name, data := range files {
		golden(t, name, data) // the files of TestGoldenBundle, made before the migration existed
	}
	clear := buildFiles(t, f.generator(t, anonymize.ModeNone, nil), march, 1)
	golden(t, "clear_"+FileMonthly, clear[FileMonthly])
	golden(t, "clear_"+FileManifest, clear[FileManifest])

	// web01's span runs to April 5, 00:00: the next hour, in the same
	// state, extends it (its state is compared by content once, the hash
	// written before 003 being unknown).
	next := time.Date(2026, 4, 5, 1, 0, 0, 0, time.UTC)
	if c, err := f.st.ClaimHour(ctx, f.vc, next, "test", time.Minute); err != nil || !c.Claimed {
		t.Fatal(c, err)
	}
	res, err := f.st.CommitHour(ctx, f.vc, next, "test", []collectors.Observation{{
		Metric: collectors.MetricVMVRAM, ObjectKey: "vc-uuid/vm/web01", Quantity: 4096, Unit: "MB", Edition: "vsphere-ent",
		Dims: vmDims("web01", "esx01.corp.example", "Gold", "/DC-Paris/vm/Tenants/Acme/web", "rp-acme", "AAAAA-RENT"),
	}})
	if err != nil || res.Extended != 1 || res.Inserted != 0 {
		t.Fatalf("commit after the migration: %+v, %v; want the migrated span extended", res, err)
	}
}
