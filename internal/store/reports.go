package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Delivery states of a report channel.
const (
	ChannelPending = "pending" // not attempted yet
	ChannelQueued  = "queued"  // handed over (e-mail: in the outbox)
	ChannelSent    = "sent"    // delivered (upload: the server accepted it)
	ChannelFailed  = "failed"  // last attempt failed; `report send` retries
)

// ChannelStatus is the delivery status of a report on one channel.
type ChannelStatus struct {
	State    string    `json:"state"`
	At       time.Time `json:"at"`
	Attempts int       `json:"attempts,omitempty"`
	Error    string    `json:"error,omitempty"`
	Detail   string    `json:"detail,omitempty"` // e.g. "outbox 12", "HTTP 201"
}

// Done reports whether the channel needs no further attempt from the
// report: it was delivered, or (e-mail) it is in the outbox, whose worker
// retries it. Queued is not delivered: see Delivered.
func (c ChannelStatus) Done() bool { return c.State == ChannelQueued || c.State == ChannelSent }

// Delivered reports whether the report reached the other side on the channel.
func (c ChannelStatus) Delivered() bool { return c.State == ChannelSent }

// OutboxID is the outbox mail of an e-mail channel ("outbox ID" in Detail),
// 0 when none.
func (c ChannelStatus) OutboxID() int64 {
	s, ok := strings.CutPrefix(c.Detail, "outbox ")
	if !ok {
		return 0
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0
	}
	return id
}

// Report is one stored version of a monthly report.
type Report struct {
	ID            int64
	Month         time.Time // first day, as a date (midnight UTC)
	Version       int
	CreatedAt     time.Time
	RulesVersion  string
	FiguresSHA256 string // over the figures: unchanged data gives the same value
	BundleSHA256  string // of the file at Path
	Path          string
	Channels      map[string]ChannelStatus
}

// monthDate is the reports.month value of a month starting at start (in any zone).
func monthDate(start time.Time) time.Time {
	return time.Date(start.Year(), start.Month(), 1, 0, 0, 0, 0, time.UTC)
}

const reportCols = `id, month, version, created_at, rules_version, figures_sha256, bundle_sha256, path, channels`

func scanReport(r pgx.Row) (Report, error) {
	var rep Report
	var ch []byte
	err := r.Scan(&rep.ID, &rep.Month, &rep.Version, &rep.CreatedAt, &rep.RulesVersion, &rep.FiguresSHA256, &rep.BundleSHA256, &rep.Path, &ch)
	if errors.Is(err, pgx.ErrNoRows) {
		return rep, ErrNotFound
	}
	if err != nil {
		return rep, err
	}
	rep.Channels = map[string]ChannelStatus{}
	if len(ch) > 0 {
		if err := json.Unmarshal(ch, &rep.Channels); err != nil {
			return rep, fmt.Errorf("report %d channels: %w", rep.ID, err)
		}
	}
	return rep, nil
}

// LatestReport returns the newest version of the report of the month
// starting at start (its year and month are used), or ErrNotFound.
func (s *Store) LatestReport(ctx context.Context, start time.Time) (Report, error) {
	return scanReport(s.pool.QueryRow(ctx, `SELECT `+reportCols+` FROM reports WHERE month = $1 ORDER BY version DESC LIMIT 1`, monthDate(start)))
}

// ReportByID returns one report.
func (s *Store) ReportByID(ctx context.Context, id int64) (Report, error) {
	return scanReport(s.pool.QueryRow(ctx, `SELECT `+reportCols+` FROM reports WHERE id = $1`, id))
}

// Reports lists every stored report, newest month and version first.
func (s *Store) Reports(ctx context.Context) ([]Report, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+reportCols+` FROM reports ORDER BY month DESC, version DESC`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Report
	for rows.Next() {
		r, err := scanReport(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// InsertReport stores a new version. r.Version must be the next version of
// the month (LatestReport + 1); a concurrent insert of the same version is
// ErrDuplicate. Older versions are kept.
func (s *Store) InsertReport(ctx context.Context, r Report) (Report, error) {
	if r.Channels == nil {
		r.Channels = map[string]ChannelStatus{}
	}
	ch, err := json.Marshal(r.Channels)
	if err != nil {
		return r, err
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now()
	}
	r.Month = monthDate(r.Month)
	err = s.pool.QueryRow(ctx, `INSERT INTO reports (month, version, created_at, rules_version, figures_sha256, bundle_sha256, path, channels)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		r.Month, r.Version, r.CreatedAt, r.RulesVersion, r.FiguresSHA256, r.BundleSHA256, r.Path, ch).Scan(&r.ID)
	if isUniqueViolation(err) {
		return r, fmt.Errorf("report %s version %d: %w", r.Month.Format("2006-01"), r.Version, ErrDuplicate)
	}
	if err != nil {
		return r, fmt.Errorf("storing report: %w", err)
	}
	return r, nil
}

// LockReportMonth waits for and takes the lock on generating the report of
// the month starting at start, so that daemons sharing the database (and
// perhaps the data_dir) make a month's versions one at a time; unlock
// releases it. It is a PostgreSQL session lock: it goes with the
// connection of a daemon that dies holding it.
func (s *Store) LockReportMonth(ctx context.Context, start time.Time) (unlock func(), err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("locking report generation: %w", err)
	}
	m := monthDate(start)
	month := m.Year()*100 + int(m.Month())
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext('usagemeter report'), $1)`, month); err != nil {
		conn.Release()
		return nil, fmt.Errorf("locking report generation of %s: %w", m.Format("2006-01"), err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtext('usagemeter report'), $1)`, month); err != nil {
			// Not known to be unlocked: the connection goes, and the lock with it.
			_ = conn.Conn().Close(ctx)
		}
		conn.Release()
	}, nil
}

// SetReportChannel records the delivery status of report id on channel.
func (s *Store) SetReportChannel(ctx context.Context, id int64, channel string, st ChannelStatus) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE reports SET channels = jsonb_set(channels, ARRAY[$2::text], $3::jsonb) WHERE id = $1`, id, channel, b)
	if err != nil {
		return fmt.Errorf("recording report %d channel %s: %w", id, channel, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("report %d: %w", id, ErrNotFound)
	}
	return nil
}

// ReportMailKey is the outbox dedup key of report id's mail on channel.
func ReportMailKey(id int64, channel string) string {
	return fmt.Sprintf("report:%d:%s", id, channel)
}

// QueueReportMail queues the mail of report id on channel and records the
// channel's status in one transaction, so that a crash leaves either both
// or neither. The mail is keyed by (report, channel): if it is in the
// outbox already (a retry after a crash, a second daemon), that mail is
// kept and its id returned, not a second one. A mail refused for good
// before is set aside (its key renamed) and a new one queued: the admin
// asked again, after fixing the recipients. st.Detail is set to
// "outbox ID".
func (s *Store) QueueReportMail(ctx context.Context, id int64, channel string, m Mail, st ChannelStatus) (int64, error) {
	key := ReportMailKey(id, channel)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("queueing report mail: %w", err)
	}
	defer tx.Rollback(ctx)
	// Lock the report row: concurrent deliveries of one report queue one
	// mail, one after the other.
	if err := tx.QueryRow(ctx, `SELECT id FROM reports WHERE id = $1 FOR UPDATE`, id).Scan(new(int64)); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, fmt.Errorf("report %d: %w", id, ErrNotFound)
		}
		return 0, fmt.Errorf("locking report %d: %w", id, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE outbox SET dedup_key = dedup_key || ':refused:' || id WHERE dedup_key = $1 AND state = 'failed'`, key); err != nil {
		return 0, fmt.Errorf("setting aside the refused report mail: %w", err)
	}
	m.DedupKey = key
	mid, err := enqueueTx(ctx, tx, m)
	if err != nil {
		return 0, err
	}
	st.Detail = "outbox " + strconv.FormatInt(mid, 10)
	b, err := json.Marshal(st)
	if err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `UPDATE reports SET channels = jsonb_set(channels, ARRAY[$2::text], $3::jsonb) WHERE id = $1`, id, channel, b); err != nil {
		return 0, fmt.Errorf("recording report %d channel %s: %w", id, channel, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("queueing report mail: %w", err)
	}
	return mid, nil
}

// FollowOutbox brings the channels of rep that went through the outbox up to
// date with their mail: sent once the worker delivered it, failed (with the
// server's answer) once it was refused for good, still queued otherwise,
// with the last error of a mail that is being retried. Changes of state are
// recorded in the reports table; the updated report is returned.
func (s *Store) FollowOutbox(ctx context.Context, rep Report) (Report, error) {
	for name, c := range rep.Channels {
		id := c.OutboxID()
		if id == 0 || c.State != ChannelQueued {
			continue
		}
		m, err := s.MailStatus(ctx, id)
		if errors.Is(err, ErrNotFound) {
			// Retention removes only mails sent long ago.
			m = Mail{State: MailSent}
			err = nil
		}
		if err != nil {
			return rep, fmt.Errorf("following report %d into the outbox: %w", rep.ID, err)
		}
		next := c
		switch m.State {
		case MailSent:
			next.State, next.Error = ChannelSent, ""
			if m.SentAt != nil {
				next.At = *m.SentAt
			}
		case MailFailed:
			next.State, next.Error = ChannelFailed, m.LastError
		default:
			next.Error = m.LastError
		}
		if next.State != c.State {
			if err := s.SetReportChannel(ctx, rep.ID, name, next); err != nil {
				return rep, err
			}
		}
		rep.Channels[name] = next
	}
	return rep, nil
}

// ReadAppliance returns the appliance row without creating it or checking
// the credentials key (EnsureAppliance does both at start-up).
func (s *Store) ReadAppliance(ctx context.Context) (Appliance, error) {
	var a Appliance
	var contract, program *string
	err := s.pool.QueryRow(ctx, `SELECT id::text, created, contract_id, program, registered_at FROM appliance`).
		Scan(&a.ID, &a.Created, &contract, &program, &a.RegisteredAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, fmt.Errorf("appliance row: %w (run `usagemeter migrate` first)", ErrNotFound)
	}
	if contract != nil {
		a.ContractID = *contract
	}
	if program != nil {
		a.Program = *program
	}
	return a, err
}
