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
	// Failure is the class of the last failed attempt: MailTemporary,
	// MailConfiguration or MailRefused; "" when none failed.
	Failure   string
	CreatedAt time.Time
	SentAt    *time.Time
	// DedupKey, when set, makes EnqueueMail idempotent: a mail with the
	// same key that is already in the outbox is returned instead.
	DedupKey string
}

// Outbox states and failure classes (outbox.state, outbox.failure).
const (
	MailQueued  = "queued"
	MailSending = "sending"
	MailSent    = "sent"
	MailFailed  = "failed" // refused for good: the mail ends

	MailTemporary     = "temporary"
	MailConfiguration = "configuration"
	MailRefused       = "refused"
)

// Attachment is a file attached to a Mail.
type Attachment struct {
	Name        string
	ContentType string
	Data        []byte
}

// EnqueueMail writes a mail to the outbox; the outbox worker sends it. A
// mail with a DedupKey already in the outbox is not queued again: its id is
// returned.
func (s *Store) EnqueueMail(ctx context.Context, m Mail) (int64, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("queueing mail: %w", err)
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
	var key *string
	if m.DedupKey != "" {
		key = &m.DedupKey
	}
	err := tx.QueryRow(ctx, `INSERT INTO outbox (kind, recipients, subject, body_text, body_html, created_at, next_attempt, dedup_key)
		VALUES ($1, $2, $3, $4, $5, $6, $6, $7) ON CONFLICT (dedup_key) DO NOTHING RETURNING id`,
		m.Kind, m.To, m.Subject, m.Text, m.HTML, created, key).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		// Queued before (a retry after a crash): the first one stands.
		if err := tx.QueryRow(ctx, `SELECT id FROM outbox WHERE dedup_key = $1`, m.DedupKey).Scan(&id); err != nil {
			return 0, fmt.Errorf("finding mail %s queued before: %w", m.DedupKey, err)
		}
		return id, nil
	}
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
		RETURNING `+mailCols, now, limit, lease)
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

const mailCols = `id, kind, recipients, subject, body_text, body_html, state, attempts, coalesce(last_error, ''), coalesce(failure, ''), created_at, sent_at, coalesce(dedup_key, '')`

func scanMail(r pgx.CollectableRow) (Mail, error) {
	var m Mail
	err := r.Scan(&m.ID, &m.Kind, &m.To, &m.Subject, &m.Text, &m.HTML, &m.State, &m.Attempts, &m.LastError, &m.Failure, &m.CreatedAt, &m.SentAt, &m.DedupKey)
	return m, err
}

// ClaimMailByID leases mail id now, whether or not its next attempt is due
// (`report send` tries the report's mail at once), unless it is sent,
// refused for good, or leased by someone else. ok is false when it could
// not be claimed; the mail is returned as it is then.
func (s *Store) ClaimMailByID(ctx context.Context, id int64, now time.Time, lease time.Duration) (m Mail, ok bool, err error) {
	rows, err := s.pool.Query(ctx, `
		UPDATE outbox SET state = 'sending', attempts = attempts + 1, lease_until = $2::timestamptz + $3::interval
		 WHERE id = $1 AND (state = 'queued' OR (state = 'sending' AND lease_until < $2))
		RETURNING `+mailCols, id, now, lease)
	if err != nil {
		return Mail{}, false, fmt.Errorf("claiming mail %d: %w", id, err)
	}
	m, err = pgx.CollectExactlyOneRow(rows, scanMail)
	if errors.Is(err, pgx.ErrNoRows) {
		m, err = s.MailStatus(ctx, id)
		return m, false, err
	}
	if err != nil {
		return m, false, fmt.Errorf("claiming mail %d: %w", id, err)
	}
	return m, true, s.loadAttachments(ctx, &m)
}

// MailStatus returns mail id without its attachments.
func (s *Store) MailStatus(ctx context.Context, id int64) (Mail, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+mailCols+` FROM outbox WHERE id = $1`, id)
	if err != nil {
		return Mail{}, fmt.Errorf("reading mail %d: %w", id, err)
	}
	m, err := pgx.CollectExactlyOneRow(rows, scanMail)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, fmt.Errorf("mail %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("reading mail %d: %w", id, err)
	}
	return m, nil
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
	_, err := s.pool.Exec(ctx, `UPDATE outbox SET state = 'sent', sent_at = $2, lease_until = NULL, last_error = NULL, failure = NULL WHERE id = $1`, id, at)
	if err != nil {
		return fmt.Errorf("recording mail %d sent: %w", id, err)
	}
	return nil
}

// MarkMailFailed records a failed attempt and its class (MailTemporary,
// MailConfiguration, MailRefused): the mail stays queued and is retried at
// next, unless it was refused for good (MailRefused), which ends it.
func (s *Store) MarkMailFailed(ctx context.Context, id int64, errText string, next time.Time, failure string) error {
	state := MailQueued
	switch failure {
	case MailRefused:
		state = MailFailed
	case MailTemporary, MailConfiguration:
	default:
		return fmt.Errorf("recording mail %d failed: unknown failure class %q", id, failure)
	}
	_, err := s.pool.Exec(ctx, `UPDATE outbox SET state = $2, last_error = $3, next_attempt = $4, lease_until = NULL, failure = $5 WHERE id = $1`, id, state, errText, next, failure)
	if err != nil {
		return fmt.Errorf("recording mail %d failed: %w", id, err)
	}
	return nil
}

// Mail returns one outbox mail.
func (s *Store) Mail(ctx context.Context, id int64) (Mail, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+mailCols+` FROM outbox WHERE id = $1`, id)
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
	Queued int
	Failed int // refused for good
	// Misconfigured counts the queued mails whose last attempt failed for
	// a configuration reason (authentication, TLS, policy).
	Misconfigured int
	Oldest        *time.Time // created_at of the oldest unsent mail
	MaxTries      int
}

// OutboxStats summarises what is waiting.
func (s *Store) OutboxStats(ctx context.Context) (OutboxStats, error) {
	var st OutboxStats
	err := s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state IN ('queued', 'sending')), count(*) FILTER (WHERE state = 'failed'),
		count(*) FILTER (WHERE state IN ('queued', 'sending') AND failure = 'configuration'),
		min(created_at) FILTER (WHERE state IN ('queued', 'sending')), coalesce(max(attempts) FILTER (WHERE state IN ('queued', 'sending')), 0) FROM outbox`).
		Scan(&st.Queued, &st.Failed, &st.Misconfigured, &st.Oldest, &st.MaxTries)
	if err != nil {
		return st, fmt.Errorf("reading outbox statistics: %w", err)
	}
	return st, nil
}

// RetryMisconfiguredNow makes the queued mails whose last attempt failed
// for a configuration reason due at now: after a restart, which is how a
// changed configuration takes effect, they go out at once rather than at
// the end of their backoff. It returns how many.
func (s *Store) RetryMisconfiguredNow(ctx context.Context, now time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE outbox SET next_attempt = $1 WHERE state = 'queued' AND failure = 'configuration' AND next_attempt > $1`, now)
	if err != nil {
		return 0, fmt.Errorf("making the mails refused for configuration due: %w", err)
	}
	return tag.RowsAffected(), nil
}

// ClaimMailKey claims the sending of the mail identified by key for owner:
// it returns true for the first claim, and again once the last claim is
// older than window (a reminder); false while another claim holds. Daemons
// that share the database claim an alert mail they would send outside the
// outbox, so that only one of them sends it.
func (s *Store) ClaimMailKey(ctx context.Context, key, owner string, now time.Time, window time.Duration) (bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO mail_claims (key, claimed_at, owner) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET claimed_at = EXCLUDED.claimed_at, owner = EXCLUDED.owner
		 WHERE mail_claims.claimed_at <= $2::timestamptz - $4::interval`, key, now, owner, window)
	if err != nil {
		return false, fmt.Errorf("claiming mail %s: %w", key, err)
	}
	return tag.RowsAffected() == 1, nil
}
