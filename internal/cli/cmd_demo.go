//go:build demo

package cli

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/smtptest"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
	"github.com/usagemeter/usagemeter/internal/web/auth"
	"github.com/usagemeter/usagemeter/report"
)

func init() {
	register(&command{name: "demo", summary: "a simulated provider's month end to end: collection, alerts, report, decryption (--short, --serve)", run: runDemo})
}

// demoOptions shape a demo run.
type demoOptions struct {
	dataDir  string
	month    string // YYYY-MM; "" = the previous calendar month
	hours    int    // hours of the month collected; 0 = all of it
	vms      int    // VMs at the start, about
	seed     uint64
	serve    bool
	listen   string
	downAt   int // first hour vc02 is down; -1 = default
	downFor  int
	progress bool
}

// demoMarker is written into a demo data dir: only such a dir is wiped.
const demoMarker = ".usagemeter-demo"

func runDemo(ctx context.Context, e *Env, args []string) error {
	fs := newDemoFlags(e)
	var o demoOptions
	fs.StringVar(&o.dataDir, "data-dir", "demo-data", "data directory, wiped at start (only an empty one or one a demo made)")
	fs.StringVar(&o.month, "month", "", "month to simulate, YYYY-MM (default: the previous calendar month)")
	fs.IntVar(&o.hours, "hours", 0, "collect only the first N hours of the month (the rest are reported as gaps)")
	short := fs.Bool("short", false, "a short run: the first 3 days of the month (for CI); same as --hours 72")
	fs.IntVar(&o.vms, "vms", 200, "VMs of the simulated provider at the start, about")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the simulated churn (same seed, same month)")
	fs.BoolVar(&o.serve, "serve", false, "afterwards keep the daemon running against the simulators until Ctrl-C")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "with --serve: HTTP address of the daemon (/metrics, /healthz)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *short && o.hours == 0 {
		o.hours = 72
	}
	if o.hours < 0 || o.vms < 1 {
		return usagef("--hours and --vms must be positive")
	}
	o.downAt, o.downFor, o.progress = -1, 4, true
	_, err := runDemoWith(ctx, e, o)
	return err
}

// demoClock is the injected clock: fake during the month, then real.
type demoClock struct {
	mu   sync.Mutex
	t    time.Time
	real bool
}

func (c *demoClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.real {
		return time.Now()
	}
	return c.t
}

func (c *demoClock) Set(t time.Time) { c.mu.Lock(); c.t, c.real = t, false; c.mu.Unlock() }
func (c *demoClock) Real()           { c.mu.Lock(); c.real = true; c.mu.Unlock() }

// demoRun is what a demo produced: the files and the figures it printed.
type demoRun struct {
	DataDir     string
	Config      string
	Bundle      string // the encrypted bundle as stored and mailed
	Decrypted   string // the decrypted copy of the mailed attachment
	PrivateKey  string // the aggregator's private key (demo only)
	MailDir     string
	Rows        [][]string // Monthly_Usage.tsv rows of the decrypted report, header excluded
	Manifest    report.Manifest
	Subjects    []string    // of every captured mail, in order
	MailDates   []time.Time // their Date headers
	HoursRun    int
	CollectTook time.Duration
}

// runDemoWith runs the demo; it returns after printing the summary (or,
// with serve, when ctx ends).
func runDemoWith(ctx context.Context, e *Env, o demoOptions) (*demoRun, error) {
	began := time.Now()
	// The simulator copies every property it returns through XML: a lot of
	// short-lived garbage. Collect it less often while the demo runs.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	out := e.Stdout
	var err error
	m := report.PreviousMonth(e.Now(), time.UTC)
	if o.month != "" {
		if m, err = report.ParseMonth(o.month, time.UTC); err != nil {
			return nil, usageError{"--month: " + err.Error()}
		}
		if m.End.After(e.Now()) {
			return nil, usagef("--month %s is not over yet: the demo reports a finished month", o.month)
		}
	}
	dir, err := prepareDemoDir(o.dataDir)
	if err != nil {
		return nil, err
	}
	run := &demoRun{DataDir: dir, MailDir: filepath.Join(dir, "mail"), Config: filepath.Join(dir, "config.yaml")}
	hours := m.Hours()
	if o.hours > 0 && o.hours < hours {
		hours = o.hours
	}
	downAt := o.downAt
	if downAt < 0 {
		downAt = 100
		if hours < 130 {
			downAt = hours / 3
		}
	}
	fmt.Fprintf(out, "usagemeter demo: a simulated provider's month %s, %d of its %d hours collected hour by hour\n", m, hours, m.Hours())
	fmt.Fprintf(out, "  data dir %s (wiped first); log in %s\n", dir, filepath.Join(dir, "demo.log"))

	// The aggregator's key pair: the report is encrypted to it.
	aggKey, pubPath, privPath, err := demoAggregatorKey(dir, e.Now())
	if err != nil {
		return nil, err
	}
	run.PrivateKey = privPath

	// The SMTP capture: every mail goes there through the outbox.
	smtp, err := smtptest.New(smtptest.Options{Domain: "smtp.demo.invalid"})
	if err != nil {
		return nil, fmt.Errorf("starting the SMTP capture: %w", err)
	}
	defer smtp.Close()

	cfg := demoConfig(dir, smtp, pubPath, o.listen)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("demo configuration: %w", err)
	}
	if err := os.WriteFile(run.Config, []byte(demoConfigYAML(&cfg)), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(dir, "demo.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	clock := &demoClock{t: m.Start}
	t0 := time.Now()
	app, err := appliance.OpenConfig(ctx, &cfg, logf)
	if err != nil {
		return nil, err
	}
	defer app.Close()
	fmt.Fprintf(out, "  managed PostgreSQL up and migrated in %s (%s)\n", time.Since(t0).Round(time.Millisecond), filepath.Join(dir, "postgres"))
	if err := app.Store.Register(ctx, "DEMO-CONTRACT-0001", "rental", e.Now()); err != nil {
		return nil, err
	}

	// The provider: two simulated vCenters.
	t0 = time.Now()
	rng := rand.New(rand.NewPCG(o.seed, 0x5eed))
	vcs, err := demoProvider(ctx, rng, o.vms)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, v := range vcs {
			v.sim.Close()
		}
	}()
	for _, v := range vcs {
		opts := map[string]any{}
		if v.vcfEdition != "" {
			opts["vcf_edition"] = v.vcfEdition
		}
		raw, _ := json.Marshal(opts)
		p := store.Product{Kind: "vcenter", Endpoint: v.sim.URL(), Username: v.sim.User(), Password: config.Secret(v.sim.Password()),
			Thumbprint: tlsutil.Normalize(v.sim.Thumbprint()), Options: raw}
		if v.productID, err = demoAddProduct(ctx, app, p); err != nil {
			return nil, fmt.Errorf("adding %s: %w", v.name, err)
		}
		on, total := v.inventory()
		edition := "not VCF"
		if v.vcfEdition != "" {
			edition = "VCF " + v.vcfEdition
		}
		fmt.Fprintf(out, "  product %d: %s %s (%s), %d VMs (%d powered on), %d hosts, certificate accepted by thumbprint\n",
			v.productID, v.name, v.sim.URL(), edition, total, on, len(v.sim.Hosts()))
	}
	// The REST products whose collectors are linked in, in front of vc01.
	vcd := demoCloudDirector(vcs[0])
	if vcd != nil {
		defer vcd.close()
		p := store.Product{Kind: "vcd", Endpoint: vcd.url, Username: demoVCDUser, Password: config.Secret(demoVCDPassword),
			Thumbprint: tlsutil.Normalize(vcd.thumb)}
		if vcd.productID, err = demoAddProduct(ctx, app, p); err != nil {
			return nil, fmt.Errorf("adding the Cloud Director: %w", err)
		}
		names := make([]string, len(vcd.orgs))
		for i, f := range vcd.orgs {
			names[i] = f.customer
			if _, err := app.Store.AddCustomerRule(ctx, store.CustomerRule{Label: f.customer, ObjectType: "vcd-org", ObjectName: f.customer}); err != nil {
				return nil, err
			}
		}
		fmt.Fprintf(out, "  product %d: vcd01 %s (Cloud Director in front of vc01; organisations %s), certificate accepted by thumbprint\n",
			vcd.productID, vcd.url, strings.Join(names, ", "))
	}
	nsx := demoNSX(vcs[0])
	if nsx != nil {
		defer nsx.close()
		p := store.Product{Kind: "nsxt", Endpoint: nsx.url, Username: demoNSXUser, Password: config.Secret(demoNSXPassword),
			Thumbprint: tlsutil.Normalize(nsx.thumb), PairedID: vcs[0].productID}
		if nsx.productID, err = demoAddProduct(ctx, app, p); err != nil {
			return nil, fmt.Errorf("adding the NSX Manager: %w", err)
		}
		fmt.Fprintf(out, "  product %d: nsx01 %s (NSX-T paired with vc01: Acme Corp routed, Initech with a firewall policy, Umbrella Health with IDS/IPS)\n",
			nsx.productID, nsx.url)
	}
	nsxv := demoNSXV(vcs[1])
	if nsxv != nil {
		defer nsxv.close()
		p := store.Product{Kind: "nsxv", Endpoint: nsxv.url, Username: demoNSXVUser, Password: config.Secret(demoNSXVPassword),
			Thumbprint: tlsutil.Normalize(nsxv.thumb), PairedID: vcs[1].productID}
		if nsxv.productID, err = demoAddProduct(ctx, app, p); err != nil {
			return nil, fmt.Errorf("adding the NSX-V Manager: %w", err)
		}
		fmt.Fprintf(out, "  product %d: nsxv01 %s (NSX-V paired with vc02: logical switches with an edge, a firewall rule and an L2 VPN)\n",
			nsxv.productID, nsxv.url)
	}
	// The products whose simulators the demo rebuilds hour by hour: SRM on
	// vc01, Cloud Director Availability in front of the Cloud Director, a
	// Horizon pod, a Horizon DaaS service provider.
	var more []*demoProduct
	for _, mk := range []func() (*demoProduct, error){
		func() (*demoProduct, error) { return demoSRM(vcs[0], o.seed) },
		func() (*demoProduct, error) { return demoVCDA(vcd, o.seed) },
		func() (*demoProduct, error) { return demoHorizon(o.seed, m.Start) },
		func() (*demoProduct, error) { return demoDaaS(o.seed, m.Start) },
		func() (*demoProduct, error) { return demoVROps(vcs[0]) },
		func() (*demoProduct, error) { return demoVRNI(vcs[0]) },
		func() (*demoProduct, error) { return demoTKGm(vcs[0]) },
		func() (*demoProduct, error) { return demoVRA8(vcs[0]) },
	} {
		p, err := mk()
		if err != nil {
			return nil, err
		}
		defer p.close()
		more = append(more, p)
		if p.p.ID, err = demoAddProduct(ctx, app, p.p); err != nil {
			return nil, fmt.Errorf("adding %s: %w", p.short, err)
		}
		fmt.Fprintf(out, "  product %d: %s %s (%s), certificate accepted by thumbprint\n", p.p.ID, p.short, p.srv.url, p.desc)
	}
	for _, f := range demoCustomers(vcs) {
		if _, err := app.Store.AddCustomerRule(ctx, store.CustomerRule{Label: f.customer, ObjectType: "folder", ObjectName: f.name}); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(out, "  simulators ready in %s; SMTP capture on %s\n", time.Since(t0).Round(time.Millisecond), smtp.Addr())

	nProducts := len(vcs)
	if vcd != nil {
		nProducts++
	}
	if nsx != nil {
		nProducts++
	}
	if nsxv != nil {
		nProducts++
	}
	nProducts += len(more)

	// The month, hour by hour, through the daemon's own code.
	d, err := appliance.NewDaemon(app, nil, clock.Now)
	if err != nil {
		return nil, err
	}
	defer d.Scheduler().Stop(time.Second)
	down := vcs[len(vcs)-1]
	var churn churnStats
	t0 = time.Now()
	var slowest, churnTook, runTook, outboxTook time.Duration
	failed := 0
	for h := 0; h < hours; h++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		at := m.Start.Add(time.Duration(h) * time.Hour)
		cs := time.Now()
		if h > 0 {
			for _, v := range vcs {
				if err := v.churn(ctx, rng, &churn); err != nil {
					return nil, err
				}
			}
		}
		if vcd != nil {
			vcd.sync()
		}
		for _, p := range more {
			p.tick(h, at)
		}
		switch h {
		case downAt:
			if err := down.sim.Down(); err != nil {
				return nil, err
			}
		case downAt + o.downFor:
			if err := down.sim.Up(); err != nil {
				return nil, err
			}
		}
		churnTook += time.Since(cs)
		clock.Set(at.Add(time.Duration(cfg.Collection.Minute) * time.Minute))
		hs := time.Now()
		res, err := d.Scheduler().RunHour(ctx, at)
		if err != nil {
			return nil, err
		}
		slowest = max(slowest, time.Since(hs))
		runTook += time.Since(hs)
		for _, r := range res {
			if r.Err != nil {
				failed++
			}
		}
		clock.Set(at.Add(time.Duration(cfg.Collection.Minute+1) * time.Minute))
		ob := time.Now()
		d.RunOutbox(ctx)
		outboxTook += time.Since(ob)
		if o.progress && ((h+1)%(24*7) == 0 || h+1 == hours) {
			on, total := 0, 0
			for _, v := range vcs {
				a, b := v.inventory()
				on, total = on+a, total+b
			}
			fmt.Fprintf(out, "  %s: %4d hours collected in %s; %d VMs (%d on); %d mails captured\n",
				at.Format("2006-01-02 15h"), h+1, time.Since(t0).Round(100*time.Millisecond), total, on, len(smtp.Messages()))
		}
	}
	if down.sim.IsDown() {
		_ = down.sim.Up()
	}
	run.HoursRun = hours
	run.CollectTook = time.Since(t0)
	fmt.Fprintf(out, "  collection: %d hours x %d products in %s (%s collecting and storing, slowest hour %s; %s editing the simulators; %s in the outbox job), %d failed product-hours\n",
		hours, nProducts, run.CollectTook.Round(100*time.Millisecond), runTook.Round(100*time.Millisecond), slowest.Round(time.Millisecond),
		churnTook.Round(100*time.Millisecond), outboxTook.Round(100*time.Millisecond), failed)
	fmt.Fprintf(out, "  churn: %d power-ons, %d power-offs, %d suspends, %d resizes, %d new and %d deleted VMs\n",
		churn.powerOn, churn.powerOff, churn.suspended, churn.resized, churn.created, churn.deleted)
	for _, p := range more {
		if p.churned == nil {
			continue
		}
		if c := p.churned(); c != "" {
			fmt.Fprintf(out, "  churn: %s\n", c)
		}
	}

	// The report, as the monthly job makes it, now.
	clock.Real()
	if err := demoReport(ctx, app, d, m, smtp, aggKey, run); err != nil {
		return nil, err
	}
	anon, err := app.Store.AnonMap(ctx)
	if err != nil {
		return nil, err
	}
	printDemoSummary(out, run, vcs, vcd, nsx, nsxv, more, anon, began)

	if !o.serve {
		return run, nil
	}
	return run, demoServe(ctx, e, app, run)
}

// newDemoFlags is the demo's FlagSet (no --config: the demo writes its own).
func newDemoFlags(e *Env) *flag.FlagSet {
	fs := flag.NewFlagSet("usagemeter demo", flag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	e.flags = fs
	return fs
}

// prepareDemoDir makes dir an empty demo data dir: it is created when
// missing, and wiped when it is empty or was made by a demo (marker file).
// Anything else is refused, so that --data-dir cannot wipe a real one.
func prepareDemoDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	entries, err := os.ReadDir(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return "", err
	case len(entries) > 0:
		if _, err := os.Stat(filepath.Join(abs, demoMarker)); err != nil {
			return "", fmt.Errorf("--data-dir %s is not empty and was not made by `usagemeter demo`: refusing to wipe it", abs)
		}
		if err := os.RemoveAll(abs); err != nil {
			return "", fmt.Errorf("wiping %s: %w", abs, err)
		}
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(abs, demoMarker), []byte("made by usagemeter demo; wiped by the next run\n"), 0o600); err != nil {
		return "", err
	}
	return abs, nil
}

// demoAggregatorKey makes the aggregator's key pair and writes it into
// dir/keys: the public key is the report's recipient; the private key
// decrypts it (here, and with stock gpg).
func demoAggregatorKey(dir string, now time.Time) (*openpgp.Entity, string, string, error) {
	k, err := report.GenerateKey("Demo Aggregator", "usage-reports@aggregator.example", now)
	if err != nil {
		return nil, "", "", err
	}
	kd := filepath.Join(dir, "keys")
	if err := os.MkdirAll(kd, 0o700); err != nil {
		return nil, "", "", err
	}
	pub, err := report.ExportPublic(k)
	if err != nil {
		return nil, "", "", err
	}
	pubPath := filepath.Join(kd, "aggregator-public.asc")
	if err := os.WriteFile(pubPath, pub, 0o600); err != nil {
		return nil, "", "", err
	}
	var priv strings.Builder
	aw, err := armor.Encode(&priv, openpgp.PrivateKeyType, nil)
	if err != nil {
		return nil, "", "", err
	}
	if err := k.SerializePrivate(aw, nil); err != nil {
		return nil, "", "", err
	}
	if err := aw.Close(); err != nil {
		return nil, "", "", err
	}
	privPath := filepath.Join(kd, "aggregator-private.asc")
	if err := os.WriteFile(privPath, []byte(priv.String()+"\n"), 0o600); err != nil {
		return nil, "", "", err
	}
	return k, pubPath, privPath, nil
}

// demoConfig is the demo appliance's configuration: managed PostgreSQL in
// dir, the SMTP capture (local, no TLS, no auth), alerts to the NOC, the
// report mailed to the aggregator encrypted to its key.
func demoConfig(dir string, smtp *smtptest.Server, recipientKey, listen string) config.Config {
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.HTTP.Listen = listen
	cfg.SMTP = config.SMTP{Host: smtp.Host(), Port: smtp.Port(), TLS: "none", Auth: "none", From: "usagemeter@provider.example",
		Timeout: config.Duration(10 * time.Second)}
	cfg.Alerts.To = []string{"noc@provider.example"}
	cfg.Report.To = []string{"usage-reports@aggregator.example"}
	cfg.Report.RecipientKeys = []string{recipientKey}
	cfg.Collection.Retries = 0 // a failed hour stays failed: the demo's clock does not wait
	cfg.Collection.CallTimeout = config.Duration(20 * time.Second)
	cfg.Log.Level = "info"
	return cfg
}

// demoConfigYAML is cfg as a file, so that other commands can look at the
// demo's data afterwards (report list, anonymize reverse, product list).
func demoConfigYAML(c *config.Config) string {
	return fmt.Sprintf(`# Written by usagemeter demo. The SMTP capture and the simulators live only
# while the demo runs (or with --serve); the database and files stay.
data_dir: %s
http:
  listen: %q
smtp:
  host: %s
  port: %d
  tls: none
  auth: none
  from: %s
alerts:
  to: [%s]
report:
  to: [%s]
  recipient_keys: [%s]
collection:
  retries: 0
log:
  level: info
`, c.DataDir, c.HTTP.Listen, c.SMTP.Host, c.SMTP.Port, c.SMTP.From, strings.Join(c.Alerts.To, ", "),
		strings.Join(c.Report.To, ", "), strings.Join(c.Report.RecipientKeys, ", "))
}

// demoAddProduct registers a product the way `product add` does.
func demoAddProduct(ctx context.Context, app *appliance.App, p store.Product) (int64, error) {
	id, _, err := appliance.AddProduct(ctx, app, p)
	return id, err
}

// demoServe keeps the daemon running against the simulators until ctx ends,
// with an admin account for the web console and API (its password printed).
func demoServe(ctx context.Context, e *Env, app *appliance.App, run *demoRun) error {
	pw := crand.Text()
	if _, err := auth.SetPassword(ctx, app.Store, "admin", pw, e.Now()); err != nil {
		return err
	}
	ready := make(chan string, 1)
	go func() {
		select {
		case url := <-ready:
			fmt.Fprintf(e.Stdout, "\nServing the demo appliance on %s (web console and /api/v1, GET /metrics, /healthz), collecting the simulators every hour at minute %d.\n"+
				"Log in as admin with the password %s (the certificate is self-signed: data_dir/tls/cert.pem).\n"+
				"The simulators and the SMTP capture stay up; new mails are captured, not saved. Try: curl -sk %s/metrics | grep usagemeter_\n"+
				"Ctrl-C stops everything; afterwards the data stays for: usagemeter report list --config %s\n", url, app.Config.Collection.Minute, pw, url, run.Config)
		case <-ctx.Done():
		}
	}()
	return serve(ctx, app, ready)
}
