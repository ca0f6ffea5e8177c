package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usagemeter/usagemeter/collectors"
)

// Alert is one alerts row: a problem, open until resolved, deduplicated by key.
type Alert struct {
	ID             int64      `json:"id"`
	Key            string     `json:"key"`        // e.g. collection_failed:12
	Kind           string     `json:"kind"`       // e.g. collection_failed
	ProductID      int64      `json:"product_id"` // 0 when not about a product
	OpenedAt       time.Time  `json:"opened_at"`
	LastNotifiedAt *time.Time `json:"last_notified_at"`
	ResolvedAt     *time.Time `json:"resolved_at"`
	LastError      string     `json:"last_error"`
	Failures       int        `json:"failures"`
}

const alertCols = `id, key, kind, coalesce(product_id, 0), opened_at, last_notified_at, resolved_at, last_error, failures`

func scanAlert(r pgx.CollectableRow) (Alert, error) {
	var a Alert
	err := r.Scan(&a.ID, &a.Key, &a.Kind, &a.ProductID, &a.OpenedAt, &a.LastNotifiedAt, &a.ResolvedAt, &a.LastError, &a.Failures)
	return a, err
}

// OpenAlert returns the open alert with key, or ErrNotFound.
func (s *Store) OpenAlert(ctx context.Context, key string) (Alert, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+alertCols+` FROM alerts WHERE key = $1 AND resolved_at IS NULL`, key)
	if err != nil {
		return Alert{}, err
	}
	a, err := pgx.CollectExactlyOneRow(rows, scanAlert)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, ErrNotFound
	}
	return a, err
}

// OpenAlerts lists the open alerts.
func (s *Store) OpenAlerts(ctx context.Context) ([]Alert, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+alertCols+` FROM alerts WHERE resolved_at IS NULL ORDER BY opened_at`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanAlert)
}

// Alerts lists every alert, newest first (history).
func (s *Store) Alerts(ctx context.Context, limit int) ([]Alert, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+alertCols+` FROM alerts ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanAlert)
}

// RaiseAlert opens an alert and queues its mail in one transaction. If an
// alert with the key is already open, only its last error and failure count
// are updated and nothing is mailed (opened is false).
func (s *Store) RaiseAlert(ctx context.Context, a Alert, m *Mail) (opened bool, err error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(ctx)
	var pid *int64
	if a.ProductID != 0 {
		pid = &a.ProductID
	}
	var notified *time.Time
	if m != nil {
		notified = &a.OpenedAt
	}
	var id int64
	err = tx.QueryRow(ctx, `INSERT INTO alerts (key, kind, product_id, opened_at, last_notified_at, last_error, failures)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (key) WHERE resolved_at IS NULL DO NOTHING RETURNING id`,
		a.Key, a.Kind, pid, a.OpenedAt, notified, a.LastError, a.Failures).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		_, err = tx.Exec(ctx, `UPDATE alerts SET last_error = $2, failures = $3 WHERE key = $1 AND resolved_at IS NULL`, a.Key, a.LastError, a.Failures)
		if err != nil {
			return false, err
		}
		return false, tx.Commit(ctx)
	}
	if err != nil {
		return false, fmt.Errorf("opening alert %s: %w", a.Key, err)
	}
	if m != nil {
		if _, err := enqueueTx(ctx, tx, *m); err != nil {
			return false, err
		}
	}
	return true, tx.Commit(ctx)
}

// RemindAlert records a reminder for an open alert and queues its mail, if
// the alert was last notified before due (so concurrent daemons remind once).
func (s *Store) RemindAlert(ctx context.Context, key string, due, now time.Time, m Mail) (bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `UPDATE alerts SET last_notified_at = $3 WHERE key = $1 AND resolved_at IS NULL AND (last_notified_at IS NULL OR last_notified_at <= $2)`, key, due, now)
	if err != nil || tag.RowsAffected() == 0 {
		return false, err
	}
	if _, err := enqueueTx(ctx, tx, m); err != nil {
		return false, err
	}
	return true, tx.Commit(ctx)
}

// ResolveAlert closes the open alert with key and queues its mail. It
// returns the alert that was resolved, or ErrNotFound if none was open.
func (s *Store) ResolveAlert(ctx context.Context, key string, now time.Time, mail func(Alert) *Mail) (Alert, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Alert{}, err
	}
	defer tx.Rollback(ctx)
	rows, err := tx.Query(ctx, `UPDATE alerts SET resolved_at = $2 WHERE key = $1 AND resolved_at IS NULL RETURNING `+alertCols, key, now)
	if err != nil {
		return Alert{}, err
	}
	a, err := pgx.CollectExactlyOneRow(rows, scanAlert)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, ErrNotFound
	}
	if err != nil {
		return a, err
	}
	if m := mail(a); m != nil {
		if _, err := enqueueTx(ctx, tx, *m); err != nil {
			return a, err
		}
	}
	return a, tx.Commit(ctx)
}

// FailureStreak is a product's run of consecutive failed hours.
type FailureStreak struct {
	Hours     int        // failed hours since the last successful one
	Since     *time.Time // first failed hour of the streak
	LastError string
}

// FailureStreak counts the product's failed hours after its last successful
// hour. A product collected less often than hourly (collectors.Kind.Every)
// fails once per sampling hour: each failed run counts its cadence in
// hours, so that 30 days of failures are 720 hours whatever the cadence.
func (s *Store) FailureStreak(ctx context.Context, productID int64) (FailureStreak, error) {
	var f FailureStreak
	var lastErr *string
	var kind string
	err := s.pool.QueryRow(ctx, `
		SELECT count(*), min(hour), coalesce((SELECT kind FROM products WHERE id = $1), ''),
		       (SELECT error FROM collection_runs r2 WHERE r2.product_id = $1 AND r2.state = 'failed' ORDER BY hour DESC LIMIT 1)
		  FROM collection_runs r
		 WHERE r.product_id = $1 AND r.state = 'failed'
		   AND r.hour > coalesce((SELECT max(hour) FROM collection_runs WHERE product_id = $1 AND state = 'done'), '-infinity')`,
		productID).Scan(&f.Hours, &f.Since, &kind, &lastErr)
	if lastErr != nil && f.Hours > 0 {
		f.LastError = *lastErr
	}
	f.Hours *= collectors.Cadence(kind)
	return f, err
}
