package appliance_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/receiver"
	"github.com/usagemeter/usagemeter/internal/receiver/protocol"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
	"github.com/usagemeter/usagemeter/report"
)

// TestHeartbeatJob: the daemon's hourly heartbeat job sends nothing while
// the appliance is not enrolled; enrolled, its heartbeat reaches a real
// receiver (over HTTPS, signed) with each product's last collected hour
// and the open alerts; with the receiver down the job logs a clear warning
// (the receiver, the cause) and returns.
func TestHeartbeatJob(t *testing.T) {
	ctx := context.Background()
	// Real time: the receiver checks the signature's timestamp against its
	// clock.
	now := time.Now().UTC()
	hour := now.Truncate(time.Hour)

	pool := pgtest.NewPool(t)
	r := &receiver.Receiver{Pool: pool, Store: store.New(pool, nil)}
	if err := receiver.Open(ctx, r); err != nil {
		t.Fatal(err)
	}
	url, thumb, stop, err := tlsutil.ServeLoopback(r.Handler())
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})
	r.Thumbprint = thumb

	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Database.URL = config.Secret(pgtest.NewDatabase(t))
	cfg.SMTP = config.SMTP{Host: "127.0.0.1", Port: 2525, TLS: "none", Auth: "none", From: "meter@provider.example", Timeout: config.Duration(5 * time.Second)}
	cfg.Alerts.To = []string{"ops@provider.example"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &appliance.LogBuffer{}
	app, err := appliance.OpenConfig(ctx, &cfg, logs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(app.Close)
	// Two products: one collected up to the last hour, one failing since
	// it was added (an open alert, no hour yet).
	ok, err := app.Store.AddProduct(ctx, store.Product{Kind: "vcenter", Endpoint: "https://vc1.corp.example/sdk", Username: "meter", Password: "ProductPassw0rd"})
	if err != nil {
		t.Fatal(err)
	}
	failing, err := app.Store.AddProduct(ctx, store.Product{Kind: "nsx", Endpoint: "https://nsx1.corp.example", Username: "meter", Password: "ProductPassw0rd"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.Store.Pool().Exec(ctx, `INSERT INTO collection_runs (product_id, hour, state)
		SELECT $1, h, 'done' FROM generate_series($2::timestamptz, $3::timestamptz, interval '1 hour') h`, ok, hour.Add(-5*time.Hour), hour.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	opened := hour.Add(-2 * time.Hour)
	if _, err := app.Store.RaiseAlert(ctx, store.Alert{Key: "collection_failed:x", Kind: "collection_failed", ProductID: failing, OpenedAt: opened,
		LastError: "dial tcp nsx1.corp.example:443: connection refused"}, nil); err != nil {
		t.Fatal(err)
	}
	d, err := appliance.NewDaemon(app, nil, nil)
	if err != nil {
		t.Fatal(err)
	}

	// Not enrolled: nothing is sent, nothing is logged as a failure.
	d.RunHeartbeat(ctx)
	if strings.Contains(logs.String(), "heartbeat") {
		t.Fatalf("heartbeat of an appliance not enrolled:\n%s", logs.String())
	}

	tok, _, err := r.CreateToken(ctx, "heartbeat test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := report.GenerateKey("usagemeter appliance", "usagemeter@appliance.invalid", now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := report.ExportPublic(signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := protocol.Enrol(ctx, protocol.EnrolOptions{DataDir: cfg.DataDir, URL: url, Token: tok, ApplianceID: app.Appliance.ID, ReportKey: pub}); err != nil {
		t.Fatal(err)
	}
	state := func() receiver.FleetAppliance {
		t.Helper()
		f, err := r.Fleet(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Appliances) != 1 || f.Appliances[0].ID != app.Appliance.ID {
			t.Fatalf("fleet: %+v", f.Appliances)
		}
		return f.Appliances[0]
	}
	if state().LastHeartbeat != nil {
		t.Fatal("a heartbeat before the job ran")
	}

	before := time.Now()
	d.RunHeartbeat(ctx)
	a := state()
	if a.LastHeartbeat == nil || a.LastHeartbeat.Before(before.Add(-time.Second)) || a.Silent {
		t.Fatalf("the heartbeat did not arrive: %+v\n%s", a, logs.String())
	}
	if len(a.Products) != 2 || a.Products[0].ID != ok || a.Products[0].LastHour == nil || !a.Products[0].LastHour.Equal(hour.Add(-time.Hour)) ||
		a.Products[0].Kind != "vcenter" || a.Products[1].ID != failing || a.Products[1].LastHour != nil {
		t.Fatalf("products' last hours: %+v", a.Products)
	}
	if len(a.OpenAlerts) != 1 || a.OpenAlerts[0].Kind != "collection_failed" || a.OpenAlerts[0].ProductID != failing || !a.OpenAlerts[0].OpenedAt.Equal(opened) {
		t.Fatalf("open alerts: %+v", a.OpenAlerts)
	}

	// The receiver is down: a warning naming the receiver and the cause;
	// the job returns.
	stop()
	stopped = true
	done := make(chan struct{})
	go func() { d.RunHeartbeat(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the heartbeat job hangs while the receiver is down")
	}
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "receiver heartbeat failed") {
			line = l
		}
	}
	if !strings.Contains(line, "level=WARN") || !strings.Contains(line, url) || !strings.Contains(line, "connection refused") {
		t.Fatalf("no clear warning with the receiver down:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "ProductPassw0rd") {
		t.Fatal("a product password in the log")
	}
}
