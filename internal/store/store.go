// Package store holds every SQL statement of usagemeter: the appliance row,
// products with sealed credentials, collection runs (journal and lock), the
// usage span merge, the mail outbox, alerts, reports, customer rules,
// licences and the anonymisation map. Other packages never touch tables.
package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usagemeter/usagemeter/internal/seal"
	"github.com/usagemeter/usagemeter/migrations"
)

// Common errors.
var (
	ErrNotFound  = errors.New("not found")
	ErrDuplicate = errors.New("already exists")
)

// Store is the PostgreSQL store.
type Store struct {
	pool *pgxpool.Pool
	box  *seal.Box
}

// New wraps an open pool. box seals credentials; it may be nil for read-only
// uses that never touch credentials.
func New(pool *pgxpool.Pool, box *seal.Box) *Store { return &Store{pool: pool, box: box} }

// Connect opens a pool on url and checks that the server answers.
func Connect(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database.url: %w", redactErr(err))
	}
	cfg.MaxConns = 16
	cfg.AfterConnect = scanTimesInUTC
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to the database: %w", redactErr(err))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to the database at %s: %w", describe(cfg.ConnConfig), redactErr(err))
	}
	return pool, nil
}

// scanTimesInUTC makes every timestamptz read from the database a UTC time
// (pgx's default is the process's local zone): what the store returns, and
// so every mail, file and log line made from it, is the same whatever the
// time zone of the machine. Times are shown in another zone only on purpose
// (the report's time zone).
func scanTimesInUTC(_ context.Context, conn *pgx.Conn) error {
	conn.TypeMap().RegisterType(&pgtype.Type{Name: "timestamptz", OID: pgtype.TimestamptzOID, Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC}})
	return nil
}

// describe names a database without its password.
func describe(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s:%d/%s as %s", c.Host, c.Port, c.Database, c.User)
}

// redactErr strips a connection string that pgx may quote in its error.
func redactErr(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return errors.New("cannot parse the connection URL (check its syntax; the value is not shown because it may hold a password)")
	}
	return err
}

// Pool exposes the pool (for health checks and tests).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// Migrate applies the embedded migrations.
func (s *Store) Migrate(ctx context.Context) (from, to int32, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Release()
	return migrations.Apply(ctx, conn.Conn())
}

// SchemaVersion returns the applied migration version.
func (s *Store) SchemaVersion(ctx context.Context) (int32, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	return migrations.Current(ctx, conn.Conn())
}

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

const keyCheckPlain = "usagemeter-key-check"

// Appliance is the appliance's own row.
type Appliance struct {
	ID           string
	Created      time.Time
	ContractID   string
	Program      string
	RegisteredAt *time.Time
}

// EnsureAppliance creates the appliance row on first start, and checks that
// the credentials key matches the one the database was set up with. keyNew
// says whether the key file was just created: a new key while sealed
// credentials exist means the key file was lost, and start-up is refused.
func (s *Store) EnsureAppliance(ctx context.Context, keyNew bool) (Appliance, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Appliance{}, err
	}
	id[6] = (id[6] & 0x0f) | 0x40
	id[8] = (id[8] & 0x3f) | 0x80
	if _, err := s.pool.Exec(ctx, `INSERT INTO appliance (id) VALUES ($1) ON CONFLICT (singleton) DO NOTHING`, id); err != nil {
		return Appliance{}, fmt.Errorf("creating appliance row: %w", err)
	}
	var a Appliance
	var check []byte
	var contract, program *string
	err := s.pool.QueryRow(ctx, `SELECT id::text, created, key_check, contract_id, program, registered_at FROM appliance`).
		Scan(&a.ID, &a.Created, &check, &contract, &program, &a.RegisteredAt)
	if err != nil {
		return Appliance{}, err
	}
	if contract != nil {
		a.ContractID = *contract
	}
	if program != nil {
		a.Program = *program
	}
	if s.box == nil {
		return a, nil
	}
	var sealedCount int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM products WHERE credentials IS NOT NULL`).Scan(&sealedCount); err != nil {
		return a, err
	}
	if check != nil {
		if _, err := s.box.Open(check, []byte("key-check")); err != nil {
			return a, fmt.Errorf("the credentials key %s is not the one this database was set up with (%d products have sealed credentials): restore the original key file; it is never replaced automatically", s.box.Path(), sealedCount)
		}
		return a, nil
	}
	if keyNew && sealedCount > 0 {
		return a, fmt.Errorf("the credentials key %s was missing and has been created anew, but %d products have credentials sealed with the old key: restore the original key file", s.box.Path(), sealedCount)
	}
	sealed, err := s.box.Seal([]byte(keyCheckPlain), []byte("key-check"))
	if err != nil {
		return a, err
	}
	_, err = s.pool.Exec(ctx, `UPDATE appliance SET key_check = $1 WHERE key_check IS NULL`, sealed)
	return a, err
}

// SealedCredentials counts products with sealed credentials.
func (s *Store) SealedCredentials(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM products WHERE credentials IS NOT NULL`).Scan(&n)
	return n, err
}

// Register records the provider's contract and programme.
func (s *Store) Register(ctx context.Context, contractID, program string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE appliance SET contract_id = $1, program = $2, registered_at = $3`, contractID, program, at)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return errors.New("appliance row missing: run `usagemeter migrate` first")
	}
	return nil
}

// Unreachable reports whether err means the database could not be reached
// or went away mid-statement (as opposed to a statement that failed).
func Unreachable(err error) bool {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08: connection exception; 57P01-57P03: the server shuts down or is starting.
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// Retained counts what Retain deleted: Dims are the states and names
// (span_states, span_names) no span refers to any more.
type Retained struct{ Spans, Dims, Runs, Mails int64 }

// Retain deletes usage spans that ended and collection runs older than
// before, and delivered mails sent before mailBefore. The states and names
// that no span refers to then are deleted too.
func (s *Store) Retain(ctx context.Context, before, mailBefore time.Time) (Retained, error) {
	var r Retained
	// An object's closed spans all end before its latest span starts: an
	// object whose latest span ended before `before` has no spans left.
	tag, err := s.pool.Exec(ctx, `DELETE FROM spans WHERE last_hour < $1`, before)
	if err != nil {
		return r, err
	}
	r.Spans = tag.RowsAffected()
	if tag, err = s.pool.Exec(ctx, `DELETE FROM span_objects WHERE last_hour < $1`, before); err != nil {
		return r, err
	}
	r.Spans += tag.RowsAffected()
	if r.Dims, err = s.deleteUnusedDims(ctx); err != nil {
		return r, err
	}
	if tag, err = s.pool.Exec(ctx, `DELETE FROM collection_runs WHERE hour < $1`, before); err != nil {
		return r, err
	}
	r.Runs = tag.RowsAffected()
	if tag, err = s.pool.Exec(ctx, `DELETE FROM outbox WHERE state = 'sent' AND sent_at < $1`, mailBefore); err != nil {
		return r, err
	}
	r.Mails = tag.RowsAffected()
	return r, nil
}

// deleteUnusedDims deletes the states and names no span refers to. A merge
// (CommitHour, ImportSpans, the usage_spans triggers) inserts the states
// and names of its spans, or finds them existing, before it refers to
// them, in the same transaction: the lock taken here waits for the merges
// under way to commit (their spans are then seen) and holds new ones until
// the deletion commits, so none refers to a row deleted here. Each row
// deleted is checked against the foreign keys of span_objects (a scan: no
// index covers them, which keeps the hourly updates HOT); a daily run
// deletes those of the objects gone a retention period before, few.
func (s *Store) deleteUnusedDims(ctx context.Context) (int64, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `LOCK TABLE span_states, span_names IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		return 0, err
	}
	var n int64
	for _, q := range []string{
		`DELETE FROM span_states d WHERE NOT EXISTS (SELECT 1 FROM span_objects o WHERE o.state_id = d.id)
		                             AND NOT EXISTS (SELECT 1 FROM spans s WHERE s.state_id = d.id)`,
		`DELETE FROM span_names d WHERE NOT EXISTS (SELECT 1 FROM span_objects o WHERE o.names_id = d.id)
		                            AND NOT EXISTS (SELECT 1 FROM spans s WHERE s.names_id = d.id)`,
	} {
		tag, err := tx.Exec(ctx, q)
		if err != nil {
			return 0, fmt.Errorf("deleting unused span states and names: %w", err)
		}
		n += tag.RowsAffected()
	}
	return n, tx.Commit(ctx)
}
