package appliance

import (
	"context"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/localpg"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/store"
)

// stopsDatabase is a product whose collection succeeds while PostgreSQL
// stops under it: the hour cannot be stored.
type stopsDatabase struct {
	*testProduct
	pg   *localpg.Cluster
	once bool
}

func (p *stopsDatabase) Collect(ctx context.Context, hour time.Time) ([]collectors.Observation, error) {
	if !p.once {
		p.once = true
		_ = p.pg.Stop()
	}
	return p.testProduct.Collect(ctx, hour)
}

// TestDatabaseGoneBeforeCommit (found by TestSoak with the database stopped
// in the middle of a tick): a product collected while the database went
// away before its hour was stored used to be alerted as failing (a mail
// straight through SMTP, "collection from ... failing"), blaming the
// product for the database. Now no product alert is raised, and once the
// database is back and the claim has run out the hour is collected.
func TestDatabaseGoneBeforeCommit(t *testing.T) {
	pg := pgtest.NewServer(t)
	h := newHarness(t, func(c *config.Config) {
		c.Database.URL = config.Secret(pg.URL("postgres"))
		c.Collection.Timeout = config.Duration(300 * time.Millisecond) // a claim of 600 ms
		c.Collection.CallTimeout = config.Duration(300 * time.Millisecond)
	})
	id, p := h.addProduct("https://vc.provider.example")
	stopper := &stopsDatabase{testProduct: p, pg: pg}
	sender, err := newSenderForTest(h)
	if err != nil {
		t.Fatal(err)
	}
	h.d, err = newDaemonWith(h.app, nil, daemonOptions{now: h.clock.Now, sender: sender, factory: func(collectors.Target) (collectors.Collector, error) { return stopper, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h1 := t0.Add(time.Hour)
	h.clock.Set(h1.Add(5 * time.Minute))
	h.d.sched.CatchUp(ctx, false)
	h.clock.Set(h1.Add(6 * time.Minute))
	h.d.databaseJob(ctx)
	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond) // the claim runs out
	h.clock.Set(h1.Add(10 * time.Minute))
	h.d.databaseJob(ctx) // back: a catch-up in the background
	h.d.Stop()           // waits for it
	h.d.sched.CatchUp(ctx, false)
	h.d.outboxJob(ctx)
	if r, err := h.app.Store.Run(ctx, id, h1); err != nil || r.State != store.RunDone {
		t.Fatalf("the hour after the database returned: %+v %v", r, err)
	}
	if got := subjects(h.smtp.Messages()); len(got) != 0 {
		t.Fatalf("mails: %q", got)
	}
}
