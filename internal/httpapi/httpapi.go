// Package httpapi serves the appliance's health and metrics endpoints:
// /healthz (database reachable, schema version, and the checks the daemon
// adds, such as mail delivery; degraded with a reason while the daemon
// waits for its database) and /metrics (Prometheus). internal/web mounts
// them beside the REST API and the console.
package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Health is what /healthz needs to know.
type Health interface {
	Ping(ctx context.Context) error
	SchemaVersion(ctx context.Context) (int32, error)
}

// Degraded is implemented by a Health that can say why the daemon is not
// (yet) working, e.g. still waiting for its database at start-up: a
// non-empty reason makes /healthz answer 503, status "degraded", with it.
type Degraded interface {
	Degraded() string
}

// Server is the HTTP handler set.
type Server struct {
	mux      *http.ServeMux
	metrics  http.Handler
	registry *prometheus.Registry
	health   Health
	latest   int32
	dbUp     prometheus.Gauge

	mu     sync.Mutex
	checks []check
}

type check struct {
	name string
	fn   func(ctx context.Context) error
}

// AddCheck adds a part of the appliance that /healthz reports on besides the
// database, e.g. "mail": fn returns nil while it works, or what is wrong
// (no secrets). A failing check makes the status "degraded" (HTTP 200: the
// daemon runs and must not be restarted for it) and names the check and its
// error under "degraded".
func (s *Server) AddCheck(name string, fn func(ctx context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, check{name, fn})
}

// New builds the handlers. latest is the schema version the binary expects.
func New(h Health, registry *prometheus.Registry, version string, latest int32) *Server {
	s := &Server{mux: http.NewServeMux(), registry: registry, health: h, latest: latest}
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	info := prometheus.NewGauge(prometheus.GaugeOpts{Name: "usagemeter_build_info", Help: "Build information; always 1.", ConstLabels: prometheus.Labels{"version": version}})
	info.Set(1)
	s.dbUp = prometheus.NewGauge(prometheus.GaugeOpts{Name: "usagemeter_database_up", Help: "1 when the database answered the last health check."})
	registry.MustRegister(info, s.dbUp)
	s.metrics = promhttp.HandlerFor(registry, promhttp.HandlerOpts{Registry: registry})
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.Handle("GET /metrics", s.metrics)
	return s
}

// Healthz is the /healthz handler alone.
func (s *Server) Healthz() http.Handler { return http.HandlerFunc(s.healthz) }

// Metrics is the /metrics handler alone.
func (s *Server) Metrics() http.Handler { return s.metrics }

// Bearer serves h only to requests with "Authorization: Bearer token"
// (http.metrics_token); an empty token lets every request through.
func Bearer(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"/metrics needs the bearer token of http.metrics_token"}` + "\n"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Handle adds a handler (for admin pages registered by other packages).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

type healthBody struct {
	Status        string `json:"status"`
	Database      string `json:"database"`
	SchemaVersion int32  `json:"schema_version"`
	Expected      int32  `json:"expected_schema_version"`
	Error         string `json:"error,omitempty"`
	// Degraded names the failing checks (AddCheck) and what is wrong.
	Degraded map[string]string `json:"degraded,omitempty"`
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	body, code := s.status(ctx)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

// Status is the /healthz body.
type Status = healthBody

// Check runs the health checks as /healthz does and returns its body.
func (s *Server) Check(ctx context.Context) Status {
	b, _ := s.status(ctx)
	return b
}

func (s *Server) status(ctx context.Context) (healthBody, int) {
	body := healthBody{Status: "ok", Database: "up", Expected: s.latest}
	code := http.StatusOK
	if dg, ok := s.health.(Degraded); ok {
		if reason := dg.Degraded(); reason != "" {
			body.Status, body.Database, body.Error = "degraded", "down", reason
			s.dbUp.Set(0)
			return body, http.StatusServiceUnavailable
		}
	}
	if err := s.health.Ping(ctx); err != nil {
		body.Status, body.Database, body.Error = "unavailable", "down", "database unreachable"
		code = http.StatusServiceUnavailable
		s.dbUp.Set(0)
	} else {
		s.dbUp.Set(1)
		v, err := s.health.SchemaVersion(ctx)
		body.SchemaVersion = v
		if err != nil || v != s.latest {
			body.Status = "unavailable"
			body.Error = "schema version differs from this binary's"
			code = http.StatusServiceUnavailable
		}
	}
	s.mu.Lock()
	checks := append([]check(nil), s.checks...)
	s.mu.Unlock()
	for _, c := range checks {
		if err := c.fn(ctx); err != nil {
			if body.Degraded == nil {
				body.Degraded = map[string]string{}
			}
			body.Degraded[c.name] = err.Error()
			if body.Status == "ok" {
				body.Status = "degraded"
			}
		}
	}
	return body, code
}
