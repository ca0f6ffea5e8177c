package appliance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/config"
	umail "github.com/usagemeter/usagemeter/internal/mail"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/scheduler"
	"github.com/usagemeter/usagemeter/internal/smtptest"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/report"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// fakeClock is the injected clock of the daemon under test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// testProduct is a collector for tests: it fails in the hours listed in
// down, and counts its collections per hour.
type testProduct struct {
	mu    sync.Mutex
	down  map[time.Time]error
	calls map[time.Time]int
	block chan struct{} // if set, Collect waits on it (or ctx)
}

func newTestProduct() *testProduct {
	return &testProduct{down: map[time.Time]error{}, calls: map[time.Time]int{}}
}

func (p *testProduct) Collect(ctx context.Context, hour time.Time) ([]collectors.Observation, error) {
	p.mu.Lock()
	p.calls[hour]++
	err := p.down[hour]
	block := p.block
	p.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	return []collectors.Observation{
		{Metric: collectors.MetricVMVRAM, ObjectKey: "vc/vm/1", Quantity: 2048, Unit: "MB", Dims: map[string]string{"vm": "web01"}},
		{Metric: collectors.MetricVMVRAM, ObjectKey: "vc/vm/2", Quantity: 4096, Unit: "MB", Dims: map[string]string{"vm": "db01"}},
	}, nil
}

func (p *testProduct) callsAt(h time.Time) int { p.mu.Lock(); defer p.mu.Unlock(); return p.calls[h] }

// harness is a daemon on a real PostgreSQL and a real SMTP server.
type harness struct {
	t     *testing.T
	app   *App
	d     *Daemon
	clock *fakeClock
	smtp  *smtptest.Server
	prods map[int64]*testProduct
	logs  *bytes.Buffer
}

var t0 = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

func newHarness(t *testing.T, tweak func(c *config.Config)) *harness {
	t.Helper()
	srv := smtptest.Start(t, smtptest.Options{STARTTLS: true, Username: "meter", Password: "SmtpPassw0rd", AuthRequired: true})
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Database.URL = config.Secret(pgtest.NewDatabase(t))
	cfg.SMTP = config.SMTP{Host: srv.Host(), Port: srv.Port(), TLS: "starttls", Auth: "plain", Username: "meter", Password: "SmtpPassw0rd", From: "meter@provider.example", Timeout: config.Duration(5 * time.Second)}
	cfg.Alerts.To = []string{"ops@provider.example"}
	cfg.Collection.Retries = 0
	if tweak != nil {
		tweak(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	h := &harness{t: t, clock: &fakeClock{t: t0}, smtp: srv, prods: map[int64]*testProduct{}, logs: logs}
	app, err := openWithConfig(context.Background(), logs, &cfg, openOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(app.Close)
	h.app = app
	h.d = h.newDaemon()
	return h
}

func (h *harness) newDaemon() *Daemon {
	h.t.Helper()
	sender, err := newSenderForTest(h)
	if err != nil {
		h.t.Fatal(err)
	}
	d, err := newDaemonWith(h.app, nil, daemonOptions{now: h.clock.Now, sender: sender, factory: func(t collectors.Target) (collectors.Collector, error) {
		p, ok := h.prods[t.ProductID]
		if !ok {
			return nil, fmt.Errorf("no test product %d", t.ProductID)
		}
		return p, nil
	}})
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

func newSenderForTest(h *harness) (*umail.Sender, error) {
	mc := mailConfig(h.app.Config.SMTP)
	mc.RootCAs = h.smtp.CertPool()
	return umail.NewSender(mc, h.app.Log)
}

func (h *harness) addProduct(endpoint string) (int64, *testProduct) {
	h.t.Helper()
	id, err := h.app.Store.AddProduct(context.Background(), store.Product{Kind: "test", Endpoint: endpoint, Username: "meter", Password: "ProductPassw0rd"})
	if err != nil {
		h.t.Fatal(err)
	}
	p := newTestProduct()
	h.prods[id] = p
	return id, p
}

// hour runs hour n after t0 (collection, then the outbox a minute later).
func (h *harness) hour(n int) []scheduler.Result {
	h.t.Helper()
	at := t0.Add(time.Duration(n) * time.Hour)
	h.clock.Set(at.Add(5 * time.Minute))
	res, err := h.d.sched.RunHour(context.Background(), at)
	if err != nil {
		h.t.Fatal(err)
	}
	h.clock.Set(at.Add(6 * time.Minute))
	h.d.outboxJob(context.Background())
	return res
}

func subjects(msgs []smtptest.Message) []string {
	var out []string
	for _, m := range msgs {
		msg, err := netmail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			out = append(out, "unparsable: "+err.Error())
			continue
		}
		subj, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
		out = append(out, subj)
	}
	return out
}

// TestOutageThenRecovery: a product unreachable for 3 hours, then back:
// exactly one failure mail and one resolved mail, naming product and error.
func TestOutageThenRecovery(t *testing.T) {
	h := newHarness(t, nil)
	id, p := h.addProduct("https://vc01.provider.example")
	okID, _ := h.addProduct("https://vc02.provider.example")
	for n := 1; n <= 3; n++ {
		p.down[t0.Add(time.Duration(n)*time.Hour)] = errors.New("dial tcp 10.0.0.5:443: connect: connection refused")
	}
	for n := 0; n <= 5; n++ {
		h.hour(n)
	}
	got := subjects(h.smtp.Messages())
	want := []string{
		fmt.Sprintf("[usagemeter] collection from test https://vc01.provider.example (product %d) failing", id),
		fmt.Sprintf("[usagemeter] resolved: collection from test https://vc01.provider.example (product %d) works again", id),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("mails:\n got  %q\n want %q", got, want)
	}
	first := string(h.smtp.Messages()[0].Data)
	for _, s := range []string{"connection refused", "vc01.provider.example", "What to do"} {
		if !strings.Contains(first, s) {
			t.Fatalf("failure mail lacks %q:\n%s", s, first)
		}
	}
	// Three failed hours are recorded; the other product never missed one.
	for n := 1; n <= 3; n++ {
		r, err := h.app.Store.Run(context.Background(), id, t0.Add(time.Duration(n)*time.Hour))
		if err != nil || r.State != store.RunFailed {
			t.Fatalf("hour %d: %+v %v", n, r, err)
		}
		if r2, _ := h.app.Store.Run(context.Background(), okID, t0.Add(time.Duration(n)*time.Hour)); r2.State != store.RunDone {
			t.Fatalf("healthy product hour %d: %+v", n, r2)
		}
	}
	if strings.Contains(h.logs.String(), "ProductPassw0rd") || strings.Contains(h.logs.String(), "SmtpPassw0rd") {
		t.Fatal("a password reached the log")
	}
}

func TestReminders(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Alerts.ReminderInterval = config.Duration(2 * time.Hour) })
	_, p := h.addProduct("https://nsx.provider.example")
	for n := 0; n < 5; n++ {
		p.down[t0.Add(time.Duration(n)*time.Hour)] = errors.New("HTTP 503")
	}
	for n := 0; n <= 5; n++ {
		h.hour(n)
	}
	got := subjects(h.smtp.Messages())
	// Opened at hour 0, reminders at hours 2 and 4, resolved at hour 5.
	if len(got) != 4 || !strings.Contains(got[0], "failing") || !strings.Contains(got[1], "reminder") || !strings.Contains(got[2], "reminder") || !strings.Contains(got[3], "resolved") {
		t.Fatalf("mails: %q", got)
	}
}

func TestFailureThreshold(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Alerts.FailureThreshold = 3 })
	_, p := h.addProduct("https://srm.provider.example")
	for n := 0; n < 2; n++ {
		p.down[t0.Add(time.Duration(n)*time.Hour)] = errors.New("timeout")
	}
	for n := 0; n <= 3; n++ {
		h.hour(n)
	}
	if got := subjects(h.smtp.Messages()); len(got) != 0 {
		t.Fatalf("two failed hours under a threshold of 3 should mail nothing: %q", got)
	}
}

// TestSMTPDownThenUp: every mail is delivered once SMTP returns, none twice.
func TestSMTPDownThenUp(t *testing.T) {
	h := newHarness(t, nil)
	_, p := h.addProduct("https://vcd.provider.example")
	_, q := h.addProduct("https://vcda.provider.example")
	if err := h.smtp.Down(); err != nil {
		t.Fatal(err)
	}
	p.down[t0] = errors.New("boom p")
	q.down[t0] = errors.New("boom q")
	h.hour(0) // two failure mails queued, SMTP down
	h.hour(1) // two resolved mails queued, SMTP still down
	// Two failure and two resolved mails queued; the oldest waits for over
	// an hour, so the outbox-stuck alert is queued too.
	st, _ := h.app.Store.OutboxStats(context.Background())
	if st.Queued != 5 || len(h.smtp.Messages()) != 0 {
		t.Fatalf("while down: %+v, %d delivered", st, len(h.smtp.Messages()))
	}
	if err := h.smtp.Up(); err != nil {
		t.Fatal(err)
	}
	// Backoff: the worker retries when due; walk the clock forward.
	for i := 0; i < 20 && len(h.smtp.Messages()) < 6; i++ {
		h.clock.Set(h.clock.Now().Add(10 * time.Minute))
		h.d.outboxJob(context.Background())
	}
	msgs := h.smtp.Messages()
	got := subjects(msgs)
	if len(msgs) != 6 || !strings.Contains(got[5], "resolved: mail outbox flowing again") {
		t.Fatalf("delivered %d mails, want 4 + outbox stuck + its resolution: %q", len(msgs), got)
	}
	ids := map[string]bool{}
	for _, m := range msgs {
		msg, err := netmail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		id := msg.Header.Get("Message-Id")
		if id == "" || ids[id] {
			t.Fatalf("mail without Message-ID or delivered twice: %q", id)
		}
		ids[id] = true
	}
	if st, _ := h.app.Store.OutboxStats(context.Background()); st.Queued != 0 {
		t.Fatalf("outbox not drained: %+v", st)
	}
	// A few more runs deliver nothing new.
	h.clock.Set(h.clock.Now().Add(time.Hour))
	h.d.outboxJob(context.Background())
	if len(h.smtp.Messages()) != 6 {
		t.Fatal("mail sent twice")
	}
}

// TestTwoSchedulersOneDatabase: each (product, hour) collected once.
func TestTwoSchedulersOneDatabase(t *testing.T) {
	h := newHarness(t, nil)
	var prods []*testProduct
	for i := 0; i < 6; i++ {
		_, p := h.addProduct(fmt.Sprintf("https://vc%02d.provider.example", i))
		prods = append(prods, p)
	}
	other := h.newDaemon()
	var wg sync.WaitGroup
	for _, d := range []*Daemon{h.d, other} {
		wg.Add(1)
		go func(d *Daemon) {
			defer wg.Done()
			for n := 0; n < 4; n++ {
				if _, err := d.sched.RunHour(context.Background(), t0.Add(time.Duration(n)*time.Hour)); err != nil {
					t.Error(err)
				}
			}
		}(d)
	}
	wg.Wait()
	for i, p := range prods {
		for n := 0; n < 4; n++ {
			if c := p.callsAt(t0.Add(time.Duration(n) * time.Hour)); c != 1 {
				t.Fatalf("product %d hour %d collected %d times", i, n, c)
			}
		}
	}
}

// TestKilledMidCollection: a daemon that died holding an hour's claim leaves
// no spans; once its lease expires the next run collects the hour.
func TestKilledMidCollection(t *testing.T) {
	h := newHarness(t, nil)
	id, p := h.addProduct("https://vc.provider.example")
	ctx := context.Background()
	// The dead daemon claimed hour 0 with a short lease and never committed.
	if c, err := h.app.Store.ClaimHour(ctx, id, t0, "dead-daemon", 300*time.Millisecond); err != nil || !c.Claimed {
		t.Fatal(c, err)
	}
	res := h.hour(0)
	if res[0].Skipped != "leased" || p.callsAt(t0) != 0 {
		t.Fatalf("collected an hour leased to another daemon: %+v", res[0])
	}
	if sp, _ := h.app.Store.Spans(ctx, id); len(sp) != 0 {
		t.Fatalf("partial spans: %v", sp)
	}
	time.Sleep(400 * time.Millisecond)
	res = h.hour(0)
	if res[0].Err != nil || res[0].Skipped != "" || p.callsAt(t0) != 1 {
		t.Fatalf("after lease expiry: %+v", res[0])
	}
	r, _ := h.app.Store.Run(ctx, id, t0)
	if r.State != store.RunDone || r.Attempts != 2 || r.Objects != 2 {
		t.Fatalf("run: %+v", r)
	}
}

// TestHangingProductHitsTimeout: a product that hangs past its timeout fails
// its hour with a clear error; others are collected meanwhile.
func TestHangingProductHitsTimeout(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Collection.Timeout = config.Duration(300 * time.Millisecond)
		c.Collection.CallTimeout = config.Duration(100 * time.Millisecond)
	})
	_, p := h.addProduct("https://hang.provider.example")
	okID, _ := h.addProduct("https://ok.provider.example")
	p.block = make(chan struct{})
	defer close(p.block)
	res := h.hour(0)
	var hung, ok scheduler.Result
	for _, r := range res {
		if r.Product.ID == okID {
			ok = r
		} else {
			hung = r
		}
	}
	if ok.Err != nil || hung.Err == nil || !strings.Contains(hung.Err.Error(), "did not finish within collection.timeout (300ms)") {
		t.Fatalf("ok: %v, hung: %v", ok.Err, hung.Err)
	}
}

// TestDeactivationAndDailyRetry: after N failed hours the product is
// deactivated (with a mail), retried once a day, and reactivated.
func TestDeactivationAndDailyRetry(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Alerts.DeactivateAfter = 3 })
	id, p := h.addProduct("https://horizon.provider.example")
	for n := 0; n < 30; n++ {
		p.down[t0.Add(time.Duration(n)*time.Hour)] = errors.New("401 Unauthorized")
	}
	for n := 0; n < 3; n++ {
		h.hour(n)
	}
	pr, _ := h.app.Store.Product(context.Background(), id)
	if pr.Active || pr.DeactivatedAt == nil {
		t.Fatalf("not deactivated after 3 failed hours: %+v", pr)
	}
	// Deactivated at hour 2 (12:06): only hour 12:00 of the next day is tried.
	tried := 0
	for n := 3; n <= 27; n++ {
		before := p.callsAt(t0.Add(time.Duration(n) * time.Hour))
		h.hour(n)
		if p.callsAt(t0.Add(time.Duration(n)*time.Hour)) > before {
			tried++
			if n != 26 {
				t.Fatalf("deactivated product tried at hour %d", n)
			}
		}
	}
	if tried != 1 {
		t.Fatalf("daily retry ran %d times in a day", tried)
	}
	// The next day's retry succeeds: reactivated.
	h.hour(50)
	pr, _ = h.app.Store.Product(context.Background(), id)
	if !pr.Active {
		t.Fatal("not reactivated after a successful retry")
	}
	got := strings.Join(subjects(h.smtp.Messages()), "\n")
	for _, s := range []string{"failing", "deactivated after 3 failed hours", "reactivated", "resolved"} {
		if !strings.Contains(got, s) {
			t.Fatalf("mails lack %q:\n%s", s, got)
		}
	}
}

// TestMonthlyReportJob: an unregistered appliance gets a report-failed alert
// that says how to register; once registered, the job delivers the report
// (encrypted, attached) and the alert resolves.
func TestMonthlyReportJob(t *testing.T) {
	key, err := report.GenerateKey("Aggregator", "usage@aggregator.example", t0.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := report.ExportPublic(key)
	keyFile := filepath.Join(t.TempDir(), "aggregator.asc")
	if err := os.WriteFile(keyFile, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *config.Config) {
		c.Report.To = []string{"usage@aggregator.example"}
		c.Report.RecipientKeys = []string{keyFile}
	})
	h.addProduct("https://vc.provider.example")
	for n := 0; n < 3; n++ {
		h.hour(n)
	}
	ctx := context.Background()
	h.clock.Set(time.Date(2026, 6, 1, 2, 0, 0, 0, time.UTC))
	h.d.reportJob(ctx)
	h.d.outboxJob(ctx)
	got := subjects(h.smtp.Messages())
	if len(got) != 1 || !strings.Contains(got[0], "monthly report not delivered") || !strings.Contains(string(h.smtp.Messages()[0].Data), "usagemeter register") {
		t.Fatalf("unregistered: %q", got)
	}
	if err := h.app.Store.Register(ctx, "CONTRACT-42", "rental", h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	h.clock.Set(h.clock.Now().Add(time.Hour))
	h.d.reportJob(ctx)
	h.d.outboxJob(ctx)
	msgs := h.smtp.Messages()
	got = subjects(msgs)
	var reportMail string
	for i, s := range got {
		if strings.Contains(strings.ToLower(s), "usage") && !strings.Contains(s, "not delivered") && !strings.Contains(s, "resolved") {
			reportMail = string(msgs[i].Data)
		}
	}
	if reportMail == "" || !strings.Contains(reportMail, ".gpg") {
		t.Fatalf("no report mail with an encrypted attachment: %q", got)
	}
	if !strings.Contains(strings.Join(got, "\n"), "resolved: monthly report delivered") {
		t.Fatalf("report alert not resolved: %q", got)
	}
}

// TestReportListFollowsTheOutbox: once the worker delivered the report mail,
// `report list` shows the e-mail channel as sent, not queued.
func TestReportListFollowsTheOutbox(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	id, err := h.app.Store.EnqueueMail(ctx, store.Mail{Kind: "report", To: []string{"usage@aggregator.example"}, Subject: "Usage report", Text: "x", CreatedAt: h.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	c := store.ChannelStatus{State: store.ChannelQueued, Detail: fmt.Sprintf("outbox %d", id)}
	if got := OutboxState(ctx, h.app.Store, c); got != store.ChannelQueued {
		t.Fatalf("before delivery: %s", got)
	}
	h.d.outboxJob(ctx)
	if got := OutboxState(ctx, h.app.Store, c); got != "sent" {
		t.Fatalf("after delivery: %s", got)
	}
}
