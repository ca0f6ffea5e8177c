package appliance

import (
	"context"
	"fmt"
	"time"

	umail "github.com/usagemeter/usagemeter/internal/mail"
	"github.com/usagemeter/usagemeter/internal/store"
)

// SendReportMailNow tries the report's outbox mail at once, whatever its
// backoff, as the daemon's worker would (same lease, same recording). If
// the daemon is sending it right now, it waits for the outcome.
func SendReportMailNow(ctx context.Context, app *App, id int64) error {
	sender, err := umail.NewSender(mailConfig(app.Config.SMTP), app.Log)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	ob := storeOutbox{st: app.Store, domain: mailDomain(app.Config.SMTP.From)}
	w := &umail.Worker{Outbox: ob, Sender: sender, Logger: app.Log}
	wait := 2*app.Config.SMTP.Timeout.D() + 10*time.Second
	deadline := time.Now().Add(wait)
	for {
		m, ok, err := app.Store.ClaimMailByID(ctx, id, time.Now(), umail.DefaultLease)
		if err != nil {
			return err
		}
		if ok {
			_, err := w.Attempt(ctx, ob.item(m), nil)
			return err // a send failure is recorded and printed with the channel
		}
		if m.State != store.MailSending || time.Now().After(deadline) {
			return nil // sent, refused, or still with the daemon: the channel says which
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// OutboxState is a channel's state, followed into the outbox for e-mail:
// "queued" there becomes "sent" once the worker delivered the mail,
// "failed(...)" once the server refused it for good, and
// "queued(not delivered: ...)" while it is retried after a failure.
func OutboxState(ctx context.Context, st *store.Store, c store.ChannelStatus) string {
	id := c.OutboxID()
	if id == 0 || c.State != store.ChannelQueued {
		return c.State
	}
	m, err := st.MailStatus(ctx, id)
	if err != nil {
		return c.State
	}
	switch m.State {
	case store.MailSent:
		return store.ChannelSent
	case store.MailFailed:
		return "failed(" + m.LastError + ")"
	}
	if m.Failure != "" {
		return "queued(not delivered: " + m.Failure + " failure, retrying)"
	}
	return c.State
}
