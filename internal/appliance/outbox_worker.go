package appliance

import (
	"log/slog"

	"github.com/usagemeter/usagemeter/internal/config"
	umail "github.com/usagemeter/usagemeter/internal/mail"
	"github.com/usagemeter/usagemeter/internal/store"
)

// OutboxWorker is the mail worker over st's outbox with the sender of the
// smtp section: the receiver role (internal/receiver) sends its alert mails
// through it, as the daemon does.
func OutboxWorker(st *store.Store, c config.SMTP, log *slog.Logger) (*umail.Worker, error) {
	s, err := umail.NewSender(mailConfig(c), log)
	if err != nil {
		return nil, err
	}
	return &umail.Worker{Outbox: storeOutbox{st: st, domain: mailDomain(c.From)}, Sender: s, Logger: log}, nil
}
