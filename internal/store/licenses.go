package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Licence categories (METERING.md, vCenter Server): usage on hosts whose key
// is perpetual, demo or evaluation is metered but not reported. A key is
// rental by default, evaluation when it is vSphere's evaluation licence.
const (
	LicenseRental     = "rental"
	LicensePerpetual  = "perpetual"
	LicenseDemo       = "demo"
	LicenseEvaluation = "evaluation"
)

// LicenseCategories are the categories an admin can set.
var LicenseCategories = []string{LicenseRental, LicensePerpetual, LicenseDemo, LicenseEvaluation}

func validCategory(key, category string) error {
	switch category {
	case LicenseRental, LicensePerpetual, LicenseDemo, LicenseEvaluation:
	default:
		return fmt.Errorf("licence category %q: want rental, perpetual, demo or evaluation", category)
	}
	if key == "" {
		return fmt.Errorf("licence key is empty")
	}
	return nil
}

// License is a licence key seen on a product, with its category.
type License struct {
	Key       string
	Edition   string
	Category  string
	UpdatedAt time.Time
}

// NoteLicense records a key seen by a collector (category rental when new,
// evaluation for vSphere's evaluation licence);
// a known key keeps its category and gets the edition.
func (s *Store) NoteLicense(ctx context.Context, key, edition string) error {
	if key == "" {
		return nil
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO licenses (license_key, edition, category)
		VALUES ($1, $2, CASE WHEN $2 = 'eval' THEN 'evaluation' ELSE 'rental' END)
		ON CONFLICT (license_key) DO UPDATE SET edition = EXCLUDED.edition, updated_at = now()
		WHERE licenses.edition IS DISTINCT FROM EXCLUDED.edition`, key, edition)
	return err
}

// SetLicenseCategory sets the current category of key, adding the key when
// unknown, without recording a change: it applies to every hour that no
// recorded change covers. An admin's change goes through
// ChangeLicenseCategory, which applies from its hour.
func (s *Store) SetLicenseCategory(ctx context.Context, key, category string) error {
	if err := validCategory(key, category); err != nil {
		return err
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
// categorise them (`usagemeter license set`), with their default category;
// known keys are left alone.
// It returns how many keys were new.
func (s *Store) SyncLicenses(ctx context.Context, since time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO licenses (license_key, edition, category)
		SELECT DISTINCT ON (dims ->> 'license_key') dims ->> 'license_key', coalesce(dims ->> 'license_edition', ''),
		       `+defaultCategorySQL("dims", "edition")+`
		  FROM usage_spans
		 WHERE last_hour >= $1 AND coalesce(dims ->> 'license_key', '') <> ''
		 ORDER BY dims ->> 'license_key', last_hour DESC
		ON CONFLICT (license_key) DO NOTHING`, since)
	if err != nil {
		return 0, fmt.Errorf("recording licence keys: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
