package appliance

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/usagemeter/usagemeter/internal/alert"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/httpapi"
	umail "github.com/usagemeter/usagemeter/internal/mail"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
	"github.com/usagemeter/usagemeter/migrations"
)

// Serve runs the appliance of cfg until ctx ends (usagemeter serve). It
// starts the HTTP listener and the alerting that needs no database first,
// then waits for the database: an appliance that reboots into a broken
// database answers /healthz (degraded, with the reason) and mails its
// admins after alerts.database_down_after, instead of waiting in silence.
// The log goes to stderr; version is what /healthz and the log say.
func Serve(ctx context.Context, cfg *config.Config, stderr io.Writer, version string, opts ...ServeOption) error {
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
	h, err := startHTTP(cfg, log, health, reg, version, nil, serveOpts(opts))
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

// httpServer is the running HTTP listener (and the separate metrics
// listener, when configured).
type httpServer struct {
	api     *httpapi.Server
	srv     *http.Server
	metrics *http.Server // http.metrics_listen, or nil
	done    chan error
	handler atomic.Pointer[http.Handler]
	cfg     *config.Config
	web     WebHandler
	tls     bool
}

// WebHandler builds the appliance's whole HTTP handler (REST API and web
// console, internal/web) once the appliance is open; base serves /healthz
// and /metrics. Before it, the listener answers /healthz and /metrics
// only. cmd/usagemeter's serve passes it (this package does not import
// internal/web, which builds on it).
type WebHandler func(app *App, base *httpapi.Server, tls bool) (http.Handler, error)

// ServeOption shapes Serve and Run.
type ServeOption func(*serveOptions)

type serveOptions struct {
	web WebHandler
}

// WithWeb serves the REST API and the console built by fn.
func WithWeb(fn WebHandler) ServeOption { return func(o *serveOptions) { o.web = fn } }

func serveOpts(opts []ServeOption) serveOptions {
	var o serveOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// ServerTLS is the certificate of the appliance's HTTPS listener:
// http.tls_cert and http.tls_key, or a self-signed one made once in
// data_dir/tls (its thumbprint logged when made). created says it was
// made now.
func ServerTLS(cfg *config.Config) (cert tls.Certificate, created bool, err error) {
	if cfg.HTTP.TLSCert != "" {
		cert, err = tlsutil.LoadServerCert(cfg.HTTP.TLSCert, cfg.HTTP.TLSKey)
		return cert, false, err
	}
	host, _ := os.Hostname()
	return tlsutil.LoadOrCreateServerCert(filepath.Join(cfg.DataDir, "tls"), host)
}

func startHTTP(cfg *config.Config, log *slog.Logger, health httpapi.Health, reg *prometheus.Registry, version string, ready chan<- string, o serveOptions) (*httpServer, error) {
	api := httpapi.New(health, reg, version, migrations.Latest())
	h := &httpServer{api: api, done: make(chan error, 2), cfg: cfg, web: o.web, tls: cfg.HTTP.TLSOn()}
	var start http.Handler = baseHandler(cfg, api, true)
	h.handler.Store(&start)
	h.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*h.handler.Load()).ServeHTTP(w, r) }),
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	scheme, thumb := "http", ""
	if h.tls {
		cert, created, err := ServerTLS(cfg)
		if err != nil {
			return nil, err
		}
		thumb = tlsutil.Thumbprint(cert.Leaf.Raw)
		if created {
			log.Info("created a self-signed TLS certificate for the web console and API (set http.tls_cert and http.tls_key to use another)",
				"path", filepath.Join(cfg.DataDir, "tls", tlsutil.ServerCertFile), "sha256", thumb)
		}
		h.srv.TLSConfig = tlsutil.ServerConfig(cert)
		scheme = "https"
	} else if !tlsutil.IsLoopback(cfg.HTTP.Listen) {
		log.Warn("http.tls is off: the web console and API are served in plain HTTP on a non-loopback address; passwords and session cookies cross the network in clear", "listen", cfg.HTTP.Listen)
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("http.listen %s: %w", cfg.HTTP.Listen, err)
	}
	if cfg.HTTP.MetricsListen != "" {
		mln, err := net.Listen("tcp", cfg.HTTP.MetricsListen)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("http.metrics_listen %s: %w", cfg.HTTP.MetricsListen, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", httpapi.Bearer(cfg.HTTP.MetricsToken.Reveal(), api.Metrics()))
		h.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { h.done <- h.metrics.Serve(mln) }()
		log.Info("serving /metrics", "http", mln.Addr().String())
	}
	go func() {
		if h.tls {
			h.done <- h.srv.ServeTLS(ln, "", "")
		} else {
			h.done <- h.srv.Serve(ln)
		}
	}()
	url := scheme + "://" + ln.Addr().String()
	if thumb != "" {
		log.Info("usagemeter serving", "version", version, "http", ln.Addr().String(), "url", url, "tls_sha256", thumb)
	} else {
		log.Info("usagemeter serving", "version", version, "http", ln.Addr().String(), "url", url)
	}
	if ready != nil {
		ready <- url
	}
	return h, nil
}

// baseHandler serves /healthz and /metrics (unless on their own
// listener): while the appliance opens (starting: 503 for everything
// else), and after it when no WebHandler is given.
func baseHandler(cfg *config.Config, api *httpapi.Server, starting bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", api.Healthz())
	if cfg.HTTP.MetricsListen == "" {
		mux.Handle("GET /metrics", httpapi.Bearer(cfg.HTTP.MetricsToken.Reveal(), api.Metrics()))
	}
	if !starting {
		return mux
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "10")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"the appliance is starting: waiting for its database (see /healthz)"}` + "\n"))
	})
	return mux
}

// open switches the listener to the whole handler of the opened app.
func (h *httpServer) open(app *App) error {
	hd := baseHandler(h.cfg, h.api, false)
	if h.web != nil {
		var err error
		if hd, err = h.web(app, h.api, h.tls); err != nil {
			return err
		}
	}
	h.handler.Store(&hd)
	return nil
}

func (h *httpServer) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = h.srv.Shutdown(ctx)
	if h.metrics != nil {
		_ = h.metrics.Shutdown(ctx)
	}
}

// Run runs the daemon of an opened appliance until ctx is cancelled (the
// demo). ready, if not nil, receives the listener's URL
// (https://host:port) once listening.
func Run(ctx context.Context, app *App, version string, ready chan<- string, opts ...ServeOption) error {
	reg := prometheus.NewRegistry()
	health := &daemonHealth{since: time.Now()}
	health.ready(app.Store)
	h, err := startHTTP(app.Config, app.Log, health, reg, version, ready, serveOpts(opts))
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
	if err := h.open(app); err != nil {
		return fmt.Errorf("the web console and API: %w", err)
	}
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
