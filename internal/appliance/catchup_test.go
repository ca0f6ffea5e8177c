package appliance

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/store"
)

// TestDatabaseDownAcrossMinuteM (issue 20, item 2): with PostgreSQL stopped
// from minute 3 to minute 8 of an hour (minute M is 5), the catch-up tick
// collects the hour once the database is back. With it stopped until after
// the next hour began, the lost hour is recorded as a gap whose cause names
// the outage, mailed, and counted in the month's gaps; the hour after it is
// collected.
func TestDatabaseDownAcrossMinuteM(t *testing.T) {
	pg := pgtest.NewServer(t)
	h := newHarness(t, func(c *config.Config) { c.Database.URL = config.Secret(pg.URL("postgres")) })
	id, p := h.addProduct("https://vc.provider.example")
	ctx := context.Background()
	tick := func(at time.Time) {
		t.Helper()
		h.clock.Set(at)
		for _, r := range h.d.sched.CatchUp(ctx, false) {
			if r.Err != nil {
				t.Logf("tick %s: product %d: %v", at.Format("15:04"), r.Product.ID, r.Err)
			}
		}
	}
	stop := func() {
		t.Helper()
		if err := pg.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	start := func() {
		t.Helper()
		if err := pg.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}

	h.hour(0)
	h1 := t0.Add(time.Hour)
	tick(h1.Add(2 * time.Minute)) // before minute M: nothing yet
	if p.callsAt(h1) != 0 {
		t.Fatal("collected before minute M")
	}
	stop()
	for m := 3; m <= 7; m++ {
		tick(h1.Add(time.Duration(m) * time.Minute))
	}
	start()
	tick(h1.Add(8 * time.Minute))
	if r, err := h.app.Store.Run(ctx, id, h1); err != nil || r.State != store.RunDone || p.callsAt(h1) != 1 {
		t.Fatalf("hour 1 after the database returned at minute 8: %+v %v (collected %d times)", r, err, p.callsAt(h1))
	}

	// Down from 12:03 to 13:10: hour 12 is lost, hour 13 is collected.
	h2, h3 := t0.Add(2*time.Hour), t0.Add(3*time.Hour)
	stop()
	for m := 3; m < 60; m += 7 {
		tick(h2.Add(time.Duration(m) * time.Minute))
	}
	tick(h3.Add(2 * time.Minute))
	start()
	tick(h3.Add(10 * time.Minute))
	r2, err := h.app.Store.Run(ctx, id, h2)
	if err != nil || r2.State != store.RunFailed || p.callsAt(h2) != 0 {
		t.Fatalf("lost hour 12: %+v %v", r2, err)
	}
	for _, want := range []string{"not collected before the hour ended", "database was unreachable (tried from 12:03:00 UTC to 12:59:00 UTC)"} {
		if !strings.Contains(r2.Error, want) {
			t.Fatalf("gap cause %q lacks %q", r2.Error, want)
		}
	}
	if r3, _ := h.app.Store.Run(ctx, id, h3); r3.State != store.RunDone {
		t.Fatalf("hour 13: %+v", r3)
	}
	h.d.outboxJob(ctx)
	var gapMail string
	for i, s := range subjects(h.smtp.Messages()) {
		if s == fmt.Sprintf("[usagemeter] hour 2026-05-04 12:00 UTC of test https://vc.provider.example (product %d) not collected", id) {
			gapMail = strings.ReplaceAll(string(h.smtp.Messages()[i].Data), "=\r\n", "") // quoted-printable soft breaks
		}
	}
	if gapMail == "" || !strings.Contains(gapMail, "hour 2026-05-04 12:00 UTC: not collected before the hour ended: the database was unreachable") {
		t.Fatalf("no mail naming the lost hour and its cause: %q\n%s", subjects(h.smtp.Messages()), gapMail)
	}
	// A second tick records nothing twice.
	tick(h3.Add(11 * time.Minute))
	h.d.outboxJob(ctx)
	n := 0
	for _, s := range subjects(h.smtp.Messages()) {
		if strings.Contains(s, "not collected") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d gap mails, want 1: %q", n, subjects(h.smtp.Messages()))
	}
	gaps, err := h.app.Store.MonthGaps(ctx, store.MonthIn(t0, time.UTC), h3.Add(time.Hour))
	if err != nil || len(gaps) != 1 || gaps[0].Missing != 1 || gaps[0].Failed != 1 {
		t.Fatalf("month gaps: %+v %v", gaps, err)
	}
}
