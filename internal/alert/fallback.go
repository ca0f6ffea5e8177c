package alert

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/usagemeter/usagemeter/internal/mail"
	"github.com/usagemeter/usagemeter/internal/store"
)

// Fallback delivers alerts while the database is down: each alert is
// appended to a spill file in data_dir (so a restart loses nothing) and sent
// straight through SMTP; Flush records the spilled alerts in the database
// once it answers again.
//
// Several daemons may share one database: whenever the database answers,
// a mail sent straight is first claimed in it (Claims), so that only one
// daemon sends it; when it does not, each daemon sends its own, and Flush
// queues a spilled mail that could not be sent only if no other daemon
// claimed it.
type Fallback struct {
	Path   string // spill file, e.g. data_dir/alerts-spill.jsonl
	Sender interface {
		Send(ctx context.Context, m mail.Message) error
	}
	// Claims, if set, deduplicates mails between daemons (internal/store).
	Claims interface {
		ClaimMailKey(ctx context.Context, key, owner string, now time.Time, window time.Duration) (bool, error)
	}
	Owner  string // this daemon, in claims (host name and process id)
	Domain string
	Log    *slog.Logger
	Now    func() time.Time

	mu     sync.Mutex
	recent map[string]time.Time // subject -> last sent, to avoid a mail per hour per product
}

// spilled is one line of the spill file.
type spilled struct {
	At      time.Time  `json:"at"`
	Reason  string     `json:"reason"`
	Mail    store.Mail `json:"mail"`
	Sent    bool       `json:"sent"`
	SendErr string     `json:"send_error,omitempty"`
	// ClaimedElsewhere: another daemon claimed (and sends) this mail.
	ClaimedElsewhere bool `json:"claimed_elsewhere,omitempty"`
}

// claimWindow is how long one daemon's claim on a mail holds: the others
// do not send it again within it (a reminder after it is due anyway).
const claimWindow = 24 * time.Hour

// claimTimeout bounds asking the database for a claim: it may well be down.
const claimTimeout = 3 * time.Second

// claimKey identifies a spilled alert mail between daemons: its subject
// names the alert and the product.
func claimKey(m store.Mail) string { return "alert-mail:" + m.Subject }

// claim asks the database whether this daemon sends m. It answers true when
// the database cannot be asked (better two mails than none).
func (f *Fallback) claim(ctx context.Context, m store.Mail, now time.Time) (mine bool, err error) {
	if f.Claims == nil {
		return true, nil
	}
	ctx, cancel := context.WithTimeout(ctx, claimTimeout)
	defer cancel()
	ok, err := f.Claims.ClaimMailKey(ctx, claimKey(m), f.Owner, now, claimWindow)
	if err != nil {
		return true, err
	}
	return ok, nil
}

// Raise spills the alert and sends it directly (at most once per 24h per
// subject, and by one daemon of the database when it can be asked).
func (f *Fallback) Raise(ctx context.Context, m store.Mail, reason string) {
	now := time.Now()
	if f.Now != nil {
		now = f.Now()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.recent == nil {
		f.recent = map[string]time.Time{}
	}
	if last, ok := f.recent[m.Subject]; ok && now.Sub(last) < 24*time.Hour {
		return
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = now // queued by Flush later, it keeps the time it was raised
	}
	rec := spilled{At: now, Reason: reason, Mail: m}
	mine, cerr := f.claim(ctx, m, now)
	if !mine {
		// Another daemon of this database sends it.
		rec.ClaimedElsewhere = true
		f.recent[m.Subject] = now
	} else if f.Sender != nil {
		if cerr != nil && f.Log != nil {
			f.Log.Debug("alert mail not claimed in the database, sending it anyway", "subject", m.Subject, "err", cerr)
		}
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := f.Sender.Send(ctx, mail.Message{
			MessageID: spillMessageID(now, f.domain()),
			To:        m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML, Date: now,
		})
		cancel()
		rec.Sent = err == nil
		if err != nil {
			rec.SendErr = err.Error()
			if f.Log != nil {
				f.Log.Error("alert not delivered: the database is unreachable and the SMTP server refused it; kept in the spill file",
					"subject", m.Subject, "path", f.Path, "error", err.Error(), "failure", string(mail.ClassOf(err)))
			}
		}
	}
	if rec.Sent {
		f.recent[m.Subject] = now
	}
	if err := f.append(rec); err != nil && f.Log != nil {
		f.Log.Error("spilling alert to file", "path", f.Path, "err", err)
	}
}

// spillMessageID is the Message-ID of a mail sent straight: unique even for
// mails raised at the same instant (a clock of coarse resolution, an
// injected one), which a receiver would otherwise take for one mail.
func spillMessageID(now time.Time, domain string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("<spill-%d-%s@%s>", now.UnixNano(), hex.EncodeToString(b[:]), domain)
}

func (f *Fallback) domain() string {
	if f.Domain == "" {
		return "usagemeter.invalid"
	}
	return f.Domain
}

func (f *Fallback) append(r spilled) error {
	fh, err := os.OpenFile(f.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer fh.Close()
	b, _ := json.Marshal(r)
	if _, err := fh.Write(append(b, '\n')); err != nil {
		return err
	}
	return fh.Sync()
}

// Flush records spilled alerts in the database: those not sent directly are
// queued in the outbox; all are kept as resolved alert history. The file is
// removed once everything is recorded.
func (f *Fallback) Flush(ctx context.Context, st *store.Store) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fh, err := os.Open(f.Path)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var recs []spilled
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var r spilled
		if json.Unmarshal(sc.Bytes(), &r) == nil {
			recs = append(recs, r)
		}
	}
	fh.Close()
	for i, r := range recs {
		key := fmt.Sprintf("%s:spilled:%d", KindDatabaseDown, r.At.UnixNano())
		var m *store.Mail
		if !r.Sent && !r.ClaimedElsewhere {
			// Not sent: queue it, unless another daemon claimed it
			// meanwhile (it sent or queued its own).
			mine, err := f.claim(ctx, r.Mail, r.At)
			if err != nil {
				return i, fmt.Errorf("claiming spilled alert mail %q: %w", r.Mail.Subject, err)
			}
			if mine {
				mm := r.Mail
				if mm.CreatedAt.IsZero() { // spilled by an older version
					mm.CreatedAt = r.At
				}
				m = &mm
			}
		} else if r.Sent {
			// Sent straight: claim it, so that another daemon does not
			// queue its own unsent copy when it flushes.
			if _, err := f.claim(ctx, r.Mail, r.At); err != nil {
				return i, fmt.Errorf("claiming spilled alert mail %q: %w", r.Mail.Subject, err)
			}
		}
		if _, err := st.RaiseAlert(ctx, store.Alert{Key: key, Kind: KindDatabaseDown, OpenedAt: r.At, LastError: r.Reason + ": " + r.Mail.Subject}, m); err != nil {
			return i, err
		}
		if _, err := st.ResolveAlert(ctx, key, r.At, func(store.Alert) *store.Mail { return nil }); err != nil {
			return i, err
		}
	}
	return len(recs), os.Remove(f.Path)
}
