package scheduler_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/scheduler"
	"github.com/usagemeter/usagemeter/internal/seal"
	"github.com/usagemeter/usagemeter/internal/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// fixed is a collector returning n VMs, instantly.
type fixed struct{ obs []collectors.Observation }

func (f fixed) Collect(context.Context, time.Time) ([]collectors.Observation, error) {
	return f.obs, nil
}

func newFixed(product int64, n int) fixed {
	obs := make([]collectors.Observation, n)
	for i := range obs {
		obs[i] = collectors.Observation{Metric: collectors.MetricVMVRAM, ObjectKey: fmt.Sprintf("vc%d/vm/%d", product, i), Quantity: 4096, Unit: "MB", Dims: map[string]string{"vm": fmt.Sprintf("vm%d", i)}}
	}
	return fixed{obs}
}

func setup(tb testing.TB, products, vms int) (*scheduler.Scheduler, *store.Store) {
	tb.Helper()
	box, _ := seal.NewBox(bytes.Repeat([]byte{3}, 32))
	st := store.New(pgtest.NewPool(tb), box)
	cols := map[int64]collectors.Collector{}
	for i := 0; i < products; i++ {
		id, err := st.AddProduct(context.Background(), store.Product{Kind: "fixed", Endpoint: fmt.Sprintf("https://p%d.example", i)})
		if err != nil {
			tb.Fatal(err)
		}
		cols[id] = newFixed(id, vms)
	}
	s := scheduler.New(scheduler.Config{Concurrency: 8, Timeout: time.Minute}, st, slog.New(slog.DiscardHandler),
		scheduler.WithFactory(func(t collectors.Target) (collectors.Collector, error) { return cols[t.ProductID], nil }))
	return s, st
}

func TestRunHourStoresEveryProduct(t *testing.T) {
	s, st := setup(t, 5, 3)
	h := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	res, err := s.RunHour(context.Background(), h)
	if err != nil || len(res) != 5 {
		t.Fatal(res, err)
	}
	for _, r := range res {
		if r.Err != nil || r.Merge.Inserted != 3 {
			t.Fatalf("%+v", r)
		}
		if run, _ := st.Run(context.Background(), r.Product.ID, h); run.State != store.RunDone || run.Objects != 3 {
			t.Fatalf("run %+v", run)
		}
	}
	again, _ := s.RunHour(context.Background(), h)
	for _, r := range again {
		if r.Skipped != "committed" {
			t.Fatalf("second run of the hour: %+v", r)
		}
	}
}

// BenchmarkRunHour200Products measures the scheduler and store overhead of
// one hour for 200 products (10 objects each, collectors answering at once).
func BenchmarkRunHour200Products(b *testing.B) {
	s, _ := setup(b, 200, 10)
	h := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := s.RunHour(context.Background(), h.Add(time.Duration(i)*time.Hour))
		if err != nil || len(res) != 200 || res[0].Err != nil {
			b.Fatal(err)
		}
	}
}
