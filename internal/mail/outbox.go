package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// OutboxItem is one queued e-mail.
type OutboxItem struct {
	ID   int64
	Kind string // what the mail is, e.g. "alert" or "report", for logs
	// Message is what is sent; its MessageID should be MessageID(ID, domain)
	// so that it stays the same across attempts.
	Message Message
	// Attempts is how many times sending was tried before this claim.
	Attempts  int
	CreatedAt time.Time
}

// Outbox is the queue the Worker drains. internal/store implements it on
// PostgreSQL.
type Outbox interface {
	// ClaimDue returns up to limit items that are neither sent, nor failed
	// permanently, nor leased, and whose next attempt is due at now; it
	// leases them until now+lease so that no other worker claims them
	// meanwhile.
	ClaimDue(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]OutboxItem, error)
	// MarkSent records delivery and releases the lease.
	MarkSent(ctx context.Context, id int64, at time.Time) error
	// MarkFailed records a failed attempt and its class: it stores errText
	// and either schedules the next attempt at nextAttempt (Temporary,
	// Configuration: the mail stays queued) or, for Refused only, stops
	// trying. It releases the lease.
	MarkFailed(ctx context.Context, id int64, errText string, nextAttempt time.Time, class Class) error
}

// Observer is told the outcome of every attempt, after it was recorded, so
// that failures reach an admin by other ways than mail (alerts, metrics,
// /healthz). Its methods must not block for long.
type Observer interface {
	MailSent(ctx context.Context, it OutboxItem)
	MailFailed(ctx context.Context, it OutboxItem, err error, class Class)
}

// Default Worker settings.
const (
	DefaultBatch      = 20
	DefaultLease      = 10 * time.Minute
	DefaultRetryFirst = time.Minute
	DefaultRetryMax   = 6 * time.Hour
	// ConfigRetryMax caps the wait after a Configuration failure: once an
	// admin fixed the configuration or the server, waiting mail goes out
	// within this time (or at once with `report send`).
	ConfigRetryMax = 30 * time.Minute
)

// Worker sends what is due in the outbox. RunOnce is meant to be called
// every minute by the scheduler; one RunOnce at a time per Worker.
type Worker struct {
	Outbox Outbox
	Sender interface {
		Send(context.Context, Message) error
	}
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
	// Backoff is the wait after the attempts-th failed attempt (1 for the
	// first failure); nil means DefaultBackoff. After a Configuration
	// failure the wait is at most ConfigRetryMax.
	Backoff func(attempts int) time.Duration
	// Observer, if set, is told every outcome.
	Observer Observer

	// Batch is how many items one RunOnce claims; 0 means DefaultBatch.
	Batch int
	// Lease is how long claimed items stay reserved to this worker; 0 means
	// DefaultLease. RunOnce stops starting new sends shortly before the
	// lease ends; items it did not try are claimed again after it.
	Lease time.Duration
}

// DefaultBackoff waits 1 minute after the first failure and doubles with
// every further one, up to 6 hours.
func DefaultBackoff(attempts int) time.Duration {
	if attempts < 1 {
		attempts = 1
	}
	d := DefaultRetryFirst
	for i := 1; i < attempts; i++ {
		d *= 2
		if d >= DefaultRetryMax {
			return DefaultRetryMax
		}
	}
	return d
}

// MessageID returns the stable Message-ID of outbox item outboxID:
// "<outbox-ID@domain>". An empty domain becomes "usagemeter.invalid".
func MessageID(outboxID int64, domain string) string {
	if domain == "" {
		domain = "usagemeter.invalid"
	}
	return fmt.Sprintf("<outbox-%d@%s>", outboxID, domain)
}

// markTimeout bounds recording a result. Recording uses a context that is
// not cancelled with RunOnce's: a message that went out must be marked sent,
// or it would be sent again.
const markTimeout = 30 * time.Second

// RunOnce claims the due items and tries to send each once. It returns how
// many were sent and how many failed (temporarily or permanently). err is
// set when the outbox could not be read or a result could not be recorded;
// send failures are recorded in the outbox, logged, and counted in failed,
// not returned.
//
// Delivery is at least once: should recording a sent message fail, it will
// be sent again after its lease, with the same Message-ID.
func (w *Worker) RunOnce(ctx context.Context) (sent, failed int, err error) {
	now := w.now()
	lease := w.Lease
	if lease <= 0 {
		lease = DefaultLease
	}
	batch := w.Batch
	if batch <= 0 {
		batch = DefaultBatch
	}
	log := w.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	items, err := w.Outbox.ClaimDue(ctx, now, batch, lease)
	if err != nil {
		return 0, 0, fmt.Errorf("claiming due outbox items: %w", err)
	}
	// Stop starting sends when a fifth of the lease is left, so that an
	// item is never sent by this worker after another one may have claimed
	// it. The clock used is the real one: the lease is real time.
	stopAt := time.Now().Add(lease - lease/5)

	var errs []error
	for _, it := range items {
		if ctx.Err() != nil || time.Now().After(stopAt) {
			break
		}
		sendCtx, cancel := context.WithDeadline(ctx, stopAt.Add(lease/10))
		sendErr, err := w.Attempt(sendCtx, it, log)
		cancel()
		if err != nil {
			errs = append(errs, err)
		}
		if sendErr == nil || PartlyDelivered(sendErr) {
			sent++
		} else {
			failed++
		}
	}
	return sent, failed, errors.Join(errs...)
}

// Attempt sends one claimed item and records the outcome: sent, or failed
// with its class and next attempt. sendErr is the send failure (recorded,
// logged and given to the Observer; when PartlyDelivered, the mail is
// recorded sent and the refusal reported); err says the outcome could not
// be recorded. RunOnce calls it for every claimed item; `report send` calls it
// for the report's own mail, claimed by id.
func (w *Worker) Attempt(ctx context.Context, it OutboxItem, log *slog.Logger) (sendErr, err error) {
	if log == nil {
		log = w.Logger
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sendErr = w.Sender.Send(ctx, it.Message)
	markCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
	defer cancel()
	attrs := []any{"outbox_id", it.ID, "kind", it.Kind, "message_id", it.Message.MessageID, "attempt", it.Attempts + 1}
	if sendErr == nil || PartlyDelivered(sendErr) {
		if err := w.Outbox.MarkSent(markCtx, it.ID, w.now()); err != nil {
			return sendErr, fmt.Errorf("marking outbox item %d sent: %w", it.ID, err)
		}
		if sendErr != nil {
			log.Error("mail sent, but refused for good for some recipients", append(attrs, "error", sendErr.Error(), "refused", RefusedRecipients(sendErr))...)
		} else {
			log.Info("mail sent", attrs...)
		}
		if w.Observer != nil {
			w.Observer.MailSent(markCtx, it)
			if sendErr != nil {
				w.Observer.MailFailed(markCtx, it, sendErr, Refused)
			}
		}
		return sendErr, nil
	}
	class := ClassOf(sendErr)
	wait := w.backoff(it.Attempts + 1)
	if class == Configuration {
		wait = min(wait, ConfigRetryMax)
	}
	next := w.now().Add(wait)
	if err := w.Outbox.MarkFailed(markCtx, it.ID, sendErr.Error(), next, class); err != nil {
		err = fmt.Errorf("marking outbox item %d failed: %w", it.ID, err)
		if w.Observer != nil {
			w.Observer.MailFailed(markCtx, it, sendErr, class)
		}
		return sendErr, err
	}
	attrs = append(attrs, "error", sendErr.Error(), "failure", string(class))
	switch class {
	case Refused:
		log.Error("mail refused by the server for good, not retrying", attrs...)
	case Configuration:
		log.Error("mail not sent: the SMTP server refused the configuration; kept queued, retried once it is fixed", append(attrs, "next_attempt", next)...)
	default:
		log.Warn("mail not sent, will retry", append(attrs, "next_attempt", next)...)
	}
	if w.Observer != nil {
		w.Observer.MailFailed(markCtx, it, sendErr, class)
	}
	return sendErr, nil
}

func (w *Worker) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

func (w *Worker) backoff(attempts int) time.Duration {
	if w.Backoff != nil {
		return w.Backoff(attempts)
	}
	return DefaultBackoff(attempts)
}
