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
	register(&command{name: "version", summary: "print the version", run: runVersion})
	register(&command{name: "config check", summary: "validate a configuration file", run: runConfigCheck})
	register(&command{name: "config show", summary: "print the effective configuration (secrets as <secret>)", run: runConfigShow})
	register(&command{name: "migrate", summary: "apply database migrations", run: runMigrate})
}

func runVersion(_ context.Context, e *Env, args []string) error {
	fmt.Fprintf(e.Stdout, "usagemeter %s (%s, schema %d)\n", Version, runtime.Version(), migrations.Latest())
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
