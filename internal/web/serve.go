package web

import (
	"context"
	"net/http"

	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/httpapi"
	"github.com/usagemeter/usagemeter/internal/web/auth"
	"github.com/usagemeter/usagemeter/internal/web/service"
)

// AuthConfig is the auth configuration of the appliance's config (http.*).
func AuthConfig(app *appliance.App, tls bool) auth.Config {
	h := app.Config.HTTP
	return auth.Config{IdleTimeout: h.SessionIdle.D(), AbsoluteTimeout: h.SessionMax.D(), MaxFailures: h.LoginMaxFailures,
		LockFor: h.LoginLockout.D(), Insecure: !tls}
}

// Appliance is the appliance.WebHandler of `usagemeter serve` and the
// demo: the service and auth of the opened appliance, /healthz and
// /metrics from base (unless http.metrics_listen serves /metrics on its
// own), the API, and the console built by console (nil: none).
func Appliance(version string, console func(*service.Service, *auth.Manager) http.Handler) appliance.WebHandler {
	return func(app *appliance.App, base *httpapi.Server, tls bool) (http.Handler, error) {
		svc := service.New(app, service.Options{Version: version, Health: func(ctx context.Context) service.Health { return health(ctx, base) }})
		am := auth.New(svc, AuthConfig(app, tls))
		o := Options{Service: svc, Auth: am, Health: base.Healthz(), Console: console, TLS: tls}
		if app.Config.HTTP.MetricsListen == "" {
			o.Metrics, o.MetricsToken = base.Metrics(), app.Config.HTTP.MetricsToken.Reveal()
		}
		return New(o), nil
	}
}

func health(ctx context.Context, base *httpapi.Server) service.Health {
	b := base.Check(ctx)
	return service.Health{Status: b.Status, Database: b.Database, Degraded: b.Degraded, Error: b.Error}
}
