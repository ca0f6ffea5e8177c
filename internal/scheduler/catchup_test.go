package scheduler_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/scheduler"
	"github.com/usagemeter/usagemeter/internal/seal"
	"github.com/usagemeter/usagemeter/internal/store"
)

// counting is a collector that counts its calls per hour, fails in the hours
// of down, and can be held mid-collection.
type counting struct {
	mu    sync.Mutex
	calls map[time.Time]int
	down  map[time.Time]bool
	hold  chan struct{}
}

func (c *counting) Collect(ctx context.Context, hour time.Time) ([]collectors.Observation, error) {
	c.mu.Lock()
	c.calls[hour]++
	down, hold := c.down[hour], c.hold
	c.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if down {
		return nil, errors.New("connection refused")
	}
	return []collectors.Observation{{Metric: collectors.MetricVMVRAM, ObjectKey: "vm/1", Quantity: 1024, Unit: "MB"}}, nil
}

func (c *counting) n(h time.Time) int { c.mu.Lock(); defer c.mu.Unlock(); return c.calls[h] }

type gapLog struct {
	mu   sync.Mutex
	gaps []scheduler.Gap
}

func (g *gapLog) Observe(context.Context, scheduler.Result) {}
func (g *gapLog) ObserveGaps(_ context.Context, gaps []scheduler.Gap) {
	g.mu.Lock()
	g.gaps = append(g.gaps, gaps...)
	g.mu.Unlock()
}

// TestCatchUpTicks drives the catch-up tick with an injected clock: nothing
// before minute M, every product from minute M on, once; a failed hour is
// not re-run by later ticks; a run abandoned by a dead daemon is reclaimed
// once its lease ran out, within the hour; an hour that ended uncollected
// is recorded once as a gap with its cause and told to the gap observers.
func TestCatchUpTicks(t *testing.T) {
	box, _ := seal.NewBox(bytes.Repeat([]byte{3}, 32))
	st := store.New(pgtest.NewPool(t), box)
	ctx := context.Background()
	h0 := time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)
	okID, _ := st.AddProduct(ctx, store.Product{Kind: "x", Endpoint: "https://ok"})
	badID, _ := st.AddProduct(ctx, store.Product{Kind: "x", Endpoint: "https://bad"})
	deadID, _ := st.AddProduct(ctx, store.Product{Kind: "x", Endpoint: "https://dead"})
	cols := map[int64]*counting{}
	for _, id := range []int64{okID, badID, deadID} {
		cols[id] = &counting{calls: map[time.Time]int{}, down: map[time.Time]bool{}}
	}
	cols[badID].down[h0] = true
	var mu sync.Mutex
	now := h0.Add(2 * time.Minute)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
	gl := &gapLog{}
	s := scheduler.New(scheduler.Config{Minute: 5, Concurrency: 4, Timeout: time.Minute}, st, slog.New(slog.DiscardHandler),
		scheduler.WithClock(clock), scheduler.WithObserver(gl),
		scheduler.WithFactory(func(t collectors.Target) (collectors.Collector, error) { return cols[t.ProductID], nil }))

	// A daemon that died holding the third product's hour, with a short lease.
	if c, err := st.ClaimHour(ctx, deadID, h0, "dead-daemon", 500*time.Millisecond); err != nil || !c.Claimed {
		t.Fatal(c, err)
	}
	if res := s.CatchUp(ctx, false); len(res) != 0 {
		t.Fatalf("collected before minute M: %+v", res)
	}
	set(h0.Add(5 * time.Minute))
	if res := s.CatchUp(ctx, false); len(res) != 2 {
		t.Fatalf("at minute M: %d results, want the two unleased products", len(res))
	}
	time.Sleep(600 * time.Millisecond)
	set(h0.Add(6 * time.Minute))
	res := s.CatchUp(ctx, false)
	if len(res) != 1 || res[0].Product.ID != deadID || res[0].Err != nil {
		t.Fatalf("after the dead daemon's lease: %+v", res)
	}
	if r, _ := st.Run(ctx, deadID, h0); r.State != store.RunDone || r.Attempts != 2 {
		t.Fatalf("reclaimed run: %+v", r)
	}
	set(h0.Add(30 * time.Minute))
	if res := s.CatchUp(ctx, false); len(res) != 0 {
		t.Fatalf("a later tick re-ran: %+v", res)
	}
	if cols[okID].n(h0) != 1 || cols[badID].n(h0) != 1 || cols[deadID].n(h0) != 1 {
		t.Fatalf("calls: ok %d, bad %d, dead %d", cols[okID].n(h0), cols[badID].n(h0), cols[deadID].n(h0))
	}

	// Hour 11 passes with no tick at all (the daemon was stopped): at 12:01
	// it is recorded as a gap of every product, once.
	h2 := h0.Add(2 * time.Hour)
	set(h2.Add(time.Minute))
	s.CatchUp(ctx, false)
	set(h2.Add(2 * time.Minute))
	s.CatchUp(ctx, false)
	if len(gl.gaps) != 3 {
		t.Fatalf("gaps told: %+v", gl.gaps)
	}
	for _, g := range gl.gaps {
		if !g.Hour.Equal(h0.Add(time.Hour)) || !strings.Contains(g.Cause, "no collection was attempted") {
			t.Fatalf("gap: %+v", g)
		}
		if r, _ := st.Run(ctx, g.Product.ID, g.Hour); r.State != store.RunFailed || r.Error != g.Cause {
			t.Fatalf("gap run: %+v", r)
		}
	}
}

// TestCatchUpLeavesInFlightProducts: a tick does not start a second
// collection of a product this daemon is still collecting.
func TestCatchUpLeavesInFlightProducts(t *testing.T) {
	box, _ := seal.NewBox(bytes.Repeat([]byte{3}, 32))
	st := store.New(pgtest.NewPool(t), box)
	ctx := context.Background()
	h0 := time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)
	id, _ := st.AddProduct(ctx, store.Product{Kind: "x", Endpoint: "https://slow"})
	c := &counting{calls: map[time.Time]int{}, down: map[time.Time]bool{}, hold: make(chan struct{})}
	s := scheduler.New(scheduler.Config{Minute: 5, Timeout: time.Minute, Lease: 50 * time.Millisecond}, st, slog.New(slog.DiscardHandler),
		scheduler.WithClock(func() time.Time { return h0.Add(10 * time.Minute) }),
		scheduler.WithFactory(func(collectors.Target) (collectors.Collector, error) { return c, nil }))
	done := make(chan []scheduler.Result)
	go func() { done <- s.CatchUp(ctx, false) }()
	for c.n(h0) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // its own lease ran out: the store would hand the hour out again
	if res := s.CatchUp(ctx, false); len(res) != 0 || c.n(h0) != 1 {
		t.Fatalf("second tick while collecting: %+v, %d calls", res, c.n(h0))
	}
	close(c.hold)
	if res := <-done; len(res) != 1 || res[0].Err != nil {
		t.Fatalf("first tick: %+v", res)
	}
	if r, _ := st.Run(ctx, id, h0); r.State != store.RunDone {
		t.Fatalf("run: %+v", r)
	}
}
