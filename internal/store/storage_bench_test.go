package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/migrations"
)

// Sizes of BenchmarkStorage: a month (720 hours) of 2,000 vCenter VMs, 25
// per host, each changing 3 times in the month (a resize, a vMotion to
// another host, a resize back).
const (
	storageVMs   = 2000
	storageHours = 720
)

// storageObs is the vCenter-shaped observation of VM i in hour h: keys of
// two UUIDs, names, placement and the host's licence in its dims.
func storageObs(i, h int) collectors.Observation {
	mb := float64(1024 * (1 + i%8))
	if h >= 5+(i*37)%230 && h < 480+(i*71)%230 {
		mb += 1024
	}
	host := i / 25
	if h >= 240+(i*53)%230 {
		host = (host + 1) % (storageVMs / 25)
	}
	tenant := i % 150
	return collectors.Observation{
		Metric:    collectors.MetricVMVRAM,
		ObjectKey: fmt.Sprintf("4c1e0f5a-9d2b-4a57-8e3c-1b2d3e4f5a6b/vm/5003%04x-1c2d-4e5f-8a9b-%012x", i, i*7919),
		Quantity:  mb, Unit: collectors.UnitMB, Edition: "esxEnterprisePlus",
		Dims: map[string]string{
			"vm": fmt.Sprintf("app-%05d.tenant-%03d", i, tenant), "host": fmt.Sprintf("esx-%03d.dc1.provider.example", host),
			"cluster": fmt.Sprintf("CL-%02d", host/10), "datacenter": "DC-Paris",
			"folder": fmt.Sprintf("/DC-Paris/vm/Tenants/tenant-%03d/app", tenant), "resource_pool": fmt.Sprintf("rp-tenant-%03d", tenant),
			"vcenter": "vc01.dc1.provider.example", "license_key": fmt.Sprintf("5M0AH-4K2D1-48J8Z-0N1A4-%05d", host%4),
			"license_edition": "esxEnterprisePlus", "license_name": "VMware vSphere 8 Enterprise Plus",
		},
	}
}

// BenchmarkStorage measures, side by side, the bytes a month of
// storageVMs VMs takes on disk (tables and indexes, pg_total_relation_size,
// after the month's hours, before any VACUUM FULL):
//
//   - before: the schema before 005_spans_by_object (usage_spans, dims in
//     every span), written by
//     the merge of that schema (its statement, kept below);
//   - after: this schema (span_objects, spans, span_states, span_names),
//     written by CommitHour.
//
// It reports bytes per VM-month for each; after, also the part that grows
// every month (closed spans and new states, per VM-month) apart from the
// part held once per object (span_objects with its latest span, and its
// names), and the share of HOT updates of span_objects.
func BenchmarkStorage(b *testing.B) {
	ctx := context.Background()
	obs := make([]collectors.Observation, storageVMs)
	fill := func(h int) []collectors.Observation {
		for i := range obs {
			obs[i] = storageObs(i, h)
		}
		return obs
	}

	// v3.
	s := newStore(b)
	pid := addProduct(b, s)
	start := time.Now()
	for h := 0; h < storageHours; h++ {
		if c, err := s.ClaimHour(ctx, pid, hour(h), "bench", time.Hour); err != nil || !c.Claimed {
			b.Fatal(c, err)
		}
		if _, err := s.CommitHour(ctx, pid, hour(h), "bench", fill(h)); err != nil {
			b.Fatal(err)
		}
	}
	v3time := time.Since(start)
	time.Sleep(1500 * time.Millisecond) // table statistics are flushed after a second
	var objects, closed, states, names, nSpans, upd, hot int64
	if err := s.Pool().QueryRow(ctx, `SELECT pg_total_relation_size('span_objects'), pg_total_relation_size('spans'),
		pg_total_relation_size('span_states'), pg_total_relation_size('span_names'),
		(SELECT count(*) FROM spans) + (SELECT count(*) FROM span_objects),
		(SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'span_objects'),
		(SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'span_objects')`).
		Scan(&objects, &closed, &states, &names, &nSpans, &upd, &hot); err != nil {
		b.Fatal(err)
	}

	// v2, on a database of the schema before 005_spans_by_object.
	v3, err := migrations.VersionOf("spans_by_object")
	if err != nil {
		b.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, pgtest.NewDatabaseAt(b, v3-1))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var pid2 int64
	if err := conn.QueryRow(ctx, `INSERT INTO products (kind, endpoint) VALUES ('vcenter', 'https://vc01') RETURNING id`).Scan(&pid2); err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	for h := 0; h < storageHours; h++ {
		if err := mergeV2(ctx, conn, pid2, hour(h), fill(h)); err != nil {
			b.Fatal(err)
		}
	}
	v2time := time.Since(start)
	var v2size, v2spans int64
	if err := conn.QueryRow(ctx, `SELECT pg_total_relation_size('usage_spans'), (SELECT count(*) FROM usage_spans)`).Scan(&v2size, &v2spans); err != nil {
		b.Fatal(err)
	}

	v3size := objects + closed + states + names
	b.ReportMetric(float64(v2size)/storageVMs, "before-B/VM-month")
	b.ReportMetric(float64(v3size)/storageVMs, "after-B/VM-month")
	b.ReportMetric(float64(closed+states)/storageVMs, "after-monthly-B/VM-month")
	b.ReportMetric(float64(objects+names)/storageVMs, "after-per-object-B/VM")
	b.ReportMetric(float64(v2size)/float64(v2spans), "before-B/span")
	b.ReportMetric(float64(v3size)/float64(nSpans), "after-B/span")
	b.ReportMetric(float64(nSpans)/storageVMs, "spans/VM")
	b.ReportMetric(float64(hot)/float64(max(upd, 1)), "after-hot-share")
	b.Logf("v2: %d spans, usage_spans %d B; merge %s for %d hours", v2spans, v2size, v2time.Round(time.Millisecond), storageHours)
	b.Logf("v3: %d spans; span_objects %d B, spans %d B, span_states %d B, span_names %d B; %d of %d updates of span_objects HOT; merge %s",
		nSpans, objects, closed, states, names, hot, upd, v3time.Round(time.Millisecond))
}

// mergeV2 commits an hour as the merge of schema version 2 did (its
// statement as it was, without the run bookkeeping and late hours): COPY
// into a staging table, extend the span ending at H-1 with an equal state
// hash, insert the others as [H, H].
func mergeV2(ctx context.Context, conn *pgx.Conn, pid int64, hour time.Time, obs []collectors.Observation) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS merge_obs (
		metric text, object_key text, quantity double precision, unit text, edition text, dims_hash bytea, dims text
	) ON COMMIT DELETE ROWS`); err != nil {
		return err
	}
	rows := make([][]any, 0, len(obs))
	for _, o := range obs {
		hash, dims := store.StateHash(o)
		rows = append(rows, []any{o.Metric, o.ObjectKey, o.Quantity, o.Unit, o.Edition, hash, string(dims)})
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"merge_obs"},
		[]string{"metric", "object_key", "quantity", "unit", "edition", "dims_hash", "dims"}, pgx.CopyFromRows(rows)); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `
		WITH obj AS MATERIALIZED (
			SELECT o.*, latest.id AS span_id
			  FROM merge_obs o
			  LEFT JOIN LATERAL (SELECT x.id, x.last_hour, x.dims_hash FROM usage_spans x
			                      WHERE x.product_id = $1 AND x.metric = o.metric AND x.object_key = o.object_key AND x.first_hour <= $3
			                      ORDER BY x.first_hour DESC LIMIT 1) latest
			    ON latest.last_hour = $3 AND latest.dims_hash = o.dims_hash
		), ext AS (
			UPDATE usage_spans s SET last_hour = $2
			 WHERE s.id = ANY ((SELECT array_agg(span_id) FROM obj WHERE span_id IS NOT NULL)::bigint[])
			RETURNING 1
		), ins AS (
			INSERT INTO usage_spans (product_id, metric, object_key, first_hour, last_hour, quantity, unit, edition, dims_hash, dims)
			SELECT $1, obj.metric, obj.object_key, $2, $2, obj.quantity, obj.unit, obj.edition, obj.dims_hash, obj.dims::jsonb
			  FROM obj
			 WHERE obj.span_id IS NULL
			RETURNING 1
		)
		SELECT (SELECT count(*) FROM ext), (SELECT count(*) FROM ins)`, pid, hour, hour.Add(-time.Hour)); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
