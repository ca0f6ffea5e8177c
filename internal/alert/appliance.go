package alert

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/report"
)

// The appliance-level alerts: the database, the outbox and the monthly
// report. Their texts live here, beside the product alerts, with golden
// files.

// DatabaseDownSubject is the subject of the database-down mail, the same at
// start-up and later: the fallback sends one a day per subject.
const DatabaseDownSubject = "[usagemeter] database unreachable: collection and reports stopped"

// DatabaseDownMail is the mail a running daemon sends straight to SMTP (the
// outbox lives in the database) when it has lost its database since since.
func DatabaseDownMail(to []string, appliance string, since time.Time, err error) store.Mail {
	return store.Mail{
		Kind: "alert:" + KindDatabaseDown, To: to, Subject: DatabaseDownSubject,
		Text: fmt.Sprintf("usagemeter appliance %s cannot reach its database since %s: %v\n\nNo hour can be stored while it is down. Check the PostgreSQL service (or database.url).\n",
			appliance, since.UTC().Format(time.RFC1123), err),
	}
}

// DatabaseDownAtStartMail is the mail a daemon sends straight to SMTP when
// it has waited for its database since it started, on host, at since.
func DatabaseDownAtStartMail(to []string, host string, since time.Time, err error) store.Mail {
	return store.Mail{
		Kind: "alert:" + KindDatabaseDown, To: to, Subject: DatabaseDownSubject,
		Text: fmt.Sprintf("usagemeter on %s started at %s and is waiting for its database since: %v\n\nNothing is collected and no report is made while it is down. Check the PostgreSQL service (or database.url); /healthz says degraded until it answers.\n",
			host, since.UTC().Format(time.RFC1123), err),
	}
}

// OutboxStuck raises the outbox-stuck alert: queued mails wait, the oldest
// since oldest, after up to maxTries attempts.
func (e *Engine) OutboxStuck(ctx context.Context, queued int, oldest time.Time, maxTries int) error {
	return e.Raise(ctx, KindOutboxStuck, 0, "mail outbox stuck",
		fmt.Sprintf("%d mails are waiting in the outbox; the oldest since %s (%d attempts). Alerts and reports are not reaching anyone.", queued, oldest.UTC().Format(time.RFC1123), maxTries),
		"Check the SMTP server and the smtp section of the configuration; the outbox keeps retrying and loses nothing.", "")
}

// OutboxFlowing resolves the outbox-stuck alert, if open.
func (e *Engine) OutboxFlowing(ctx context.Context) error {
	return e.Resolve(ctx, KindOutboxStuck, 0, "mail outbox flowing again", "The mail outbox is delivering again; every queued mail has been sent.")
}

// ReportFailed raises the report alert. What to do follows the error's
// kind (not registered, no data, no recipient keys), by errors.Is.
func (e *Engine) ReportFailed(ctx context.Context, err error) error {
	action := "Check the error below; run usagemeter report send --month YYYY-MM to retry by hand. Until it is sent the aggregator has no usage for the month."
	switch {
	case errors.Is(err, report.ErrNotRegistered):
		action = "Register the appliance: usagemeter register --contract ID --program rental|sovereign-cloud, then usagemeter report send."
	case errors.Is(err, report.ErrNoData):
		action = "No product delivered usage in the month: check usagemeter product list and the collection alerts."
	case errors.Is(err, report.ErrNoRecipients):
		action = "Set report.recipient_keys to the aggregator's PGP public key file(s)."
	}
	return e.Raise(ctx, KindReportFailed, 0, "monthly report not delivered", "The monthly usage report could not be generated or delivered.", action, err.Error())
}

// ReportDelivered resolves the report alert, if open.
func (e *Engine) ReportDelivered(ctx context.Context) error {
	return e.Resolve(ctx, KindReportFailed, 0, "monthly report delivered", "The monthly usage report was generated and delivered on every channel.")
}

// Problem is one thing the month's report needs that is missing (the
// readiness check of the appliance package): what was found, what to do.
type Problem struct {
	Name, Detail, Action string
}

// NotReady raises the readiness alert while the month's report could not
// be made or delivered as things stand (not registered, no valid recipient
// key, no channel, SMTP not answering, no active product, the clock not
// synchronised), weeks before the report is due; with no problem left it
// resolves it.
func (e *Engine) NotReady(ctx context.Context, problems []Problem) error {
	if len(problems) == 0 {
		return e.Resolve(ctx, KindNotReady, 0, "the monthly report can be made", "Everything the monthly report needs is in place again (usagemeter status).")
	}
	var what, action, errText strings.Builder
	action.WriteString("Fix each of these:")
	what.WriteString("As things stand, this month's usage report could not be made or delivered when it is due. Found:")
	for i, p := range problems {
		fmt.Fprintf(&what, "\n- %s: %s", p.Name, p.Detail)
		if p.Action != "" {
			fmt.Fprintf(&action, "\n- %s: %s", p.Name, p.Action)
		}
		if i > 0 {
			errText.WriteString("; ")
		}
		fmt.Fprintf(&errText, "%s: %s", p.Name, p.Detail)
	}
	action.WriteString("\n`usagemeter status` shows the same checks; this alert resolves by itself once they pass (checked at start and daily).")
	return e.Raise(ctx, KindNotReady, 0, "the monthly report is not ready", what.String(), action.String(), errText.String())
}

// BackupFailed raises the backup alert: the daily backup job could not
// write its archive into dir (err says why); the newest archive there is
// from last (zero: none).
func (e *Engine) BackupFailed(ctx context.Context, dir string, last time.Time, err error) error {
	newest := "There is no backup in " + dir + " yet."
	if !last.IsZero() {
		newest = "The newest backup in " + dir + " is from " + last.UTC().Format(time.RFC1123) + "; older ones are kept until a new one is written."
	}
	return e.Raise(ctx, KindBackupFailed, 0, "backup failed",
		"The daily backup of the appliance (database and key files, encrypted) could not be written. "+newest,
		"Check that "+dir+" exists, is writable by the user usagemeter runs as and has free space, and that the key file of the backup section "+
			"(backup.passphrase_file or backup.recipient_key_file) is readable; `usagemeter config check` checks the configuration. "+
			"The job runs again at backup.schedule; `usagemeter backup --out FILE` takes one by hand meanwhile. This alert resolves with the next backup written.",
		err.Error())
}

// BackupWritten resolves the backup alert, if open.
func (e *Engine) BackupWritten(ctx context.Context, path string) error {
	return e.Resolve(ctx, KindBackupFailed, 0, "backup written", "The daily backup was written again: "+path+".")
}
