// Package web builds the appliance's HTTPS handler: /healthz and /metrics
// (internal/httpapi), the REST API /api/v1 (JSON, described by the
// embedded OpenAPI document at /api/v1/openapi.json) over
// internal/web/service, authenticated by internal/web/auth, and the web
// console mounted at / through Options.Console (the console's package
// plugs itself in; this one does not import it). Every response carries
// the security headers (CSP without inline script, HSTS over TLS,
// frame-ancestors 'none', nosniff); every state-changing request passes
// Go's cross-origin protection; request bodies are limited in size.
package web

import (
	"net/http"
	"strings"

	"github.com/usagemeter/usagemeter/internal/httpapi"
	"github.com/usagemeter/usagemeter/internal/web/auth"
	"github.com/usagemeter/usagemeter/internal/web/service"
)

// DefaultMaxBody is the largest request body accepted (1 MiB).
const DefaultMaxBody = 1 << 20

// Options build the handler.
type Options struct {
	Service *service.Service
	Auth    *auth.Manager
	// Health serves /healthz: the daemon's httpapi.Server.Healthz.
	Health http.Handler
	// Metrics serves /metrics on this listener; nil: not served here (a
	// separate loopback listener serves it).
	Metrics http.Handler
	// MetricsToken, when set, is required as "Authorization: Bearer" on
	// /metrics.
	MetricsToken string
	// Console builds the web console's handler, mounted at /.
	Console func(*service.Service, *auth.Manager) http.Handler
	// TLS says the listener is HTTPS: HSTS is sent.
	TLS bool
	// MaxBody limits request bodies (0: DefaultMaxBody).
	MaxBody int64
}

// New builds the whole handler.
func New(o Options) http.Handler {
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	mux := http.NewServeMux()
	if o.Health != nil {
		mux.Handle("GET /healthz", o.Health)
	}
	if o.Metrics != nil {
		mux.Handle("GET /metrics", httpapi.Bearer(o.MetricsToken, o.Metrics))
	}
	a := &api{svc: o.Service, auth: o.Auth}
	a.routes(mux)
	if o.Console != nil {
		mux.Handle("/", o.Console(o.Service, o.Auth))
	} else {
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/" {
				http.Redirect(w, r, "/api/v1/openapi.json", http.StatusSeeOther)
				return
			}
			http.NotFound(w, r)
		})
	}
	return Protect(o.TLS, o.MaxBody, "appliance", mux)
}

// Protect wraps a console's handler as New wraps the appliance's: every
// response carries the security headers, request bodies are limited to
// maxBody, and a state-changing request from another origin is refused
// (403) before it reaches h. noun names the server in the refusal. The
// receiver's console is served through it.
func Protect(tls bool, maxBody int64, noun string, h http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth.WriteError(w, http.StatusForbidden, "cross-origin request refused: a state-changing request must come from the "+noun+"'s own pages (or from a script without a browser's Origin header)")
	}))
	return securityHeaders(tls, limitBody(maxBody, cop.Handler(h)))
}

// ContentSecurityPolicy is sent with every response: no inline script, no
// other origin, no framing.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func securityHeaders(tls bool, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", ContentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if tls {
			hd.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if strings.HasPrefix(r.URL.Path, "/api/") {
			hd.Set("Cache-Control", "no-store")
		}
		h.ServeHTTP(w, r)
	})
}

func limitBody(n int64, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > n {
			auth.WriteError(w, http.StatusRequestEntityTooLarge, "request body too large: the limit is "+sizeText(n))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, n)
		h.ServeHTTP(w, r)
	})
}
