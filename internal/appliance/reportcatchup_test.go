package appliance

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/report"
)

// TestMonthlyReportCaughtUp (found by TestSoak): with PostgreSQL down when
// the monthly report is due (the 1st, 02:00), the report used to be lost
// for good, and a "monthly report not delivered" mail went out naming the
// database connection. Now the report job says nothing while the database
// is down (the database watch alerts), and the hourly redelivery generates
// and mails the missed report once the database answers, once.
func TestMonthlyReportCaughtUp(t *testing.T) {
	key, err := report.GenerateKey("Aggregator", "usage@aggregator.example", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := report.ExportPublic(key)
	keyFile := filepath.Join(t.TempDir(), "aggregator.asc")
	if err := os.WriteFile(keyFile, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	pg := pgtest.NewServer(t)
	h := newHarness(t, func(c *config.Config) {
		c.Database.URL = config.Secret(pg.URL("postgres"))
		c.Report.To = []string{"usage@aggregator.example"}
		c.Report.RecipientKeys = []string{keyFile}
	})
	ctx := context.Background()
	h.addProduct("https://vc.provider.example")
	if err := h.app.Store.Register(ctx, "CONTRACT-42", "rental", t0); err != nil {
		t.Fatal(err)
	}
	for hr := time.Date(2026, 4, 30, 20, 0, 0, 0, time.UTC); hr.Before(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)); hr = hr.Add(time.Hour) {
		h.clock.Set(hr.Add(5 * time.Minute))
		if _, err := h.d.sched.RunHour(ctx, hr); err != nil {
			t.Fatal(err)
		}
	}
	at := func(day, hour, minute int) { h.clock.Set(time.Date(2026, 5, day, hour, minute, 0, 0, time.UTC)) }
	reports := func() int {
		t.Helper()
		reps, err := h.app.Store.Reports(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(reps)
	}

	at(1, 1, 35) // before it is due: nothing to catch up
	h.d.redeliverJob(ctx)
	if n := reports(); n != 0 {
		t.Fatalf("%d reports before the report was due", n)
	}
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	at(1, 2, 0)
	h.d.reportJob(ctx) // the database is down: fails, says nothing
	at(1, 2, 1)
	h.d.databaseJob(ctx)
	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	at(1, 2, 20)
	h.d.databaseJob(ctx)
	at(1, 2, 35)
	h.d.redeliverJob(ctx)
	if n := reports(); n != 1 {
		t.Fatalf("the missed report was not generated once the database answered: %d reports", n)
	}
	h.d.outboxJob(ctx)
	at(1, 3, 35) // caught up: not again
	h.d.redeliverJob(ctx)
	h.d.outboxJob(ctx)
	if n := reports(); n != 1 {
		t.Fatalf("%d reports after a second redelivery run", n)
	}
	var got []string
	nReport := 0
	for _, s := range subjects(h.smtp.Messages()) {
		switch {
		case strings.HasPrefix(s, "Usage report 2026-04"):
			nReport++
		case strings.Contains(s, "database unreachable"), strings.Contains(s, "not collected"):
			// The outage, and the hours this test did not run.
		default:
			got = append(got, s)
		}
	}
	if nReport != 1 || len(got) != 0 {
		t.Fatalf("%d report mails (want 1), other mails %q", nReport, got)
	}
}
