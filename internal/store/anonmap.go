package store

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
)

// AnonEntry is one line of the local reverse map of anonymised names: the
// clear value behind a hash. The map never leaves the appliance.
type AnonEntry struct {
	Hash  string
	Kind  string
	Value string
}

// SaveAnonMap adds entries to the reverse map; hashes already known keep
// their first kind and first-seen time (and of one hash given twice, the
// first entry wins). It returns how many were new.
func (s *Store) SaveAnonMap(ctx context.Context, entries []AnonEntry, at time.Time) (int, error) {
	i := 0
	return s.SaveAnonMapFrom(ctx, at, func() (AnonEntry, error) {
		if i == len(entries) {
			return AnonEntry{}, io.EOF
		}
		i++
		return entries[i-1], nil
	})
}

// SaveAnonMapFrom is SaveAnonMap of the entries next returns until io.EOF,
// in one statement however many (a report's reverse map, read from its
// spool: memory does not grow with it).
//
// The entries are copied (COPY) into a staging table of the transaction;
// those the map lacks (an anti-join: most names of a month were in the
// month before) are inserted in the order of their hashes.
func (s *Store) SaveAnonMapFrom(ctx context.Context, at time.Time, next func() (AnonEntry, error)) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE anon_stage (ord int4, hash text, kind text, value text) ON COMMIT DROP`); err != nil {
			return err
		}
		var ord int32
		copied, err := tx.CopyFrom(ctx, pgx.Identifier{"anon_stage"}, []string{"ord", "hash", "kind", "value"}, pgx.CopyFromFunc(func() ([]any, error) {
			e, err := next()
			if err == io.EOF {
				return nil, nil
			}
			if err != nil {
				return nil, err
			}
			ord++
			return []any{ord, e.Hash, e.Kind, e.Value}, nil
		}))
		if err != nil || copied == 0 {
			return err
		}
		if _, err := tx.Exec(ctx, `ANALYZE anon_stage`); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO anon_map (hash, kind, value, first_seen)
			SELECT DISTINCT ON (hash) hash, kind, value, $1 FROM anon_stage s
			 WHERE NOT EXISTS (SELECT 1 FROM anon_map m WHERE m.hash = s.hash)
			 ORDER BY hash, ord
			ON CONFLICT (hash) DO NOTHING`, at)
		n = int(tag.RowsAffected())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("saving the anonymisation map: %w", err)
	}
	return n, nil
}

// AnonMap returns the whole reverse map by hash.
func (s *Store) AnonMap(ctx context.Context) (map[string]AnonEntry, error) {
	rows, err := s.pool.Query(ctx, `SELECT hash, kind, value FROM anon_map`)
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AnonEntry, error) {
		var e AnonEntry
		err := r.Scan(&e.Hash, &e.Kind, &e.Value)
		return e, err
	})
	if err != nil {
		return nil, err
	}
	m := make(map[string]AnonEntry, len(list))
	for _, e := range list {
		m[e.Hash] = e
	}
	return m, nil
}
