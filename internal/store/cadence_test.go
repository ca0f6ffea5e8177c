package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/store"
)

// sixHourly is a kind collected every 6 hours, as Horizon DaaS is.
const sixHourly = "store-test-six-hourly"

func init() {
	collectors.Register(collectors.Kind{Name: sixHourly, DisplayName: "Six-hourly test product", Every: 6 * time.Hour,
		New: func(collectors.Target) (collectors.Collector, error) { return nil, nil }})
}

func ids(ps []store.Product) []int64 {
	var out []int64
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

// TestSixHourCadence: a kind with a 6-hour cadence is due, to collect and
// expected only at 00, 06, 12 and 18 UTC; the hours between are neither
// collected nor gaps, in the catch-up's gap recording and in the month's gap
// count. An hourly product beside it keeps every hour.
func TestSixHourCadence(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	hourly := addProduct(t, s)
	daas, err := s.AddProduct(ctx, store.Product{Kind: sixHourly, Endpoint: "https://daas.example", Username: "meter"})
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < 24; n++ {
		due, err := s.ProductsDue(ctx, hour(n))
		if err != nil {
			t.Fatal(err)
		}
		todo, err := s.ProductsToCollect(ctx, hour(n))
		if err != nil {
			t.Fatal(err)
		}
		want := []int64{hourly}
		if n%6 == 0 {
			want = append(want, daas)
		}
		if !slices.Equal(ids(due), want) || !slices.Equal(ids(todo), want) {
			t.Fatalf("hour %02d UTC: due %v, to collect %v, want %v", n, ids(due), ids(todo), want)
		}
	}

	// The month: DaaS collected at 00 and 06 of the 1st, then at every due
	// hour but 12:00 on the 2nd; the hourly product only at 00 of the 1st.
	collect(t, s, hourly, hour(0), vm("a", 1024, "x"))
	for n := 0; n < 31*24; n += 6 {
		if n == 36 {
			continue // 2026-03-02 12:00 UTC
		}
		collect(t, s, daas, hour(n), collectors.Observation{Metric: collectors.MetricConnections, ObjectKey: "tenant/1001", Quantity: float64(n % 7), Unit: collectors.UnitCount})
	}
	// The catch-up's gap recording over the first two days: the hourly
	// product's 47 uncollected hours, and DaaS's 12:00 on the 2nd only.
	var daasGaps []time.Time
	hourlyGaps := 0
	for n := 0; n < 48; n++ {
		gaps, err := s.RecordMissedHour(ctx, hour(n), "not collected before the hour ended: test", "me")
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range gaps {
			switch g.ProductID {
			case daas:
				daasGaps = append(daasGaps, g.Hour)
			case hourly:
				hourlyGaps++
			}
		}
	}
	if len(daasGaps) != 1 || !daasGaps[0].Equal(hour(36)) || hourlyGaps != 47 {
		t.Fatalf("gaps recorded: DaaS %v (want only %s), hourly %d (want 47)", daasGaps, hour(36), hourlyGaps)
	}
	m := store.MonthIn(h0, time.UTC)
	gaps, err := s.MonthGaps(ctx, m, m.End.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]store.ProductGap{}
	for _, g := range gaps {
		got[g.ProductID] = g
	}
	if g := got[daas]; g.Expected != 124 || g.Collected != 123 || g.Missing != 1 || g.Failed != 1 {
		t.Errorf("DaaS month: %+v, want 124 expected hours (744 / 6), 123 collected, the one recorded gap", g)
	}
	if g := got[hourly]; g.Expected != 744 || g.Collected != 1 || g.Failed != 47 {
		t.Errorf("hourly month: %+v", g)
	}
	// In Europe/Berlin the month starts at 23:00 UTC on the last day of
	// February: the due hours are still the UTC ones.
	berlin, _ := time.LoadLocation("Europe/Berlin")
	mb := store.MonthIn(h0.Add(24*time.Hour), berlin)
	gaps, err = s.MonthGaps(ctx, mb, mb.End.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gaps {
		// March 2026 in Berlin: 2026-02-28 23:00 to 2026-03-31 22:00 UTC
		// (743 hours); the due UTC hours from 00:00 on the 1st (the first
		// run) to 18:00 on the 31st: 124.
		if g.ProductID == daas && (g.Expected != 124 || g.Collected != 123) {
			t.Errorf("DaaS month in Europe/Berlin: %+v", g)
		}
	}
}

// TestSixHourFailureStreak: 30 days of failed samples of a 6-hour product
// are 720 failed hours, as 30 days of failed hours of an hourly one.
func TestSixHourFailureStreak(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	daas, err := s.AddProduct(ctx, store.Product{Kind: sixHourly, Endpoint: "https://daas.example", Username: "meter"})
	if err != nil {
		t.Fatal(err)
	}
	collect(t, s, daas, hour(0))
	for n := 6; n <= 30*24; n += 6 {
		if _, err := s.RecordMissedHour(ctx, hour(n), "not collected before the hour ended: test", "me"); err != nil {
			t.Fatal(err)
		}
	}
	f, err := s.FailureStreak(ctx, daas)
	if err != nil || f.Hours != 720 || f.Since == nil || !f.Since.Equal(hour(6)) {
		t.Fatalf("streak %+v, %v; want 720 hours since %s", f, err, hour(6))
	}
}
