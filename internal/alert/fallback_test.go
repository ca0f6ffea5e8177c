package alert_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

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
