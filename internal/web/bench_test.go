package web

import (
	"context"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/web/service"
)

// BenchmarkProviderScale measures what the dashboard and the journal page
// read at 200 products and a year of hours (1.75 million collection runs,
// one failed hour in 50): the products with their last collected hour,
// the journal's first page (all products, one product, failed only) and
// a page half a year back (by cursor), and the open alerts.
func BenchmarkProviderScale(b *testing.B) {
	e := newEnv(b, envOptions{})
	ctx := context.Background()
	pool := e.app.Store.Pool()
	start := time.Date(2025, 5, 4, 0, 0, 0, 0, time.UTC)
	if _, err := pool.Exec(ctx, `INSERT INTO products (kind, endpoint, username) SELECT 'vcenter', 'https://vc' || g || '.example', 'meter' FROM generate_series(1, 200) g`); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO collection_runs (product_id, hour, state, attempts, started_at, finished_at, error, objects)
	 SELECT p.id, h, CASE WHEN (p.id + extract(epoch FROM h)::bigint / 3600) % 50 = 0 THEN 'failed' ELSE 'done' END, 1, h + interval '5 minutes', h + interval '5 minutes 3 seconds',
	        CASE WHEN (p.id + extract(epoch FROM h)::bigint / 3600) % 50 = 0 THEN 'connection refused' END, 1200
	   FROM products p, generate_series($1::timestamptz, $2::timestamptz, interval '1 hour') h`, start, t0.Truncate(time.Hour).Add(-time.Hour)); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE collection_runs`); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		fn   func() error
	}{
		{"products", func() error { _, err := e.svc.Products(ctx); return err }},
		{"journal", func() error { _, err := e.svc.Journal(ctx, service.JournalQuery{Limit: 100}); return err }},
		{"journal-product", func() error {
			_, err := e.svc.Journal(ctx, service.JournalQuery{ProductID: 117, Limit: 100})
			return err
		}},
		{"journal-failed", func() error {
			_, err := e.svc.Journal(ctx, service.JournalQuery{State: "failed", Limit: 100})
			return err
		}},
		{"journal-half-a-year-back", func() error {
			_, err := e.svc.Journal(ctx, service.JournalQuery{Limit: 100, Before: &store.JournalCursor{Hour: start.AddDate(0, 6, 0), ProductID: 100}})
			return err
		}},
		{"alerts", func() error { _, err := e.svc.Alerts(ctx, true); return err }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if err := c.fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
