// Package cli implements the usagemeter command line: the subcommands of
// DESIGN.md and the wiring of config, store, scheduler and HTTP. Each
// subcommand lives in its own cmd_*.go file and registers itself.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/localpg"
	"github.com/usagemeter/usagemeter/internal/seal"
	"github.com/usagemeter/usagemeter/internal/store"
)

// Version is set at build time with -ldflags "-X .../internal/cli.Version=...".
var Version = "dev"

// Env is what a subcommand runs with.
type Env struct {
	Stdout, Stderr io.Writer
	Now            func() time.Time
}

// command is one subcommand. Its name may contain a space ("config check").
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *Env, args []string) error
}

var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("cli: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

// usageError is an error in the command line itself (exit status 2).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// Run runs the command line args (args[0] is the program name) and returns
// the exit status.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &Env{Stdout: stdout, Stderr: stderr, Now: time.Now}
	rest := args[1:]
	if len(rest) == 0 || rest[0] == "help" || rest[0] == "-h" || rest[0] == "--help" {
		printUsage(stdout)
		return 0
	}
	var cmd *command
	n := 0
	if len(rest) >= 2 {
		cmd = commands[rest[0]+" "+rest[1]]
		n = 2
	}
	if cmd == nil {
		cmd = commands[rest[0]]
		n = 1
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "usagemeter: unknown command %q\n\n", strings.Join(rest[:min(2, len(rest))], " "))
		printUsage(stderr)
		return 2
	}
	err := cmd.run(ctx, e, rest[n:])
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "usagemeter %s: %v\n", cmd.name, err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usagemeter: metering appliance for VMware cloud providers")
	fmt.Fprintln(w, "\nUsage: usagemeter COMMAND [flags]  (usagemeter COMMAND -h for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-22s %s\n", n, commands[n].summary)
	}
}

// newFlags makes a FlagSet for a command, with --config.
func newFlags(e *Env, name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("usagemeter "+name, flag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	cfg := fs.String("config", defaultConfigPath(), "configuration file")
	return fs, cfg
}

func defaultConfigPath() string {
	if p := os.Getenv("USAGEMETER_CONFIG"); p != "" {
		return p
	}
	return "/etc/usagemeter/config.yaml"
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// newLogger builds the one slog logger the daemon passes down.
func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
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

// parseAndOpen parses a command's flags, then opens the appliance with the
// configuration named by --config: the preamble of most subcommands.
func parseAndOpen(ctx context.Context, e *Env, fs *flag.FlagSet, cfgPath *string, args []string) (*App, error) {
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	return openApp(ctx, e, *cfgPath, openOptions{})
}

// openOptions shape openApp.
type openOptions struct {
	retry bool // keep retrying an unreachable database (serve)
	// waiting, with retry, is told each failed attempt to reach the
	// database (serve's /healthz and start-up alert).
	waiting func(err error)
}

// openApp loads the config and brings up the database. It is what every
// command that needs the store calls.
func openApp(ctx context.Context, e *Env, cfgPath string, o openOptions) (*App, error) {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	return openWithConfig(ctx, e, cfg, o)
}

func openWithConfig(ctx context.Context, e *Env, cfg *config.Config, o openOptions) (*App, error) {
	a := &App{Config: cfg, Log: newLogger(cfg.Log, e.Stderr)}
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
			a.Log.Info("managed PostgreSQL running", "dir", dir, "new_cluster", fresh)
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
