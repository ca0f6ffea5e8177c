package store

import (
	"context"
	"fmt"
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
// their first kind and first-seen time. It returns how many were new.
func (s *Store) SaveAnonMap(ctx context.Context, entries []AnonEntry, at time.Time) (int, error) {
	if len(entries) == 0 {
		return 0, nil
	}
	hashes := make([]string, len(entries))
	kinds := make([]string, len(entries))
	values := make([]string, len(entries))
	for i, e := range entries {
		hashes[i], kinds[i], values[i] = e.Hash, e.Kind, e.Value
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO anon_map (hash, kind, value, first_seen)
		SELECT h, k, v, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS u(h, k, v)
		ON CONFLICT (hash) DO NOTHING`, hashes, kinds, values, at)
	if err != nil {
		return 0, fmt.Errorf("saving the anonymisation map: %w", err)
	}
	return int(tag.RowsAffected()), nil
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
