package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Licence categories (METERING.md, vCenter Server): usage on hosts whose key
// is perpetual or demo is metered but not reported.
const (
	LicenseRental    = "rental"
	LicensePerpetual = "perpetual"
	LicenseDemo      = "demo"
)

// License is a licence key seen on a product, with its category.
type License struct {
	Key       string
	Edition   string
	Category  string
	UpdatedAt time.Time
}

// NoteLicense records a key seen by a collector (category rental when new);
// a known key keeps its category and gets the edition.
func (s *Store) NoteLicense(ctx context.Context, key, edition string) error {
	if key == "" {
		return nil
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO licenses (license_key, edition) VALUES ($1, $2)
		ON CONFLICT (license_key) DO UPDATE SET edition = EXCLUDED.edition, updated_at = now()
		WHERE licenses.edition IS DISTINCT FROM EXCLUDED.edition`, key, edition)
	return err
}

// SetLicenseCategory sets the category of key, adding the key when unknown.
func (s *Store) SetLicenseCategory(ctx context.Context, key, category string) error {
	switch category {
	case LicenseRental, LicensePerpetual, LicenseDemo:
	default:
		return fmt.Errorf("licence category %q: want rental, perpetual or demo", category)
	}
	if key == "" {
		return fmt.Errorf("licence key is empty")
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO licenses (license_key, category) VALUES ($1, $2)
		ON CONFLICT (license_key) DO UPDATE SET category = EXCLUDED.category, updated_at = now()`, key, category)
	return err
}

// Licenses lists the known keys.
func (s *Store) Licenses(ctx context.Context) ([]License, error) {
	rows, err := s.pool.Query(ctx, `SELECT license_key, edition, category, updated_at FROM licenses ORDER BY license_key`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (License, error) {
		var l License
		err := r.Scan(&l.Key, &l.Edition, &l.Category, &l.UpdatedAt)
		return l, err
	})
}

// SyncLicenses records the licence keys found in the dims (license_key,
// license_edition) of spans ending at or after since, so that an admin can
// categorise them (`usagemeter license set`); known keys are left alone.
// It returns how many keys were new.
func (s *Store) SyncLicenses(ctx context.Context, since time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO licenses (license_key, edition)
		SELECT DISTINCT ON (st.dims ->> 'license_key') st.dims ->> 'license_key', coalesce(st.dims ->> 'license_edition', '')
		  FROM (SELECT state_id, last_hour FROM spans WHERE last_hour >= $1
		        UNION ALL
		        SELECT state_id, last_hour FROM span_objects WHERE last_hour >= $1) s
		  JOIN span_states st ON st.id = s.state_id
		 WHERE coalesce(st.dims ->> 'license_key', '') <> ''
		 ORDER BY st.dims ->> 'license_key', s.last_hour DESC
		ON CONFLICT (license_key) DO NOTHING`, since)
	if err != nil {
		return 0, fmt.Errorf("recording licence keys: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
