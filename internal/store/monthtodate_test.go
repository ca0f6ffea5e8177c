package store_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usagemeter/usagemeter/internal/store"
)

// TestDailyFigures checks DailyFigures against the plain reading of its
// definition (every span of the view usage_spans against every day), on
// spans that start before the month, change within a day, stop and
// resume, in a zone with a half-hour offset (days start at its midnight),
// up to an hour within a day.
func TestDailyFigures(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	var ids []int64
	for i := range 3 {
		id, err := s.AddProduct(ctx, store.Product{Kind: "vcenter", Endpoint: fmt.Sprintf("https://vc%d.example/sdk", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	base := time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC) // spans start on whole UTC hours
	if _, err := s.ImportSpans(ctx, `
	SELECT p, m, format('obj-%s-%s-%s', p, o, (c + 3) % 3), $1::timestamptz + (c * 37 + o * 5) * interval '1 hour',
	       $1::timestamptz + (c * 37 + o * 5 + 20 + (o * c) % 17) * interval '1 hour',
	       (1 + (o + c) % 3) * 1024.0, CASE m WHEN 'vm.vram' THEN 'MB' ELSE 'GB' END, '', jsonb_build_object('vm', format('vm-%s', o))
	  FROM unnest($2::bigint[]) p, unnest(ARRAY['vm.vram', 'vsan.used_gb']) m, generate_series(1, 6) o, generate_series(-2, 14) c`,
		base, ids); err != nil {
		t.Fatal(err)
	}
	for _, zone := range []string{"UTC", "America/St_Johns"} {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		from := time.Date(2026, 3, 1, 0, 0, 0, 0, loc)
		to := time.Date(2026, 3, 20, 14, 0, 0, 0, loc).UTC().Truncate(time.Hour) // a DST change (8 March) inside
		got, err := s.DailyFigures(ctx, from, to, loc)
		if err != nil {
			t.Fatal(err)
		}
		want := referenceDailyFigures(t, s, from, to, loc)
		if len(got) != len(want) || len(got) < 100 {
			t.Fatalf("%s: %d figures, the reference has %d", zone, len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			if g.ProductID != w.ProductID || g.Metric != w.Metric || g.Unit != w.Unit || !g.Day.Equal(w.Day) || g.Objects != w.Objects ||
				math.Abs(g.QuantityHours-w.QuantityHours) > 1e-6 || math.Abs(g.Hours-w.Hours) > 1e-9 || math.Abs(g.Average-w.Average) > 1e-6 {
				t.Fatalf("%s, figure %d:\n got  %+v\n want %+v", zone, i, g, w)
			}
		}
	}
}

// referenceDailyFigures is DailyFigures as first written: each span of
// usage_spans tested against each day.
func referenceDailyFigures(t *testing.T, s *store.Store, from, to time.Time, loc *time.Location) []store.DayFigure {
	var starts, ends []time.Time
	for d := time.Date(from.In(loc).Year(), from.In(loc).Month(), from.In(loc).Day(), 0, 0, 0, 0, loc); d.Before(to); d = d.AddDate(0, 0, 1) {
		starts = append(starts, maxT(d, from))
		ends = append(ends, minT(d.AddDate(0, 0, 1), to))
	}
	rows, err := s.Pool().Query(context.Background(), `
	WITH days AS (SELECT * FROM unnest($3::timestamptz[], $4::timestamptz[]) AS d(day_start, day_end))
	SELECT s.product_id, s.metric, s.unit, d.day_start,
	       sum(s.quantity * (extract(epoch FROM least(s.last_hour + interval '1 hour', d.day_end) - greatest(s.first_hour, d.day_start)) / 3600)),
	       greatest(extract(epoch FROM d.day_end - d.day_start) / 3600, 1),
	       count(DISTINCT s.object_key),
	       sum(extract(epoch FROM least(s.last_hour + interval '1 hour', d.day_end) - greatest(s.first_hour, d.day_start)) / 3600)
	  FROM usage_spans s
	  JOIN days d ON s.first_hour < d.day_end AND s.last_hour + interval '1 hour' > d.day_start
	 WHERE s.first_hour < $2 AND s.last_hour >= $1
	 GROUP BY s.product_id, s.metric, s.unit, d.day_start, d.day_end
	 ORDER BY s.product_id, s.metric, s.unit, d.day_start`, from, to, starts, ends)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.DayFigure, error) {
		var f store.DayFigure
		var dayHours float64
		err := r.Scan(&f.ProductID, &f.Metric, &f.Unit, &f.Day, &f.QuantityHours, &dayHours, &f.Objects, &f.Hours)
		f.Average = f.QuantityHours / dayHours
		f.Day = f.Day.In(loc)
		return f, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func maxT(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minT(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
