package mail_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/internal/mail"
	"github.com/usagemeter/usagemeter/internal/smtptest"
)

// memOutbox is the smallest Outbox with the semantics internal/store
// implements on PostgreSQL (due time, lease, attempts, permanent failure);
// the real store has its own tests against PostgreSQL.
type memOutbox struct {
	mu    sync.Mutex
	items []*memItem
}

type memItem struct {
	item       mail.OutboxItem
	state      string // queued, sent, failed
	next       time.Time
	leaseUntil time.Time
	lastErr    string
	sentAt     time.Time
}

func (o *memOutbox) add(id int64, kind string, m mail.Message, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.items = append(o.items, &memItem{
		item:  mail.OutboxItem{ID: id, Kind: kind, Message: m, CreatedAt: at},
		state: "queued", next: at,
	})
}

func (o *memOutbox) get(id int64) memItem {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, it := range o.items {
		if it.item.ID == id {
			return *it
		}
	}
	panic("no such item")
}

func (o *memOutbox) ClaimDue(_ context.Context, now time.Time, limit int, lease time.Duration) ([]mail.OutboxItem, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []mail.OutboxItem
	for _, it := range o.items {
		if len(out) == limit {
			break
		}
		if it.state == "queued" && !it.next.After(now) && !it.leaseUntil.After(now) {
			it.leaseUntil = now.Add(lease)
			out = append(out, it.item)
		}
	}
	return out, nil
}

func (o *memOutbox) MarkSent(_ context.Context, id int64, at time.Time) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, it := range o.items {
		if it.item.ID == id {
			if it.state != "queued" {
				return errors.New("marking a finished item sent")
			}
			it.state, it.sentAt, it.leaseUntil = "sent", at, time.Time{}
			return nil
		}
	}
	return errors.New("no such item")
}

func (o *memOutbox) MarkFailed(_ context.Context, id int64, errText string, next time.Time, class mail.Class) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, it := range o.items {
		if it.item.ID == id {
			it.item.Attempts++
			it.lastErr, it.next, it.leaseUntil = errText, next, time.Time{}
			if class == mail.Refused {
				it.state = "failed"
			}
			return nil
		}
	}
	return errors.New("no such item")
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var t0 = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

func newWorker(t *testing.T, srv *smtptest.Server, ob mail.Outbox, clk *clock) *mail.Worker {
	return &mail.Worker{
		Outbox: ob,
		Sender: newSender(t, configFor(srv, mail.TLSStartTLS, mail.AuthLogin)),
		Now:    clk.Now,
	}
}

func runOnce(t *testing.T, w *mail.Worker, wantSent, wantFailed int) {
	t.Helper()
	sent, failed, err := w.RunOnce(context.Background())
	if err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	if sent != wantSent || failed != wantFailed {
		t.Fatalf("RunOnce sent %d failed %d, want %d and %d", sent, failed, wantSent, wantFailed)
	}
}

func TestWorkerDeliversAfterOutage(t *testing.T) {
	srv := smtptest.Start(t, serverOpts(smtptest.Options{STARTTLS: true, AuthRequired: true}))
	if err := srv.Down(); err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: t0}
	ob := &memOutbox{}
	var ids []string
	for i, kind := range []string{"alert", "alert", "report"} {
		id := int64(100 + i)
		m := testMessage(id)
		ob.add(id, kind, m, t0)
		ids = append(ids, m.MessageID)
	}
	w := newWorker(t, srv, ob, clk)
	var logs bytes.Buffer
	w.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	defer func() {
		if strings.Contains(logs.String(), password) {
			t.Errorf("password in the log:\n%s", logs.String())
		}
		if !strings.Contains(logs.String(), "will retry") || !strings.Contains(logs.String(), "mail sent") {
			t.Errorf("log lacks the retries or the deliveries:\n%s", logs.String())
		}
	}()

	// Run 1: SMTP down.
	runOnce(t, w, 0, 3)
	for _, id := range []int64{100, 101, 102} {
		it := ob.get(id)
		if it.item.Attempts != 1 || !it.next.Equal(t0.Add(time.Minute)) || it.state != "queued" {
			t.Fatalf("after run 1, item %d: attempts %d next %v state %s", id, it.item.Attempts, it.next, it.state)
		}
		if !strings.Contains(it.lastErr, "connecting failed") || strings.Contains(it.lastErr, password) {
			t.Errorf("recorded error %q", it.lastErr)
		}
	}
	// Nothing is due before the backoff ends.
	clk.Add(30 * time.Second)
	runOnce(t, w, 0, 0)

	// Run 2: still down; the backoff doubles.
	clk.Add(30 * time.Second)
	runOnce(t, w, 0, 3)
	if it := ob.get(101); it.item.Attempts != 2 || !it.next.Equal(clk.Now().Add(2*time.Minute)) {
		t.Fatalf("after run 2: attempts %d next %v", it.item.Attempts, it.next)
	}

	// Run 3: up again; everything goes out.
	if err := srv.Up(); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Minute)
	runOnce(t, w, 3, 0)
	clk.Add(time.Hour)
	runOnce(t, w, 0, 0)

	msgs, err := srv.WaitFor(3, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Fatalf("%d messages delivered, want exactly 3", len(msgs))
	}
	var got []string
	for _, m := range msgs {
		got = append(got, parse(t, m.Data).Header.Get("Message-Id"))
		if !m.TLS || m.AuthMechanism != smtptest.Login {
			t.Errorf("delivered with TLS=%v mech=%q", m.TLS, m.AuthMechanism)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, ids) {
		t.Errorf("Message-IDs delivered %q, want each of %q once", got, ids)
	}
	for _, id := range []int64{100, 101, 102} {
		if it := ob.get(id); it.state != "sent" || it.item.Attempts != 2 || !it.sentAt.Equal(clk.Now().Add(-time.Hour)) {
			t.Errorf("item %d: state %s attempts %d sent at %v", id, it.state, it.item.Attempts, it.sentAt)
		}
	}
}

func TestWorkerPermanentAndTemporaryFailures(t *testing.T) {
	srv := smtptest.Start(t, serverOpts(smtptest.Options{STARTTLS: true}))
	srv.RejectRecipient("gone@provider.example")
	clk := &clock{t: t0}
	ob := &memOutbox{}
	ob.add(1, "alert", testMessage(1), t0)
	bad := testMessage(2)
	bad.To = []string{"gone@provider.example"}
	ob.add(2, "alert", bad, t0)
	ob.add(3, "report", testMessage(3), t0)
	w := newWorker(t, srv, ob, clk)
	var backoffs []int
	w.Backoff = func(n int) time.Duration { backoffs = append(backoffs, n); return 5 * time.Minute }
	w.Batch = 2

	srv.FailNext(1) // item 1 gets a 451
	runOnce(t, w, 0, 2)
	if it := ob.get(1); it.state != "queued" || !it.next.Equal(t0.Add(5*time.Minute)) || !strings.Contains(it.lastErr, "451") {
		t.Errorf("item 1 after 451: %+v", it)
	}
	if it := ob.get(2); it.state != "failed" || !strings.Contains(it.lastErr, "recipient refused (550") {
		t.Errorf("item 2 after 550: state %s error %q", it.state, it.lastErr)
	}
	if !slices.Equal(backoffs, []int{1, 1}) {
		t.Errorf("Backoff called with %v", backoffs)
	}

	// Item 3 did not fit in the first batch; item 1 is not due yet.
	runOnce(t, w, 1, 0)
	clk.Add(5 * time.Minute)
	runOnce(t, w, 1, 0)
	clk.Add(24 * time.Hour)
	runOnce(t, w, 0, 0) // the permanent failure is never retried
	if n := len(srv.Messages()); n != 2 {
		t.Errorf("%d messages delivered, want 2", n)
	}
}

type brokenOutbox struct {
	memOutbox
	claimErr, markErr error
}

func (b *brokenOutbox) ClaimDue(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]mail.OutboxItem, error) {
	if b.claimErr != nil {
		return nil, b.claimErr
	}
	return b.memOutbox.ClaimDue(ctx, now, limit, lease)
}

func (b *brokenOutbox) MarkSent(context.Context, int64, time.Time) error { return b.markErr }

func TestWorkerOutboxErrors(t *testing.T) {
	srv := smtptest.Start(t, serverOpts(smtptest.Options{STARTTLS: true}))
	clk := &clock{t: t0}

	ob := &brokenOutbox{claimErr: errors.New("connection reset")}
	if _, _, err := newWorker(t, srv, ob, clk).RunOnce(context.Background()); err == nil || !strings.Contains(err.Error(), "claiming due outbox items: connection reset") {
		t.Errorf("RunOnce with failing ClaimDue: %v", err)
	}

	ob = &brokenOutbox{markErr: errors.New("deadlock detected")}
	ob.add(9, "alert", testMessage(9), t0)
	sent, failed, err := newWorker(t, srv, ob, clk).RunOnce(context.Background())
	if sent != 1 || failed != 0 || err == nil || !strings.Contains(err.Error(), "marking outbox item 9 sent: deadlock detected") {
		t.Errorf("RunOnce with failing MarkSent: %d %d %v", sent, failed, err)
	}
}

func TestWorkerStopsBeforeLeaseEnds(t *testing.T) {
	srv := smtptest.Start(t, serverOpts(smtptest.Options{STARTTLS: true}))
	clk := &clock{t: t0}
	ob := &memOutbox{}
	ob.add(1, "alert", testMessage(1), t0)
	w := newWorker(t, srv, ob, clk)
	w.Lease = time.Nanosecond // already over when sending would start
	runOnce(t, w, 0, 0)
	if n := srv.Connections(); n != 0 {
		t.Errorf("%d SMTP connections after the lease ended", n)
	}
	if it := ob.get(1); it.state != "queued" || it.item.Attempts != 0 {
		t.Errorf("unsent item changed: %+v", it)
	}
}

func TestDefaultBackoff(t *testing.T) {
	for _, tc := range []struct {
		attempts int
		want     time.Duration
	}{
		{0, time.Minute},
		{1, time.Minute},
		{2, 2 * time.Minute},
		{3, 4 * time.Minute},
		{9, 256 * time.Minute},
		{10, 6 * time.Hour},
		{1000, 6 * time.Hour},
	} {
		if got := mail.DefaultBackoff(tc.attempts); got != tc.want {
			t.Errorf("DefaultBackoff(%d) = %s, want %s", tc.attempts, got, tc.want)
		}
	}
}

type recordingObserver struct {
	mu      sync.Mutex
	sent    []int64
	classes []mail.Class
}

func (o *recordingObserver) MailSent(_ context.Context, it mail.OutboxItem) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sent = append(o.sent, it.ID)
}

func (o *recordingObserver) MailFailed(_ context.Context, _ mail.OutboxItem, _ error, c mail.Class) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.classes = append(o.classes, c)
}

// TestWorkerKeepsConfigurationFailures: an AUTH refused with 535, a server
// without STARTTLS and a certificate from a new CA keep the mail queued (the
// backoff capped at ConfigRetryMax) and tell the Observer; once the cause is
// gone the same mail goes out once. Only an unknown recipient ends a mail.
func TestWorkerKeepsConfigurationFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(*smtptest.Server)
		fix     func(*smtptest.Server, *mail.Worker)
		want    string
	}{
		{"auth refused once", func(s *smtptest.Server) { s.RefuseAuth(1) }, func(*smtptest.Server, *mail.Worker) {}, "authentication failed (535"},
		{"starttls missing", func(s *smtptest.Server) { _ = s.SetSTARTTLS(false) }, func(s *smtptest.Server, _ *mail.Worker) { _ = s.SetSTARTTLS(true) }, "server does not offer STARTTLS"},
		{"new CA", func(s *smtptest.Server) { _ = s.RotateCertificate() }, func(s *smtptest.Server, w *mail.Worker) {
			w.Sender = newSender(t, configFor(s, mail.TLSStartTLS, mail.AuthLogin)) // the admin trusts the new CA
		}, "TLS certificate not trusted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := smtptest.Start(t, serverOpts(smtptest.Options{STARTTLS: true, AuthRequired: true}))
			clk := &clock{t: t0}
			ob := &memOutbox{}
			ob.add(1, "report", testMessage(1), t0)
			w := newWorker(t, srv, ob, clk)
			w.Backoff = func(int) time.Duration { return 6 * time.Hour }
			obs := &recordingObserver{}
			w.Observer = obs
			tc.breakIt(srv)
			runOnce(t, w, 0, 1)
			it := ob.get(1)
			if it.state != "queued" || !strings.Contains(it.lastErr, tc.want) || !it.next.Equal(t0.Add(mail.ConfigRetryMax)) {
				t.Fatalf("after the refusal: state %s next %v error %q", it.state, it.next, it.lastErr)
			}
			if !slices.Equal(obs.classes, []mail.Class{mail.Configuration}) {
				t.Fatalf("observer saw %v", obs.classes)
			}
			tc.fix(srv, w)
			clk.Add(mail.ConfigRetryMax)
			runOnce(t, w, 1, 0)
			clk.Add(time.Hour)
			runOnce(t, w, 0, 0)
			if n := len(srv.Messages()); n != 1 || ob.get(1).state != "sent" || !slices.Equal(obs.sent, []int64{1}) {
				t.Fatalf("%d messages delivered, state %s, observer %v", n, ob.get(1).state, obs.sent)
			}
		})
	}
}
