// Package alert turns failures into e-mails an admin can act on: collection
// failed (after a threshold of failed hours), a reminder every interval while
// it lasts, resolved when it recovers; deactivation after too many failed
// hours, and reactivation when the daily retry succeeds; certificate changed
// or expiring; clock skew; report failures; a stuck outbox. Every alert is
// deduplicated by key (collection_failed:<product>) in the store, and its mail
// is queued in the same transaction that opens or resolves it.
//
// When the database itself is down, alerts cannot be queued: they go to a
// spill file in data_dir and straight to SMTP, and are recorded in the
// database when it returns (see Fallback).
package alert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/scheduler"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// Kinds of alert.
const (
	KindCollectionFailed   = "collection_failed"
	KindDeactivated        = "product_deactivated"
	KindCertificateChanged = "certificate_changed"
	KindCertificateExpiry  = "certificate_expiring"
	KindClockSkew          = "clock_skew"
	KindReportFailed       = "report_failed"
	KindOutboxStuck        = "outbox_stuck"
	KindDatabaseDown       = "database_down"
	KindNotReady           = "report_not_ready" // the month could not be reported as things stand
	// KindMailFailing: the SMTP server refuses the appliance's
	// configuration (authentication, TLS, policy); mails are kept queued.
	KindMailFailing = "mail_failing"
	// KindMailRefused: the SMTP server refused one mail for good (an
	// unknown recipient); that mail ends.
	KindMailRefused = "mail_refused"
	KindHoursLost   = "hours_not_collected"
	// KindBackupFailed: the daemon's backup job (config backup:) could not
	// write its archive.
	KindBackupFailed = "backup_failed"
)

// Key is an alert's deduplication key.
func Key(kind string, productID int64) string {
	if productID == 0 {
		return kind
	}
	return fmt.Sprintf("%s:%d", kind, productID)
}

// Rules are the thresholds of METERING.md and the config.
type Rules struct {
	To               []string
	FailureThreshold int           // failed hours before the first mail (default 1)
	Reminder         time.Duration // between reminders (default 24h)
	DeactivateAfter  int           // consecutive failed hours (default 720)
}

// Engine applies the rules. It implements scheduler.Observer.
type Engine struct {
	Store     *store.Store
	Rules     Rules
	Log       *slog.Logger
	Now       func() time.Time
	Appliance string    // appliance id or host name, named in every mail
	Fallback  *Fallback // used when the database is unreachable; may be nil
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}

// Observe implements scheduler.Observer.
func (e *Engine) Observe(ctx context.Context, r scheduler.Result) {
	if r.Skipped != "" || r.Gap {
		return // gaps are told together, by ObserveGaps
	}
	var err error
	if r.Err == nil {
		err = e.succeeded(ctx, r)
	} else {
		err = e.failed(ctx, r)
	}
	if err != nil {
		e.Log.Error("alert bookkeeping failed", "product", r.Product.ID, "err", err)
		if r.Err != nil && e.Fallback != nil {
			e.Fallback.Raise(ctx, e.collectionMail(r.Product, r.Err, r.Hour, 0, "opened"), "collection failed and the database is unreachable")
		}
	}
}

func (e *Engine) succeeded(ctx context.Context, r scheduler.Result) error {
	p := r.Product
	now := e.now()
	_, err := e.Store.ResolveAlert(ctx, Key(KindCollectionFailed, p.ID), now, func(a store.Alert) *store.Mail {
		m := e.resolvedMail(p, a, now)
		return &m
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	_, err = e.Store.ResolveAlert(ctx, Key(KindCertificateChanged, p.ID), now, func(a store.Alert) *store.Mail { return nil })
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if !p.Active && p.DeactivatedAt != nil {
		if err := e.Store.SetProductActive(ctx, p.ID, true, now); err != nil {
			return err
		}
		e.Log.Info("product reactivated", "product", p.ID)
		_, err := e.Store.ResolveAlert(ctx, Key(KindDeactivated, p.ID), now, func(a store.Alert) *store.Mail {
			m := e.mail(KindDeactivated, fmt.Sprintf("[usagemeter] %s reactivated: collection succeeds again", productName(p)), mailData{
				Product: productName(p), Since: a.OpenedAt, Now: now, State: "reactivated",
				What:   fmt.Sprintf("%s was deactivated on %s after failing for too long. The daily retry at %s succeeded; it is metered every hour again.", productName(p), a.OpenedAt.Format(time.RFC1123), now.Format(time.RFC1123)),
				Action: "Nothing. Check the monthly report's gap count for the hours it was down.",
			})
			return &m
		})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

func (e *Engine) failed(ctx context.Context, r scheduler.Result) error {
	p := r.Product
	now := e.now()
	streak, err := e.Store.FailureStreak(ctx, p.ID)
	if err != nil {
		return err
	}
	since := r.Hour
	if streak.Since != nil {
		since = *streak.Since
	}

	var ce *tlsutil.CertError
	if errors.As(r.Err, &ce) && errors.Is(ce, tlsutil.ErrChanged) {
		m := e.mail(KindCertificateChanged, fmt.Sprintf("[usagemeter] %s: certificate changed, collection stopped", productName(p)), mailData{
			Product: productName(p), Since: since, Now: now, Error: r.Err.Error(), State: "opened",
			What:   fmt.Sprintf("%s presents a certificate whose SHA-256 thumbprint is %s; the accepted one is %s. Collection stops until an admin accepts the new certificate.", productName(p), ce.Seen, ce.Accepted),
			Action: fmt.Sprintf("Check that the certificate change on %s is expected (a renewal, not an interception), then accept it: usagemeter product test %d, and usagemeter product set-thumbprint %d %s.", p.Endpoint, p.ID, p.ID, ce.Seen),
		})
		if _, err := e.Store.RaiseAlert(ctx, store.Alert{Key: Key(KindCertificateChanged, p.ID), Kind: KindCertificateChanged, ProductID: p.ID, OpenedAt: now, LastError: r.Err.Error()}, &m); err != nil {
			return err
		}
	}

	key := Key(KindCollectionFailed, p.ID)
	if streak.Hours >= max(1, e.Rules.FailureThreshold) {
		m := e.collectionMail(p, r.Err, since, streak.Hours, "opened")
		opened, err := e.Store.RaiseAlert(ctx, store.Alert{Key: key, Kind: KindCollectionFailed, ProductID: p.ID, OpenedAt: now, LastError: r.Err.Error(), Failures: streak.Hours}, &m)
		if err != nil {
			return err
		}
		if opened {
			e.Log.Warn("alert opened", "key", key, "failed_hours", streak.Hours)
		} else if e.Rules.Reminder > 0 {
			rm := e.collectionMail(p, r.Err, since, streak.Hours, "reminder")
			if sent, err := e.Store.RemindAlert(ctx, key, now.Add(-e.Rules.Reminder), now, rm); err != nil {
				return err
			} else if sent {
				e.Log.Warn("alert reminder", "key", key, "failed_hours", streak.Hours)
			}
		}
	}

	if e.Rules.DeactivateAfter > 0 && streak.Hours >= e.Rules.DeactivateAfter && p.Active {
		if err := e.Store.SetProductActive(ctx, p.ID, false, now); err != nil {
			return err
		}
		e.Log.Warn("product deactivated", "product", p.ID, "failed_hours", streak.Hours)
		m := e.mail(KindDeactivated, fmt.Sprintf("[usagemeter] %s deactivated after %d failed hours", productName(p), streak.Hours), mailData{
			Product: productName(p), Since: since, Now: now, Error: r.Err.Error(), Hours: streak.Hours, State: "opened",
			What:   fmt.Sprintf("Collection from %s has failed for %d consecutive hours since %s, so it is deactivated. It is retried once a day and reactivated as soon as a collection succeeds.", productName(p), streak.Hours, since.Format(time.RFC1123)),
			Action: "Fix the cause (the last error is below), then run usagemeter collect --product " + fmt.Sprint(p.ID) + " to reactivate it now. Every hour it is down is missing from the monthly report.",
		})
		if _, err := e.Store.RaiseAlert(ctx, store.Alert{Key: Key(KindDeactivated, p.ID), Kind: KindDeactivated, ProductID: p.ID, OpenedAt: now, LastError: r.Err.Error(), Failures: streak.Hours}, &m); err != nil {
			return err
		}
	}
	return nil
}

// ObserveGaps implements scheduler.GapObserver: one mail naming every hour
// that ended uncollected, product by product, with its cause. It is kept as
// alert history (opened and closed at once: nothing can collect an ended
// hour any more), and goes to the spill file and SMTP if the database fails.
func (e *Engine) ObserveGaps(ctx context.Context, gaps []scheduler.Gap) {
	if len(gaps) == 0 {
		return
	}
	now := e.now()
	var list strings.Builder
	products := map[int64]bool{}
	for _, g := range gaps {
		products[g.Product.ID] = true
		fmt.Fprintf(&list, "\n- %s, hour %s: %s", productName(g.Product), g.Hour.Format("2006-01-02 15:04 MST"), g.Cause)
	}
	first := gaps[0]
	subject := fmt.Sprintf("[usagemeter] hour %s of %s not collected", first.Hour.Format("2006-01-02 15:04 MST"), productName(first.Product))
	if len(gaps) > 1 {
		subject = fmt.Sprintf("[usagemeter] %d hours of %d products not collected", len(gaps), len(products))
	}
	name := productName(first.Product)
	if len(products) > 1 {
		name = fmt.Sprintf("%d products", len(products))
	}
	m := e.mail(KindHoursLost, subject, mailData{
		Product: name, Since: first.Hour, Now: now, Hours: len(gaps), State: "opened",
		What:   "These hours ended before usagemeter could collect them. Each one is a gap in the monthly report (its manifest counts the missing hours per product):" + list.String(),
		Action: "Fix the cause named for each hour (the database, the daemon's service). An ended hour cannot be collected any more; if the usage did not change since, an admin may record the present state as that hour with usagemeter collect --product ID --hour HOUR.",
	})
	key := fmt.Sprintf("%s:%s", KindHoursLost, now.Format(time.RFC3339Nano)) // not "kind:<product id>"
	var pid int64
	if len(products) == 1 {
		pid = first.Product.ID
	}
	_, err := e.Store.RaiseAlert(ctx, store.Alert{Key: key, Kind: KindHoursLost, ProductID: pid, OpenedAt: now, LastError: first.Cause, Failures: len(gaps)}, &m)
	if err == nil {
		_, err = e.Store.ResolveAlert(ctx, key, now, func(store.Alert) *store.Mail { return nil })
	}
	if err != nil {
		e.Log.Error("alerting hours not collected", "gaps", len(gaps), "err", err)
		if e.Fallback != nil {
			e.Fallback.Raise(ctx, m, "hours not collected and the database is unreachable")
		}
		return
	}
	e.Log.Warn("alert: hours not collected", "gaps", len(gaps), "products", len(products))
}

// collectionMail says a product's collection fails; the advice follows the
// kind of error (bad credentials, certificate, deadline), classified by
// errors.Is and errors.As, never by its words.
func (e *Engine) collectionMail(p store.Product, lastErr error, since time.Time, hours int, state string) store.Mail {
	subject := fmt.Sprintf("[usagemeter] collection from %s failing", productName(p))
	if state == "reminder" {
		subject = fmt.Sprintf("[usagemeter] reminder: collection from %s still failing (%d hours)", productName(p), hours)
	}
	return e.mail(KindCollectionFailed, subject, mailData{
		Product: productName(p), Since: since, Now: e.now(), Error: lastErr.Error(), Hours: hours, State: state,
		What:   fmt.Sprintf("usagemeter cannot collect usage from %s since %s (%s so far). Each failed hour is a gap in the monthly report.", productName(p), since.Format(time.RFC1123), failedHours(hours)),
		Action: actionFor(p, lastErr),
	})
}

func (e *Engine) resolvedMail(p store.Product, a store.Alert, now time.Time) store.Mail {
	return e.mail(KindCollectionFailed, fmt.Sprintf("[usagemeter] resolved: collection from %s works again", productName(p)), mailData{
		Product: productName(p), Since: a.OpenedAt, Now: now, Error: a.LastError, Hours: a.Failures, State: "resolved",
		What:   fmt.Sprintf("Collection from %s succeeded at %s, after failing since %s.", productName(p), now.Format(time.RFC1123), a.OpenedAt.Format(time.RFC1123)),
		Action: "Nothing. The hours that failed are counted as gaps in the monthly report.",
	})
}

func actionFor(p store.Product, err error) string {
	var ce *tlsutil.CertError
	switch {
	case errors.Is(err, collectors.ErrAuth):
		return fmt.Sprintf("Check the metering account on %s: its password expired or was changed, or the account is locked. The hour is not retried with the same credentials (a retry storm could lock the account).", p.Endpoint)
	case errors.As(err, &ce):
		return fmt.Sprintf("Check the certificate of %s with usagemeter product test %d.", p.Endpoint, p.ID)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("%s answers too slowly: check its load and the network, or raise collection.timeout and collection.call_timeout.", p.Endpoint)
	default:
		return fmt.Sprintf("Check that %s is up and reachable from the appliance, then run usagemeter collect --product %d to test.", p.Endpoint, p.ID)
	}
}

// failedHours is "1 failed hour", "3 failed hours".
func failedHours(n int) string {
	if n == 1 {
		return "1 failed hour"
	}
	return fmt.Sprintf("%d failed hours", n)
}

func productName(p store.Product) string {
	return fmt.Sprintf("%s %s (product %d)", p.Kind, p.Endpoint, p.ID)
}

type mailData struct {
	Product   string
	Appliance string
	What      string
	Action    string
	Error     string
	Since     time.Time
	Now       time.Time
	Hours     int
	State     string
}

var textTmpl = texttemplate.Must(texttemplate.New("text").Parse(`{{.What}}

Product:    {{.Product}}
Since:      {{.Since.Format "2006-01-02 15:04 MST"}}
{{- if .Hours}}
Failed hours: {{.Hours}}{{end}}
{{- if .Error}}
Last error: {{.Error}}{{end}}

What to do: {{.Action}}

-- 
usagemeter appliance {{.Appliance}}, {{.Now.Format "2006-01-02 15:04 MST"}}
`))

var htmlTmpl = template.Must(template.New("html").Parse(`<!DOCTYPE html>
<html><body style="font-family: sans-serif">
<p>{{.What}}</p>
<table>
<tr><th align="left">Product</th><td>{{.Product}}</td></tr>
<tr><th align="left">Since</th><td>{{.Since.Format "2006-01-02 15:04 MST"}}</td></tr>
{{- if .Hours}}<tr><th align="left">Failed hours</th><td>{{.Hours}}</td></tr>{{end}}
{{- if .Error}}<tr><th align="left">Last error</th><td><code>{{.Error}}</code></td></tr>{{end}}
</table>
<p><b>What to do:</b> {{.Action}}</p>
<p style="color: #666">usagemeter appliance {{.Appliance}}, {{.Now.Format "2006-01-02 15:04 MST"}}</p>
</body></html>
`))

func (e *Engine) mail(kind, subject string, d mailData) store.Mail {
	d.Appliance = e.Appliance
	var t, h bytes.Buffer
	_ = textTmpl.Execute(&t, d)
	_ = htmlTmpl.Execute(&h, d)
	return store.Mail{Kind: "alert:" + kind, To: e.Rules.To, Subject: subject, Text: t.String(), HTML: h.String(), CreatedAt: e.now()}
}

// Raise opens a non-product alert (report failed, outbox stuck, clock skew,
// certificate expiring) with a mail; a repeat while open sends a reminder
// after the reminder interval.
func (e *Engine) Raise(ctx context.Context, kind string, productID int64, subject, what, action, errText string) error {
	now := e.now()
	key := Key(kind, productID)
	m := e.mail(kind, "[usagemeter] "+subject, mailData{Product: fmt.Sprint(productID), Since: now, Now: now, Error: errText, What: what, Action: action, State: "opened"})
	if productID == 0 {
		m = e.mail(kind, "[usagemeter] "+subject, mailData{Product: "appliance", Since: now, Now: now, Error: errText, What: what, Action: action, State: "opened"})
	}
	opened, err := e.Store.RaiseAlert(ctx, store.Alert{Key: key, Kind: kind, ProductID: productID, OpenedAt: now, LastError: errText}, &m)
	if err != nil {
		if e.Fallback != nil {
			e.Fallback.Raise(ctx, m, what)
		}
		return err
	}
	if !opened && e.Rules.Reminder > 0 {
		m.Subject = "[usagemeter] reminder: " + subject
		_, err = e.Store.RemindAlert(ctx, key, now.Add(-e.Rules.Reminder), now, m)
	}
	return err
}

// Resolve closes a non-product alert with a mail saying so.
func (e *Engine) Resolve(ctx context.Context, kind string, productID int64, subject, what string) error {
	now := e.now()
	_, err := e.Store.ResolveAlert(ctx, Key(kind, productID), now, func(a store.Alert) *store.Mail {
		m := e.mail(kind, "[usagemeter] resolved: "+subject, mailData{Product: "appliance", Since: a.OpenedAt, Now: now, Error: a.LastError, What: what, Action: "Nothing.", State: "resolved"})
		return &m
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// MailFailing opens the mail_failing alert: the SMTP server refused the
// appliance's configuration (errText says how). Its own mail waits in the
// outbox with the others and arrives once the cause is fixed; the daemon
// says it meanwhile in the log, /healthz and the metrics. A repeat while
// open reminds after the reminder interval. Only one daemon of a database
// opens it (the alerts table's key).
func (e *Engine) MailFailing(ctx context.Context, server string, queued int, errText string) error {
	return e.Raise(ctx, KindMailFailing, 0, "mail delivery failing: the SMTP server refuses the configuration",
		fmt.Sprintf("The SMTP server %s refused to take the appliance's mail: %s. Nothing is lost: %d mails (alerts, reports) are kept in the outbox and retried every few minutes, and go out as soon as the cause is fixed. This mail waited with them.", server, mailCause(errText), queued),
		mailAction(errText), errText)
}

// MailWorks resolves the mail_failing alert once a mail went out again.
func (e *Engine) MailWorks(ctx context.Context) error {
	return e.Resolve(ctx, KindMailFailing, 0, "mail delivery works again",
		"The SMTP server accepts the appliance's mail again; the mails kept in the outbox are being sent.")
}

// MailRefused records that the SMTP server refused one mail for good to
// the recipients refused (unknown addresses): the mail ends for them (the
// others, if othersGotIt, received it), and an alert mail says which one,
// to whom and why. The alert about a refused alert mail of this kind is recorded without
// a mail (it would be refused the same way).
func (e *Engine) MailRefused(ctx context.Context, outboxID int64, kind string, refused []string, othersGotIt bool, subject, errText string) error {
	now := e.now()
	key := fmt.Sprintf("%s:outbox-%d", KindMailRefused, outboxID)
	what := fmt.Sprintf("The SMTP server refused the mail %q (outbox %d, %s) to %s for good: %s. It will not be sent to them again.", subject, outboxID, kind, strings.Join(refused, ", "), errText)
	if othersGotIt {
		what += " The other recipients received it."
	}
	action := "Check the recipient addresses (alerts.to for alerts, report.to for reports) and correct them; run usagemeter report send --month YYYY-MM to send a refused report again."
	var m *store.Mail
	if kind != "alert:"+KindMailRefused {
		mm := e.mail(KindMailRefused, "[usagemeter] mail refused: "+subject, mailData{Product: "appliance", Since: now, Now: now, Error: errText, What: what, Action: action, State: "opened"})
		m = &mm
	}
	if _, err := e.Store.RaiseAlert(ctx, store.Alert{Key: key, Kind: KindMailRefused, OpenedAt: now, LastError: errText}, m); err != nil {
		return fmt.Errorf("recording the refused mail %d: %w", outboxID, err)
	}
	// An event, not a condition: kept as history, closed at once.
	if _, err := e.Store.ResolveAlert(ctx, key, now, func(store.Alert) *store.Mail { return nil }); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("recording the refused mail %d: %w", outboxID, err)
	}
	return nil
}

func mailCause(errText string) string {
	_, cause, ok := strings.Cut(errText, ": ")
	if !ok {
		return errText
	}
	return cause
}

// mailAction says what to do about a configuration failure, from the
// sender's error text (internal/mail: reasons are fixed phrases).
func mailAction(errText string) string {
	switch {
	case strings.Contains(errText, "authentication failed"):
		return "Check smtp.username and smtp.password (or smtp.password_file) against the SMTP server: the password may have expired or changed, or the account be locked. After a change restart usagemeter; it sends the waiting mail at once."
	case strings.Contains(errText, "does not offer STARTTLS"):
		return "The SMTP server no longer offers STARTTLS, so the appliance sends it nothing (not even the password). Re-enable TLS on the server, or, if it speaks TLS from the first byte, set smtp.tls: tls (usually port 465)."
	case strings.Contains(errText, "certificate not trusted"):
		return "The SMTP server presents a certificate the appliance does not trust: it may have been renewed by another certificate authority, or someone intercepts the connection. Check it (openssl s_client -starttls smtp -connect HOST:PORT), then add its CA to the appliance's trusted certificates and restart usagemeter."
	case strings.Contains(errText, "sender refused"):
		return "The SMTP server refuses the sender address: check smtp.from and that the account may send as it (and smtp.auth if the server wants authentication)."
	case strings.Contains(errText, "recipient refused"):
		return "The SMTP server refuses to relay to the recipients by policy: check that the account may send outside its domain, and the recipient lists alerts.to and report.to."
	case strings.Contains(errText, "message refused"):
		return "The SMTP server refuses the message by policy (a size limit for the report attachment, a content filter): check its rules for the appliance's sender."
	default:
		return "Check the smtp section of the configuration against the SMTP server."
	}
}
