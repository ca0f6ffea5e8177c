package cli

import (
	"context"
	"net/http"

	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/web"
	"github.com/usagemeter/usagemeter/internal/web/auth"
	"github.com/usagemeter/usagemeter/internal/web/service"
)

func init() {
	register(&command{name: "serve", summary: "run the daemon (scheduler, outbox, HTTPS: web console, REST API, health, metrics)", run: runServe})
}

// Console builds the web console mounted at / by serve and the demo; the
// console's package sets it (nil: the API alone).
var Console func(*service.Service, *auth.Manager) http.Handler

// webHandler is the HTTP handler of serve and the demo.
func webHandler() appliance.ServeOption {
	return appliance.WithWeb(web.Appliance(Version, Console))
}

// runServe runs the daemon: appliance.Serve with the configuration named
// by --config.
func runServe(ctx context.Context, e *Env, args []string) error {
	fs, cfgPath := newFlags(e, "serve")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := appliance.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	return appliance.Serve(ctx, cfg, e.Stderr, Version, webHandler())
}
