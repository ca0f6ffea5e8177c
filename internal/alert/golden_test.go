package alert_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/alert"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/scheduler"
	"github.com/usagemeter/usagemeter/internal/seal"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
	"github.com/usagemeter/usagemeter/report"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the mails the engine writes")

// TestMailGolden: every mail a person reads, subject, text and HTML, as the
// alert engine writes it to the outbox (and the monthly report's mail, as
// the report's mail channel queues it, with its attachment), against testdata/<name>.golden
// (-update rewrites them). A changed word fails it. The advice ("What to
// do") follows the kind of error: bad credentials, a changed certificate, a
// deadline, anything else.
func TestMailGolden(t *testing.T) {
	box, _ := seal.NewBox(bytes.Repeat([]byte{7}, 32))
	st := store.New(pgtest.NewPool(t), box)
	ctx := context.Background()
	now := time.Date(2026, 3, 14, 9, 5, 0, 0, time.UTC)
	e := &alert.Engine{Store: st, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }, Appliance: "meter-01.provider.example",
		Rules: alert.Rules{To: []string{"ops@provider.example"}, Reminder: 24 * time.Hour, DeactivateAfter: 3}}
	add := func(kind, endpoint string) store.Product {
		t.Helper()
		id, err := st.AddProduct(ctx, store.Product{Kind: kind, Endpoint: endpoint, Username: "meter"})
		if err != nil {
			t.Fatal(err)
		}
		p, err := st.Product(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	hour := now.Truncate(time.Hour)
	fail := func(p store.Product, h time.Time, err error) {
		t.Helper()
		c, cerr := st.ClaimHour(ctx, p.ID, h, "golden", time.Minute)
		if cerr != nil || !c.Claimed {
			t.Fatalf("claim: %+v %v", c, cerr)
		}
		if ferr := st.FailHour(ctx, p.ID, h, "golden", err.Error()); ferr != nil {
			t.Fatal(ferr)
		}
		e.Observe(ctx, scheduler.Result{Product: p, Hour: h, Err: err})
	}
	names := map[int64]string{} // outbox id -> golden name
	mark := func(name string) {
		t.Helper()
		mails, err := st.ClaimMail(ctx, now.Add(1000*time.Hour), 100, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(mails) == 0 {
			t.Fatalf("%s: no mail written", name)
		}
		for i, m := range mails {
			n := name
			if len(mails) > 1 {
				n = fmt.Sprintf("%s-%d", name, i+1)
			}
			names[m.ID] = n
			golden(t, n, m)
			if err := st.MarkMailSent(ctx, m.ID, now); err != nil {
				t.Fatal(err)
			}
		}
	}

	vc := add("vcenter", "https://vc01.provider.example/sdk")
	fail(vc, hour, fmt.Errorf("logging in to vc01.provider.example as meter: %w", collectors.ErrBadCredentials))
	mark("collection-failing-bad-credentials")

	nsx := add("nsxt", "https://nsx01.provider.example")
	fail(nsx, hour, fmt.Errorf("nsxt nsx01.provider.example: %w", &tlsutil.CertError{Err: tlsutil.ErrChanged, Host: "nsx01.provider.example",
		Seen: strings.Repeat("AB:", 31) + "AB", Accepted: strings.Repeat("CD:", 31) + "CD"}))
	mark("certificate-changed")

	vcd := add("vcd", "https://vcd01.provider.example")
	fail(vcd, hour, fmt.Errorf("vcd vcd01.provider.example: adminVM query page 3: %w (no answer within the 1m0s deadline)", context.DeadlineExceeded))
	mark("collection-failing-deadline")

	srm := add("srm", "https://srm01.provider.example")
	fail(srm, hour, errors.New("srm srm01.provider.example: dial tcp 10.0.0.7:443: connect: connection refused"))
	mark("collection-failing-unreachable")
	// Two more failed hours: the reminder is not due yet, deactivation is.
	fail(srm, hour.Add(-time.Hour), errors.New("srm srm01.provider.example: dial tcp 10.0.0.7:443: connect: connection refused"))
	fail(srm, hour.Add(-2*time.Hour), errors.New("srm srm01.provider.example: dial tcp 10.0.0.7:443: connect: connection refused"))
	mark("deactivated")

	// vCenter works again: resolved.
	srmNow, _ := st.Product(ctx, srm.ID)
	c, err := st.ClaimHour(ctx, vc.ID, hour.Add(time.Hour), "golden", time.Minute)
	if err != nil || !c.Claimed {
		t.Fatal(c, err)
	}
	e.Observe(ctx, scheduler.Result{Product: vc, Hour: hour.Add(time.Hour)})
	mark("collection-resolved")
	e.Observe(ctx, scheduler.Result{Product: srmNow, Hour: hour.Add(time.Hour)})
	mark("reactivated")

	e.ObserveGaps(ctx, []scheduler.Gap{
		{Product: vc, Hour: hour.Add(-3 * time.Hour), Cause: "the database was unreachable from 06:03 to 07:10 UTC: connection refused"},
		{Product: nsx, Hour: hour.Add(-3 * time.Hour), Cause: "no daemon was running"},
	})
	mark("hours-not-collected")

	// The appliance-level alerts: the monthly report and the outbox.
	if err := e.ReportFailed(ctx, fmt.Errorf("monthly report 2026-02: %w", report.ErrNotRegistered)); err != nil {
		t.Fatal(err)
	}
	mark("report-failed")
	if err := e.ReportDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	mark("report-delivered")
	if err := e.ReportFailed(ctx, fmt.Errorf("monthly report 2026-02: %w", report.ErrNoRecipients)); err != nil {
		t.Fatal(err)
	}
	mark("report-failed-no-recipient-keys")
	if err := e.BackupFailed(ctx, "/var/backups/usagemeter", now.Add(-25*time.Hour),
		errors.New("open /var/backups/usagemeter/usagemeter-backup-20260314T090500Z.pgp.partial: no space left on device")); err != nil {
		t.Fatal(err)
	}
	mark("backup-failed")
	if err := e.BackupWritten(ctx, "/var/backups/usagemeter/usagemeter-backup-20260314T090500Z.pgp"); err != nil {
		t.Fatal(err)
	}
	mark("backup-written")
	if err := e.OutboxStuck(ctx, 6, now.Add(-95*time.Minute), 4); err != nil {
		t.Fatal(err)
	}
	mark("outbox-stuck")
	if err := e.OutboxFlowing(ctx); err != nil {
		t.Fatal(err)
	}
	mark("outbox-flowing")

	problems := []alert.Problem{
		{Name: "registration", Detail: "the appliance is not registered (no contract)", Action: "run `usagemeter register --contract ID --program rental|sovereign-cloud`"},
		{Name: "clock", Detail: "the system clock is not synchronised (NTP): hours and reports depend on it", Action: "configure NTP servers and check `timedatectl`"},
	}
	if err := e.NotReady(ctx, problems); err != nil {
		t.Fatal(err)
	}
	mark("report-not-ready")
	if err := e.NotReady(ctx, nil); err != nil {
		t.Fatal(err)
	}
	mark("report-ready")

	// The monthly report's own mail, as the report's mail channel queues it.
	bundle := []byte("-----BEGIN PGP MESSAGE-----\n...\n-----END PGP MESSAGE-----\n")
	rc := &report.MailChannel{Store: st, To: []string{"billing@aggregator.example"}, Now: func() time.Time { return now }}
	if _, _, err := rc.Deliver(ctx, report.Delivery{ApplianceID: "3f0c6f0e-8a1d-4f5e-9d0b-6b1f2d7c9a10", ContractID: "CN-2026-0042",
		Month: "2026-02", Version: 2, FileName: "usage-2026-02-v2.tar.gz.gpg", Data: bundle, SHA256: strings.Repeat("5e", 32)}); err != nil {
		t.Fatal(err)
	}
	mark("report-mail")
	if len(names) < 16 {
		t.Fatalf("%d mails", len(names))
	}

	// Sent straight to SMTP while the database is down (no outbox then).
	down := errors.New("dial unix /run/postgresql/.s.PGSQL.5432: connect: no such file or directory")
	golden(t, "database-down", alert.DatabaseDownMail([]string{"ops@provider.example"}, "meter-01.provider.example", now.Add(-7*time.Minute), down))
	golden(t, "database-down-at-start", alert.DatabaseDownAtStartMail([]string{"ops@provider.example"}, "meter-01", now.Add(-6*time.Minute), down))
}

// golden compares a mail with testdata/<name>.golden.
func golden(t *testing.T, name string, m store.Mail) {
	t.Helper()
	got := fmt.Sprintf("To: %s\nSubject: %s\n\n%s\n-- HTML --\n%s", strings.Join(m.To, ", "), m.Subject, m.Text, m.HTML)
	for _, a := range m.Attachments {
		got += fmt.Sprintf("\n-- attachment --\n%s (%s, %d bytes)\n", a.Name, a.ContentType, len(a.Data))
	}
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("mail %s differs from %s (run with -update to accept):\n%s", name, path, got)
	}
}
