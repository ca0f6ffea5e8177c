package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"

	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/migrations"
)

func init() {
	register(&command{name: "version", summary: "print the binary's version and schema, and the database's schema when it runs [--json]", run: runVersion})
	register(&command{name: "config check", summary: "validate a configuration file", run: runConfigCheck})
	register(&command{name: "config show", summary: "print the effective configuration (secrets as <secret>)", run: runConfigShow})
	register(&command{name: "migrate", summary: "apply database migrations", run: runMigrate})
}

// versionInfo is what `version` prints: the binary's version and the
// schema versions, the binary's and (when it can be read without starting
// or changing anything) the database's.
type versionInfo struct {
	Version string `json:"version"`
	Go      string `json:"go"`
	Schema  struct {
		Binary   int32  `json:"binary"`
		Database *int32 `json:"database,omitempty"` // absent when not read
		State    string `json:"state"`              // current, older, newer or unknown
		Detail   string `json:"detail,omitempty"`   // what to do, or why unknown
	} `json:"schema"`
}

func runVersion(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "version")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var v versionInfo
	v.Version, v.Go = Version, runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH
	v.Schema.Binary = migrations.Latest()
	v.Schema.State = "unknown"
	if cfg, err := appliance.LoadConfig(*cfgPath); err != nil {
		v.Schema.Detail = "configuration: " + err.Error()
	} else if db, err := appliance.DatabaseSchema(ctx, cfg); err != nil {
		v.Schema.Detail = err.Error()
	} else {
		v.Schema.Database = &db
		switch {
		case db == v.Schema.Binary:
			v.Schema.State = "current"
		case db < v.Schema.Binary:
			v.Schema.State = "older"
			v.Schema.Detail = fmt.Sprintf("`usagemeter migrate` (or the daemon's next start) brings it to %d", v.Schema.Binary)
		default:
			v.Schema.State = "newer"
			v.Schema.Detail = "a newer usagemeter migrated it: run that version (downgrades are not supported)"
		}
	}
	if *asJSON {
		return writeJSON(e, v)
	}
	fmt.Fprintf(e.Stdout, "usagemeter %s (%s)\n", v.Version, v.Go)
	db := "unknown"
	if v.Schema.Database != nil {
		db = fmt.Sprintf("%d, %s", *v.Schema.Database, v.Schema.State)
	}
	fmt.Fprintf(e.Stdout, "schema: binary %d, database %s\n", v.Schema.Binary, db)
	if v.Schema.Detail != "" {
		fmt.Fprintf(e.Stdout, "  %s\n", v.Schema.Detail)
	}
	return nil
}

func runConfigCheck(_ context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "config check")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := appliance.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "%s: OK\n", *cfgPath)
	h := cfg.HTTP
	switch {
	case !h.TLSOn():
		fmt.Fprintf(e.Stdout, "web console and API: plain HTTP on %s (http.tls: off)\n", h.Listen)
	case h.TLSCert != "":
		fmt.Fprintf(e.Stdout, "web console and API: HTTPS on %s with %s\n", h.Listen, h.TLSCert)
	default:
		fmt.Fprintf(e.Stdout, "web console and API: HTTPS on %s with a self-signed certificate in %s\n", h.Listen, filepath.Join(cfg.DataDir, "tls"))
	}
	if h.MetricsListen != "" {
		fmt.Fprintf(e.Stdout, "/metrics: plain HTTP on %s\n", h.MetricsListen)
	}
	return nil
}

func runConfigShow(_ context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "config show")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := appliance.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	out, err := cfg.Show()
	if err != nil {
		return err
	}
	_, err = e.Stdout.Write(out)
	return err
}

func runMigrate(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "migrate")
	app, err := parseAndOpen(ctx, e, fs, cfgPath, args)
	if err != nil {
		return err
	}
	defer app.Close()
	v, err := app.Store.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "database schema at version %d (appliance %s)\n", v, app.Appliance.ID)
	return nil
}
