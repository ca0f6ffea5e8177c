package appliance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/usagemeter/usagemeter/internal/alert"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/httpapi"
	umail "github.com/usagemeter/usagemeter/internal/mail"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/migrations"
)

// Serve runs the appliance of cfg until ctx ends (usagemeter serve). It
// starts the HTTP listener and the alerting that needs no database first,
// then waits for the database: an appliance that reboots into a broken
// database answers /healthz (degraded, with the reason) and mails its
// admins after alerts.database_down_after, instead of waiting in silence.
// The log goes to stderr; version is what /healthz and the log say.
func Serve(ctx context.Context, cfg *config.Config, stderr io.Writer, version string) error {
	if err := checkDataDir(cfg.DataDir); err != nil {
		return err
	}
	log := NewLogger(cfg.Log, stderr)
	sender, err := umail.NewSender(mailConfig(cfg.SMTP), log)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	fallback := newFallback(cfg, sender, log, time.Now)

	reg := prometheus.NewRegistry()
	health := &daemonHealth{since: time.Now()}
	h, err := startHTTP(cfg, log, health, reg, version, nil)
	if err != nil {
		return err
	}
	defer h.shutdown()

	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		watchStartup(watchCtx, cfg, log, health, fallback)
	}()
	app, err := openWithConfig(ctx, stderr, cfg, openOptions{retry: true, waiting: health.waiting})
	stopWatch()
	<-watched // the daemon takes the fallback over
	if err != nil {
		return err
	}
	defer app.Close()
	health.ready(app.Store)
	return runDaemon(ctx, app, reg, h, daemonOptions{sender: sender, fallback: fallback, version: version})
}

// httpServer is the running HTTP listener.
type httpServer struct {
	api  *httpapi.Server
	srv  *http.Server
	done chan error
}

func startHTTP(cfg *config.Config, log *slog.Logger, health httpapi.Health, reg *prometheus.Registry, version string, ready chan<- string) (*httpServer, error) {
	api := httpapi.New(health, reg, version, migrations.Latest())
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("http.listen %s: %w", cfg.HTTP.Listen, err)
	}
	h := &httpServer{api: api, srv: &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}, done: make(chan error, 1)}
	go func() { h.done <- h.srv.Serve(ln) }()
	log.Info("usagemeter serving", "version", version, "http", ln.Addr().String())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	return h, nil
}

func (h *httpServer) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = h.srv.Shutdown(ctx)
}

// Run runs the daemon of an opened appliance until ctx is cancelled (the
// demo). ready, if not nil, receives the HTTP address once listening.
func Run(ctx context.Context, app *App, version string, ready chan<- string) error {
	reg := prometheus.NewRegistry()
	health := &daemonHealth{since: time.Now()}
	health.ready(app.Store)
	h, err := startHTTP(app.Config, app.Log, health, reg, version, ready)
	if err != nil {
		return err
	}
	defer h.shutdown()
	return runDaemon(ctx, app, reg, h, daemonOptions{version: version})
}

// runDaemon runs scheduler, alerting and outbox until ctx ends or the HTTP
// server fails.
func runDaemon(ctx context.Context, app *App, reg *prometheus.Registry, h *httpServer, o daemonOptions) error {
	d, err := newDaemonWith(app, registerer(reg), o)
	if err != nil {
		return err
	}
	h.api.AddCheck("mail", d.mailHealth)
	app.Log.Info("appliance ready", "appliance", app.Appliance.ID)
	// At once, not at the next tick (and before the cron runs the same job):
	// record what was spilled while waiting.
	d.databaseJob(ctx)
	// What the month's report needs, at start and daily: a missing
	// registration or key is an alert now, not when the report fails.
	if err := d.sched.AddJob("41 5 * * *", "report readiness", d.readinessJob); err != nil {
		return err
	}
	d.readinessJob(ctx)
	d.Start(ctx)

	select {
	case <-ctx.Done():
	case err := <-h.done:
		if !errors.Is(err, http.ErrServerClosed) {
			app.Log.Error("http server stopped", "err", err)
		}
	}
	app.Log.Info("shutting down")
	h.shutdown()
	d.Stop()
	return nil
}

// daemonHealth is /healthz's view of the daemon: degraded while it waits
// for its database at start-up, then the store's.
type daemonHealth struct {
	mu      sync.Mutex
	since   time.Time
	store   *store.Store
	lastErr error
}

var errStarting = errors.New("waiting for the database")

func (h *daemonHealth) waiting(err error) {
	h.mu.Lock()
	h.lastErr = err
	h.mu.Unlock()
}

func (h *daemonHealth) ready(st *store.Store) {
	h.mu.Lock()
	h.store = st
	h.mu.Unlock()
}

func (h *daemonHealth) get() (*store.Store, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.store, h.lastErr
}

// Degraded implements httpapi.Degraded.
func (h *daemonHealth) Degraded() string {
	st, err := h.get()
	if st != nil {
		return ""
	}
	reason := fmt.Sprintf("starting: waiting for the database since %s", h.since.UTC().Format(time.RFC3339))
	if err != nil {
		reason += ": " + err.Error()
	}
	return reason
}

func (h *daemonHealth) Ping(ctx context.Context) error {
	st, _ := h.get()
	if st == nil {
		return errStarting
	}
	return st.Ping(ctx)
}

func (h *daemonHealth) SchemaVersion(ctx context.Context) (int32, error) {
	st, _ := h.get()
	if st == nil {
		return 0, errStarting
	}
	return st.SchemaVersion(ctx)
}

// watchStartup mails the admins through the fallback (spill file and SMTP
// directly: there is no outbox without the database) once the daemon has
// waited alerts.database_down_after for its database, and logs it at error
// level; the fallback sends it once a day at most, and an unsent one is
// retried hourly. It ends with ctx.
func watchStartup(ctx context.Context, cfg *config.Config, log *slog.Logger, h *daemonHealth, fb *alert.Fallback) {
	after := cfg.Alerts.DatabaseDownAfter.D()
	t := time.NewTimer(after)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := h.get()
		if st != nil {
			return
		}
		host, _ := os.Hostname()
		log.Error("database unreachable since start-up: collection, reports and alert mails through the outbox are stopped", "since", h.since.UTC().Format(time.RFC3339), "err", err)
		fb.Raise(ctx, alert.DatabaseDownAtStartMail(cfg.Alerts.To, host, h.since, err), "database unreachable at start-up")
		// A sent mail is not repeated for a day (the fallback); one that
		// could not be sent is spilled and tried again in an hour, not every
		// minute (each spilled one is queued when the database returns).
		t.Reset(time.Hour)
	}
}
