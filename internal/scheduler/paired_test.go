package scheduler_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/scheduler"
	"github.com/usagemeter/usagemeter/internal/seal"
	"github.com/usagemeter/usagemeter/internal/store"
)

// TestPairedPasswordRotation (issue 16): a product whose collector also
// logs into its paired vCenter (SRM here) is rebuilt with the vCenter's new
// password from the next hour after `product set` rotated it there, without
// a daemon restart; while nothing changes, the cached collector (and its
// sessions) is kept.
func TestPairedPasswordRotation(t *testing.T) {
	box, _ := seal.NewBox(bytes.Repeat([]byte{3}, 32))
	st := store.New(pgtest.NewPool(t), box)
	ctx := context.Background()
	vc, err := st.AddProduct(ctx, store.Product{Kind: "vcenter", Endpoint: "https://vc01", Username: "meter", Password: "VcPassw0rd-1"})
	if err != nil {
		t.Fatal(err)
	}
	srm, err := st.AddProduct(ctx, store.Product{Kind: "srm", Endpoint: "https://srm01", Username: "meter", Password: "SrmPassw0rd", PairedID: vc})
	if err != nil {
		t.Fatal(err)
	}
	var built []string // the paired vCenter password of each collector built
	h0 := time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)
	s := scheduler.New(scheduler.Config{Minute: 5, Timeout: time.Minute, Lease: time.Minute}, st, slog.New(slog.DiscardHandler),
		scheduler.WithClock(func() time.Time { return h0.Add(10 * time.Minute) }),
		scheduler.WithFactory(func(t collectors.Target) (collectors.Collector, error) {
			if t.ProductID == srm {
				built = append(built, t.Paired.Password.Reveal())
			}
			return noop{}, nil
		}))
	collect := func(n int) {
		t.Helper()
		p, err := st.Product(ctx, srm)
		if err != nil {
			t.Fatal(err)
		}
		if r := s.CollectProduct(ctx, p, h0.Add(time.Duration(n)*time.Hour)); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	rotate := func(pw string) {
		t.Helper()
		secret := config.Secret(pw)
		if err := st.UpdateProduct(ctx, vc, store.ProductUpdate{Password: &secret}); err != nil {
			t.Fatal(err)
		}
	}
	collect(-3)
	collect(-2)
	rotate("VcPassw0rd-2")
	collect(-1)
	rotate("VcPassw0rd-3")
	collect(0)
	want := []string{"VcPassw0rd-1", "VcPassw0rd-2", "VcPassw0rd-3"}
	if len(built) != len(want) || built[0] != want[0] || built[1] != want[1] || built[2] != want[2] {
		t.Fatalf("SRM collectors built with the vCenter passwords %q, want %q (one per password, kept between hours)", built, want)
	}
}
