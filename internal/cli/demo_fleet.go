//go:build demo

package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/localpg"
	"github.com/usagemeter/usagemeter/internal/receiver"
	"github.com/usagemeter/usagemeter/internal/receiver/protocol"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
	"github.com/usagemeter/usagemeter/report"
)

// demoFleet is the provider's receiver and its second appliance, which
// meters vc01 too (in the month's last day): both appliances upload their
// month, the receiver merges it and bills vc01 once.
type demoFleet struct {
	cluster *localpg.Cluster
	rcv     *receiver.Opened
	srv     *http.Server
	url     string
	app2    *appliance.App
	cfg2    config.Config
}

// startDemoFleet starts the receiver (its own database in the demo's
// managed PostgreSQL, served on loopback) and enrols appliance 1 with it,
// then brings up appliance 2 (another database), registers vc01 on it,
// enrols it, and collects the month's last 24 hours with clock.
func startDemoFleet(ctx context.Context, out io.Writer, logf io.Writer, cfg config.Config, app *appliance.App, vc01 *demoVCenter,
	privPath string, m store.Month, clock *demoClock) (_ *demoFleet, err error) {
	f := &demoFleet{}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	f.cluster, err = localpg.New(localpg.Options{Dir: filepath.Join(cfg.DataDir, "postgres")})
	if err != nil {
		return nil, err
	}
	if err := f.cluster.Start(ctx); err != nil { // attaches to the demo's server
		return nil, err
	}
	pool, err := store.Connect(ctx, f.cluster.URL("postgres"))
	if err != nil {
		return nil, err
	}
	for _, db := range []string{"receiver", "appliance2"} {
		if _, err := pool.Exec(ctx, "CREATE DATABASE "+db); err != nil {
			pool.Close()
			return nil, fmt.Errorf("creating database %s: %w", db, err)
		}
	}
	pool.Close()

	rc := cfg
	rc.DataDir = filepath.Join(cfg.DataDir, "receiver")
	rc.Database.URL = config.Secret(f.cluster.URL("receiver"))
	rc.Report.To, rc.Report.RecipientKeys = nil, nil
	rc.Receiver.Listen, rc.Receiver.Hosts, rc.Receiver.AggregatorKeys = "127.0.0.1:0", []string{"127.0.0.1"}, []string{privPath}
	if f.rcv, err = receiver.OpenConfig(ctx, &rc, logf, true); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f.srv = &http.Server{Handler: f.rcv.Handler(), TLSConfig: &tls.Config{Certificates: []tls.Certificate{f.rcv.Cert}, MinVersion: tls.VersionTLS12},
		ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = f.srv.ServeTLS(ln, "", "") }()
	f.url = "https://" + ln.Addr().String()
	fmt.Fprintf(out, "  receiver %s on %s (certificate SHA-256 %s...)\n", f.rcv.ID(), f.url, f.rcv.Thumbprint[:23])

	enrol := func(a *appliance.App) error {
		tok, _, err := f.rcv.CreateToken(ctx, "demo", time.Hour)
		if err != nil {
			return err
		}
		signer, err := report.LoadSigningKey(ctx, a.Config, a.Store)
		if err != nil {
			return err
		}
		pub, err := report.ExportPublic(signer)
		if err != nil {
			return err
		}
		_, err = protocol.Enrol(ctx, protocol.EnrolOptions{DataDir: a.Config.DataDir, URL: f.url, Token: tok, ApplianceID: a.Appliance.ID, Version: Version, ReportKey: pub})
		return err
	}
	if err := enrol(app); err != nil {
		return nil, fmt.Errorf("enrolling appliance 1: %w", err)
	}

	f.cfg2 = cfg
	f.cfg2.DataDir = filepath.Join(cfg.DataDir, "appliance2")
	f.cfg2.Database.URL = config.Secret(f.cluster.URL("appliance2"))
	f.cfg2.Report.To = nil // it uploads to the receiver only
	if f.app2, err = appliance.OpenConfig(ctx, &f.cfg2, logf); err != nil {
		return nil, err
	}
	if err := f.app2.Store.Register(ctx, "DEMO-CONTRACT-0001", "rental", clock.Now()); err != nil {
		return nil, err
	}
	p := store.Product{Kind: "vcenter", Endpoint: vc01.sim.URL(), Username: vc01.sim.User(), Password: config.Secret(vc01.sim.Password()),
		Thumbprint: tlsutil.Normalize(vc01.sim.Thumbprint()), Options: []byte(`{}`)}
	if _, err := demoAddProduct(ctx, f.app2, p); err != nil {
		return nil, fmt.Errorf("adding vc01 to appliance 2: %w", err)
	}
	if err := enrol(f.app2); err != nil {
		return nil, fmt.Errorf("enrolling appliance 2: %w", err)
	}
	d2, err := appliance.NewDaemon(f.app2, nil, clock.Now)
	if err != nil {
		return nil, err
	}
	defer d2.Scheduler().Stop(time.Second)
	for at := m.End.Add(-24 * time.Hour); at.Before(m.End); at = at.Add(time.Hour) {
		clock.Set(at.Add(time.Duration(cfg.Collection.Minute) * time.Minute))
		if _, err := d2.Scheduler().RunHour(ctx, at); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(out, "  appliance 2 (%s) meters vc01 too, from the month's last day; both appliances enrolled with the receiver\n", f.app2.Appliance.ID)
	return f, nil
}

// finish sends appliance 2's month to the receiver (appliance 1's went
// with its report), merges the month and prints the provider view.
func (f *demoFleet) finish(ctx context.Context, out io.Writer, m store.Month, app1 *appliance.App) error {
	g, err := report.NewFromConfig(ctx, &f.cfg2, f.app2.Store, f.app2.Log)
	if err != nil {
		return err
	}
	if _, err := g.Send(ctx, m); err != nil {
		return fmt.Errorf("appliance 2's report: %w", err)
	}
	// The receiver's minute job marks the month merged (reading it, as
	// below, writes nothing).
	if err := f.rcv.Check(ctx); err != nil {
		return err
	}
	pm, err := f.rcv.Merge(ctx, m.String())
	if err != nil {
		return err
	}
	path := filepath.Join(filepath.Dir(f.rcv.App.Config.DataDir), "Provider_Monthly_Usage-"+m.String()+".tsv")
	w, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := errors.Join(pm.WriteTSV(w), w.Close()); err != nil {
		return err
	}
	unbilled := 0
	for _, l := range pm.Lines {
		for _, p := range l.Parts {
			if !p.Billed {
				unbilled++
			}
		}
	}
	fmt.Fprintf(out, "\nProvider month %s at the receiver: %d appliance reports verified and merged, %d figures (%s)\n", m, len(pm.Bundles), len(pm.Lines), path)
	for _, s := range pm.Shared {
		fmt.Fprintf(out, "  a vCenter metered by %d appliances (fleet fingerprint %s...): billed once, by appliance %s; %d lines of the other listed, not billed\n",
			len(s.Appliances), s.Identity[3:15], s.BilledBy, unbilled)
	}
	if len(pm.Shared) == 0 {
		return errors.New("the receiver did not see vc01 in both appliances' reports")
	}
	if pm.Shared[0].BilledBy != app1.Appliance.ID {
		return fmt.Errorf("vc01 billed by %s, want appliance 1", pm.Shared[0].BilledBy)
	}
	return nil
}

func (f *demoFleet) close() {
	if f.app2 != nil {
		f.app2.Close()
	}
	if f.srv != nil {
		_ = f.srv.Close()
	}
	if f.rcv != nil {
		f.rcv.Close()
	}
	if f.cluster != nil {
		_ = f.cluster.Stop() // attached: leaves the demo's server running
	}
}
