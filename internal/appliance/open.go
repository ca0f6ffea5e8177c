// Package appliance is the usagemeter runtime: opening an appliance
// (config → managed PostgreSQL → seal → store → migrate) and the daemon
// that runs on it (scheduler, alert engine, outbox worker, jobs, metrics,
// HTTP). internal/cli parses flags and prints; it calls this package.
package appliance

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/localpg"
	"github.com/usagemeter/usagemeter/internal/seal"
	"github.com/usagemeter/usagemeter/internal/store"
)

// NewLogger builds the one slog logger the daemon passes down.
func NewLogger(c config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if f, ok := w.(*os.File); ok && journalStream(f) {
		w = journalWriter{w}
	}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// App is an opened appliance: config, logger, database (managed or not),
// migrated schema, credentials key, appliance row.
type App struct {
	Config    *config.Config
	Log       *slog.Logger
	Store     *store.Store
	Appliance store.Appliance
	Box       *seal.Box
	cluster   *localpg.Cluster
}

// Close releases the database and stops a managed server.
func (a *App) Close() {
	if a.Store != nil {
		a.Store.Close()
	}
	if a.cluster != nil {
		if err := a.cluster.Stop(); err != nil {
			a.Log.Error("stopping managed PostgreSQL", "err", err)
		} else {
			a.Log.Info("managed PostgreSQL stopped")
		}
	}
}

// openOptions shape openWithConfig.
type openOptions struct {
	retry bool // keep retrying an unreachable database (serve)
	// waiting, with retry, is told each failed attempt to reach the
	// database (serve's /healthz and start-up alert).
	waiting func(err error)
}

// Open loads the config and brings up the database. It is what every
// command that needs the store calls. The log goes to stderr.
func Open(ctx context.Context, cfgPath string, stderr io.Writer) (*App, error) {
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	return openWithConfig(ctx, stderr, cfg, openOptions{})
}

// OpenConfig opens the appliance of a configuration already loaded (the
// demo). The log goes to stderr.
func OpenConfig(ctx context.Context, cfg *config.Config, stderr io.Writer) (*App, error) {
	return openWithConfig(ctx, stderr, cfg, openOptions{})
}

func openWithConfig(ctx context.Context, stderr io.Writer, cfg *config.Config, o openOptions) (*App, error) {
	a := &App{Config: cfg, Log: NewLogger(cfg.Log, stderr)}
	if err := checkDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	box, created, err := seal.LoadOrCreateKey(filepath.Join(cfg.DataDir, seal.KeyFileName), true)
	if err != nil {
		return nil, err
	}
	if created {
		a.Log.Info("created credentials key", "path", box.Path())
	}
	a.Box = box

	backoff := time.Second
	for {
		err := a.connect(ctx, box)
		if err == nil {
			break
		}
		if !o.retry || ctx.Err() != nil {
			a.Close()
			return nil, err
		}
		if o.waiting != nil {
			o.waiting(err)
		}
		a.Log.Warn("database unreachable; retrying", "err", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			a.Close()
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Minute)
	}
	from, to, err := a.Store.Migrate(ctx)
	if err != nil {
		a.Close()
		return nil, err
	}
	if from != to {
		a.Log.Info("database migrated", "from", from, "to", to)
	}
	a.Appliance, err = a.Store.EnsureAppliance(ctx, created)
	if err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// connect brings up the database: the managed PostgreSQL first when
// database.url is empty (started once; its database created if missing),
// then the pool. Each step can be retried after an error.
func (a *App) connect(ctx context.Context, box *seal.Box) error {
	url := a.Config.Database.URL.Reveal()
	if url == "" {
		dir := filepath.Join(a.Config.DataDir, "postgres")
		if a.cluster != nil {
			select {
			case <-a.cluster.Exited():
				a.Log.Warn("managed PostgreSQL exited while usagemeter waited for it; starting it again", "dir", dir)
				a.cluster = nil
			default:
			}
		}
		if a.cluster == nil {
			c, err := localpg.New(localpg.Options{Dir: dir})
			if err != nil {
				return fmt.Errorf("database.url is empty, so usagemeter runs its own PostgreSQL: %w", err)
			}
			fresh := !c.Initialized()
			if err := c.Start(ctx); err != nil {
				return fmt.Errorf("starting managed PostgreSQL in %s: %w", dir, err)
			}
			a.cluster = c
			if pid := c.Shared(); pid != 0 {
				a.Log.Debug("using the managed PostgreSQL another usagemeter process runs", "dir", dir, "pid", pid)
			} else {
				a.Log.Info("managed PostgreSQL running", "dir", dir, "new_cluster", fresh)
			}
		}
		if err := ensureDatabase(ctx, a.cluster); err != nil {
			return err
		}
		url = a.cluster.URL("usagemeter")
	}
	p, err := store.Connect(ctx, url)
	if err != nil {
		return err
	}
	a.Store = store.New(p, box)
	return nil
}

// checkDataDir makes sure data_dir exists and is writable, with a clear error.
func checkDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data_dir %s: cannot create it: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".write-test-")
	if err != nil {
		return fmt.Errorf("data_dir %s: not writable by this user: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// ensureDatabase creates the usagemeter database in a managed cluster if it is missing.
func ensureDatabase(ctx context.Context, c *localpg.Cluster) error {
	p, err := store.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer p.Close()
	var exists bool
	if err := p.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'usagemeter')").Scan(&exists); err != nil || exists {
		return err
	}
	if _, err := p.Exec(ctx, "CREATE DATABASE usagemeter"); err != nil {
		return fmt.Errorf("creating database usagemeter: %w", err)
	}
	return nil
}
