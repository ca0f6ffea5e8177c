package report

import (
	"bytes"
	"context"
	"errors"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/usagemeter/usagemeter/anonymize"
	"github.com/usagemeter/usagemeter/internal/mail"
	"github.com/usagemeter/usagemeter/internal/smtptest"
	"github.com/usagemeter/usagemeter/internal/store"
)

// outbox adapts the store's outbox to the mail worker, as the daemon does.
type outbox struct{ st *store.Store }

func (o outbox) ClaimDue(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]mail.OutboxItem, error) {
	mails, err := o.st.ClaimMail(ctx, now, limit, lease)
	if err != nil {
		return nil, err
	}
	var items []mail.OutboxItem
	for _, m := range mails {
		msg := mail.Message{MessageID: mail.MessageID(m.ID, "provider.example"), To: m.To, Subject: m.Subject, Text: m.Text, Date: m.CreatedAt}
		for _, a := range m.Attachments {
			msg.Attachments = append(msg.Attachments, mail.Attachment{Name: a.Name, ContentType: a.ContentType, Data: a.Data})
		}
		items = append(items, mail.OutboxItem{ID: m.ID, Kind: m.Kind, Message: msg, Attempts: m.Attempts - 1})
	}
	return items, nil
}

func (o outbox) MarkSent(ctx context.Context, id int64, at time.Time) error {
	return o.st.MarkMailSent(ctx, id, at)
}

func (o outbox) MarkFailed(ctx context.Context, id int64, errText string, next time.Time, class mail.Class) error {
	return o.st.MarkMailFailed(ctx, id, errText, next, string(class))
}

// drain runs the outbox worker against srv until nothing is due at now.
func drain(t *testing.T, st *store.Store, srv *smtptest.Server, now time.Time) {
	t.Helper()
	sender, err := mail.NewSender(mail.Config{Host: srv.Host(), Port: srv.Port(), TLS: mail.TLSStartTLS, Auth: mail.AuthNone,
		From: "usagemeter <meter@provider.example>", RootCAs: srv.CertPool(), HeloName: "meter.provider.example"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &mail.Worker{Outbox: outbox{st}, Sender: sender, Now: func() time.Time { return now }}
	for {
		sent, failed, err := w.RunOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if sent+failed == 0 {
			return
		}
	}
}

// messageIDs counts the Message-IDs of the delivered mails whose subject
// contains subject.
func messageIDs(t *testing.T, msgs []smtptest.Message, subject string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range msgs {
		msg, err := netmail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(msg.Header.Get("Subject"), subject) {
			out[msg.Header.Get("Message-Id")]++
		}
	}
	return out
}

// TestCrashBetweenQueueAndChannelRecord: the daemon dies right after the
// report mail was queued, before anything else is recorded. The next run
// (a restart, `report send`) must find that mail, not queue a second one:
// the report reaches the aggregator exactly once. Before the fix the mail
// and the channel status were two transactions, and the restart mailed the
// same version twice.
func TestCrashBetweenQueueAndChannelRecord(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	f.seed(t)
	f.keys = openpgp.EntityList{publicOnly(t, mustKey(t, "Aggregator Crash"))}
	ctx := context.Background()
	ch := &MailChannel{Store: f.st, To: []string{"billing@aggregator.example"}, Now: func() time.Time { return fixedAt }}
	crashed := f.generator(t, anonymize.ModeHashed, secretA, ch)
	died := errors.New("killed")
	crashed.crashAfterDeliver = func(string) error { return died }
	if _, err := crashed.Send(ctx, march); !errors.Is(err, died) {
		t.Fatalf("first run: %v, want the simulated crash", err)
	}
	// The restart, and a second daemon at the same time.
	for i := 0; i < 2; i++ {
		res, err := f.generator(t, anonymize.ModeHashed, secretA, ch).Send(ctx, march)
		if err != nil {
			t.Fatalf("run %d after the crash: %v", i+2, err)
		}
		if st := res.Report.Channels[ChannelEmail]; st.State != store.ChannelQueued || st.OutboxID() == 0 {
			t.Fatalf("run %d: email channel %+v", i+2, st)
		}
	}
	srv := smtptest.Start(t, smtptest.Options{STARTTLS: true})
	drain(t, f.st, srv, fixedAt.Add(time.Hour))
	ids := messageIDs(t, srv.Messages(), "Usage report 2026-03")
	if len(ids) != 1 {
		t.Fatalf("report mailed under %d Message-IDs, want exactly one: %v", len(ids), ids)
	}
	for id, n := range ids {
		if n != 1 {
			t.Fatalf("%s delivered %d times", id, n)
		}
	}
	// The channel follows the outbox: sent now.
	rep, _ := f.st.LatestReport(ctx, march.Start)
	if rep, err := f.st.FollowOutbox(ctx, rep); err != nil || rep.Channels[ChannelEmail].State != store.ChannelSent {
		t.Fatalf("after delivery: %+v %v", rep.Channels, err)
	}
}

// TestLeftoverBundleIsReplaced: a run that wrote the bundle files but died
// before storing its reports row must not wedge the month: the next run
// replaces the leftovers and stores the version. Before the fix every later
// run failed with "usage-2026-03-v1.tar.gz exists already".
func TestLeftoverBundleIsReplaced(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	f.seed(t)
	f.keys = openpgp.EntityList{publicOnly(t, mustKey(t, "Aggregator Leftover"))}
	ctx := context.Background()
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(f.dir, "usage-2026-03-v1.tar.gz")
	for _, p := range []string{base, base + ".gpg"} {
		if err := os.WriteFile(p, []byte("half a bundle"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ch := &MailChannel{Store: f.st, To: []string{"billing@aggregator.example"}, Now: func() time.Time { return fixedAt }}
	res, err := f.generator(t, anonymize.ModeHashed, secretA, ch).Send(ctx, march)
	if err != nil {
		t.Fatalf("send over leftovers: %v", err)
	}
	if res.Report.Version != 1 || res.Path != base+".gpg" {
		t.Fatalf("stored %+v", res.Report)
	}
	if got := mustRead(t, res.Path); sha(got) != res.Report.BundleSHA256 {
		t.Fatal("the encrypted file is not the one stored")
	}
	if _, err := VerifyBundle(mustRead(t, base)); err != nil {
		t.Fatalf("the plain bundle is still the leftover: %v", err)
	}
	if _, err := os.Stat(base + ".partial"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}
	// A stored version is never overwritten: the next run reuses it.
	again, err := f.generator(t, anonymize.ModeHashed, secretA, ch).Generate(ctx, march)
	if err != nil || !again.Unchanged || again.Report.ID != res.Report.ID {
		t.Fatalf("again: %+v %v", again, err)
	}
}

// TestEmailChannelFollowsTheOutbox: a report mail refused for good by the
// mail server (unknown recipient) makes the channel failed, not done: the
// hourly redelivery reports it every time without mailing again, and
// `report send` (Deliver) queues a new mail once report.to is fixed. A mail
// refused for a configuration reason stays queued, its error shown.
func TestEmailChannelFollowsTheOutbox(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	f.seed(t)
	f.keys = openpgp.EntityList{publicOnly(t, mustKey(t, "Aggregator Follow"))}
	ctx := context.Background()
	srv := smtptest.Start(t, smtptest.Options{STARTTLS: true})
	srv.RejectRecipient("typo@aggregator.example")
	ch := &MailChannel{Store: f.st, To: []string{"typo@aggregator.example"}, Now: func() time.Time { return fixedAt }}
	gen := f.generator(t, anonymize.ModeHashed, secretA, ch)
	res, err := gen.Send(ctx, march)
	if err != nil {
		t.Fatal(err)
	}
	drain(t, f.st, srv, fixedAt)
	if err := gen.RetryUndelivered(ctx); err == nil || !strings.Contains(err.Error(), "refused by the mail server") || !strings.Contains(err.Error(), "550") {
		t.Fatalf("redelivery of a refused mail: %v", err)
	}
	rep, _ := f.st.ReportByID(ctx, res.Report.ID)
	if st := rep.Channels[ChannelEmail]; st.State != store.ChannelFailed || st.Done() || !strings.Contains(st.Error, "recipient refused") {
		t.Fatalf("email channel after the refusal: %+v", st)
	}
	if err := gen.RetryUndelivered(ctx); err == nil {
		t.Fatal("the refusal was forgotten")
	}
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("%d mails delivered", n)
	}
	// Fixed: report send delivers, once.
	ch.To = []string{"billing@aggregator.example"}
	res, err = gen.Send(ctx, march)
	if err != nil {
		t.Fatal(err)
	}
	if st := res.Report.Channels[ChannelEmail]; st.State != store.ChannelQueued || st.Attempts != 2 {
		t.Fatalf("after the fix: %+v", st)
	}
	drain(t, f.st, srv, fixedAt)
	if err := gen.RetryUndelivered(ctx); err != nil {
		t.Fatal(err)
	}
	rep, _ = f.st.ReportByID(ctx, res.Report.ID)
	if st := rep.Channels[ChannelEmail]; st.State != store.ChannelSent {
		t.Fatalf("after delivery: %+v", st)
	}
	if ids := messageIDs(t, srv.Messages(), "Usage report"); len(ids) != 1 {
		t.Fatalf("Message-IDs %v", ids)
	}
}
