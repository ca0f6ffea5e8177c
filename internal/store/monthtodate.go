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
	rows, err := s.pool.Query(ctx, `
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
