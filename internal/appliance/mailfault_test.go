package appliance

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	netmail "net/mail"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/usagemeter/usagemeter/internal/alert"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/httpapi"
	umail "github.com/usagemeter/usagemeter/internal/mail"
	"github.com/usagemeter/usagemeter/internal/smtptest"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/migrations"
)

// messageIDCounts counts the delivered mails per Message-ID.
func messageIDCounts(t *testing.T, msgs []smtptest.Message) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range msgs {
		msg, err := netmail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		out[msg.Header.Get("Message-Id")]++
	}
	return out
}

// healthz returns the /healthz body of a server over the daemon.
func healthz(t *testing.T, h *harness) string {
	t.Helper()
	api := httpapi.New(h.app.Store, prometheus.NewRegistry(), "test", migrations.Latest())
	api.AddCheck("mail", h.d.mailHealth)
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	return rec.Body.String()
}

// TestMailConfigurationFailures: the SMTP relay refuses AUTH once, stops
// offering STARTTLS, or presents a certificate from a new CA. None of these
// may lose a mail: the alert mail stays queued (not failed), the admins are
// told at once by every way left (the log at error level, /healthz
// degraded, a metric, the mail_failing alert in the database), and once the
// cause is gone every mail, the mail_failing alert and its resolution among
// them, is delivered exactly once. Before the fix each of these marked the
// mail failed for good, and nothing but usagemeter_outbox_failed said so.
func TestMailConfigurationFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(h *harness) error
		fix     func(h *harness) error
		want    string
	}{
		{"AUTH refused once then accepted",
			func(h *harness) error { h.smtp.RefuseAuth(1); return nil },
			func(h *harness) error { return nil },
			"authentication failed (535"},
		{"STARTTLS missing then present",
			func(h *harness) error { return h.smtp.SetSTARTTLS(false) },
			func(h *harness) error { return h.smtp.SetSTARTTLS(true) },
			"server does not offer STARTTLS"},
		{"certificate from a new CA",
			func(h *harness) error { return h.smtp.RotateCertificate() },
			func(h *harness) error {
				// The admin trusts the new CA and restarts the daemon.
				h.d = h.newDaemon()
				return nil
			},
			"TLS certificate not trusted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			ctx := context.Background()
			_, p := h.addProduct("https://vc01.provider.example")
			p.down[t0] = errors.New("dial tcp 10.0.0.5:443: connect: connection refused")
			if err := tc.breakIt(h); err != nil {
				t.Fatal(err)
			}
			h.hour(0) // the collection alert is queued; sending it fails

			if n := len(h.smtp.Messages()); n != 0 {
				t.Fatalf("%d mails delivered while broken", n)
			}
			var collection store.Mail
			for id := int64(1); ; id++ {
				m, err := h.app.Store.MailStatus(ctx, id)
				if err != nil {
					t.Fatalf("no collection alert in the outbox: %v", err)
				}
				if m.Kind == "alert:"+alert.KindCollectionFailed {
					collection = m
					break
				}
			}
			if collection.State != store.MailQueued || collection.Failure != store.MailConfiguration || !strings.Contains(collection.LastError, tc.want) {
				t.Fatalf("collection alert after the refusal: state %s failure %q error %q", collection.State, collection.Failure, collection.LastError)
			}
			// Told at once: log at error level, /healthz, metrics, alert.
			if logs := h.logs.String(); !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "refused the configuration") || strings.Contains(logs, "SmtpPassw0rd") {
				t.Errorf("log:\n%s", logs)
			}
			if body := healthz(t, h); !strings.Contains(body, `"status":"degraded"`) || !strings.Contains(body, tc.want) {
				t.Errorf("/healthz while mail is refused: %s", body)
			}
			if v := metricValue(t, h.d.mailConfigFailing); v != 1 {
				t.Errorf("usagemeter_mail_configuration_failing = %v", v)
			}
			if v := metricValue(t, h.d.mailFailures.WithLabelValues("configuration")); v < 1 {
				t.Errorf("usagemeter_mail_failures_total{class=configuration} = %v", v)
			}
			if a, err := h.app.Store.OpenAlert(ctx, alert.KindMailFailing); err != nil || !strings.Contains(a.LastError, tc.want) {
				t.Fatalf("mail_failing alert: %+v %v", a, err)
			}
			if tc.name != "AUTH refused once then accepted" {
				// Retried with backoff, refused again while broken.
				h.clock.Set(h.clock.Now().Add(umail.ConfigRetryMax))
				h.d.outboxJob(ctx)
				if n := len(h.smtp.Messages()); n != 0 {
					t.Fatalf("%d mails delivered while broken", n)
				}
			}

			if err := tc.fix(h); err != nil {
				t.Fatal(err)
			}
			if tc.name == "certificate from a new CA" {
				// Restarted with the fix: the waiting mails go at once,
				// not at the end of their backoff.
				h.d.outboxJob(ctx)
				if len(h.smtp.Messages()) == 0 {
					t.Fatal("nothing sent at the first outbox run after the restart")
				}
			}
			for i := 0; i < 10; i++ {
				h.clock.Set(h.clock.Now().Add(umail.ConfigRetryMax))
				h.d.outboxJob(ctx)
			}
			got := strings.Join(subjects(h.smtp.Messages()), "\n")
			for _, want := range []string{"collection from test https://vc01.provider.example (product 1) failing", "mail delivery failing", "resolved: mail delivery works again"} {
				if !strings.Contains(got, want) {
					t.Errorf("no mail %q among:\n%s", want, got)
				}
			}
			for id, n := range messageIDCounts(t, h.smtp.Messages()) {
				if n != 1 {
					t.Errorf("%s delivered %d times", id, n)
				}
			}
			if st, _ := h.app.Store.OutboxStats(ctx); st.Queued != 0 || st.Failed != 0 {
				t.Errorf("outbox after the fix: %+v", st)
			}
			if body := healthz(t, h); !strings.Contains(body, `"status":"ok"`) {
				t.Errorf("/healthz after the fix: %s", body)
			}
			if v := metricValue(t, h.d.mailConfigFailing); v != 0 {
				t.Errorf("usagemeter_mail_configuration_failing after the fix = %v", v)
			}
		})
	}
}

// TestRefusedRecipientIsAlerted: a recipient the server does not know ends
// that mail, and an alert mail says so, to the alert recipients.
func TestRefusedRecipientIsAlerted(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	h.smtp.RejectRecipient("typo@aggregator.example")
	id, err := h.app.Store.EnqueueMail(ctx, store.Mail{Kind: "report", To: []string{"typo@aggregator.example"}, Subject: "Usage report 2026-04", Text: "x", CreatedAt: h.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	h.d.outboxJob(ctx)
	h.clock.Set(h.clock.Now().Add(time.Minute))
	h.d.outboxJob(ctx)
	if m, _ := h.app.Store.MailStatus(ctx, id); m.State != store.MailFailed || m.Failure != store.MailRefused {
		t.Fatalf("refused mail: %+v", m)
	}
	got := subjects(h.smtp.Messages())
	if len(got) != 1 || !strings.Contains(got[0], "mail refused: Usage report 2026-04") {
		t.Fatalf("mails: %q", got)
	}
	if !strings.Contains(string(h.smtp.Messages()[0].Data), "typo@aggregator.example") {
		t.Error("the alert does not name the refused recipient")
	}
	if v := metricValue(t, h.d.mailFailures.WithLabelValues("refused")); v != 1 {
		t.Errorf("usagemeter_mail_failures_total{class=refused} = %v", v)
	}
}

// metricValue reads a gauge or counter.
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	return d.Counter.GetValue()
}

// TestRefusedAlertRecipient: one unknown address in alerts.to does not
// keep the alerts from the other admins; the refusal is alerted to them
// once (the alert about it, refused for that address too, is not alerted
// again: no loop).
func TestRefusedAlertRecipient(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Alerts.To = []string{"ops@provider.example", "left-the-company@provider.example"}
	})
	ctx := context.Background()
	h.smtp.RejectRecipient("left-the-company@provider.example")
	_, p := h.addProduct("https://vc01.provider.example")
	p.down[t0] = errors.New("connection refused")
	h.hour(0)
	for i := 0; i < 5; i++ {
		h.clock.Set(h.clock.Now().Add(time.Minute))
		h.d.outboxJob(ctx)
	}
	got := subjects(h.smtp.Messages())
	if len(got) != 2 || !strings.Contains(got[0], "collection from") || !strings.Contains(got[1], "mail refused: [usagemeter] collection from") {
		t.Fatalf("mails: %q", got)
	}
	for _, m := range h.smtp.Messages() {
		if len(m.To) != 1 || m.To[0] != "ops@provider.example" {
			t.Errorf("delivered to %v", m.To)
		}
	}
	if st, _ := h.app.Store.OutboxStats(ctx); st.Queued != 0 || st.Failed != 0 {
		t.Errorf("outbox: %+v", st)
	}
	if hist, _ := h.app.Store.Alerts(ctx, 10); len(hist) != 3 {
		t.Errorf("alert history: %d rows, want the collection alert and two refusals", len(hist))
	}
}

// TestPolicyRefusalOfOneMail: the relay refuses the report mail by policy
// (too large) while the small alert mails go through. The report stays
// queued, the mail_failing alert is mailed once and stays open (no
// open-resolve flapping every retry), and once the limit is raised the
// report goes out, once, and the alert resolves.
func TestPolicyRefusalOfOneMail(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	if err := h.smtp.SetMaxMessageBytes(64 << 10); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("usage"), 40<<10)
	id, err := h.app.Store.EnqueueMail(ctx, store.Mail{Kind: "report", To: []string{"usage@aggregator.example"}, Subject: "Usage report 2026-04", Text: "x",
		Attachments: []store.Attachment{{Name: "usage-2026-04-v1.tar.gz.gpg", ContentType: "application/pgp-encrypted", Data: big}}, CreatedAt: h.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		h.d.outboxJob(ctx)
		h.clock.Set(h.clock.Now().Add(umail.ConfigRetryMax))
	}
	if m, _ := h.app.Store.MailStatus(ctx, id); m.State != store.MailQueued || m.Failure != store.MailConfiguration || !strings.Contains(m.LastError, "552") {
		t.Fatalf("report mail while refused: %+v", m)
	}
	count := func(subject string) int {
		n := 0
		for _, s := range subjects(h.smtp.Messages()) {
			if strings.Contains(s, subject) {
				n++
			}
		}
		return n
	}
	// The outbox-stuck alert comes too, after an hour: it is.
	if count("mail delivery failing") != 1 || count("resolved: mail delivery works again") != 0 || count("Usage report") != 0 {
		t.Fatalf("mails while the report is refused: %q", subjects(h.smtp.Messages()))
	}
	if _, err := h.app.Store.OpenAlert(ctx, alert.KindMailFailing); err != nil {
		t.Fatalf("mail_failing alert not open: %v", err)
	}
	if body := healthz(t, h); !strings.Contains(body, `"status":"degraded"`) {
		t.Errorf("/healthz: %s", body)
	}

	if err := h.smtp.SetMaxMessageBytes(32 << 20); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		h.d.outboxJob(ctx)
		h.clock.Set(h.clock.Now().Add(umail.ConfigRetryMax))
	}
	for _, subject := range []string{"mail delivery failing", "Usage report 2026-04", "resolved: mail delivery works again"} {
		if count(subject) != 1 {
			t.Errorf("%d mails %q among %q", count(subject), subject, subjects(h.smtp.Messages()))
		}
	}
	for mid, n := range messageIDCounts(t, h.smtp.Messages()) {
		if n != 1 {
			t.Errorf("%s delivered %d times", mid, n)
		}
	}
}
