package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// MarkBackfilled marks the done collection of product at hour as
// backfilled: recorded after the hour, with the state read then
// (`collect --hour H --backfill`). It reports whether a done run was
// marked.
func (s *Store) MarkBackfilled(ctx context.Context, product int64, hour time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE collection_runs SET backfilled = true WHERE product_id = $1 AND hour = $2 AND state = 'done'`, product, hour)
	return tag.RowsAffected() == 1, err
}

// MonthBackfilled counts, per product, the backfilled hours of the month.
func (s *Store) MonthBackfilled(ctx context.Context, m Month) (map[int64]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT product_id, count(*)::int FROM collection_runs
		WHERE backfilled AND state = 'done' AND hour >= $1 AND hour < $2 GROUP BY product_id`, m.Start, m.End)
	if err != nil {
		return nil, err
	}
	out := map[int64]int{}
	var id int64
	var n int
	_, err = pgx.ForEachRow(rows, []any{&id, &n}, func() error { out[id] = n; return nil })
	return out, err
}
