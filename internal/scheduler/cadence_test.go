package scheduler_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/scheduler"
	"github.com/usagemeter/usagemeter/internal/seal"
	"github.com/usagemeter/usagemeter/internal/store"
)

const sixHourly = "scheduler-test-six-hourly"

func init() {
	collectors.Register(collectors.Kind{Name: sixHourly, DisplayName: "Six-hourly test product", Every: 6 * time.Hour,
		New: func(collectors.Target) (collectors.Collector, error) { return nil, nil }})
}

// TestSixHourCadence: the catch-up collects a 6-hour product (Horizon DaaS)
// only at 00, 06, 12 and 18 UTC, an hourly one every hour; when the daemon
// was down, the hours in between are no gaps of the 6-hour product, its
// missed due hour is one.
func TestSixHourCadence(t *testing.T) {
	box, _ := seal.NewBox(bytes.Repeat([]byte{3}, 32))
	st := store.New(pgtest.NewPool(t), box)
	ctx := context.Background()
	h0 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	hourlyID, _ := st.AddProduct(ctx, store.Product{Kind: "x", Endpoint: "https://hourly"})
	daasID, _ := st.AddProduct(ctx, store.Product{Kind: sixHourly, Endpoint: "https://daas"})
	cols := map[int64]*counting{}
	for _, id := range []int64{hourlyID, daasID} {
		cols[id] = &counting{calls: map[time.Time]int{}, down: map[time.Time]bool{}}
	}
	now := h0
	gl := &gapLog{}
	s := scheduler.New(scheduler.Config{Minute: 5, Concurrency: 2, Timeout: time.Minute}, st, slog.New(slog.DiscardHandler),
		scheduler.WithClock(func() time.Time { return now }), scheduler.WithObserver(gl),
		scheduler.WithFactory(func(t collectors.Target) (collectors.Collector, error) { return cols[t.ProductID], nil }))

	// Every hour of the first 13 hours, ticked at minute 5.
	for n := 0; n <= 12; n++ {
		h := h0.Add(time.Duration(n) * time.Hour)
		now = h.Add(5 * time.Minute)
		res := s.CatchUp(ctx, false)
		want := 1
		if n%6 == 0 {
			want = 2
		}
		if len(res) != want {
			t.Fatalf("%s: %d collections, want %d", h.Format("15:04"), len(res), want)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("%s: %v", h.Format("15:04"), r.Err)
			}
		}
		if got := cols[daasID].n(h); (n%6 == 0) != (got == 1) || got > 1 {
			t.Fatalf("%s: the 6-hour product collected %d times", h.Format("15:04"), got)
		}
	}
	if len(gl.gaps) != 0 {
		t.Fatalf("gaps recorded while every due hour was collected: %+v", gl.gaps)
	}
	// The daemon is down from 13:00 to 19:59: at 20:05 the hourly product
	// has 7 gaps (13 to 19), the 6-hour one only 18:00.
	now = h0.Add(20*time.Hour + 5*time.Minute)
	s.CatchUp(ctx, false)
	perProduct := map[int64][]int{}
	for _, g := range gl.gaps {
		perProduct[g.Product.ID] = append(perProduct[g.Product.ID], g.Hour.Hour())
	}
	if got := perProduct[daasID]; len(got) != 1 || got[0] != 18 {
		t.Errorf("6-hour product gaps at hours %v, want [18]", got)
	}
	if got := perProduct[hourlyID]; len(got) != 7 {
		t.Errorf("hourly product gaps at hours %v, want 13 to 19", got)
	}
	if r, _ := st.Run(ctx, daasID, h0.Add(15*time.Hour)); r.State != "" {
		t.Errorf("a run for 15:00 of the 6-hour product: %+v", r)
	}
}
