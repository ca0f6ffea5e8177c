package scheduler_test

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/scheduler"
	"github.com/usagemeter/usagemeter/internal/seal"
	"github.com/usagemeter/usagemeter/internal/store"
)

type noop struct{}

func (noop) Collect(context.Context, time.Time) ([]collectors.Observation, error) { return nil, nil }

// TestTargetNamesRegisteredVCenters: a collector's target lists the vCenters
// registered on the appliance at each call, so that one registered after the
// collector was built (and cached) is seen.
func TestTargetNamesRegisteredVCenters(t *testing.T) {
	box, _ := seal.NewBox(bytes.Repeat([]byte{3}, 32))
	st := store.New(pgtest.NewPool(t), box)
	ctx := context.Background()
	if _, err := st.AddProduct(ctx, store.Product{Kind: "vcenter", Endpoint: "https://vc01", InstanceID: "564D1A2B-3C4D-5E6F-7A8B-9C0D1E2F3A4B"}); err != nil {
		t.Fatal(err)
	}
	id, err := st.AddProduct(ctx, store.Product{Kind: "vra8", Endpoint: "https://vra"})
	if err != nil {
		t.Fatal(err)
	}
	var got collectors.Target
	h0 := time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)
	s := scheduler.New(scheduler.Config{Minute: 5, Timeout: time.Minute, Lease: time.Minute}, st, slog.New(slog.DiscardHandler),
		scheduler.WithClock(func() time.Time { return h0.Add(10 * time.Minute) }),
		scheduler.WithFactory(func(t collectors.Target) (collectors.Collector, error) { got = t; return noop{}, nil }))
	p, err := st.Product(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if r := s.CollectProduct(ctx, p, h0); r.Err != nil {
		t.Fatal(r.Err)
	}
	if got.VCenters == nil {
		t.Fatal("the target does not list the registered vCenters")
	}
	if ids, err := got.VCenters(ctx); err != nil || !slices.Equal(ids, []string{"564d1a2b-3c4d-5e6f-7a8b-9c0d1e2f3a4b"}) {
		t.Fatalf("registered vCenters %v, %v", ids, err)
	}
	if _, err := st.AddProduct(ctx, store.Product{Kind: "vcenter", Endpoint: "https://vc02", InstanceID: "5022c0de-1111-4222-8333-944455556666"}); err != nil {
		t.Fatal(err)
	}
	if ids, _ := got.VCenters(ctx); len(ids) != 2 {
		t.Fatalf("a vCenter registered later is not listed: %v", ids)
	}
}
