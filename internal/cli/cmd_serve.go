package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/usagemeter/usagemeter/internal/httpapi"
	"github.com/usagemeter/usagemeter/migrations"
)

func init() {
	register(&command{name: "serve", summary: "run the daemon (scheduler, outbox, HTTP)", run: runServe})
}

func runServe(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "serve")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	app, err := openApp(ctx, e, *cfgPath, openOptions{retry: true})
	if err != nil {
		return err
	}
	defer app.Close()
	return serve(ctx, app, nil)
}

// serve runs the daemon until ctx is cancelled. ready, if not nil, receives
// the HTTP address once listening (tests, demo).
func serve(ctx context.Context, app *App, ready chan<- string) error {
	reg := prometheus.NewRegistry()
	api := httpapi.New(app.Store, reg, Version, migrations.Latest())

	daemon, err := newDaemon(app, reg)
	if err != nil {
		return err
	}
	api.AddCheck("mail", daemon.mailHealth)

	ln, err := net.Listen("tcp", app.Config.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen %s: %w", app.Config.HTTP.Listen, err)
	}
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Serve(ln) }()
	app.Log.Info("usagemeter serving", "version", Version, "http", ln.Addr().String(), "appliance", app.Appliance.ID)
	if ready != nil {
		ready <- ln.Addr().String()
	}

	daemon.Start(ctx)

	select {
	case <-ctx.Done():
	case err := <-httpDone:
		if !errors.Is(err, http.ErrServerClosed) {
			app.Log.Error("http server stopped", "err", err)
		}
	}
	app.Log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	daemon.Stop()
	return nil
}
