package scheduler_test

import (
	"bytes"
	"context"
	"errors"
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

type failing struct {
	err   error
	calls int
}

func (f *failing) Collect(context.Context, time.Time) ([]collectors.Observation, error) {
	f.calls++
	return nil, f.err
}

// TestRetriesWithinTheHour: a transient failure is retried; wrong
// credentials are not (no retry storm that could lock the account out).
func TestRetriesWithinTheHour(t *testing.T) {
	box, _ := seal.NewBox(bytes.Repeat([]byte{3}, 32))
	st := store.New(pgtest.NewPool(t), box)
	ctx := context.Background()
	id, _ := st.AddProduct(ctx, store.Product{Kind: "x", Endpoint: "https://x"})
	p, _ := st.Product(ctx, id)
	past := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		err   error
		calls int
	}{
		{errors.New("connection reset"), 4},
		{fmt.Errorf("logging in to vc as meter: %w", collectors.ErrAuth), 1},
	} {
		f := &failing{err: tc.err}
		var slept []time.Duration
		s := scheduler.New(scheduler.Config{Retries: 3, RetryBase: time.Second}, st, slog.New(slog.DiscardHandler),
			scheduler.WithFactory(func(collectors.Target) (collectors.Collector, error) { return f, nil }),
			scheduler.WithSleep(func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }))
		r := s.CollectProduct(ctx, p, past)
		if f.calls != tc.calls || r.Attempts != tc.calls || r.Err == nil {
			t.Fatalf("%v: %d calls, result %+v", tc.err, f.calls, r)
		}
		if tc.calls == 4 && fmt.Sprint(slept) != "[1s 2s 4s]" {
			t.Fatalf("backoff %v", slept)
		}
		past = past.Add(time.Hour)
	}
}
