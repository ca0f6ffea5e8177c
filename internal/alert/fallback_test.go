package alert_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	netmail "net/mail"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usagemeter/usagemeter/internal/alert"
	"github.com/usagemeter/usagemeter/internal/mail"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/seal"
	"github.com/usagemeter/usagemeter/internal/smtptest"
	"github.com/usagemeter/usagemeter/internal/store"
)

// TestFallbackWhileDatabaseDown: alerts raised while the database is down go
// straight to SMTP and to a spill file; when the database returns they are
// recorded, and one that could not be sent is queued in the outbox.
func TestFallbackWhileDatabaseDown(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	sender, err := mail.NewSender(mail.Config{Host: srv.Host(), Port: srv.Port(), TLS: mail.TLSNone, Auth: mail.AuthNone, From: "meter@example.com", Timeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	spill := filepath.Join(t.TempDir(), "alerts-spill.jsonl")
	f := &alert.Fallback{Path: spill, Sender: sender, Log: slog.New(slog.DiscardHandler)}
	ctx := context.Background()

	f.Raise(ctx, store.Mail{To: []string{"ops@example.com"}, Subject: "[usagemeter] database unreachable", Text: "down"}, "database unreachable")
	f.Raise(ctx, store.Mail{To: []string{"ops@example.com"}, Subject: "[usagemeter] database unreachable", Text: "down"}, "database unreachable") // deduplicated
	if n := len(srv.Messages()); n != 1 {
		t.Fatalf("direct mails: %d, want 1", n)
	}
	if err := srv.Down(); err != nil {
		t.Fatal(err)
	}
	f.Raise(ctx, store.Mail{To: []string{"ops@example.com"}, Subject: "[usagemeter] collection failed", Text: "x"}, "collection failed")
	if fi, err := os.Stat(spill); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("spill file: %v %v", fi, err)
	}

	box, _ := seal.NewBox(bytes.Repeat([]byte{1}, 32))
	st := store.New(pgtest.NewPool(t), box)
	n, err := f.Flush(ctx, st)
	if err != nil || n != 2 {
		t.Fatalf("flush: %d %v", n, err)
	}
	if _, err := os.Stat(spill); !os.IsNotExist(err) {
		t.Fatal("spill file kept after flush")
	}
	hist, _ := st.Alerts(ctx, 10)
	if len(hist) != 2 || hist[0].Kind != alert.KindDatabaseDown || hist[0].ResolvedAt == nil {
		t.Fatalf("history: %+v", hist)
	}
	stats, _ := st.OutboxStats(ctx)
	if stats.Queued != 1 {
		t.Fatalf("the unsent alert should be queued: %+v", stats)
	}
}

// TestTwoDaemonsOneAlertMail: two daemons of one database raise the same
// alert outside the outbox. While the database answers, the one that claims
// it sends it and the other does not; while it is down each sends its own
// (nothing can tell them apart), but a mail neither could send is queued
// once when the database returns, not once per daemon.
func TestTwoDaemonsOneAlertMail(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	sender, err := mail.NewSender(mail.Config{Host: srv.Host(), Port: srv.Port(), TLS: mail.TLSNone, Auth: mail.AuthNone, From: "meter@example.com", Timeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	box, _ := seal.NewBox(bytes.Repeat([]byte{1}, 32))
	st := store.New(pgtest.NewPool(t), box)
	ctx := context.Background()
	now := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	daemon := func(name string) *alert.Fallback {
		return &alert.Fallback{Path: filepath.Join(t.TempDir(), "alerts-spill.jsonl"), Sender: sender, Claims: st, Owner: name,
			Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }}
	}
	a, b := daemon("a"), daemon("b")
	m := store.Mail{Kind: "alert:" + alert.KindDatabaseDown, To: []string{"ops@example.com"}, Subject: "[usagemeter] database unreachable", Text: "down"}
	a.Raise(ctx, m, "database unreachable")
	b.Raise(ctx, m, "database unreachable")
	if n := len(srv.Messages()); n != 1 {
		t.Fatalf("%d mails from two daemons, want 1", n)
	}

	// Database and SMTP both down: neither daemon can claim or send.
	down := store.New(downPool(t), box)
	a.Claims, b.Claims = down, down
	if err := srv.Down(); err != nil {
		t.Fatal(err)
	}
	m2 := m
	m2.Subject = "[usagemeter] collection from vcenter vc01 failing"
	a.Raise(ctx, m2, "collection failed")
	b.Raise(ctx, m2, "collection failed")
	if err := srv.Up(); err != nil {
		t.Fatal(err)
	}
	a.Claims, b.Claims = st, st
	for _, f := range []*alert.Fallback{a, b} {
		if _, err := f.Flush(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	stats, _ := st.OutboxStats(ctx)
	if stats.Queued != 1 {
		t.Fatalf("%d mails queued for one alert spilled by two daemons, want 1", stats.Queued)
	}
}

// downPool is a pool to a PostgreSQL that is not there: every query fails to
// connect, as while the database is down.
func downPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	pool, err := pgxpool.New(context.Background(), "postgres://meter@"+addr+"/usagemeter?connect_timeout=2&sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// TestSpilledMailKeepsItsTime (found by TestSoak): an alert mail that could
// not be sent while the database was down is queued when it returns with
// the time it was raised (its Date, and its next attempt on the daemon's
// clock), not the time of the flush: with an injected clock behind the
// real one, the flushed mail used to wait for the real date, never sent.
func TestSpilledMailKeepsItsTime(t *testing.T) {
	raised := time.Date(2026, 4, 30, 23, 30, 0, 0, time.UTC)
	f := &alert.Fallback{Path: filepath.Join(t.TempDir(), "alerts-spill.jsonl"), Sender: failingSender{}, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return raised }}
	ctx := context.Background()
	f.Raise(ctx, store.Mail{To: []string{"ops@example.com"}, Subject: "[usagemeter] database unreachable", Text: "down"}, "database unreachable")

	box, _ := seal.NewBox(bytes.Repeat([]byte{1}, 32))
	st := store.New(pgtest.NewPool(t), box)
	if n, err := f.Flush(ctx, st); err != nil || n != 1 {
		t.Fatalf("flush: %d %v", n, err)
	}
	mails, err := st.ClaimMail(ctx, raised.Add(time.Minute), 10, time.Minute)
	if err != nil || len(mails) != 1 {
		t.Fatalf("the spilled mail is not due a minute after it was raised: %d mails, %v", len(mails), err)
	}
	if !mails[0].CreatedAt.Equal(raised) {
		t.Fatalf("queued as created at %s, raised at %s", mails[0].CreatedAt, raised)
	}
}

// failingSender is an SMTP server that cannot be reached.
type failingSender struct{}

func (failingSender) Send(context.Context, mail.Message) error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
}

// TestSpilledMailsAtOneInstant (found by TestSoak with the database stopped
// in the middle of a tick): alert mails sent straight at the same instant
// (one per product whose hour could not be stored) used to share one
// Message-ID, which a receiver takes for one mail.
func TestSpilledMailsAtOneInstant(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	sender, err := mail.NewSender(mail.Config{Host: srv.Host(), Port: srv.Port(), TLS: mail.TLSNone, Auth: mail.AuthNone, From: "meter@example.com", Timeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 4, 30, 23, 30, 0, 0, time.UTC)
	f := &alert.Fallback{Path: filepath.Join(t.TempDir(), "alerts-spill.jsonl"), Sender: sender, Domain: "example.com", Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return at }}
	for _, s := range []string{"product 1 failing", "product 2 failing"} {
		f.Raise(context.Background(), store.Mail{To: []string{"ops@example.com"}, Subject: s, Text: "x"}, "collection failed")
	}
	ids := map[string]bool{}
	for _, m := range srv.Messages() {
		msg, err := netmail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		ids[msg.Header.Get("Message-Id")] = true
	}
	if len(srv.Messages()) != 2 || len(ids) != 2 {
		t.Fatalf("%d mails with %d Message-IDs: %v", len(srv.Messages()), len(ids), ids)
	}
}
