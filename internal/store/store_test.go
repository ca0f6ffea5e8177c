package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/seal"
	"github.com/usagemeter/usagemeter/internal/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

var h0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func newStore(t testing.TB) *store.Store {
	t.Helper()
	box, err := seal.NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return store.New(pgtest.NewPool(t), box)
}

func addProduct(t testing.TB, s *store.Store) int64 {
	t.Helper()
	id, err := s.AddProduct(context.Background(), store.Product{Kind: "vcenter", Endpoint: fmt.Sprintf("https://vc%d.example", time.Now().UnixNano()), Username: "meter"})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func vm(key string, mb float64, name string) collectors.Observation {
	return collectors.Observation{Metric: collectors.MetricVMVRAM, ObjectKey: key, Quantity: mb, Unit: "MB", Edition: "std", Dims: map[string]string{"vm": name}}
}

// collect claims and commits one hour.
func collect(t testing.TB, s *store.Store, pid int64, hour time.Time, obs ...collectors.Observation) store.MergeResult {
	t.Helper()
	ctx := context.Background()
	c, err := s.ClaimHour(ctx, pid, hour, "test", time.Minute)
	if err != nil || !c.Claimed {
		t.Fatalf("claim %s: %+v %v", hour, c, err)
	}
	res, err := s.CommitHour(ctx, pid, hour, "test", obs)
	if err != nil {
		t.Fatalf("commit %s: %v", hour, err)
	}
	return res
}

type spanView struct {
	key         string
	first, last int // hours after h0
	qty         float64
	name        string
}

func spans(t testing.TB, s *store.Store, pid int64) []spanView {
	t.Helper()
	sp, err := s.Spans(context.Background(), pid)
	if err != nil {
		t.Fatal(err)
	}
	var out []spanView
	for _, x := range sp {
		out = append(out, spanView{x.ObjectKey, int(x.FirstHour.Sub(h0).Hours()), int(x.LastHour.Sub(h0).Hours()), x.Quantity, x.Dims["vm"]})
	}
	return out
}

func hour(n int) time.Time { return h0.Add(time.Duration(n) * time.Hour) }

func TestSpanMerge(t *testing.T) {
	s := newStore(t)
	pid := addProduct(t, s)

	// Equal hash extends.
	collect(t, s, pid, hour(0), vm("a", 2048, "web"), vm("b", 1024, "db"))
	r := collect(t, s, pid, hour(1), vm("a", 2048, "web"), vm("b", 1024, "db"))
	if r.Extended != 2 || r.Inserted != 0 {
		t.Fatalf("hour 1: %+v, want 2 extended", r)
	}
	// A change (resize of a, rename of b) opens new spans.
	r = collect(t, s, pid, hour(2), vm("a", 4096, "web"), vm("b", 1024, "db-renamed"))
	if r.Extended != 0 || r.Inserted != 2 {
		t.Fatalf("hour 2: %+v, want 2 inserted", r)
	}
	// A gap (hour 3 missing) opens a new span at hour 4.
	collect(t, s, pid, hour(4), vm("a", 4096, "web"))

	want := []spanView{
		{"a", 0, 1, 2048, "web"}, {"a", 2, 2, 4096, "web"}, {"a", 4, 4, 4096, "web"},
		{"b", 0, 1, 1024, "db"}, {"b", 2, 2, 1024, "db-renamed"},
	}
	assertSpans(t, spans(t, s, pid), want)

	// The late hour 3 arrives: it extends [2,2] and joins [4,4] into one span.
	r = collect(t, s, pid, hour(3), vm("a", 4096, "web"), vm("b", 1024, "db-renamed"))
	if r.Extended != 2 || r.Joined != 1 {
		t.Fatalf("late hour 3: %+v, want 2 extended and 1 joined", r)
	}
	want = []spanView{
		{"a", 0, 1, 2048, "web"}, {"a", 2, 4, 4096, "web"},
		{"b", 0, 1, 1024, "db"}, {"b", 2, 3, 1024, "db-renamed"},
	}
	assertSpans(t, spans(t, s, pid), want)
}

func TestOutOfOrderHourWithChange(t *testing.T) {
	s := newStore(t)
	pid := addProduct(t, s)
	collect(t, s, pid, hour(5), vm("a", 1024, "x"))
	collect(t, s, pid, hour(3), vm("a", 2048, "x"))
	collect(t, s, pid, hour(4), vm("a", 2048, "x"))
	assertSpans(t, spans(t, s, pid), []spanView{{"a", 3, 4, 2048, "x"}, {"a", 5, 5, 1024, "x"}})
}

func TestRecommitIsNoop(t *testing.T) {
	s := newStore(t)
	pid := addProduct(t, s)
	ctx := context.Background()
	collect(t, s, pid, hour(0), vm("a", 1024, "x"))
	before := spans(t, s, pid)

	c, err := s.ClaimHour(ctx, pid, hour(0), "other", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if c.Claimed || c.State != store.RunDone {
		t.Fatalf("claim of a committed hour: %+v", c)
	}
	if _, err := s.CommitHour(ctx, pid, hour(0), "test", []collectors.Observation{vm("a", 9999, "changed"), vm("z", 1, "new")}); !errors.Is(err, store.ErrCommitted) {
		t.Fatalf("re-commit: %v, want ErrCommitted", err)
	}
	assertSpans(t, spans(t, s, pid), before)
}

func TestConcurrentClaimers(t *testing.T) {
	s := newStore(t)
	pid := addProduct(t, s)
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	winners := 0
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := s.ClaimHour(ctx, pid, hour(0), fmt.Sprintf("daemon-%d", i), time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if c.Claimed {
				mu.Lock()
				winners++
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	if winners != 1 {
		t.Fatalf("%d claimers won, want exactly 1", winners)
	}
}

func TestExpiredLeaseCanBeClaimed(t *testing.T) {
	s := newStore(t)
	pid := addProduct(t, s)
	ctx := context.Background()
	c, err := s.ClaimHour(ctx, pid, hour(0), "crashed", 200*time.Millisecond)
	if err != nil || !c.Claimed {
		t.Fatal(c, err)
	}
	c, _ = s.ClaimHour(ctx, pid, hour(0), "next", time.Minute)
	if c.Claimed {
		t.Fatal("claimed while the lease was still valid")
	}
	time.Sleep(300 * time.Millisecond)
	c, err = s.ClaimHour(ctx, pid, hour(0), "next", time.Minute)
	if err != nil || !c.Claimed || c.Attempts != 2 {
		t.Fatalf("after expiry: %+v %v", c, err)
	}
	// The crashed owner can no longer commit: no partial or double write.
	if _, err := s.CommitHour(ctx, pid, hour(0), "crashed", []collectors.Observation{vm("a", 1, "x")}); !errors.Is(err, store.ErrNotClaimed) {
		t.Fatalf("stale owner commit: %v", err)
	}
	if _, err := s.CommitHour(ctx, pid, hour(0), "next", []collectors.Observation{vm("a", 1, "x")}); err != nil {
		t.Fatal(err)
	}
}

func TestFailedHourCanBeRetried(t *testing.T) {
	s := newStore(t)
	pid := addProduct(t, s)
	ctx := context.Background()
	c, _ := s.ClaimHour(ctx, pid, hour(0), "d", time.Minute)
	if !c.Claimed {
		t.Fatal("not claimed")
	}
	if err := s.FailHour(ctx, pid, hour(0), "d", "connection refused"); err != nil {
		t.Fatal(err)
	}
	r, err := s.Run(ctx, pid, hour(0))
	if err != nil || r.State != store.RunFailed || r.Error != "connection refused" {
		t.Fatalf("%+v %v", r, err)
	}
	c, _ = s.ClaimHour(ctx, pid, hour(0), "d", time.Minute)
	if !c.Claimed || c.Attempts != 2 {
		t.Fatalf("retry claim: %+v", c)
	}
}

func TestDuplicateObservationsKeepFirst(t *testing.T) {
	s := newStore(t)
	pid := addProduct(t, s)
	r := collect(t, s, pid, hour(0), vm("a", 1024, "x"), vm("a", 2048, "y"))
	if r.Duplicates != 1 || r.Observations != 1 {
		t.Fatalf("%+v", r)
	}
	assertSpans(t, spans(t, s, pid), []spanView{{"a", 0, 0, 1024, "x"}})
}

func TestCredentialsSealed(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	const pw = "S3cret-Passw0rd!"
	id, err := s.AddProduct(ctx, store.Product{Kind: "vcenter", Endpoint: "https://vc.example", Username: "meter@vsphere.local", Password: config.Secret(pw)})
	if err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := s.Pool().QueryRow(ctx, `SELECT credentials FROM products WHERE id = $1`, id).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 || bytes.Contains(raw, []byte(pw)) {
		t.Fatalf("stored credential bytes contain the password or are empty: %x", raw)
	}
	var dump string
	if err := s.Pool().QueryRow(ctx, `SELECT p::text FROM products p WHERE id = $1`, id).Scan(&dump); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains([]byte(dump), []byte(pw)) {
		t.Fatal("row text contains the password")
	}
	p, err := s.Product(ctx, id)
	if err != nil || p.Password.Reveal() != pw {
		t.Fatalf("unseal: %v", err)
	}
	if fmt.Sprint(p) == "" || bytes.Contains([]byte(fmt.Sprintf("%v %+v %#v", p, p, p)), []byte(pw)) {
		t.Fatal("printing a product leaks its password")
	}

	// Another key cannot read it.
	other, _ := seal.NewBox(bytes.Repeat([]byte{8}, 32))
	if _, err := store.New(s.Pool(), other).Product(ctx, id); !errors.Is(err, seal.ErrOpen) {
		t.Fatalf("wrong key: %v", err)
	}
}

func TestApplianceKeyCheck(t *testing.T) {
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	k1, _ := seal.NewBox(bytes.Repeat([]byte{1}, 32))
	s := store.New(pool, k1)
	a, err := s.EnsureAppliance(ctx, true)
	if err != nil || a.ID == "" {
		t.Fatal(a, err)
	}
	if _, err := s.AddProduct(ctx, store.Product{Kind: "vcenter", Endpoint: "https://a", Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	again, err := s.EnsureAppliance(ctx, false)
	if err != nil || again.ID != a.ID {
		t.Fatalf("second start: %v %v", again, err)
	}
	k2, _ := seal.NewBox(bytes.Repeat([]byte{2}, 32))
	if _, err := store.New(pool, k2).EnsureAppliance(ctx, true); err == nil {
		t.Fatal("a replaced key was accepted")
	}
}

func TestDuplicateProductIdentity(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.AddProduct(ctx, store.Product{Kind: "vcenter", Endpoint: "https://10.0.0.1", InstanceID: "uuid-1"}); err != nil {
		t.Fatal(err)
	}
	_, err := s.AddProduct(ctx, store.Product{Kind: "vcenter", Endpoint: "https://vc.example", InstanceID: "uuid-1"})
	if !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("same instance under another address: %v", err)
	}
}

func TestOutbox(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	id, err := s.EnqueueMail(ctx, store.Mail{Kind: "alert", To: []string{"ops@example.com"}, Subject: "s", Text: "t",
		Attachments: []store.Attachment{{Name: "r.gpg", ContentType: "application/pgp-encrypted", Data: []byte{0, 1, 2}}}, CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.ClaimMail(ctx, now, 10, time.Minute)
	if err != nil || len(got) != 1 || got[0].ID != id || got[0].Attempts != 1 || len(got[0].Attachments) != 1 || !bytes.Equal(got[0].Attachments[0].Data, []byte{0, 1, 2}) {
		t.Fatalf("claim: %+v %v", got, err)
	}
	// Leased: a second worker gets nothing.
	if again, _ := s.ClaimMail(ctx, now, 10, time.Minute); len(again) != 0 {
		t.Fatalf("claimed twice: %+v", again)
	}
	if err := s.MarkMailFailed(ctx, id, "connection refused", now.Add(2*time.Minute), store.MailTemporary); err != nil {
		t.Fatal(err)
	}
	if early, _ := s.ClaimMail(ctx, now.Add(time.Minute), 10, time.Minute); len(early) != 0 {
		t.Fatal("claimed before its next attempt")
	}
	got, _ = s.ClaimMail(ctx, now.Add(3*time.Minute), 10, time.Minute)
	if len(got) != 1 || got[0].Attempts != 2 || got[0].LastError != "connection refused" {
		t.Fatalf("retry: %+v", got)
	}
	if err := s.MarkMailSent(ctx, id, now.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	st, err := s.OutboxStats(ctx)
	if err != nil || st.Queued != 0 {
		t.Fatalf("%+v %v", st, err)
	}
	// An expired sending lease (worker died) makes it due again.
	id2, _ := s.EnqueueMail(ctx, store.Mail{Kind: "alert", To: []string{"a@b"}, Subject: "x", Text: "y", CreatedAt: now})
	if got, _ := s.ClaimMail(ctx, now, 10, time.Minute); len(got) != 1 || got[0].ID != id2 {
		t.Fatal("claim 2")
	}
	if got, _ := s.ClaimMail(ctx, now.Add(2*time.Minute), 10, time.Minute); len(got) != 1 || got[0].Attempts != 2 {
		t.Fatalf("lease expiry: %+v", got)
	}
}

func assertSpans(t *testing.T, got, want []spanView) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("spans:\n got  %v\n want %v", got, want)
	}
}

// TestOutboxFailureClasses: a configuration failure keeps the mail queued
// (counted as misconfigured); only a refusal ends it.
func TestOutboxFailureClasses(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a, _ := s.EnqueueMail(ctx, store.Mail{Kind: "alert", To: []string{"ops@example.com"}, Subject: "a", Text: "t", CreatedAt: now})
	b, _ := s.EnqueueMail(ctx, store.Mail{Kind: "alert", To: []string{"gone@example.com"}, Subject: "b", Text: "t", CreatedAt: now})
	if got, err := s.ClaimMail(ctx, now, 10, time.Minute); err != nil || len(got) != 2 {
		t.Fatalf("claim: %d %v", len(got), err)
	}
	if err := s.MarkMailFailed(ctx, a, "authentication failed (535)", now.Add(time.Minute), store.MailConfiguration); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkMailFailed(ctx, b, "recipient refused (550 5.1.1)", now.Add(time.Minute), store.MailRefused); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkMailFailed(ctx, b, "x", now, "permanent"); err == nil {
		t.Fatal("an unknown failure class was recorded")
	}
	st, err := s.OutboxStats(ctx)
	if err != nil || st.Queued != 1 || st.Misconfigured != 1 || st.Failed != 1 {
		t.Fatalf("stats %+v %v", st, err)
	}
	if m, _ := s.MailStatus(ctx, a); m.State != store.MailQueued || m.Failure != store.MailConfiguration {
		t.Fatalf("configuration failure: %+v", m)
	}
	if m, _ := s.MailStatus(ctx, b); m.State != store.MailFailed || m.Failure != store.MailRefused {
		t.Fatalf("refusal: %+v", m)
	}
	// After a restart the configuration failures are due at once.
	if n, err := s.RetryMisconfiguredNow(ctx, now); err != nil || n != 1 {
		t.Fatalf("RetryMisconfiguredNow: %d %v", n, err)
	}
	if got, _ := s.ClaimMail(ctx, now, 10, time.Minute); len(got) != 1 || got[0].ID != a {
		t.Fatalf("not due after RetryMisconfiguredNow: %+v", got)
	}
	if err := s.MarkMailFailed(ctx, a, "authentication failed (535)", now.Add(time.Minute), store.MailConfiguration); err != nil {
		t.Fatal(err)
	}
	// report send claims it at once, before its next attempt is due.
	m, ok, err := s.ClaimMailByID(ctx, a, now, time.Minute)
	if err != nil || !ok || m.ID != a || m.Attempts != 3 {
		t.Fatalf("claim by id: %+v %v %v", m, ok, err)
	}
	if _, ok, _ := s.ClaimMailByID(ctx, a, now, time.Minute); ok {
		t.Fatal("claimed by id while leased")
	}
	if _, ok, _ := s.ClaimMailByID(ctx, b, now, time.Minute); ok {
		t.Fatal("a refused mail was claimed")
	}
	if err := s.MarkMailSent(ctx, a, now); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.MailStatus(ctx, a); m.State != store.MailSent || m.Failure != "" || m.LastError != "" {
		t.Fatalf("sent: %+v", m)
	}
}

// TestEnqueueDedupKey: a mail queued again under the same key is the same
// mail.
func TestEnqueueDedupKey(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	m := store.Mail{Kind: "report", To: []string{"b@example.com"}, Subject: "r", Text: "t", DedupKey: "report:1:email"}
	a, err := s.EnqueueMail(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.EnqueueMail(ctx, m)
	if err != nil || b != a {
		t.Fatalf("second enqueue: %d %v, want %d", b, err, a)
	}
	st, _ := s.OutboxStats(ctx)
	if st.Queued != 1 {
		t.Fatalf("%d queued", st.Queued)
	}
}

// TestQueueReportMail: the report's mail and its channel status are written
// together; a retry (after a crash, or a second daemon) finds the mail; a
// mail refused for good is set aside and a new one queued.
func TestQueueReportMail(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	rep, err := s.InsertReport(ctx, store.Report{Month: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), Version: 1, RulesVersion: "r", FiguresSHA256: "f", BundleSHA256: "b", Path: "/x"})
	if err != nil {
		t.Fatal(err)
	}
	m := store.Mail{Kind: "report", To: []string{"b@example.com"}, Subject: "r", Text: "t"}
	st := store.ChannelStatus{State: store.ChannelQueued, Attempts: 1}
	id, err := s.QueueReportMail(ctx, rep.ID, "email", m, st)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.ReportByID(ctx, rep.ID)
	if c := got.Channels["email"]; c.State != store.ChannelQueued || c.OutboxID() != id {
		t.Fatalf("channel %+v, outbox %d", c, id)
	}
	// The channel record lost (a crash before it, in the old code): the
	// retry finds the mail instead of queueing another.
	if err := s.SetReportChannel(ctx, rep.ID, "email", store.ChannelStatus{State: store.ChannelPending}); err != nil {
		t.Fatal(err)
	}
	if again, err := s.QueueReportMail(ctx, rep.ID, "email", m, st); err != nil || again != id {
		t.Fatalf("retry queued %d (%v), want %d", again, err, id)
	}
	// Refused for good: asked again, a new mail.
	if _, err := s.ClaimMail(ctx, time.Now(), 10, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkMailFailed(ctx, id, "recipient refused", time.Now(), store.MailRefused); err != nil {
		t.Fatal(err)
	}
	next, err := s.QueueReportMail(ctx, rep.ID, "email", m, st)
	if err != nil || next == id {
		t.Fatalf("after a refusal: %d %v", next, err)
	}
	if _, err := s.QueueReportMail(ctx, 999, "email", m, st); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown report: %v", err)
	}
}

// TestClaimMailKey: one claim per window, whoever asks.
func TestClaimMailKey(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if ok, err := s.ClaimMailKey(ctx, "database_down", "a", now, 24*time.Hour); err != nil || !ok {
		t.Fatalf("first claim: %v %v", ok, err)
	}
	if ok, _ := s.ClaimMailKey(ctx, "database_down", "b", now.Add(time.Minute), 24*time.Hour); ok {
		t.Fatal("second daemon claimed the same mail")
	}
	if ok, _ := s.ClaimMailKey(ctx, "database_down", "b", now.Add(25*time.Hour), 24*time.Hour); !ok {
		t.Fatal("no reminder after the window")
	}
}

// TestRemovedProductAlertsClosed: removing a product closes its open alerts,
// whether it is deleted (no usage) or kept for its history; an alert raised
// by a collection still running at the removal is closed by the sweep.
func TestRemovedProductAlertsClosed(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	unused, used, other := addProduct(t, s), addProduct(t, s), addProduct(t, s)
	collect(t, s, used, hour(0), vm("a", 1024, "x"))
	raise := func(pid int64) {
		t.Helper()
		key := fmt.Sprintf("collection_failed:%d", pid)
		if _, err := s.RaiseAlert(ctx, store.Alert{Key: key, Kind: "collection_failed", ProductID: pid, OpenedAt: hour(1), LastError: "boom"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, pid := range []int64{unused, used, other} {
		raise(pid)
	}
	if deleted, err := s.RemoveProduct(ctx, unused, hour(2)); err != nil || !deleted {
		t.Fatalf("remove unused: %v %v", deleted, err)
	}
	if deleted, err := s.RemoveProduct(ctx, used, hour(2)); err != nil || deleted {
		t.Fatalf("remove used: %v %v", deleted, err)
	}
	open, err := s.OpenAlerts(ctx)
	if err != nil || len(open) != 1 || open[0].ProductID != other {
		t.Fatalf("open alerts after removing two products: %+v %v", open, err)
	}
	// A collection that was running during the removal raises afterwards.
	raise(used)
	if n, err := s.CloseRemovedProductAlerts(ctx, hour(3)); err != nil || n != 1 {
		t.Fatalf("sweep closed %d: %v", n, err)
	}
	if open, _ := s.OpenAlerts(ctx); len(open) != 1 || open[0].ProductID != other {
		t.Fatalf("open alerts after the sweep: %+v", open)
	}
	if _, err := s.RemoveProduct(ctx, unused, hour(4)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removing a deleted product: %v", err)
	}
}

// TestGapsRecordedOnce: an hour nobody ran and an hour abandoned past its
// lease become failed runs naming their cause, each recorded once; a
// running hour whose lease still runs, and the current hour, are left alone.
func TestGapsRecordedOnce(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	pid := addProduct(t, s)
	collect(t, s, pid, hour(0), vm("a", 1024, "x"))
	if c, err := s.ClaimHour(ctx, pid, hour(1), "dead-daemon", 200*time.Millisecond); err != nil || !c.Claimed {
		t.Fatal(c, err)
	}
	if c, err := s.ClaimHour(ctx, pid, hour(3), "live-daemon", time.Hour); err != nil || !c.Claimed {
		t.Fatal(c, err)
	}
	time.Sleep(300 * time.Millisecond)
	gaps, err := s.FailAbandonedRuns(ctx, hour(3))
	if err != nil || len(gaps) != 1 || !gaps[0].Hour.Equal(hour(1)) || !strings.Contains(gaps[0].Cause, "by dead-daemon never finished") {
		t.Fatalf("abandoned: %+v %v", gaps, err)
	}
	if again, err := s.FailAbandonedRuns(ctx, hour(4)); err != nil || len(again) != 0 {
		t.Fatalf("abandoned twice: %+v %v (the live lease must stay)", again, err)
	}
	for i := 0; i < 2; i++ {
		gaps, err = s.RecordMissedHour(ctx, hour(2), "not collected before the hour ended: test", "me")
		if err != nil || len(gaps) != 1-i {
			t.Fatalf("missed hour, pass %d: %+v %v", i, gaps, err)
		}
	}
	if gaps, _ := s.RecordMissedHour(ctx, hour(-5), "before the product", "me"); len(gaps) != 0 {
		t.Fatalf("gap recorded before the product existed: %+v", gaps)
	}
	for h, want := range map[int]string{1: store.RunFailed, 2: store.RunFailed, 3: store.RunRunning} {
		if r, _ := s.Run(ctx, pid, hour(h)); r.State != want {
			t.Fatalf("hour %d: %+v, want %s", h, r, want)
		}
	}
	// A gap can still be filled late by hand (collect --hour).
	if c, err := s.ClaimHour(ctx, pid, hour(2), "admin", time.Minute); err != nil || !c.Claimed {
		t.Fatalf("claiming a gap by hand: %+v %v", c, err)
	}
}
