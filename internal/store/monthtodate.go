package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// DayFigure is one metric of one product over one day: the average
// quantity over the day's collected hours (object-hours / hours), and the
// objects seen.
type DayFigure struct {
	ProductID int64
	Metric    string
	Unit      string
	Day       time.Time // the day's first instant, in the zone asked for
	Average   float64   // QuantityHours / the day's hours inside [from, to)
	Objects   int64
	Hours     float64 // object-hours
	// QuantityHours is the sum of quantity x hours over the day.
	QuantityHours float64
}

// DailyFigures sums the spans of [from, to) per product, metric, unit and
// day (days start at midnight in loc): the provider's clear-text view of
// a month so far, for the console's month-to-date page. Each day is
// averaged over its hours inside [from, to), so today's figure is the
// average of the hours gone.
func (s *Store) DailyFigures(ctx context.Context, from, to time.Time, loc *time.Location) ([]DayFigure, error) {
	var starts, ends []time.Time
	for d := time.Date(from.In(loc).Year(), from.In(loc).Month(), from.In(loc).Day(), 0, 0, 0, 0, loc); d.Before(to); d = d.AddDate(0, 0, 1) {
		starts = append(starts, maxTime(d, from))
		ends = append(ends, minTime(d.AddDate(0, 0, 1), to))
	}
	// Each span is cut into the days it covers, found by binary search in
	// the days' starts (width_bucket), not by testing it against every day;
	// the spans are read from their tables without their names (the view
	// usage_spans builds each one's dims). The figures are summed per
	// object and day first, then per product, metric and day, both by
	// hashing (a count(DISTINCT) would sort every object-day on text keys),
	// in double precision (date_part, not extract's numeric).
	//
	// The row count of generate_series is unknown to the planner (1,000 per
	// span), so a month of a few thousand objects looks big enough for JIT
	// compilation and parallel workers, which cost more (400 ms and more on
	// a busy appliance) than the query itself: both off for it.
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SET LOCAL jit = off; SET LOCAL max_parallel_workers_per_gather = 0; SET LOCAL work_mem = '64MB'`); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, `
	WITH sp AS (
		SELECT s.object_id, s.first_hour, s.last_hour + interval '1 hour' AS end_hour, s.quantity, s.state_id
		  FROM spans s
		 WHERE s.last_hour >= $1 AND s.first_hour < $2
		UNION ALL
		SELECT o.id, o.first_hour, o.last_hour + interval '1 hour', o.quantity, o.state_id
		  FROM span_objects o
		 WHERE o.last_hour >= $1 AND o.first_hour < $2),
	per_object AS (
		SELECT sp.object_id, st.unit, i, sum(sp.quantity * h.hours) AS quantity_hours, sum(h.hours) AS hours
		  FROM sp
		  JOIN span_states st ON st.id = sp.state_id
		 CROSS JOIN LATERAL generate_series(width_bucket(greatest(sp.first_hour, $1), $3::timestamptz[]),
		                                    width_bucket(least(sp.end_hour, $2) - interval '1 microsecond', $3::timestamptz[])) i
		 CROSS JOIN LATERAL (SELECT date_part('epoch', least(sp.end_hour, ($4::timestamptz[])[i]) - greatest(sp.first_hour, ($3::timestamptz[])[i])) / 3600 AS hours) h
		 GROUP BY sp.object_id, st.unit, i)
	SELECT o.product_id, o.metric, p.unit, ($3::timestamptz[])[p.i],
	       sum(p.quantity_hours),
	       greatest(date_part('epoch', ($4::timestamptz[])[p.i] - ($3::timestamptz[])[p.i]) / 3600, 1),
	       count(*),
	       sum(p.hours)
	  FROM per_object p
	  JOIN span_objects o ON o.id = p.object_id
	 GROUP BY o.product_id, o.metric, p.unit, p.i
	 ORDER BY o.product_id, o.metric, p.unit, p.i`, from, to, starts, ends)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (DayFigure, error) {
		var f DayFigure
		var dayHours float64
		err := r.Scan(&f.ProductID, &f.Metric, &f.Unit, &f.Day, &f.QuantityHours, &dayHours, &f.Objects, &f.Hours)
		f.Average = f.QuantityHours / dayHours
		f.Day = f.Day.In(loc)
		return f, err
	})
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
