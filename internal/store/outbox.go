package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Mail is an e-mail waiting in (or sent from) the outbox.
type Mail struct {
	ID          int64
	Kind        string // alert, report, ...
	To          []string
	Subject     string
	Text        string
	HTML        string
	Attachments []Attachment
	State       string
	Attempts    int
	LastError   string
	CreatedAt   time.Time
	SentAt      *time.Time
}

// Attachment is a file attached to a Mail.
type Attachment struct {
	Name        string
	ContentType string
	Data        []byte
}

// EnqueueMail writes a mail to the outbox; the outbox worker sends it.
func (s *Store) EnqueueMail(ctx context.Context, m Mail) (int64, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	id, err := enqueueTx(ctx, tx, m)
	if err != nil {
		return 0, err
	}
	return id, tx.Commit(ctx)
}

// enqueueTx queues a mail inside a transaction (with the alert or report it belongs to).
func enqueueTx(ctx context.Context, tx pgx.Tx, m Mail) (int64, error) {
	if len(m.To) == 0 {
		return 0, errors.New("mail has no recipients")
	}
	var id int64
	created := m.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	err := tx.QueryRow(ctx, `INSERT INTO outbox (kind, recipients, subject, body_text, body_html, created_at, next_attempt)
		VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id`, m.Kind, m.To, m.Subject, m.Text, m.HTML, created).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("queueing mail: %w", err)
	}
	for i, a := range m.Attachments {
		if _, err := tx.Exec(ctx, `INSERT INTO outbox_attachments (outbox_id, position, name, content_type, data) VALUES ($1, $2, $3, $4, $5)`,
			id, i, a.Name, a.ContentType, a.Data); err != nil {
			return 0, fmt.Errorf("queueing attachment %s: %w", a.Name, err)
		}
	}
	return id, nil
}

// ClaimMail leases up to limit mails that are due at now (queued, or whose
// sending lease expired) and counts an attempt on each.
func (s *Store) ClaimMail(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Mail, error) {
	rows, err := s.pool.Query(ctx, `
		UPDATE outbox SET state = 'sending', attempts = attempts + 1, lease_until = $1::timestamptz + $3::interval
		 WHERE id IN (SELECT id FROM outbox
		               WHERE (state = 'queued' AND next_attempt <= $1) OR (state = 'sending' AND lease_until < $1)
		               ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
		RETURNING id, kind, recipients, subject, body_text, body_html, state, attempts, coalesce(last_error, ''), created_at, sent_at`,
		now, limit, lease)
	if err != nil {
		return nil, fmt.Errorf("claiming outbox: %w", err)
	}
	mails, err := pgx.CollectRows(rows, scanMail)
	if err != nil {
		return nil, err
	}
	for i := range mails {
		if err := s.loadAttachments(ctx, &mails[i]); err != nil {
			return nil, err
		}
	}
	return mails, nil
}

func scanMail(r pgx.CollectableRow) (Mail, error) {
	var m Mail
	err := r.Scan(&m.ID, &m.Kind, &m.To, &m.Subject, &m.Text, &m.HTML, &m.State, &m.Attempts, &m.LastError, &m.CreatedAt, &m.SentAt)
	return m, err
}

func (s *Store) loadAttachments(ctx context.Context, m *Mail) error {
	rows, err := s.pool.Query(ctx, `SELECT name, content_type, data FROM outbox_attachments WHERE outbox_id = $1 ORDER BY position`, m.ID)
	if err != nil {
		return err
	}
	m.Attachments, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Attachment, error) {
		var a Attachment
		err := r.Scan(&a.Name, &a.ContentType, &a.Data)
		return a, err
	})
	return err
}

// MarkMailSent records a delivered mail.
func (s *Store) MarkMailSent(ctx context.Context, id int64, at time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE outbox SET state = 'sent', sent_at = $2, lease_until = NULL, last_error = NULL WHERE id = $1`, id, at)
	return err
}

// MarkMailFailed records a failed attempt: the mail is retried at next, or
// given up when permanent.
func (s *Store) MarkMailFailed(ctx context.Context, id int64, errText string, next time.Time, permanent bool) error {
	state := "queued"
	if permanent {
		state = "failed"
	}
	_, err := s.pool.Exec(ctx, `UPDATE outbox SET state = $2, last_error = $3, next_attempt = $4, lease_until = NULL WHERE id = $1`, id, state, errText, next)
	return err
}

// Mail returns one outbox mail.
func (s *Store) Mail(ctx context.Context, id int64) (Mail, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, kind, recipients, subject, body_text, body_html, state, attempts, coalesce(last_error, ''), created_at, sent_at FROM outbox WHERE id = $1`, id)
	if err != nil {
		return Mail{}, err
	}
	m, err := pgx.CollectExactlyOneRow(rows, scanMail)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, ErrNotFound
	}
	if err != nil {
		return m, err
	}
	return m, s.loadAttachments(ctx, &m)
}

// OutboxStats is the outbox's depth and the age of its oldest unsent mail.
type OutboxStats struct {
	Queued   int
	Failed   int
	Oldest   *time.Time // created_at of the oldest unsent mail
	MaxTries int
}

// OutboxStats summarises what is waiting.
func (s *Store) OutboxStats(ctx context.Context) (OutboxStats, error) {
	var st OutboxStats
	err := s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state IN ('queued', 'sending')), count(*) FILTER (WHERE state = 'failed'),
		min(created_at) FILTER (WHERE state IN ('queued', 'sending')), coalesce(max(attempts) FILTER (WHERE state IN ('queued', 'sending')), 0) FROM outbox`).
		Scan(&st.Queued, &st.Failed, &st.Oldest, &st.MaxTries)
	return st, err
}
