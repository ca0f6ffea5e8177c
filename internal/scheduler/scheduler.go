// Package scheduler runs the appliance's clock: one robfig/cron in UTC (with
// Recover and SkipIfStillRunning) that collects every active product from
// minute M of each hour with bounded concurrency, a timeout and retries
// inside the hour, and that hosts the other periodic jobs (outbox, retention,
// monthly report). Each (product, hour) is claimed in the store with a lease,
// so several daemons on one database never collect the same hour twice, and
// a daemon killed mid-collection leaves nothing half-written.
//
// Collection is a catch-up, not a single shot: every tick (each minute, and
// when the database returns) collects every product whose current hour has
// no run yet or whose run was left running past its lease by a killed
// daemon. An hour that ended without being collected is recorded as a gap,
// a failed run whose error is the cause (the database was unreachable, the
// collecting daemon died, no daemon ran), and the observers are told.
package scheduler

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// Config shapes collection.
type Config struct {
	Minute      int           // minute of the hour the collection starts
	Concurrency int           // products collected at once
	Timeout     time.Duration // one product's collection attempt
	CallTimeout time.Duration // one remote call (passed to collectors)
	Retries     int           // retries within the hour
	RetryBase   time.Duration // first retry delay; doubles
	Lease       time.Duration // hour claim lease; longer than Timeout
	CatchUp     time.Duration // between catch-up ticks (default a minute)
}

// GapLookback is how far back ended hours are checked for gaps (hours
// without any run) when a daemon starts or its database returns.
const GapLookback = 48 * time.Hour

// GapError is the error of a Result for an hour that ended uncollected.
type GapError struct{ Cause string }

func (e *GapError) Error() string { return e.Cause }

// GapObserver is told the gaps a tick recorded, together (one alert mail
// for an outage, not one per product and hour).
type GapObserver interface {
	ObserveGaps(ctx context.Context, gaps []Gap)
}

// Gap is an hour of a product recorded as not collected.
type Gap struct {
	Product store.Product
	Hour    time.Time
	Cause   string
}

// Result is the outcome of one product's hour.
type Result struct {
	Product  store.Product
	Hour     time.Time
	Err      error // nil on success
	Merge    store.MergeResult
	Attempts int                // attempts in this run
	Duration time.Duration      // of the successful or last attempt
	Skipped  string             // non-empty when not collected: "committed", "leased"
	LeasedBy string             // when Skipped is "leased": the owner holding the hour
	Until    *time.Time         // and until when its lease runs (database clock)
	Gap      bool               // the hour ended uncollected; Err says why
	Objects  map[string]int     // observations per metric
	Totals   map[string]float64 // summed quantity per metric
}

// Observer is told every result (alerts, metrics).
type Observer interface {
	Observe(ctx context.Context, r Result)
}

// Factory builds a collector for a product's target.
type Factory func(t collectors.Target) (collectors.Collector, error)

// Scheduler collects products hour by hour.
type Scheduler struct {
	cfg      Config
	store    *store.Store
	log      *slog.Logger
	now      func() time.Time
	owner    string
	factory  Factory
	observer []Observer
	sleep    func(ctx context.Context, d time.Duration) error

	mu    sync.Mutex
	cache map[int64]cachedCollector

	catchMu    sync.Mutex
	inflight   map[int64]bool     // products this daemon is collecting now
	misses     map[time.Time]miss // why the current hour could not be collected so far
	gapsBefore time.Time          // hours before this were checked for gaps
	failing    bool               // the last tick could not reach the store
	sem        chan struct{}      // bounds the catch-up's collections

	cron   *cron.Cron
	jobsWG sync.WaitGroup
	root   context.Context
	cancel context.CancelFunc
}

// miss is why a tick could not collect an hour (the database was down).
type miss struct {
	first, last time.Time
	err         string // the last error
	unreachable bool   // the database could not be reached
}

type cachedCollector struct {
	fingerprint string
	c           collectors.Collector
}

// Option configures a Scheduler.
type Option func(*Scheduler)

// WithClock injects the clock (tests, demo).
func WithClock(now func() time.Time) Option { return func(s *Scheduler) { s.now = now } }

// WithFactory replaces how collectors are built (tests).
func WithFactory(f Factory) Option { return func(s *Scheduler) { s.factory = f } }

// WithOwner names this daemon in hour claims.
func WithOwner(owner string) Option { return func(s *Scheduler) { s.owner = owner } }

// WithObserver adds an observer of results.
func WithObserver(o Observer) Option {
	return func(s *Scheduler) { s.observer = append(s.observer, o) }
}

// WithSleep replaces the wait between retries (tests).
func WithSleep(f func(ctx context.Context, d time.Duration) error) Option {
	return func(s *Scheduler) { s.sleep = f }
}

// New makes a scheduler.
func New(cfg Config, st *store.Store, log *slog.Logger, opts ...Option) *Scheduler {
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Minute
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = time.Minute
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = 30 * time.Second
	}
	if cfg.Lease <= 0 {
		// One attempt and its commit; a claim is renewed for every attempt.
		cfg.Lease = cfg.Timeout + min(cfg.Timeout, 5*time.Minute)
	}
	if cfg.CatchUp <= 0 {
		cfg.CatchUp = time.Minute
	}
	host, _ := os.Hostname()
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	s := &Scheduler{
		cfg: cfg, store: st, log: log, now: time.Now,
		owner:    fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(rnd[:])),
		factory:  collectors.New,
		cache:    map[int64]cachedCollector{},
		sleep:    sleepCtx,
		inflight: map[int64]bool{},
		misses:   map[time.Time]miss{},
		sem:      make(chan struct{}, cfg.Concurrency),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Owner is the name this scheduler claims hours under.
func (s *Scheduler) Owner() string { return s.owner }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Target converts a stored product into a collector target.
func Target(p store.Product, callTimeout time.Duration, log *slog.Logger) collectors.Target {
	return collectors.Target{
		ProductID: p.ID, Kind: p.Kind, Endpoint: p.Endpoint, Username: p.Username, Password: p.Password,
		Thumbprint: p.Thumbprint, InstanceID: p.InstanceID, Options: p.Options, Timeout: callTimeout,
		Logger: log.With("product", p.ID, "kind", p.Kind),
	}
}

// fingerprint changes when anything the collector was built from changes:
// the product's settings and those of its paired product (the vCenter an
// NSX, SRM, VCDA, TKGm ... collector also logs into: a password rotated
// there with product set). It is a SHA-256 of them, so that no password is
// kept in clear in it.
func fingerprint(p store.Product, paired *store.Product) string {
	h := sha256.New()
	write := func(p store.Product) {
		for _, f := range []string{p.Kind, p.Endpoint, p.Username, p.Password.Reveal(), p.Thumbprint, p.InstanceID, string(p.Options), strconv.FormatInt(p.PairedID, 10)} {
			fmt.Fprintf(h, "%d:%s|", len(f), f)
		}
	}
	write(p)
	if paired != nil {
		h.Write([]byte("paired|"))
		write(*paired)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// collector returns the cached collector of p (sessions are kept between
// hours), rebuilding it when the product or its paired product changed.
func (s *Scheduler) collector(ctx context.Context, p store.Product) (collectors.Collector, error) {
	var paired *store.Product
	if p.PairedID != 0 {
		pp, err := s.store.Product(ctx, p.PairedID)
		if err != nil {
			return nil, fmt.Errorf("paired product %d: %w", p.PairedID, err)
		}
		paired = &pp
	}
	fp := fingerprint(p, paired)
	s.mu.Lock()
	c, ok := s.cache[p.ID]
	s.mu.Unlock()
	if ok && c.fingerprint == fp {
		return c.c, nil
	}
	if ok {
		closeCollector(ctx, c.c)
	}
	col, err := s.buildCollector(p, paired)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.cache[p.ID] = cachedCollector{fingerprint: fp, c: col}
	s.mu.Unlock()
	return col, nil
}

func (s *Scheduler) buildCollector(p store.Product, paired *store.Product) (collectors.Collector, error) {
	t := Target(p, s.cfg.CallTimeout, s.log)
	t.VCenters = func(ctx context.Context) ([]string, error) { return s.store.InstanceIDs(ctx, "vcenter") }
	if paired != nil {
		pt := Target(*paired, s.cfg.CallTimeout, s.log)
		t.Paired = &pt
	}
	return s.factory(t)
}

func closeCollector(ctx context.Context, c collectors.Collector) {
	if cl, ok := c.(collectors.Closer); ok {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = cl.Close(ctx)
	}
}

// RunHour collects every product due at hour, with bounded concurrency.
func (s *Scheduler) RunHour(ctx context.Context, hour time.Time) ([]Result, error) {
	hour = hour.UTC().Truncate(time.Hour)
	products, err := s.store.ProductsDue(ctx, hour)
	if err != nil {
		return nil, fmt.Errorf("listing products: %w", err)
	}
	results := make([]Result, len(products))
	sem := make(chan struct{}, s.cfg.Concurrency)
	var wg sync.WaitGroup
	for i, p := range products {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int, p store.Product) {
			defer wg.Done()
			defer func() { <-sem }()
			results[i] = s.CollectProduct(ctx, p, hour)
		}(i, p)
	}
	wg.Wait()
	return results, nil
}

// CollectProduct collects one product's hour: claim, collect with retries
// inside the hour, commit or record the failure, tell the observers.
func (s *Scheduler) CollectProduct(ctx context.Context, p store.Product, hour time.Time) Result {
	hour = hour.UTC().Truncate(time.Hour)
	r := Result{Product: p, Hour: hour}
	log := s.log.With("product", p.ID, "kind", p.Kind, "hour", hour.Format(time.RFC3339))
	hourEnd := hour.Add(time.Hour)

	for attempt := 0; ; attempt++ {
		claim, err := s.store.ClaimHour(ctx, p.ID, hour, s.owner, s.cfg.Lease)
		if err != nil {
			// The database, not the product: no run and no product alert (the
			// database watch alerts); the catch-up collects the hour when the
			// database answers again, or records it as a gap naming this.
			r.Err = fmt.Errorf("claiming the hour: %w", err)
			s.noteMiss(hour, r.Err)
			return r
		}
		if !claim.Claimed {
			if claim.State == store.RunDone {
				r.Skipped = "committed"
			} else {
				r.Skipped = "leased"
				r.LeasedBy, r.Until = claim.Owner, claim.LeaseUntil
			}
			log.Debug("hour not claimed", "state", claim.State)
			return r
		}
		r.Attempts++
		start := time.Now()
		obs, version, err := s.collectOnce(ctx, p, hour)
		r.Duration = time.Since(start)
		if err == nil {
			r.Merge, err = s.store.CommitHour(ctx, p.ID, hour, s.owner, obs)
			if err == nil {
				r.Err = nil
				r.Objects, r.Totals = countMetrics(obs)
				if verr := s.store.SetProductVersion(ctx, p.ID, version); verr != nil {
					log.Warn("recording the product's version", "version", version, "err", verr)
				}
				log.Info("collected", "objects", r.Merge.Observations, "extended", r.Merge.Extended, "inserted", r.Merge.Inserted, "duration", r.Duration.Round(time.Millisecond).String())
				break
			}
			if errors.Is(err, store.ErrNotClaimed) || errors.Is(err, store.ErrCommitted) {
				r.Skipped = "leased"
				return r
			}
			err = fmt.Errorf("storing observations: %w", err)
			if store.Unreachable(err) {
				// The database went away, not the product: no product
				// alert (the database watch alerts). The claim runs out
				// and the catch-up collects the hour again, or records it
				// as a gap naming this.
				r.Err = err
				s.noteMiss(hour, err)
				log.Warn("collected, but the database went away before the hour was stored", "err", err)
				return r
			}
		}
		r.Err = err
		if ferr := s.store.FailHour(context.WithoutCancel(ctx), p.ID, hour, s.owner, err.Error()); ferr != nil && !errors.Is(ferr, store.ErrNotClaimed) {
			log.Error("recording failed hour", "err", ferr)
		}
		if !retryable(err) || attempt >= s.cfg.Retries || ctx.Err() != nil {
			log.Warn("collection failed", "err", err, "attempts", r.Attempts)
			break
		}
		delay := s.cfg.RetryBase << attempt
		if s.now().Add(delay+s.cfg.Timeout).After(hourEnd) && !hourEnd.Before(s.now()) {
			log.Warn("collection failed; no time left for a retry within the hour", "err", err, "attempts", r.Attempts)
			break
		}
		log.Info("collection failed; retrying", "err", err, "attempt", r.Attempts, "retry_in", delay.String())
		if s.sleep(ctx, delay) != nil {
			break
		}
	}
	for _, o := range s.observer {
		o.Observe(context.WithoutCancel(ctx), r)
	}
	return r
}

// collectOnce collects p's hour once. It also returns the version the
// product reports after a successful collection ("" when it does not say
// or cannot be asked), so that an upgrade shows in the next report.
func (s *Scheduler) collectOnce(ctx context.Context, p store.Product, hour time.Time) (obs []collectors.Observation, version string, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("collector panicked: %v", v)
		}
	}()
	c, err := s.collector(ctx, p)
	if err != nil {
		return nil, "", err
	}
	obs, err = c.Collect(ctx, hour)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("collection did not finish within collection.timeout (%s): %w", s.cfg.Timeout, err)
	}
	if err == nil {
		version = s.productVersion(ctx, p, c)
	}
	return obs, version, err
}

// productVersion asks a collector that can identify its product for the
// version: from the session it holds for most kinds (vCenter, Cloud
// Director learn it at login), one call for others. A failure, or another
// instance than p's, gives "".
func (s *Scheduler) productVersion(ctx context.Context, p store.Product, c collectors.Collector) string {
	idf, ok := c.(collectors.Identifier)
	if !ok {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	ident, err := idf.Identify(ctx)
	if err != nil {
		s.log.Debug("asking the product's version", "product", p.ID, "err", err)
		return ""
	}
	if ident.InstanceID != "" && p.InstanceID != "" && !strings.EqualFold(ident.InstanceID, p.InstanceID) {
		return ""
	}
	return ident.VersionLabel()
}

// retryable says whether retrying within the hour can help: wrong
// credentials and untrusted certificates need an admin.
func retryable(err error) bool {
	var ce *tlsutil.CertError
	return !errors.Is(err, collectors.ErrAuth) && !errors.As(err, &ce)
}

func countMetrics(obs []collectors.Observation) (map[string]int, map[string]float64) {
	n, sum := map[string]int{}, map[string]float64{}
	for _, o := range obs {
		n[o.Metric]++
		sum[o.Metric] += o.Quantity
	}
	return n, sum
}

// Start runs the cron: the catch-up tick every minute (collection from
// minute M on, gaps of ended hours), the jobs added with AddJob, and a
// catch-up now that collects the current hour if it is missing.
func (s *Scheduler) Start(ctx context.Context) error {
	s.root, s.cancel = context.WithCancel(ctx)
	s.ensureCron()
	if _, err := s.cron.AddFunc(fmt.Sprintf("@every %s", s.cfg.CatchUp), s.job("collection", func(ctx context.Context) {
		s.Kick(ctx, false)
	})); err != nil {
		return err
	}
	s.cron.Start()
	s.Kick(s.root, true) // the current hour, if this daemon starts after minute M or missed it
	return nil
}

// Kick runs a catch-up in the background (a tick, the database's return);
// force collects the current hour even before minute M (start-up). It
// returns at once: a slow product does not hold up the next tick, and
// products already being collected by this daemon are left alone.
func (s *Scheduler) Kick(ctx context.Context, force bool) {
	if s.root == nil || s.root.Err() != nil {
		return
	}
	s.jobsWG.Add(1)
	go func() {
		defer s.jobsWG.Done()
		s.CatchUp(ctx, force)
	}()
}

// CatchUp records the gaps of ended hours, then, from minute M of the hour
// on (or at once when force), collects every product whose current hour is
// still to be collected: no run yet, or a run abandoned past its lease. It
// returns the results of the collections it ran.
func (s *Scheduler) CatchUp(ctx context.Context, force bool) []Result {
	now := s.now().UTC()
	hour := now.Truncate(time.Hour)
	if err := s.recordGaps(ctx, hour); err != nil {
		s.tickFailed(ctx, hour, fmt.Errorf("checking for missed hours: %w", err))
	}
	if !force && now.Minute() < s.cfg.Minute {
		return nil
	}
	products, err := s.store.ProductsToCollect(ctx, hour)
	if err != nil {
		s.tickFailed(ctx, hour, fmt.Errorf("listing the products to collect: %w", err))
		return nil
	}
	s.catchMu.Lock()
	if s.failing {
		s.failing = false
		s.log.Info("catch-up: the database answers again", "hour", hour.Format(time.RFC3339))
	}
	s.catchMu.Unlock()
	var (
		mu      sync.Mutex
		results []Result
		wg      sync.WaitGroup
	)
	for _, p := range products {
		s.catchMu.Lock()
		busy := s.inflight[p.ID]
		s.inflight[p.ID] = true
		s.catchMu.Unlock()
		if busy {
			continue
		}
		wg.Add(1)
		go func(p store.Product) {
			defer wg.Done()
			defer func() { s.catchMu.Lock(); delete(s.inflight, p.ID); s.catchMu.Unlock() }()
			select {
			case s.sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-s.sem }()
			r := s.CollectProduct(ctx, p, hour)
			mu.Lock()
			results = append(results, r)
			mu.Unlock()
		}(p)
	}
	wg.Wait()
	return results
}

// tickFailed notes why a tick could not collect, and logs it once per
// outage (the database watch alerts on the database itself).
func (s *Scheduler) tickFailed(ctx context.Context, hour time.Time, err error) {
	s.noteMiss(hour, err)
	s.catchMu.Lock()
	first := !s.failing
	s.failing = true
	s.catchMu.Unlock()
	if first && ctx.Err() == nil {
		s.log.Warn("catch-up: cannot collect until the database answers", "hour", hour.Format(time.RFC3339), "err", err)
	}
}

// noteMiss remembers that hour could not be collected because of err, to
// name the cause if the hour ends uncollected.
func (s *Scheduler) noteMiss(hour time.Time, err error) {
	now := s.now().UTC()
	s.catchMu.Lock()
	defer s.catchMu.Unlock()
	m, ok := s.misses[hour]
	if !ok {
		m.first = now
	}
	m.last, m.err = now, err.Error()
	m.unreachable = m.unreachable || store.Unreachable(err)
	s.misses[hour] = m
}

// cause is the recorded reason why hour ended uncollected.
func (s *Scheduler) cause(hour time.Time) string {
	s.catchMu.Lock()
	m, ok := s.misses[hour]
	s.catchMu.Unlock()
	if !ok {
		return "not collected before the hour ended: no collection was attempted (no usagemeter daemon was running, or it was started after the hour)"
	}
	what := "the collection could not start"
	if m.unreachable {
		what = "the database was unreachable"
	}
	return fmt.Sprintf("not collected before the hour ended: %s (tried from %s to %s): %s",
		what, m.first.Format("15:04:05 MST"), m.last.Format("15:04:05 MST"), m.err)
}

// recordGaps records the ended hours before hour that nobody collected:
// runs abandoned past their lease, and hours without a run (checked back to
// GapLookback, each hour once per daemon once recorded). The observers are
// told each gap this daemon recorded.
func (s *Scheduler) recordGaps(ctx context.Context, hour time.Time) error {
	gaps, err := s.store.FailAbandonedRuns(ctx, hour)
	if err != nil {
		return err
	}
	s.catchMu.Lock()
	from := s.gapsBefore
	s.catchMu.Unlock()
	if from.IsZero() || from.Before(hour.Add(-GapLookback)) {
		from = hour.Add(-GapLookback)
	}
	for h := from; h.Before(hour); h = h.Add(time.Hour) {
		g, err := s.store.RecordMissedHour(ctx, h, s.cause(h), s.owner)
		if err != nil {
			s.tellGaps(ctx, gaps)
			return err
		}
		gaps = append(gaps, g...)
		s.catchMu.Lock()
		s.gapsBefore = h.Add(time.Hour)
		delete(s.misses, h)
		s.catchMu.Unlock()
	}
	s.tellGaps(ctx, gaps)
	return nil
}

func (s *Scheduler) tellGaps(ctx context.Context, gaps []store.Gap) {
	if len(gaps) == 0 {
		return
	}
	var told []Gap
	for _, g := range gaps {
		p, err := s.store.Product(ctx, g.ProductID)
		if err != nil {
			p = store.Product{ID: g.ProductID}
		}
		s.log.Warn("hour not collected", "product", g.ProductID, "hour", g.Hour.UTC().Format(time.RFC3339), "cause", g.Cause)
		told = append(told, Gap{Product: p, Hour: g.Hour.UTC(), Cause: g.Cause})
		r := Result{Product: p, Hour: g.Hour.UTC(), Err: &GapError{Cause: g.Cause}, Gap: true}
		for _, o := range s.observer {
			o.Observe(context.WithoutCancel(ctx), r)
		}
	}
	for _, o := range s.observer {
		if gobs, ok := o.(GapObserver); ok {
			gobs.ObserveGaps(context.WithoutCancel(ctx), told)
		}
	}
}

func (s *Scheduler) ensureCron() {
	if s.cron != nil {
		return
	}
	logger := cron.PrintfLogger(slog.NewLogLogger(s.log.Handler(), slog.LevelError))
	s.cron = cron.New(cron.WithLocation(time.UTC), cron.WithChain(cron.Recover(logger), cron.SkipIfStillRunning(logger)))
	if s.root == nil {
		s.root, s.cancel = context.WithCancel(context.Background())
	}
}

// job wraps fn so that it gets a context derived from the daemon's root.
func (s *Scheduler) job(name string, fn func(ctx context.Context)) func() {
	return func() {
		if s.root.Err() != nil {
			return
		}
		s.jobsWG.Add(1)
		defer s.jobsWG.Done()
		start := time.Now()
		fn(s.root)
		s.log.Debug("job done", "job", name, "duration", time.Since(start).String())
	}
}

// AddJob adds a periodic job (cron spec, UTC). Call before Start.
func (s *Scheduler) AddJob(spec, name string, fn func(ctx context.Context)) error {
	s.ensureCron()
	_, err := s.cron.AddFunc(spec, s.job(name, fn))
	if err != nil {
		return fmt.Errorf("job %s: schedule %q: %w", name, spec, err)
	}
	return nil
}

// Stop stops the cron, cancels running jobs' context after grace, and waits for them.
func (s *Scheduler) Stop(grace time.Duration) {
	if s.cron == nil {
		return
	}
	stopped := s.cron.Stop()
	done := make(chan struct{})
	go func() { <-stopped.Done(); s.jobsWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		s.log.Warn("jobs still running at shutdown; cancelling them")
		s.cancel()
		<-done
	}
	s.cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, c := range s.cache {
		closeCollector(context.Background(), c.c)
		delete(s.cache, id)
	}
}
