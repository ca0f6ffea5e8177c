package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"

	"github.com/usagemeter/usagemeter/internal/alert"
	"github.com/usagemeter/usagemeter/internal/config"
	umail "github.com/usagemeter/usagemeter/internal/mail"
	"github.com/usagemeter/usagemeter/internal/scheduler"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/report"
)

// outboxStuckAfter is how old the oldest unsent mail may get before an alert.
const outboxStuckAfter = time.Hour

// Daemon is the long-running part of serve: scheduler, alert engine, outbox worker.
type Daemon struct {
	app      *App
	sched    *scheduler.Scheduler
	engine   *alert.Engine
	worker   *umail.Worker
	fallback *alert.Fallback
	now      func() time.Time
	version  string // the binary's, written into backups

	outboxQueued        prometheus.Gauge
	outboxAge           prometheus.Gauge
	outboxFailed        prometheus.Gauge
	outboxMisconfigured prometheus.Gauge
	mailFailures        *prometheus.CounterVec
	mailConfigFailing   prometheus.Gauge
	alertsOpen          prometheus.Gauge
	reportReady         prometheus.Gauge
	reportFailing       prometheus.Gauge
	reportDelivered     prometheus.Gauge
	certExpiry          *prometheus.GaugeVec
	dbDownSince         time.Time
	report              *report.Generator
	reportSchedule      cron.Schedule // report.schedule, to catch up a monthly report

	smtpAddr      string
	outboxStarted bool // the first outbox run is done (one run at a time)
	mu            sync.Mutex
	// mailFailing is why mail cannot be delivered (the SMTP server refuses
	// the configuration), "" while it works: /healthz reports it.
	mailFailing string
}

// mailConfig converts the smtp section for the sender.
func mailConfig(c config.SMTP) umail.Config {
	return umail.Config{
		Host: c.Host, Port: c.Port, TLS: umail.TLSMode(c.TLS), Auth: umail.AuthMode(c.Auth),
		Username: c.Username, Password: c.Password, From: c.From, Timeout: c.Timeout.D(),
		AllowPlainAuthWithoutTLS: c.AllowInsecureAuth,
	}
}

// newFallback is the alert path that needs no database: the spill file in
// data_dir and SMTP directly.
func newFallback(cfg *config.Config, sender interface {
	Send(ctx context.Context, m umail.Message) error
}, log *slog.Logger, now func() time.Time) *alert.Fallback {
	return &alert.Fallback{Path: filepath.Join(cfg.DataDir, "alerts-spill.jsonl"), Sender: sender, Domain: mailDomain(cfg.SMTP.From), Log: log, Now: now}
}

// mailDomain is the domain of the sender address, for stable Message-IDs.
func mailDomain(from string) string {
	if a, err := mail.ParseAddress(from); err == nil {
		if _, d, ok := strings.Cut(a.Address, "@"); ok {
			return d
		}
	}
	return "usagemeter.invalid"
}

type daemonOptions struct {
	now      func() time.Time
	version  string        // the binary's version
	catchUp  time.Duration // between catch-up ticks; default a minute
	fallback *alert.Fallback
	factory  scheduler.Factory
	sender   interface {
		Send(ctx context.Context, m umail.Message) error
	}
}

// NewDaemon builds the daemon of an opened appliance: scheduler, alert
// engine, outbox worker and their jobs, with its metrics in reg (if not
// nil). now is its clock (nil: time.Now). Start runs it.
func NewDaemon(app *App, reg *prometheus.Registry, now func() time.Time) (*Daemon, error) {
	return newDaemonWith(app, registerer(reg), daemonOptions{now: now})
}

// registerer is reg as a Registerer, nil (not a typed nil) when reg is.
func registerer(reg *prometheus.Registry) prometheus.Registerer {
	if reg == nil {
		return nil
	}
	return reg
}

func newDaemonWith(app *App, reg prometheus.Registerer, o daemonOptions) (*Daemon, error) {
	cfg := app.Config
	if o.now == nil {
		o.now = time.Now
	}
	if o.sender == nil {
		s, err := umail.NewSender(mailConfig(cfg.SMTP), app.Log)
		if err != nil {
			return nil, fmt.Errorf("smtp: %w", err)
		}
		o.sender = s
	}
	domain := mailDomain(cfg.SMTP.From)
	d := &Daemon{app: app, now: o.now, version: o.version}
	d.smtpAddr = net.JoinHostPort(cfg.SMTP.Host, strconv.Itoa(cfg.SMTP.Port))
	d.fallback = o.fallback
	if d.fallback == nil {
		d.fallback = newFallback(cfg, o.sender, app.Log, o.now)
	}
	// The database is open now: a mail sent straight to SMTP is claimed in
	// it first, so two daemons on one database send it once.
	d.fallback.Claims, d.fallback.Owner = app.Store, daemonOwner()
	d.engine = &alert.Engine{
		Store: app.Store, Log: app.Log, Now: o.now, Appliance: app.Appliance.ID, Fallback: d.fallback,
		Rules: alert.Rules{To: cfg.Alerts.To, FailureThreshold: cfg.Alerts.FailureThreshold, Reminder: cfg.Alerts.ReminderInterval.D(), DeactivateAfter: cfg.Alerts.DeactivateAfter},
	}
	opts := []scheduler.Option{scheduler.WithClock(o.now), scheduler.WithObserver(d.engine)}
	if reg != nil {
		opts = append(opts, scheduler.WithObserver(scheduler.NewMetrics(reg)))
	}
	if o.factory != nil {
		opts = append(opts, scheduler.WithFactory(o.factory))
	}
	d.sched = scheduler.New(scheduler.Config{
		Minute: cfg.Collection.Minute, Concurrency: cfg.Collection.Concurrency, Timeout: cfg.Collection.Timeout.D(),
		CallTimeout: cfg.Collection.CallTimeout.D(), Retries: cfg.Collection.Retries, CatchUp: o.catchUp,
	}, app.Store, app.Log, opts...)
	d.worker = &umail.Worker{Outbox: storeOutbox{st: app.Store, domain: domain}, Sender: o.sender, Now: o.now, Logger: app.Log, Observer: d}

	d.outboxQueued = prometheus.NewGauge(prometheus.GaugeOpts{Name: "usagemeter_outbox_queued", Help: "Mails waiting in the outbox."})
	d.outboxAge = prometheus.NewGauge(prometheus.GaugeOpts{Name: "usagemeter_outbox_oldest_age_seconds", Help: "Age of the oldest unsent mail (0 when none)."})
	d.outboxFailed = prometheus.NewGauge(prometheus.GaugeOpts{Name: "usagemeter_outbox_failed", Help: "Mails given up after a permanent error."})
	d.outboxMisconfigured = prometheus.NewGauge(prometheus.GaugeOpts{Name: "usagemeter_outbox_misconfigured", Help: "Mails kept queued because the SMTP server refused the configuration (authentication, TLS, policy) at their last attempt."})
	d.mailFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "usagemeter_mail_failures_total", Help: "Failed mail attempts by class: temporary, configuration (kept queued), refused (the mail ends)."}, []string{"class"})
	d.mailConfigFailing = prometheus.NewGauge(prometheus.GaugeOpts{Name: "usagemeter_mail_configuration_failing", Help: "1 while the SMTP server refuses the appliance's configuration: no mail gets through."})
	for _, c := range []umail.Class{umail.Temporary, umail.Configuration, umail.Refused} {
		d.mailFailures.WithLabelValues(string(c))
	}
	d.alertsOpen = prometheus.NewGauge(prometheus.GaugeOpts{Name: "usagemeter_alerts_open", Help: "Open alerts."})
	d.reportReady = prometheus.NewGauge(prometheus.GaugeOpts{Name: "usagemeter_report_ready", Help: "1 when the last readiness check found everything the monthly report needs (usagemeter status), 0 when not."})
	d.reportFailing = prometheus.NewGauge(prometheus.GaugeOpts{Name: "usagemeter_report_failing", Help: "1 while the last monthly report could not be generated or delivered."})
	d.reportDelivered = prometheus.NewGauge(prometheus.GaugeOpts{Name: "usagemeter_report_last_delivered_timestamp_seconds", Help: "When a monthly report was last delivered on every channel (Unix time; 0 before the first)."})
	d.certExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "usagemeter_product_certificate_expiry_timestamp_seconds", Help: "When the certificate a product presents expires (Unix time), from the daily check."}, scheduler.ProductLabels)
	if reg != nil {
		reg.MustRegister(d.outboxQueued, d.outboxAge, d.outboxFailed, d.outboxMisconfigured, d.mailFailures, d.mailConfigFailing, d.alertsOpen,
			d.reportReady, d.reportFailing, d.reportDelivered, d.certExpiry)
	}

	if err := d.sched.AddJob("* * * * *", "outbox", d.outboxJob); err != nil {
		return nil, err
	}
	if err := d.sched.AddJob("* * * * *", "database watch", d.databaseJob); err != nil {
		return nil, err
	}
	if err := d.sched.AddJob("17 4 * * *", "retention and endpoint checks", d.dailyJob); err != nil {
		return nil, err
	}
	gen, err := report.NewFromConfig(context.Background(), cfg, app.Store, app.Log.With("component", "report"))
	if err != nil {
		return nil, err
	}
	gen.SetNow(o.now)
	d.report = gen
	if err := d.sched.AddJob(cfg.Report.Schedule, "monthly report", d.reportJob); err != nil {
		return nil, err
	}
	if d.reportSchedule, err = cron.ParseStandard(cfg.Report.Schedule); err != nil {
		return nil, fmt.Errorf("report.schedule %q: %w", cfg.Report.Schedule, err)
	}
	if err := d.sched.AddJob("35 * * * *", "report redelivery", d.redeliverJob); err != nil {
		return nil, err
	}
	if cfg.Backup.Enabled {
		if err := d.sched.AddJob(cfg.Backup.Schedule, "backup", d.backupJob); err != nil {
			return nil, fmt.Errorf("backup.schedule %q: %w", cfg.Backup.Schedule, err)
		}
	}
	return d, nil
}

// Start launches the scheduler (which collects the current hour if missing).
func (d *Daemon) Start(ctx context.Context) {
	if err := d.sched.Start(ctx); err != nil {
		d.app.Log.Error("starting scheduler", "err", err)
	}
}

// Stop stops the scheduler and waits for running jobs.
func (d *Daemon) Stop() { d.sched.Stop(20 * time.Second) }

// Scheduler is the daemon's scheduler, for collecting by hand (collect,
// the demo).
func (d *Daemon) Scheduler() *scheduler.Scheduler { return d.sched }

// Now is the daemon's clock.
func (d *Daemon) Now() time.Time { return d.now() }

// RunOutbox runs the outbox job once now: it sends the mails that are due.
func (d *Daemon) RunOutbox(ctx context.Context) { d.outboxJob(ctx) }

// outboxJob sends what is due and watches for a stuck outbox. Its first run
// sends the mails refused for a configuration reason at once: the daemon
// was perhaps restarted with that configuration fixed.
func (d *Daemon) outboxJob(ctx context.Context) {
	if !d.outboxStarted {
		if n, err := d.app.Store.RetryMisconfiguredNow(ctx, d.now()); err != nil {
			d.app.Log.Error("outbox", "err", err)
		} else {
			d.outboxStarted = true
			if n > 0 {
				d.app.Log.Info("retrying at once the mails the SMTP server refused for configuration before the restart", "count", n)
			}
		}
	}
	sent, failed, err := d.worker.RunOnce(ctx)
	if err != nil {
		d.app.Log.Error("outbox", "err", err)
	} else if sent+failed > 0 {
		d.app.Log.Info("outbox run", "sent", sent, "failed", failed)
	}
	st, err := d.app.Store.OutboxStats(ctx)
	if err != nil {
		return
	}
	d.outboxQueued.Set(float64(st.Queued))
	d.outboxFailed.Set(float64(st.Failed))
	d.outboxMisconfigured.Set(float64(st.Misconfigured))
	if st.Misconfigured == 0 {
		// Sent meanwhile (perhaps by another daemon): mail works.
		d.setMailFailing("")
	} else if d.mailState() == "" {
		// After a restart: the outbox remembers what this process does not.
		d.setMailFailing(fmt.Sprintf("%d mails kept queued: the SMTP server %s refused the configuration at their last attempt", st.Misconfigured, d.smtpAddr))
	}
	age := time.Duration(0)
	if st.Oldest != nil {
		age = d.now().Sub(*st.Oldest)
	}
	d.outboxAge.Set(age.Seconds())
	if age > outboxStuckAfter {
		_ = d.engine.OutboxStuck(ctx, st.Queued, *st.Oldest, st.MaxTries)
	} else {
		_ = d.engine.OutboxFlowing(ctx)
	}
	if open, err := d.app.Store.OpenAlerts(ctx); err == nil {
		d.alertsOpen.Set(float64(len(open)))
	}
}

// databaseJob watches the database: after alerts.database_down_after down, the admins are
// told directly (the outbox lives in the database); when it is back, the
// spilled alerts are recorded.
func (d *Daemon) databaseJob(ctx context.Context) {
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := d.app.Store.Ping(pingCtx)
	cancel()
	if err != nil {
		if d.dbDownSince.IsZero() {
			d.dbDownSince = d.now()
		}
		if d.now().Sub(d.dbDownSince) >= d.app.Config.Alerts.DatabaseDownAfter.D() {
			d.fallback.Raise(ctx, alert.DatabaseDownMail(d.app.Config.Alerts.To, d.app.Appliance.ID, d.dbDownSince, err), "database unreachable")
		}
		return
	}
	if !d.dbDownSince.IsZero() {
		// Back: collect what the outage held up now, not at the next tick.
		d.app.Log.Info("database reachable again", "down_since", d.dbDownSince.Format(time.RFC3339))
		d.sched.Kick(ctx, false)
	}
	d.dbDownSince = time.Time{}
	if n, err := d.app.Store.CloseRemovedProductAlerts(ctx, d.now()); err != nil {
		d.app.Log.Error("closing alerts of removed products", "err", err)
	} else if n > 0 {
		d.app.Log.Info("closed alerts of removed products", "count", n)
	}
	if n, err := d.fallback.Flush(ctx, d.app.Store); err != nil {
		d.app.Log.Error("recording spilled alerts", "err", err)
	} else if n > 0 {
		d.app.Log.Info("recorded alerts spilled while the database was down", "count", n)
	}
}

// reportJob generates and delivers the previous month's report; a failure
// is an alert that says what to do.
func (d *Daemon) reportJob(ctx context.Context) {
	d.resolveCustomerOrgs(ctx)
	err := d.report.RunMonthly(ctx, d.now())
	d.reportOutcome(ctx, err)
}

// redeliverJob catches up the previous month's report if its run was
// missed, then retries report channels that failed (upload refused, ...).
func (d *Daemon) redeliverJob(ctx context.Context) {
	if d.catchUpReport(ctx) {
		return
	}
	if err := d.report.RetryUndelivered(ctx); err != nil {
		d.reportOutcome(ctx, err)
	}
}

// catchUpReport runs the monthly report job now if its scheduled run for
// the previous month has passed and the month, which has usage, has no
// report stored: the daemon was not running then, or its database was
// down. It reports whether it ran the job.
func (d *Daemon) catchUpReport(ctx context.Context) bool {
	now := d.now()
	m := report.PreviousMonth(now, d.report.Location())
	if due := d.reportSchedule.Next(m.End.Add(-time.Second)); now.Before(due) {
		return false
	}
	_, err := d.app.Store.LatestReport(ctx, m.Start)
	if !errors.Is(err, store.ErrNotFound) {
		if err != nil {
			d.app.Log.Warn("checking for a missed monthly report", "month", m.String(), "err", err)
		}
		return false
	}
	if ok, err := d.app.Store.HasUsage(ctx, m); err != nil || !ok {
		return false // a month without usage (a new appliance) has no report to catch up
	}
	d.app.Log.Warn("the monthly report's scheduled run was missed (the daemon or its database was down): running it now", "month", m.String())
	d.reportJob(ctx)
	return true
}

// reportOutcome raises or resolves the report alert. A database that
// cannot be reached is not the report's failure: the database watch
// alerts, and the report is caught up once the database answers.
func (d *Daemon) reportOutcome(ctx context.Context, err error) {
	if err == nil {
		d.reportFailing.Set(0)
		d.reportDelivered.Set(float64(d.now().Unix()))
		_ = d.engine.ReportDelivered(ctx)
		return
	}
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	perr := d.app.Store.Ping(pingCtx)
	cancel()
	if perr != nil {
		d.app.Log.Warn("monthly report: the database is unreachable; the report is caught up once it answers", "err", err)
		return
	}
	d.app.Log.Error("monthly report", "err", err)
	d.reportFailing.Set(1)
	_ = d.engine.ReportFailed(ctx, err)
}

// resolveCustomerOrgs gives the customer rules on a Cloud Director org
// added by name before the org was collected their org's id.
func (d *Daemon) resolveCustomerOrgs(ctx context.Context) {
	if n, err := d.app.Store.ResolveCustomerOrgIDs(ctx); err != nil {
		d.app.Log.Error("customer rules", "err", err)
	} else if n > 0 {
		d.app.Log.Info("customer rules on Cloud Director orgs now follow their org by id", "rules", n)
	}
}

// dailyJob applies retention, binds customer rules to their org's id, and
// checks every product's certificate and clock.
func (d *Daemon) dailyJob(ctx context.Context) {
	d.resolveCustomerOrgs(ctx)
	now := d.now().UTC()
	cfg := d.app.Config.Retention
	before := time.Date(now.Year(), now.Month()-time.Month(cfg.Months), 1, 0, 0, 0, 0, time.UTC)
	if r, err := d.app.Store.Retain(ctx, before, now.AddDate(0, 0, -cfg.SentMailDays)); err != nil {
		d.app.Log.Error("retention", "err", err)
	} else if r.Spans+r.Runs+r.Mails > 0 {
		d.app.Log.Info("retention", "spans", r.Spans, "runs", r.Runs, "mails", r.Mails, "before", before.Format("2006-01"))
	}
	products, err := d.app.Store.Products(ctx, true)
	if err != nil {
		return
	}
	for _, p := range products {
		notAfter, err := d.engine.CheckEndpoint(ctx, p)
		if err != nil {
			d.app.Log.Debug("endpoint check", "product", p.ID, "err", err)
		}
		if !notAfter.IsZero() {
			d.certExpiry.WithLabelValues(scheduler.ProductLabelValues(p)...).Set(float64(notAfter.Unix()))
		}
	}
}

// daemonOwner names this daemon in claims: host name and process id.
func daemonOwner() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}

func (d *Daemon) setMailFailing(why string) {
	d.mu.Lock()
	d.mailFailing = why
	d.mu.Unlock()
	if why == "" {
		d.mailConfigFailing.Set(0)
	} else {
		d.mailConfigFailing.Set(1)
	}
}

func (d *Daemon) mailState() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mailFailing
}

// mailHealth is the /healthz check of mail delivery: degraded while the SMTP
// server refuses the configuration.
func (d *Daemon) mailHealth(context.Context) error {
	if why := d.mailState(); why != "" {
		return errors.New(why)
	}
	return nil
}

// MailSent implements umail.Observer: mail works again once no queued mail
// is left whose last attempt the server refused for a configuration reason
// (one refused by policy, say a report too large, keeps the alert open
// while the small alert mails go through).
func (d *Daemon) MailSent(ctx context.Context, it umail.OutboxItem) {
	st, err := d.app.Store.OutboxStats(ctx)
	if err != nil {
		d.app.Log.Error("reading the outbox after a mail was sent", "err", err)
		return
	}
	if st.Misconfigured > 0 {
		return
	}
	d.setMailFailing("")
	if err := d.engine.MailWorks(ctx); err != nil {
		d.app.Log.Error("resolving the mail_failing alert", "err", err)
	}
}

// MailFailed implements umail.Observer. A temporary failure is retried and
// watched by the outbox-stuck alert. A configuration failure is said at once
// everywhere it still can be: the log (the worker, at error level),
// /healthz, the metrics, and the mail_failing alert, recorded in the
// database (or the spill file when it is down) with a mail that waits in
// the outbox until the cause is fixed. A mail refused for good is alerted.
func (d *Daemon) MailFailed(ctx context.Context, it umail.OutboxItem, err error, class umail.Class) {
	d.mailFailures.WithLabelValues(string(class)).Inc()
	switch class {
	case umail.Configuration:
		d.setMailFailing(err.Error())
		queued := 0
		if st, serr := d.app.Store.OutboxStats(ctx); serr == nil {
			queued = st.Queued
		}
		if aerr := d.engine.MailFailing(ctx, d.smtpAddr, queued, err.Error()); aerr != nil {
			d.app.Log.Error("raising the mail_failing alert", "err", aerr)
		}
	case umail.Refused:
		refused := umail.RefusedRecipients(err)
		if len(refused) == 0 {
			refused = it.Message.To
		}
		if aerr := d.engine.MailRefused(ctx, it.ID, it.Kind, refused, umail.PartlyDelivered(err), it.Message.Subject, err.Error()); aerr != nil {
			d.app.Log.Error("raising the mail_refused alert", "outbox_id", it.ID, "err", aerr)
		}
	}
}

// storeOutbox adapts the store's outbox to the mail worker.
type storeOutbox struct {
	st     *store.Store
	domain string
}

func (o storeOutbox) ClaimDue(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]umail.OutboxItem, error) {
	mails, err := o.st.ClaimMail(ctx, now, limit, lease)
	if err != nil {
		return nil, err
	}
	items := make([]umail.OutboxItem, len(mails))
	for i, m := range mails {
		items[i] = o.item(m)
	}
	return items, nil
}

// item is the worker's view of a claimed mail.
func (o storeOutbox) item(m store.Mail) umail.OutboxItem {
	msg := umail.Message{MessageID: umail.MessageID(m.ID, o.domain), To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML, Date: m.CreatedAt}
	for _, a := range m.Attachments {
		msg.Attachments = append(msg.Attachments, umail.Attachment{Name: a.Name, ContentType: a.ContentType, Data: a.Data})
	}
	// The store counts the claim as an attempt; the worker wants attempts before it.
	return umail.OutboxItem{ID: m.ID, Kind: m.Kind, Message: msg, Attempts: m.Attempts - 1, CreatedAt: m.CreatedAt}
}

func (o storeOutbox) MarkSent(ctx context.Context, id int64, at time.Time) error {
	return o.st.MarkMailSent(ctx, id, at)
}

func (o storeOutbox) MarkFailed(ctx context.Context, id int64, errText string, next time.Time, class umail.Class) error {
	return o.st.MarkMailFailed(ctx, id, errText, next, string(class))
}
