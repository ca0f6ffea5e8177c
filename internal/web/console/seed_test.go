package console_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usagemeter/usagemeter/internal/store"
)

// history is a provider's past written straight in SQL, for the
// screenshots and the benchmark: products of several kinds, every hour of
// [From, To) collected (a few hours failed), and usage spans that change
// every few days.
type history struct {
	Products int       // vCenters mostly, some NSX-T, Cloud Director and SRM
	Objects  int       // metered objects per product
	From, To time.Time // the hours collected
}

// seed writes h into s's database and returns the products' ids.
func seed(t testing.TB, s *site, h history) []int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, string(s.app.Config.Database.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `
	INSERT INTO products (kind, endpoint, username, instance_id, created_at)
	SELECT k.kind, format(k.pattern, lpad(i::text, 3, '0')), 'svc-meter@vsphere.local', md5(i::text), $2
	  FROM generate_series(1, $1) i
	  CROSS JOIN LATERAL (SELECT CASE i % 10 WHEN 7 THEN 'nsxt' WHEN 8 THEN 'vcd' WHEN 9 THEN 'srm' ELSE 'vcenter' END AS kind,
	                             CASE i % 10 WHEN 7 THEN 'https://nsx-%s.provider.example' WHEN 8 THEN 'https://vcd-%s.provider.example'
	                                         WHEN 9 THEN 'https://srm-%s.provider.example' ELSE 'https://vc-%s.provider.example/sdk' END AS pattern) k
	 ORDER BY i
	RETURNING id`, h.Products, h.From)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	// Every hour collected; about one in 700 failed, with its cause.
	if _, err := conn.Exec(ctx, `
	INSERT INTO collection_runs (product_id, hour, state, attempts, owner, started_at, finished_at, error, objects)
	SELECT p.id, hr, CASE WHEN f.failed THEN 'failed' ELSE 'done' END, CASE WHEN f.failed THEN 3 ELSE 1 END, 'seed',
	       hr + interval '5 minutes', hr + interval '5 minutes' + (800 + (p.id * 37 + extract(epoch FROM hr)::bigint / 3600 * 13) % 4000) * interval '1 millisecond',
	       CASE WHEN f.failed THEN format('Post "%s": dial tcp 10.20.%s.%s:443: connect: connection timed out', p.endpoint, p.id % 250, 10 + p.id % 200) END,
	       CASE WHEN f.failed THEN NULL ELSE $3 + (p.id % 7) END
	  FROM products p
	 CROSS JOIN generate_series($1::timestamptz, $2::timestamptz - interval '1 hour', interval '1 hour') hr
	 CROSS JOIN LATERAL (SELECT (p.id * 7919 + extract(epoch FROM hr)::bigint / 3600) % 701 = 0 AS failed) f`, h.From, h.To, h.Objects); err != nil {
		t.Fatal(err)
	}
	// Spans of 5 days: vRAM changes from one to the next, objects come and
	// go, so that the daily figures vary.
	chunks := int(h.To.Sub(h.From)/(120*time.Hour)) + 1
	if _, err := s.app.Store.ImportSpans(ctx, `
	SELECT p.id, m.metric, format('%s/obj-%s', p.instance_id, o), $1::timestamptz + c * interval '120 hours',
	       least($1::timestamptz + (c + 1) * interval '120 hours' - interval '1 hour', $2::timestamptz - interval '1 hour'),
	       m.quantity, m.unit, '', jsonb_build_object('vm', format('vm-%s', o), 'cluster', format('cluster-%s', o % 3), 'datacenter', 'dc-1')
	  FROM products p
	 CROSS JOIN generate_series(1, $3) o
	 CROSS JOIN generate_series(0, $4 - 1) c
	 CROSS JOIN LATERAL (SELECT CASE p.kind WHEN 'vcenter' THEN 'vm.vram' WHEN 'nsxt' THEN 'nsx.vm' WHEN 'vcd' THEN 'vm.managed' ELSE 'vm.protected' END AS metric,
	                            CASE p.kind WHEN 'vcenter' THEN 'MB' ELSE 'VM' END AS unit,
	                            CASE p.kind WHEN 'vcenter' THEN 1024 * (2 + (o + c) % 4 + (c * 3 + p.id) % 5) ELSE 1 END AS quantity) m
	 WHERE (o + c * 3) % (4 + (c + p.id) % 4) <> 0 AND $1::timestamptz + c * interval '120 hours' < $2::timestamptz`, h.From, h.To, h.Objects, chunks); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	return ids
}

// openAlert opens a collection alert on product id, as the alert engine
// does after a failed hour.
func openAlert(t testing.TB, s *site, id int64, at time.Time, msg string) {
	t.Helper()
	if _, err := s.app.Store.RaiseAlert(context.Background(), store.Alert{Key: fmt.Sprintf("collection_failed:%d", id), Kind: "collection_failed",
		ProductID: id, OpenedAt: at, LastError: msg, Failures: 2}, nil); err != nil {
		t.Fatal(err)
	}
}
