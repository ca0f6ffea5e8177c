package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// JournalCursor is a run's place in the journal's order (hour newest
// first, then product id, highest first): a page starts after or before
// it.
type JournalCursor struct {
	Hour      time.Time
	ProductID int64
}

// JournalQuery selects a page of the journal by keyset: the runs of one
// product (0: all) in one state ("": any), older than Before or (when
// After is set) newer than After, at most Limit.
type JournalQuery struct {
	ProductID int64
	State     string
	Before    *JournalCursor
	After     *JournalCursor
	Limit     int
}

// JournalPage is one page of the journal, newest first, and whether runs
// older and newer than it exist.
type JournalPage struct {
	Entries      []JournalEntry
	Older, Newer bool
	First, Last  JournalCursor // of Entries[0] and of the last entry
	ProductTotal int           // with ProductID: the product's runs in the state; else 0
}

// JournalKeyset reads a page of the journal the way the console pages
// through it: by keyset, never by offset, so that every page of a year of
// hours of hundreds of products costs the same few milliseconds. The
// order (hour, product id), both descending, is that of the indexes read
// backwards from the cursor: (hour, product_id) for all products,
// (state, hour, product_id) for a state, the primary key (product_id,
// hour) for a product.
func (s *Store) JournalKeyset(ctx context.Context, q JournalQuery) (JournalPage, error) {
	if q.Limit <= 0 || q.Limit > 500 {
		q.Limit = 50
	}
	newer := q.After != nil
	cur := q.Before
	if newer {
		cur = q.After
	}
	args := []any{q.Limit + 1}
	var conds []string
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if cur != nil {
		// A row comparison: the indexes start at the cursor.
		op := "<"
		if newer {
			op = ">"
		}
		conds = append(conds, fmt.Sprintf("(r.hour, r.product_id) %s (%s, %s)", op, arg(cur.Hour), arg(cur.ProductID)))
	}
	if q.State != "" {
		conds = append(conds, "r.state = "+arg(q.State))
	}
	if q.ProductID != 0 {
		conds = append(conds, "r.product_id = "+arg(q.ProductID))
	}
	order := "r.hour DESC, r.product_id DESC"
	if newer {
		order = "r.hour, r.product_id"
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	sql := `SELECT r.product_id, r.hour, r.state, r.attempts, r.started_at, r.finished_at,
	       (extract(epoch FROM r.finished_at - r.started_at) * 1000)::bigint, r.objects, coalesce(r.error, '')
	  FROM collection_runs r` + where + ` ORDER BY ` + order + ` LIMIT $1`
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return JournalPage{}, fmt.Errorf("reading the journal: %w", err)
	}
	es, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (JournalEntry, error) {
		var e JournalEntry
		err := r.Scan(&e.ProductID, &e.Hour, &e.State, &e.Attempts, &e.StartedAt, &e.FinishedAt, &e.DurationMS, &e.Objects, &e.Error)
		return e, err
	})
	if err != nil {
		return JournalPage{}, fmt.Errorf("reading the journal: %w", err)
	}
	var pg JournalPage
	more := len(es) > q.Limit
	if more {
		es = es[:q.Limit]
	}
	if newer {
		for i, j := 0, len(es)-1; i < j; i, j = i+1, j-1 {
			es[i], es[j] = es[j], es[i]
		}
		pg.Newer, pg.Older = more, true
	} else {
		pg.Older, pg.Newer = more, cur != nil
	}
	if len(es) > 0 {
		pg.First = JournalCursor{es[0].Hour, es[0].ProductID}
		pg.Last = JournalCursor{es[len(es)-1].Hour, es[len(es)-1].ProductID}
	}
	infos, err := s.ProductInfos(ctx)
	if err != nil {
		return JournalPage{}, err
	}
	for i := range es {
		es[i].Kind, es[i].Endpoint = infos[es[i].ProductID].Kind, infos[es[i].ProductID].Endpoint
	}
	pg.Entries = es
	if q.ProductID != 0 {
		err = s.pool.QueryRow(ctx, `SELECT count(*) FROM collection_runs WHERE product_id = $1 AND ($2 = '' OR state = $2)`, q.ProductID, q.State).Scan(&pg.ProductTotal)
	}
	return pg, err
}
