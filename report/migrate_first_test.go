package report

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usagemeter/usagemeter/anonymize"
	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/seal"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/migrations"
)

// The tables of the first release's schema (migration 001) and the columns
// that identify a row in each.
var firstSchemaTables = []struct{ name, key string }{
	{"appliance", "id"},
	{"products", "id"},
	{"collection_runs", "product_id, hour"},
	{"outbox", "id"},
	{"outbox_attachments", "outbox_id, position"},
	{"alerts", "id"},
	{"reports", "id"},
	{"customer_rules", "id"},
	{"anon_map", "hash"},
	{"licenses", "license_key"},
}

var firstReleaseKey = bytes.Repeat([]byte{0x5a}, 32)

// seedFirstRelease adds to the golden month what an appliance of the first
// release also holds, written as that release wrote it (SQL valid on schema
// 1): an NSX Manager paired to the vCenter with a sealed password, removed in
// February with its history; a February report and its mail; alerts, one
// open; the anonymisation map; an evaluation key seen by the collector (the
// first release noted every key as rental; evalCategory is what it is noted
// as on the schema at hand).
func (f *fixture) seedFirstRelease(t *testing.T, box *seal.Box, evalCategory string) (nsx int64) {
	t.Helper()
	ctx := context.Background()
	pool := f.st.Pool()
	feb20, feb25 := time.Date(2026, 2, 20, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 25, 9, 0, 0, 0, time.UTC)
	if err := pool.QueryRow(ctx, `INSERT INTO products (kind, endpoint, username, thumbprint, instance_id, paired_id, options, active, removed_at, created_at)
		VALUES ('nsxt', 'https://nsx01.corp.example', 'audit', 'AB:CD', 'nsx-uuid', $1, '{"version":"4.1.2"}', false, $2, $3) RETURNING id`,
		f.vc, feb25, feb20).Scan(&nsx); err != nil {
		t.Fatal(err)
	}
	sealed, err := box.Seal([]byte("nsx-secret"), []byte("product:"+strconv.FormatInt(nsx, 10)))
	if err != nil {
		t.Fatal(err)
	}
	f.exec(t, `UPDATE products SET credentials = $2 WHERE id = $1`, nsx, sealed)
	f.span(t, nsx, collectors.MetricNSXVM, "vc-uuid/vm/web01", feb20, feb25.Add(-time.Hour), 1, "count", "nsx-advanced",
		map[string]string{"vm": "web01", "nsx": "nsx01.corp.example", "vcenter": "vc01.corp.example"})
	f.runs(t, nsx, feb20, feb25)
	f.exec(t, `INSERT INTO collection_runs (product_id, hour, state, attempts, error) VALUES ($1, $2, 'failed', 3, 'nsx01.corp.example: connection refused')`, nsx, feb25)

	var mail int64
	if err := pool.QueryRow(ctx, `INSERT INTO outbox (kind, recipients, subject, body_text, state, attempts, sent_at, created_at)
		VALUES ('report', '{usage@aggregator.example}', 'Usage report 2026-02', 'attached', 'sent', 1, '2026-03-01T02:01:00Z', '2026-03-01T02:00:00Z') RETURNING id`).Scan(&mail); err != nil {
		t.Fatal(err)
	}
	f.exec(t, `INSERT INTO outbox_attachments (outbox_id, position, name, content_type, data) VALUES ($1, 0, 'usage-2026-02.tar.gz.gpg', 'application/pgp-encrypted', '\xdeadbeef')`, mail)
	f.exec(t, `INSERT INTO outbox (kind, recipients, subject, body_text, state, next_attempt, created_at)
		VALUES ('alert:collection_failed', '{ops@provider.example}', 'nsx01 fails', 'connection refused', 'queued', '2026-02-25T10:00:00Z', '2026-02-25T10:00:00Z')`)
	f.exec(t, `INSERT INTO reports (month, version, created_at, rules_version, figures_sha256, bundle_sha256, path, channels)
		VALUES ('2026-02-01', 1, '2026-03-01T02:00:00Z', '2026.1', 'f1', 'b1', '/var/lib/usagemeter/reports/2026-02-v1.tar.gz.gpg',
		        jsonb_build_object('email', jsonb_build_object('state', 'sent', 'at', '2026-03-01T02:01:00Z', 'detail', 'outbox ' || $1::bigint)))`, mail)
	f.exec(t, `INSERT INTO alerts (key, kind, product_id, opened_at, last_notified_at, resolved_at, last_error, failures, details)
		VALUES ('collection_failed:' || $1::bigint, 'collection_failed', $1, '2026-02-25T10:00:00Z', '2026-02-25T10:00:00Z', '2026-02-25T12:00:00Z', 'connection refused', 3, '{"hour":"2026-02-25T09:00:00Z"}'),
		       ('collection_failed:' || $2::bigint, 'collection_failed', $2, '2026-03-12T03:10:00Z', '2026-03-12T03:10:00Z', NULL, 'NotAuthenticated', 2, '{}')`, nsx, f.vc)
	f.exec(t, `INSERT INTO anon_map (hash, kind, value, first_seen) VALUES ('a1b2c3', 'vm', 'web01', '2026-03-01T02:00:00Z'), ('d4e5f6', 'host', 'esx01.corp.example', '2026-03-01T02:00:00Z')`)
	f.exec(t, `INSERT INTO licenses (license_key, edition, category, updated_at) VALUES ('EEEEE-EVAL', 'eval', $1, '2026-02-20T00:00:00Z'), ('AAAAA-RENT', 'vsphere-ent', 'rental', '2026-02-20T00:00:00Z')`, evalCategory)
	f.exec(t, `INSERT INTO customer_rules (label, object_type, object_name) VALUES ('Initech', 'vcd-org', 'initech')`)
	return nsx
}

// goldenMonthAt is a database of schema version, holding the golden month
// (the fixture registered and seeded): a connection to it and the fixture.
func goldenMonthAt(t *testing.T, version int32) (*pgx.Conn, *fixture) {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewDatabaseAt(t, version)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	pool, err := store.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	f := newFixtureOn(t, pool)
	f.register(t)
	f.seed(t)
	return conn, f
}

// tableRows is every row of each first-schema table as JSON objects by key.
func tableRows(t *testing.T, conn *pgx.Conn) map[string]map[string]map[string]any {
	t.Helper()
	ctx := context.Background()
	out := map[string]map[string]map[string]any{}
	for _, tb := range firstSchemaTables {
		rows, err := conn.Query(ctx, `SELECT to_jsonb(row(`+tb.key+`))::text, to_jsonb(t)::text FROM `+tb.name+` t`)
		if err != nil {
			t.Fatal(err)
		}
		out[tb.name] = map[string]map[string]any{}
		var k, v string
		if _, err := pgx.ForEachRow(rows, []any{&k, &v}, func() error {
			var m map[string]any
			if err := json.Unmarshal([]byte(v), &m); err != nil {
				return err
			}
			out[tb.name][k] = m
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// spanRows is every span (the usage_spans columns of both schemas but the
// merge's hash, which 005 keeps only where it knows it; dims that are not
// an object, a JSON null the first release could store, are none: {}) and the month's
// quantity-hours per product, metric, edition and unit.
func spanRows(t *testing.T, conn *pgx.Conn, m store.Month) (spans, month []string) {
	t.Helper()
	ctx := context.Background()
	var err error
	if spans, err = collectStrings(ctx, conn, `SELECT concat_ws('|', product_id, metric, object_key, first_hour, last_hour, quantity, unit, edition,
		CASE WHEN jsonb_typeof(dims) = 'object' THEN dims ELSE '{}' END::text)
		FROM usage_spans ORDER BY 1`); err != nil {
		t.Fatal(err)
	}
	if month, err = collectStrings(ctx, conn, `SELECT concat_ws('|', product_id, metric, edition, unit,
		sum(quantity * (extract(epoch FROM least(last_hour, $2::timestamptz - interval '1 hour') - greatest(first_hour, $1::timestamptz)) / 3600 + 1)))
		FROM usage_spans WHERE first_hour < $2 AND last_hour >= $1 GROUP BY product_id, metric, edition, unit ORDER BY 1`, m.Start, m.End); err != nil {
		t.Fatal(err)
	}
	return spans, month
}

func collectStrings(ctx context.Context, conn *pgx.Conn, sql string, args ...any) ([]string, error) {
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// TestMigratedFromFirstRelease (issue 16: a migration test from the first
// release's schema with a month of data): a database of schema version 1
// holding the golden month and what an appliance keeps besides (a removed
// product with its history and sealed password, reports, mails, alerts, the
// anonymisation map, licences, customer rules) migrates to the latest
// schema. Every row keeps its id and values (the one change of meaning
// intended: the evaluation key becomes the evaluation category, which was
// always excluded), every span survives, the month's quantity-hours are
// those before the migration, and the month's report is byte for byte the
// one of the same data written on the latest schema (and the golden files).
func TestMigratedFromFirstRelease(t *testing.T) {
	ctx := context.Background()
	box, err := seal.NewBox(firstReleaseKey)
	if err != nil {
		t.Fatal(err)
	}
	conn, f := goldenMonthAt(t, 1)
	pool := f.st.Pool()
	nsx := f.seedFirstRelease(t, box, "rental")

	before := tableRows(t, conn)
	spansBefore, monthBefore := spanRows(t, conn, march)
	if len(spansBefore) < 14 || len(monthBefore) < 5 {
		t.Fatalf("the first schema holds %d spans, %d month figures: the fixture did not load", len(spansBefore), len(monthBefore))
	}

	from, to, err := migrations.Apply(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if from != 1 || to != migrations.Latest() {
		t.Fatalf("migrated from %d to %d, want 1 to %d", from, to, migrations.Latest())
	}

	after := tableRows(t, conn)
	changed := map[string]any{ // table|key|column: the value after
		`licenses|{"f1": "EEEEE-EVAL"}|category`: "evaluation",
	}
	for _, tb := range firstSchemaTables {
		if len(before[tb.name]) == 0 {
			t.Errorf("table %s is empty before the migration: the test does not cover it", tb.name)
		}
		if len(after[tb.name]) != len(before[tb.name]) {
			t.Errorf("%s: %d rows after the migration, %d before", tb.name, len(after[tb.name]), len(before[tb.name]))
		}
		for key, row := range before[tb.name] {
			got, ok := after[tb.name][key]
			if !ok {
				t.Errorf("%s %s is gone after the migration", tb.name, key)
				continue
			}
			for col, v := range row {
				want := v
				if c, ok := changed[tb.name+"|"+key+"|"+col]; ok {
					want = c
				}
				if !reflect.DeepEqual(got[col], want) {
					t.Errorf("%s %s: %s = %v after the migration, want %v", tb.name, key, col, got[col], want)
				}
			}
		}
	}
	spansAfter, monthAfter := spanRows(t, conn, march)
	if !reflect.DeepEqual(spansAfter, spansBefore) {
		t.Errorf("spans after the migration:\n%q\nbefore:\n%q", spansAfter, spansBefore)
	}
	if !reflect.DeepEqual(monthAfter, monthBefore) {
		t.Errorf("March's quantity-hours after the migration:\n%q\nbefore:\n%q", monthAfter, monthBefore)
	}

	// The store reads the migrated rows with their meaning.
	st := store.New(pool, box)
	p, err := st.Product(ctx, nsx)
	if err != nil || p.Password.Reveal() != "nsx-secret" || p.PairedID != f.vc || p.InstanceID != "nsx-uuid" {
		t.Errorf("the removed NSX Manager after the migration: %+v, %v", p, err)
	}
	active, err := st.Products(ctx, false)
	if err != nil || len(active) != 3 {
		t.Errorf("products listed after the migration: %d (%v), want the 3 not removed", len(active), err)
	}
	reps, err := st.Reports(ctx)
	if err != nil || len(reps) != 1 || reps[0].Version != 1 || reps[0].Channels["email"].OutboxID() == 0 {
		t.Errorf("reports after the migration: %+v, %v", reps, err)
	}
	open, err := st.OpenAlerts(ctx)
	if err != nil || len(open) != 1 || open[0].ProductID != f.vc {
		t.Errorf("open alerts after the migration: %+v, %v", open, err)
	}

	// The month's report: the same bytes as the same data written on the
	// latest schema, and as the golden files.
	native := newFixtureOn(t, pgtest.NewPool(t))
	native.register(t)
	native.seed(t)
	native.seedFirstRelease(t, box, store.LicenseEvaluation)
	for _, mode := range []struct {
		mode   anonymize.Mode
		secret []byte
	}{{anonymize.ModeHashed, secretA}, {anonymize.ModeNone, nil}} {
		migrated := buildFiles(t, f.generator(t, mode.mode, mode.secret), march, 1)
		fresh := buildFiles(t, native.generator(t, mode.mode, mode.secret), march, 1)
		if len(migrated) != len(fresh) {
			t.Errorf("%s: %d files after the migration, %d written on the latest schema", mode.mode, len(migrated), len(fresh))
		}
		for name, data := range fresh {
			if !bytes.Equal(migrated[name], data) {
				t.Errorf("%s %s after the migration differs from the same month written on the latest schema:\n%s", mode.mode, name, firstDiff(string(data), string(migrated[name])))
			}
		}
		if mode.mode == anonymize.ModeHashed {
			for name, data := range migrated {
				golden(t, name, data)
			}
		} else {
			golden(t, "clear_"+FileMonthly, migrated[FileMonthly])
		}
	}
}
