package report

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usagemeter/usagemeter/anonymize"
	"github.com/usagemeter/usagemeter/internal/store"
)

// TestDaemonsGenerateAMonthOnce (found by TestSoak): daemons that share the
// database and data_dir run the monthly job at the same moment. They used
// to build the same version side by side: the second one took the first's
// bundle file for a leftover and replaced it, the first stored its row, and
// the file on disk was no longer the row's: the month was wedged ("changed
// on disk") and never mailed, and the other daemon alerted "already
// exists". Now one daemon generates a month at a time: one version, its
// file the row's, one mail.
func TestDaemonsGenerateAMonthOnce(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	f.seed(t)
	f.keys = openpgp.EntityList{publicOnly(t, mustKey(t, "Aggregator Billing"))}
	ctx := context.Background()
	const daemons = 3
	gens := make([]*Generator, daemons)
	for i := range gens {
		// Each daemon has its own pool on the database.
		pool, err := pgxpool.New(ctx, f.st.Pool().Config().ConnString())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		g := f.generator(t, anonymize.ModeHashed, secretA)
		g.store = store.New(pool, nil)
		g.channels = []Channel{&MailChannel{Store: g.store, To: []string{"billing@aggregator.example"}, Now: func() time.Time { return fixedAt }}}
		gens[i] = g
	}
	// The race is in a window of milliseconds: run it a few times over.
	for round := 0; round < 8 && !t.Failed(); round++ {
		f.exec(t, `DELETE FROM outbox; DELETE FROM reports`)
		if err := os.RemoveAll(f.dir); err != nil {
			t.Fatal(err)
		}
		errs := make([]error, daemons)
		var wg sync.WaitGroup
		for i, g := range gens {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = g.RunMonthly(ctx, fixedAt) }()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("daemon %d: %v", i, err)
			}
		}
		reps, err := f.st.Reports(ctx)
		if err != nil || len(reps) != 1 {
			t.Fatalf("%d report versions, want 1 (%v)", len(reps), err)
		}
		if sha(mustRead(t, reps[0].Path)) != reps[0].BundleSHA256 {
			t.Fatalf("%s on disk is not the file of its row", reps[0].Path)
		}
		mails, err := f.st.ClaimMail(ctx, fixedAt.Add(time.Hour), 10, time.Minute)
		if err != nil || len(mails) != 1 {
			t.Fatalf("outbox: %d mails, %v", len(mails), err)
		}
	}
}
