package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/usagemeter/usagemeter/internal/config"

	"github.com/usagemeter/usagemeter/collectors"
)

// Product is a registered product. Password is unsealed only when read
// through Product/Products with a key.
type Product struct {
	ID            int64
	Kind          string
	Endpoint      string
	Username      string
	Password      config.Secret
	Thumbprint    string
	InstanceID    string
	PairedID      int64 // 0 = none
	Options       json.RawMessage
	Version       string // what the product reported at `product add` (the report's Product Version), refreshed by SetProductVersion; written by AddProduct
	Active        bool
	DeactivatedAt *time.Time
	CreatedAt     time.Time
}

func additional(id int64) []byte { return []byte("product:" + strconv.FormatInt(id, 10)) }

// AddProduct registers a product and returns its id. The password is sealed
// bound to the product id, so sealed bytes cannot be moved between rows. A
// removed product added again resumes its id (see below).
func (s *Store) AddProduct(ctx context.Context, p Product) (int64, error) {
	if p.Password.IsSet() && s.box == nil {
		return 0, errors.New("store has no credentials key")
	}
	if len(p.Options) == 0 {
		p.Options = json.RawMessage(`{}`)
	}
	var paired *int64
	if p.PairedID != 0 {
		paired = &p.PairedID
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	var id int64
	// A product removed before (kept for its billed history) that is added
	// again resumes its row: its id, its hours and its alerts' history, so
	// nothing is counted twice and its history does not split in two. The
	// same instance (its reported identity), or, where either identity is
	// unknown, the same address. Another instance at a removed product's
	// address is a new product (migration 003).
	err = tx.QueryRow(ctx, `SELECT id FROM products
		 WHERE kind = $1 AND removed_at IS NOT NULL
		   AND (($3 <> '' AND instance_id = $3) OR (endpoint = $2 AND (instance_id = '' OR $3 = '')))
		 ORDER BY (instance_id = $3) DESC, removed_at DESC LIMIT 1 FOR UPDATE`, p.Kind, p.Endpoint, p.InstanceID).Scan(&id)
	switch {
	case err == nil:
		_, err = tx.Exec(ctx, `UPDATE products SET endpoint = $2, username = $3, thumbprint = $4,
			instance_id = CASE WHEN $5 = '' THEN instance_id ELSE $5 END, paired_id = $6, options = $7, credentials = NULL,
			active = true, deactivated_at = NULL, removed_at = NULL, version = $8 WHERE id = $1`,
			id, p.Endpoint, p.Username, p.Thumbprint, p.InstanceID, paired, string(p.Options), p.Version)
	case errors.Is(err, pgx.ErrNoRows):
		err = tx.QueryRow(ctx, `INSERT INTO products (kind, endpoint, username, thumbprint, instance_id, paired_id, options, version)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
			p.Kind, p.Endpoint, p.Username, p.Thumbprint, p.InstanceID, paired, string(p.Options), p.Version).Scan(&id)
	}
	if isUniqueViolation(err) {
		return 0, fmt.Errorf("%s product %s: %w (the same instance may be registered under another address)", p.Kind, p.Endpoint, ErrDuplicate)
	}
	if err != nil {
		return 0, fmt.Errorf("adding product: %w", err)
	}
	if p.Password.IsSet() {
		sealed, err := s.box.Seal([]byte(p.Password.Reveal()), additional(id))
		if err != nil {
			return 0, err
		}
		if _, err := tx.Exec(ctx, `UPDATE products SET credentials = $2 WHERE id = $1`, id, sealed); err != nil {
			return 0, err
		}
	}
	return id, tx.Commit(ctx)
}

const productCols = `id, kind, endpoint, username, credentials, thumbprint, instance_id, coalesce(paired_id, 0), options, active, deactivated_at, created_at`

func (s *Store) scanProduct(row pgx.Row) (Product, error) {
	var p Product
	var sealed []byte
	var opts string
	if err := row.Scan(&p.ID, &p.Kind, &p.Endpoint, &p.Username, &sealed, &p.Thumbprint, &p.InstanceID, &p.PairedID, &opts, &p.Active, &p.DeactivatedAt, &p.CreatedAt); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return p, ErrNotFound
		}
		return p, err
	}
	p.Options = json.RawMessage(opts)
	if sealed != nil {
		if s.box == nil {
			return p, errors.New("store has no credentials key")
		}
		pt, err := s.box.Open(sealed, additional(p.ID))
		if err != nil {
			return p, fmt.Errorf("product %d: %w", p.ID, err)
		}
		p.Password = config.Secret(pt)
	}
	return p, nil
}

// Product returns one product with its password unsealed.
func (s *Store) Product(ctx context.Context, id int64) (Product, error) {
	p, err := s.scanProduct(s.pool.QueryRow(ctx, `SELECT `+productCols+` FROM products WHERE id = $1`, id))
	if errors.Is(err, ErrNotFound) {
		return p, fmt.Errorf("product %d: %w", id, ErrNotFound)
	}
	return p, err
}

// Products lists products that are not removed, active ones only when activeOnly.
func (s *Store) Products(ctx context.Context, activeOnly bool) ([]Product, error) {
	return s.queryProducts(ctx, `SELECT `+productCols+` FROM products WHERE removed_at IS NULL AND (active OR NOT $1) ORDER BY id`, activeOnly)
}

// InstanceIDs lists the instance ids recorded for the products of kind that
// are not removed (deactivated ones too), lower-cased, sorted, without
// empty ones: the vCenters registered on this appliance, for the collectors
// of products that name vCenters (Aria Automation).
func (s *Store) InstanceIDs(ctx context.Context, kind string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT lower(instance_id) FROM products
		WHERE kind = $1 AND removed_at IS NULL AND instance_id <> '' ORDER BY 1`, kind)
	if err != nil {
		return nil, fmt.Errorf("listing the %s instances: %w", kind, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// ProductsDue lists the products to collect at hour: the active ones whose
// kind's cadence has hour (every hour, or for a kind with a longer
// collectors.Kind.Every the UTC hours that are multiples of it), and the
// deactivated ones once a day (at the hour of day they were deactivated).
func (s *Store) ProductsDue(ctx context.Context, hour time.Time) ([]Product, error) {
	kinds, hours := collectors.Cadences()
	return s.queryProducts(ctx, `SELECT `+productCols+` FROM products p
		WHERE removed_at IS NULL
		  AND ((active AND `+dueSQL("$1", "$2", "$3")+`) OR (deactivated_at IS NOT NULL
		                  AND extract(hour FROM deactivated_at AT TIME ZONE 'UTC') = extract(hour FROM $1::timestamptz AT TIME ZONE 'UTC')
		                  AND $1::timestamptz > deactivated_at))
		ORDER BY id`, hour, kinds, hours)
}

// dueSQL is the SQL condition that product p is due at the hour in
// argument hour by its kind's cadence (collectors.Kind.Every): every hour,
// or only in the UTC hours that are multiples of the cadence. kinds and
// hours are the arguments holding collectors.Cadences (text[] and int[]).
func dueSQL(hour, kinds, hours string) string {
	return `(extract(hour FROM ` + hour + `::timestamptz AT TIME ZONE 'UTC')::int % coalesce((SELECT c.h FROM unnest(` +
		kinds + `::text[], ` + hours + `::int[]) AS c(k, h) WHERE c.k = p.kind), 1) = 0)`
}

func (s *Store) queryProducts(ctx context.Context, sql string, args ...any) ([]Product, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Product
	for rows.Next() {
		p, err := s.scanProduct(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// RemoveProduct deletes a product that has no usage recorded; one with usage
// is deactivated instead, so that billed history is never lost. Its open
// alerts are closed in the same transaction: nothing is collected from it
// any more, so nothing about it can resolve them later.
func (s *Store) RemoveProduct(ctx context.Context, id int64, at time.Time) (deleted bool, err error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("removing product %d: %w", id, err)
	}
	defer tx.Rollback(ctx)
	var used bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM span_objects WHERE product_id = $1)`, id).Scan(&used); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `UPDATE alerts SET resolved_at = $2 WHERE product_id = $1 AND resolved_at IS NULL`, id, at); err != nil {
		return false, fmt.Errorf("closing the alerts of product %d: %w", id, err)
	}
	var tag pgconn.CommandTag
	if used {
		tag, err = tx.Exec(ctx, `UPDATE products SET active = false, removed_at = $2 WHERE id = $1 AND removed_at IS NULL`, id, at)
	} else {
		tag, err = tx.Exec(ctx, `DELETE FROM products WHERE id = $1`, id)
	}
	if err != nil {
		return false, fmt.Errorf("removing product %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return false, fmt.Errorf("product %d: %w", id, ErrNotFound)
	}
	return !used, tx.Commit(ctx)
}

// CloseRemovedProductAlerts closes the open alerts of products that are
// removed: one raised by a collection that was running while the product was
// removed, or left open by an older usagemeter (whose deleted products'
// alerts kept their product key, "kind:id", but lost their product_id).
func (s *Store) CloseRemovedProductAlerts(ctx context.Context, now time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE alerts a SET resolved_at = $1
		 WHERE a.resolved_at IS NULL
		   AND (a.product_id IN (SELECT id FROM products WHERE removed_at IS NOT NULL)
		        OR (a.product_id IS NULL AND a.key ~ '^[a-z_]+:[0-9]+$'
		            AND NOT EXISTS (SELECT 1 FROM products p WHERE p.id = substring(a.key FROM ':([0-9]+)$')::bigint)))`, now)
	if err != nil {
		return 0, fmt.Errorf("closing the alerts of removed products: %w", err)
	}
	return tag.RowsAffected(), nil
}

// SetProductActive activates or deactivates a product.
func (s *Store) SetProductActive(ctx context.Context, id int64, active bool, at time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE products SET active = $2, deactivated_at = CASE WHEN $2 THEN NULL ELSE $3::timestamptz END WHERE id = $1`, id, active, at)
	return err
}

// SetProductIdentity records the instance id a product reports.
func (s *Store) SetProductIdentity(ctx context.Context, id int64, instanceID string) error {
	_, err := s.pool.Exec(ctx, `UPDATE products SET instance_id = $2 WHERE id = $1`, id, instanceID)
	if isUniqueViolation(err) {
		return fmt.Errorf("instance %s is already registered as another product: %w", instanceID, ErrDuplicate)
	}
	return err
}

// ProductUpdate is a change to a registered product: nil fields stay.
type ProductUpdate struct {
	Endpoint   *string
	Username   *string
	Password   *config.Secret // sealed again, bound to the product id
	Thumbprint *string
	Options    json.RawMessage // nil = unchanged
}

// UpdateProduct changes a product in place (a rotated password, a new
// address, new options): same id, same identity, same history. A removed
// product cannot be changed (add it again).
func (s *Store) UpdateProduct(ctx context.Context, id int64, u ProductUpdate) error {
	var sealed []byte
	if u.Password != nil && u.Password.IsSet() {
		if s.box == nil {
			return errors.New("store has no credentials key")
		}
		var err error
		if sealed, err = s.box.Seal([]byte(u.Password.Reveal()), additional(id)); err != nil {
			return err
		}
	}
	var opts *string
	if u.Options != nil {
		o := string(u.Options)
		opts = &o
	}
	tag, err := s.pool.Exec(ctx, `UPDATE products SET
		endpoint = coalesce($2, endpoint), username = coalesce($3, username),
		credentials = CASE WHEN $4 THEN $5 ELSE credentials END,
		thumbprint = coalesce($6, thumbprint), options = coalesce($7::jsonb, options)
		WHERE id = $1 AND removed_at IS NULL`,
		id, u.Endpoint, u.Username, u.Password != nil, sealed, u.Thumbprint, opts)
	if isUniqueViolation(err) {
		return fmt.Errorf("product %d: another product has that address: %w", id, ErrDuplicate)
	}
	if err != nil {
		return fmt.Errorf("changing product %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("product %d: %w", id, ErrNotFound)
	}
	return nil
}

// SetProductVersion records the version a product reported at its latest
// successful collection (an upgrade shows in the next report); an empty
// version (the product does not say) leaves the known one. It writes only
// when the version changed.
func (s *Store) SetProductVersion(ctx context.Context, id int64, version string) error {
	if version == "" {
		return nil
	}
	_, err := s.pool.Exec(ctx, `UPDATE products SET version = $2 WHERE id = $1 AND version IS DISTINCT FROM $2`, id, version)
	return err
}

// SetProductThumbprint records a newly accepted certificate thumbprint.
func (s *Store) SetProductThumbprint(ctx context.Context, id int64, thumbprint string) error {
	_, err := s.pool.Exec(ctx, `UPDATE products SET thumbprint = $2 WHERE id = $1`, id, thumbprint)
	return err
}

// LastCollected is each product's last successfully collected hour (a
// product never collected is absent). Each product's newest runs are read
// from the primary key's index, backwards: a few rows per product however
// long the journal (a year of 200 products' hours: milliseconds, where a
// max() over every run took a second).
func (s *Store) LastCollected(ctx context.Context) (map[int64]time.Time, error) {
	rows, err := s.pool.Query(ctx, `SELECT p.id, r.hour FROM products p
	 CROSS JOIN LATERAL (SELECT hour FROM collection_runs WHERE product_id = p.id AND state = 'done' ORDER BY hour DESC LIMIT 1) r`)
	if err != nil {
		return nil, fmt.Errorf("last collected hours: %w", err)
	}
	out := map[int64]time.Time{}
	var id int64
	var h time.Time
	_, err = pgx.ForEachRow(rows, []any{&id, &h}, func() error {
		out[id] = h
		return nil
	})
	return out, err
}
