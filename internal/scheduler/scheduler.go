// Package scheduler runs the appliance's clock: one robfig/cron in UTC (with
// Recover and SkipIfStillRunning) that collects every active product at
// minute M of each hour with bounded concurrency, a timeout and retries
// inside the hour, and that hosts the other periodic jobs (outbox, retention,
// monthly report). Each (product, hour) is claimed in the store with a lease,
// so several daemons on one database never collect the same hour twice, and
// a daemon killed mid-collection leaves nothing half-written: its lease
// expires and the next run collects the hour.
package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
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

	cron   *cron.Cron
	jobsWG sync.WaitGroup
	root   context.Context
	cancel context.CancelFunc
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
		cfg.Lease = cfg.Timeout + 5*time.Minute
	}
	host, _ := os.Hostname()
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	s := &Scheduler{
		cfg: cfg, store: st, log: log, now: time.Now,
		owner:   fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(rnd[:])),
		factory: collectors.New,
		cache:   map[int64]cachedCollector{},
		sleep:   sleepCtx,
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

// fingerprint changes when anything the collector was built from changes.
func fingerprint(p store.Product) string {
	return fmt.Sprintf("%s|%s|%s|%x|%s|%s|%s|%d", p.Kind, p.Endpoint, p.Username, []byte(p.Password.Reveal()), p.Thumbprint, p.InstanceID, p.Options, p.PairedID)
}

// collector returns the cached collector of p (sessions are kept between
// hours), rebuilding it when the product changed.
func (s *Scheduler) collector(ctx context.Context, p store.Product) (collectors.Collector, error) {
	fp := fingerprint(p)
	s.mu.Lock()
	c, ok := s.cache[p.ID]
	s.mu.Unlock()
	if ok && c.fingerprint == fp {
		return c.c, nil
	}
	if ok {
		closeCollector(ctx, c.c)
	}
	col, err := s.buildCollector(ctx, p)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.cache[p.ID] = cachedCollector{fingerprint: fp, c: col}
	s.mu.Unlock()
	return col, nil
}

func (s *Scheduler) buildCollector(ctx context.Context, p store.Product) (collectors.Collector, error) {
	t := Target(p, s.cfg.CallTimeout, s.log)
	if p.PairedID != 0 {
		paired, err := s.store.Product(ctx, p.PairedID)
		if err != nil {
			return nil, fmt.Errorf("paired product %d: %w", p.PairedID, err)
		}
		pt := Target(paired, s.cfg.CallTimeout, s.log)
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
			r.Err = fmt.Errorf("claiming the hour: %w", err)
			break
		}
		if !claim.Claimed {
			if claim.State == store.RunDone {
				r.Skipped = "committed"
			} else {
				r.Skipped = "leased"
			}
			log.Debug("hour not claimed", "state", claim.State)
			return r
		}
		r.Attempts++
		start := time.Now()
		obs, err := s.collectOnce(ctx, p, hour)
		r.Duration = time.Since(start)
		if err == nil {
			r.Merge, err = s.store.CommitHour(ctx, p.ID, hour, s.owner, obs)
			if err == nil {
				r.Err = nil
				r.Objects, r.Totals = countMetrics(obs)
				log.Info("collected", "objects", r.Merge.Observations, "extended", r.Merge.Extended, "inserted", r.Merge.Inserted, "duration", r.Duration.Round(time.Millisecond).String())
				break
			}
			if errors.Is(err, store.ErrNotClaimed) || errors.Is(err, store.ErrCommitted) {
				r.Skipped = "leased"
				return r
			}
			err = fmt.Errorf("storing observations: %w", err)
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

func (s *Scheduler) collectOnce(ctx context.Context, p store.Product, hour time.Time) (obs []collectors.Observation, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("collector panicked: %v", v)
		}
	}()
	c, err := s.collector(ctx, p)
	if err != nil {
		return nil, err
	}
	obs, err = c.Collect(ctx, hour)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("collection did not finish within collection.timeout (%s): %w", s.cfg.Timeout, err)
	}
	return obs, err
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

// Start runs the cron: collection at minute M, the jobs added with AddJob,
// and a collection of the current hour now if it is missing.
func (s *Scheduler) Start(ctx context.Context) error {
	s.root, s.cancel = context.WithCancel(ctx)
	s.ensureCron()
	if _, err := s.cron.AddFunc(fmt.Sprintf("%d * * * *", s.cfg.Minute), s.job("collection", func(ctx context.Context) {
		if _, err := s.RunHour(ctx, s.now()); err != nil {
			s.log.Error("hourly collection", "err", err)
		}
	})); err != nil {
		return err
	}
	s.cron.Start()
	// Catch up: the current hour, if this daemon starts after minute M or missed it.
	s.jobsWG.Add(1)
	go func() {
		defer s.jobsWG.Done()
		if _, err := s.RunHour(s.root, s.now()); err != nil && s.root.Err() == nil {
			s.log.Error("start-up collection", "err", err)
		}
	}()
	return nil
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
