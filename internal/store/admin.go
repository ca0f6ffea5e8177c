package store

// Web console and REST API: admin accounts, sessions, API tokens and the
// audit log (migrations/006_web_admin.sql). Passwords arrive hashed and
// sessions and tokens as the SHA-256 of what the client holds: nothing
// here can be replayed from a copy of the database.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// AdminUser is one local admin account.
type AdminUser struct {
	ID                int64
	Username          string
	PasswordHash      string // argon2id PHC string; never leaves the auth package
	CreatedAt         time.Time
	PasswordChangedAt time.Time
	FailedLogins      int
	LastFailedAt      *time.Time
	LockedUntil       *time.Time
	LastLoginAt       *time.Time
}

const adminCols = `id, username, password_hash, created_at, password_changed_at, failed_logins, last_failed_at, locked_until, last_login_at`

func scanAdmin(r pgx.CollectableRow) (AdminUser, error) {
	var u AdminUser
	err := r.Scan(&u.ID, &u.Username, &u.PasswordHash, &u.CreatedAt, &u.PasswordChangedAt, &u.FailedLogins, &u.LastFailedAt, &u.LockedUntil, &u.LastLoginAt)
	return u, err
}

// exactlyOne is the one row a query returns, scanned by scan; no row is
// ErrNotFound.
func exactlyOne[T any](rows pgx.Rows, err error, scan pgx.RowToFunc[T]) (T, error) {
	var v T
	if err != nil {
		return v, err
	}
	v, err = pgx.CollectExactlyOneRow(rows, scan)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, ErrNotFound
	}
	return v, err
}

func oneAdmin(rows pgx.Rows, err error) (AdminUser, error) { return exactlyOne(rows, err, scanAdmin) }

func oneToken(rows pgx.Rows, err error) (APIToken, error) { return exactlyOne(rows, err, scanToken) }

// AdminUserByName returns the account username, or ErrNotFound.
func (s *Store) AdminUserByName(ctx context.Context, username string) (AdminUser, error) {
	return oneAdmin(s.pool.Query(ctx, `SELECT `+adminCols+` FROM admin_users WHERE username = $1`, username))
}

// AdminUserByID returns the account id, or ErrNotFound.
func (s *Store) AdminUserByID(ctx context.Context, id int64) (AdminUser, error) {
	return oneAdmin(s.pool.Query(ctx, `SELECT `+adminCols+` FROM admin_users WHERE id = $1`, id))
}

// AdminUsers lists the accounts by name.
func (s *Store) AdminUsers(ctx context.Context) ([]AdminUser, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+adminCols+` FROM admin_users ORDER BY username`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanAdmin)
}

// SetAdminPassword sets the password hash of username, creating the
// account when missing (created true), and clears its lock-out. Every
// session of the account ends: a changed password logs everyone out.
func (s *Store) SetAdminPassword(ctx context.Context, username, hash string, now time.Time) (created bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `
		INSERT INTO admin_users (username, password_hash, created_at, password_changed_at) VALUES ($1, $2, $3, $3)
		ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, password_changed_at = excluded.password_changed_at,
		       failed_logins = 0, locked_until = NULL
		RETURNING id, (xmax = 0)`, username, hash, now).Scan(&id, &created)
		if err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "23514" {
				return fmt.Errorf("user name %q: use 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", username)
			}
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM admin_sessions WHERE user_id = $1`, id)
		return err
	})
	return created, err
}

// LoginFailed records a failed login of account id at now; when the
// failures since the last success reach limit, the account is locked until
// now+lock. It returns the account's failure count and lock.
func (s *Store) LoginFailed(ctx context.Context, id int64, now time.Time, limit int, lock time.Duration) (int, *time.Time, error) {
	var n int
	var until *time.Time
	err := s.pool.QueryRow(ctx, `
	UPDATE admin_users SET failed_logins = failed_logins + 1, last_failed_at = $2,
	       locked_until = CASE WHEN failed_logins + 1 >= $3 THEN $2::timestamptz + $4::interval ELSE locked_until END
	 WHERE id = $1 RETURNING failed_logins, locked_until`, id, now, limit, lock).Scan(&n, &until)
	return n, until, err
}

// LoginSucceeded clears account id's failures and records the login.
func (s *Store) LoginSucceeded(ctx context.Context, id int64, now time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE admin_users SET failed_logins = 0, locked_until = NULL, last_login_at = $2 WHERE id = $1`, id, now)
	return err
}

// AdminSession is one login session.
type AdminSession struct {
	UserID     int64
	Username   string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
}

// CreateSession stores a session under the hash of its cookie value.
func (s *Store) CreateSession(ctx context.Context, hash []byte, userID int64, now, expires time.Time, remote string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO admin_sessions (token_hash, user_id, created_at, last_seen_at, expires_at, remote) VALUES ($1, $2, $3, $3, $4, $5)`,
		hash, userID, now, expires, remote)
	return err
}

// Session returns the session of hash, or ErrNotFound.
func (s *Store) Session(ctx context.Context, hash []byte) (AdminSession, error) {
	var a AdminSession
	err := s.pool.QueryRow(ctx, `SELECT s.user_id, u.username, s.created_at, s.last_seen_at, s.expires_at
	  FROM admin_sessions s JOIN admin_users u ON u.id = s.user_id WHERE s.token_hash = $1`, hash).
		Scan(&a.UserID, &a.Username, &a.CreatedAt, &a.LastSeenAt, &a.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, ErrNotFound
	}
	return a, err
}

// TouchSession records activity on a session (its idle expiry restarts).
func (s *Store) TouchSession(ctx context.Context, hash []byte, now time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE admin_sessions SET last_seen_at = $2 WHERE token_hash = $1`, hash, now)
	return err
}

// DeleteSession ends a session (logout, expiry).
func (s *Store) DeleteSession(ctx context.Context, hash []byte) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM admin_sessions WHERE token_hash = $1`, hash)
	return err
}

// DeleteExpiredSessions removes the sessions past their absolute expiry or
// idle since before idleBefore.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now, idleBefore time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM admin_sessions WHERE expires_at <= $1 OR last_seen_at < $2`, now, idleBefore)
	return tag.RowsAffected(), err
}

// APIToken is an API token's record (the token itself is shown once, at
// creation, and stored only as its hash).
type APIToken struct {
	ID         int64      `json:"id"`
	UserID     int64      `json:"-"`
	Username   string     `json:"username"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

const tokenCols = `t.id, t.user_id, u.username, t.name, t.prefix, t.created_at, t.last_used_at, t.revoked_at`

func scanToken(r pgx.CollectableRow) (APIToken, error) {
	var t APIToken
	err := r.Scan(&t.ID, &t.UserID, &t.Username, &t.Name, &t.Prefix, &t.CreatedAt, &t.LastUsedAt, &t.RevokedAt)
	return t, err
}

// CreateAPIToken stores a token under its hash and returns its id.
func (s *Store) CreateAPIToken(ctx context.Context, userID int64, name, prefix string, hash []byte, now time.Time) (int64, error) {
	var id int64
	err := s.pool.QueryRow(ctx, `INSERT INTO api_tokens (user_id, name, token_hash, prefix, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		userID, name, hash, prefix, now).Scan(&id)
	return id, err
}

// APITokenByHash returns the token of hash (revoked or not), or ErrNotFound.
func (s *Store) APITokenByHash(ctx context.Context, hash []byte) (APIToken, error) {
	return oneToken(s.pool.Query(ctx, `SELECT `+tokenCols+` FROM api_tokens t JOIN admin_users u ON u.id = t.user_id WHERE t.token_hash = $1`, hash))
}

// TouchAPIToken records a use of token id.
func (s *Store) TouchAPIToken(ctx context.Context, id int64, now time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE api_tokens SET last_used_at = $2 WHERE id = $1`, id, now)
	return err
}

// APITokens lists every token, newest first.
func (s *Store) APITokens(ctx context.Context) ([]APIToken, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+tokenCols+` FROM api_tokens t JOIN admin_users u ON u.id = t.user_id ORDER BY t.id DESC`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanToken)
}

// RevokeAPIToken revokes token id; ErrNotFound when there is no such
// token or it was revoked already.
func (s *Store) RevokeAPIToken(ctx context.Context, id int64, now time.Time) (APIToken, error) {
	return oneToken(s.pool.Query(ctx, `UPDATE api_tokens t SET revoked_at = $2 FROM admin_users u
	 WHERE t.id = $1 AND t.revoked_at IS NULL AND u.id = t.user_id RETURNING `+tokenCols, id, now))
}

// AuditEntry is one audit_log row: who did what, when.
type AuditEntry struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Target string    `json:"target,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Remote string    `json:"remote,omitempty"`
	OK     bool      `json:"ok"`
}

// AddAudit appends an entry to the audit log.
func (s *Store) AddAudit(ctx context.Context, e AuditEntry) error {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO audit_log (at, actor, action, target, detail, remote, ok) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		e.At, e.Actor, e.Action, e.Target, e.Detail, e.Remote, e.OK)
	return err
}

// AuditFilter selects audit entries: newest first, before the id Before
// (0: from the newest), at most Limit, optionally of one actor or action
// prefix.
type AuditFilter struct {
	Actor  string `json:"actor,omitempty"`
	Action string `json:"action,omitempty"` // prefix, e.g. "product."
	Before int64  `json:"before,omitempty"`
	Limit  int    `json:"limit,omitempty"`
}

// Audit lists audit entries by f.
func (s *Store) Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT id, at, actor, action, target, detail, remote, ok FROM audit_log
	 WHERE ($1 = 0 OR id < $1) AND ($2 = '' OR actor = $2) AND ($3 = '' OR starts_with(action, $3))
	 ORDER BY id DESC LIMIT $4`, f.Before, f.Actor, f.Action, f.Limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		err := r.Scan(&e.ID, &e.At, &e.Actor, &e.Action, &e.Target, &e.Detail, &e.Remote, &e.OK)
		return e, err
	})
}

// JournalEntry is one collection run: a product's hour.
type JournalEntry struct {
	ProductID  int64      `json:"product_id"`
	Kind       string     `json:"kind"`
	Endpoint   string     `json:"endpoint"`
	Hour       time.Time  `json:"hour"`
	State      string     `json:"state"` // running, done, failed
	Attempts   int        `json:"attempts"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	DurationMS *int64     `json:"duration_ms"`
	Objects    *int       `json:"objects"`
	Error      string     `json:"error,omitempty"`
}
