package receiver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"text/template"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usagemeter/usagemeter/internal/store"
)

// Alert kinds of the receiver, each keyed per appliance (and month).
const (
	KindSilent        = "appliance_silent"
	KindReportMissing = "report_missing"
	KindBundleFailed  = "bundle_failed"
)

func silentKey(appliance string) string { return KindSilent + ":" + appliance }
func missingKey(appliance, month string) string {
	return KindReportMissing + ":" + appliance + ":" + month
}
func failedKey(appliance, month string, version int) string {
	return fmt.Sprintf("%s:%s:%s:v%d", KindBundleFailed, appliance, month, version)
}

var mailText = template.Must(template.New("mail").Parse(`{{.What}}

Appliance: {{.Appliance}}
{{- if .Month}}
Month:     {{.Month}}{{end}}
Since:     {{.Since.Format "2006-01-02 15:04 MST"}}
{{- if .Error}}
Detail:    {{.Error}}{{end}}

What to do: {{.Action}}

-- 
usagemeter receiver {{.Receiver}}, {{.Now.Format "2006-01-02 15:04 MST"}}
`))

type mailData struct {
	What, Appliance, Month, Error, Action, Receiver string
	Since, Now                                      time.Time
}

func (r *Receiver) mail(kind, subject string, d mailData) store.Mail {
	d.Receiver, d.Now = r.id, r.now()
	var b bytes.Buffer
	_ = mailText.Execute(&b, d)
	return store.Mail{Kind: "alert:" + kind, To: r.AlertTo, Subject: "[usagemeter receiver] " + subject, Text: b.String(), CreatedAt: r.now()}
}

// raise opens an alert with its mail (nothing when it is open already).
func (r *Receiver) raise(ctx context.Context, kind, key, subject string, d mailData) error {
	m := r.mail(kind, subject, d)
	opened, err := r.Store.RaiseAlert(ctx, store.Alert{Key: key, Kind: kind, OpenedAt: r.now(), LastError: d.Error}, &m)
	if opened {
		r.Log.Warn("receiver alert", "key", key, "subject", subject)
	}
	return err
}

// resolve closes an open alert with a mail saying so.
func (r *Receiver) resolve(ctx context.Context, key, what string) error {
	_, err := r.Store.ResolveAlert(ctx, key, r.now(), func(a store.Alert) *store.Mail {
		m := r.mail(a.Kind, "resolved: "+what, mailData{What: what, Appliance: "", Since: a.OpenedAt, Action: "Nothing."})
		return &m
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

func (r *Receiver) raiseFailed(ctx context.Context, appliance, month string, version int, msg string) error {
	subject, d := r.failedMail(appliance, month, version, msg)
	return r.raise(ctx, KindBundleFailed, failedKey(appliance, month, version), subject, d)
}

// The texts of the three alerts (golden files in testdata).

func (r *Receiver) failedMail(appliance, month string, version int, msg string) (string, mailData) {
	return fmt.Sprintf("report %s version %d of appliance %s failed verification", month, version, appliance),
		mailData{What: "A report bundle an appliance uploaded failed verification and was not stored as its report: it was damaged or altered on its way, or encrypted to another aggregator key.",
			Appliance: appliance, Month: month, Since: r.now(), Error: msg,
			Action: "Check receiver.aggregator_keys, then have the appliance send the month again (usagemeter report send --month " + month + "): a new version replaces this one."}
}

func (r *Receiver) silentMail(appliance string, last time.Time) (string, mailData) {
	return "appliance " + appliance + " silent since " + last.Format("2006-01-02 15:04 MST"),
		mailData{What: fmt.Sprintf("The receiver has not heard from appliance %s for %s (its heartbeat is hourly).", appliance, r.now().Sub(last).Round(time.Minute)),
			Appliance: appliance, Since: last,
			Action: "Check that the appliance runs (usagemeter status on it) and reaches the receiver over HTTPS."}
}

func (r *Receiver) missingMail(appliance, month string) (string, mailData) {
	return fmt.Sprintf("report %s of appliance %s missing", month, appliance),
		mailData{What: fmt.Sprintf("No verified report of %s has arrived from appliance %s, due on %s.", month, appliance, r.due(month).Format(time.DateOnly)),
			Appliance: appliance, Month: month, Since: r.due(month),
			Action: "Check the appliance's report state (usagemeter report list on it) and send it (usagemeter report send --month " + month + ")."}
}

// resolveMonth closes the missing and failed alerts of a month an
// appliance's verified bundle arrived for.
func (r *Receiver) resolveMonth(ctx context.Context, ref int64, appliance, month string) error {
	errs := []error{r.resolve(ctx, missingKey(appliance, month), fmt.Sprintf("report %s of appliance %s received", month, appliance))}
	rows, err := r.Pool.Query(ctx, `SELECT version FROM receiver_bundles WHERE appliance = $1 AND month = $2 AND state = 'failed'`, ref, month)
	if err != nil {
		return err
	}
	var versions []int
	var v int
	for rows.Next() {
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return err
		}
		versions = append(versions, v)
	}
	rows.Close()
	for _, v := range versions {
		errs = append(errs, r.resolve(ctx, failedKey(appliance, month, v), fmt.Sprintf("report %s of appliance %s verified (version %d failed before)", month, appliance, v)))
	}
	return errors.Join(errs...)
}

// Check is the receiver's minute job: it merges every month a verified
// bundle arrived for since its last merge and marks those bundles merged
// (the only writer of merged_at: reads of a month write nothing), raises the periodic alerts (an
// appliance silent for SilentAfter, with no heartbeat nor enrolment that
// recent; the previous month's report missing from DueDay of this month
// on) and forgets nonces past the signature window.
func (r *Receiver) Check(ctx context.Context) error {
	now := r.now()
	rows, err := r.Pool.Query(ctx, `SELECT DISTINCT month FROM receiver_bundles
		WHERE state = 'verified' AND replaced_by IS NULL AND merged_at IS NULL ORDER BY month`)
	if err != nil {
		return err
	}
	months, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, m := range months {
		// Merged to mark the bundles merged (the only merge that writes);
		// the lines are not kept.
		if _, err := r.mergeEach(ctx, m, func(Line) error { return nil }, true); err != nil {
			return fmt.Errorf("merging %s: %w", m, err)
		}
	}
	apps, err := r.Appliances(ctx)
	if err != nil {
		return err
	}
	prev := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -1, 0)
	month := prev.Format("2006-01")
	var errs []error
	for _, a := range apps {
		if a.RevokedAt != nil {
			errs = append(errs, r.resolve(ctx, silentKey(a.ID), "appliance "+a.ID+" revoked"))
			continue
		}
		last := a.EnrolledAt
		if a.LastHeartbeat != nil {
			last = *a.LastHeartbeat
		}
		if now.Sub(last) > r.SilentAfter {
			subject, d := r.silentMail(a.ID, last)
			errs = append(errs, r.raise(ctx, KindSilent, silentKey(a.ID), subject, d))
		}
		if a.EnrolledAt.Before(prev.AddDate(0, 1, 0)) && !now.Before(r.due(month)) {
			var n int
			if err := r.Pool.QueryRow(ctx, `SELECT count(*) FROM receiver_bundles WHERE appliance = $1 AND month = $2 AND state = 'verified'`, a.Ref, month).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				subject, d := r.missingMail(a.ID, month)
				errs = append(errs, r.raise(ctx, KindReportMissing, missingKey(a.ID, month), subject, d))
			}
		}
	}
	if _, err := r.Pool.Exec(ctx, `DELETE FROM receiver_nonces WHERE seen_at < $1`, now.Add(-4*maxSkew())); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
