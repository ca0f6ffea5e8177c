package web

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/httpapi"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/smtptest"
	"github.com/usagemeter/usagemeter/internal/web/auth"
	"github.com/usagemeter/usagemeter/internal/web/service"
	"github.com/usagemeter/usagemeter/migrations"
	"github.com/usagemeter/usagemeter/report"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMain runs the tests on a throw-away PostgreSQL and, when all of
// them ran, checks that every documented operation succeeded in one.
func TestMain(m *testing.M) {
	code := pgtest.Run(m)
	if code == 0 && flag.Lookup("test.run").Value.String() == "" {
		doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
		if err != nil {
			panic(err)
		}
		for path, item := range doc.Paths.Map() {
			for method := range item.Operations() {
				if !succeeded[method+" "+path] {
					fmt.Fprintf(os.Stderr, "no test made %s %s succeed\n", method, path)
					code = 1
				}
			}
		}
	}
	os.Exit(code)
}

// succeeded records the operations answered with a 2xx in any test
// ("GET /products/{id}").
var (
	succeededMu sync.Mutex
	succeeded   = map[string]bool{}
)

// clock is the injected clock of the service and the sessions.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// t0 is the tests' "now": a Monday in May 2026.
var t0 = time.Date(2026, 5, 4, 10, 20, 0, 0, time.UTC)

const (
	adminUser = "admin"
	adminPass = "Corr3ct-Horse-Battery"
	smtpPass  = "SmtpPassw0rd-never-shown"
)

// env is the whole handler over an opened appliance on a real PostgreSQL,
// served over TLS on loopback, with a client that keeps cookies and
// validates every /api/v1 exchange against the OpenAPI document.
type env struct {
	t      testing.TB
	app    *appliance.App
	svc    *service.Service
	auth   *auth.Manager
	clock  *clock
	smtp   *smtptest.Server
	srv    *httptest.Server
	client *http.Client
	router routers.Router
	// secrets must never appear in a response body.
	secrets []string
}

type envOptions struct {
	auth   auth.Config
	config func(*config.Config)
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	mailSrv := smtptest.Start(t, smtptest.Options{Username: "meter", Password: smtpPass})
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Database.URL = config.Secret(pgtest.NewDatabase(t))
	cfg.SMTP = config.SMTP{Host: mailSrv.Host(), Port: mailSrv.Port(), TLS: "none", Auth: "plain", AllowInsecureAuth: true, Username: "meter", Password: smtpPass,
		From: "meter@provider.example", Timeout: config.Duration(5 * time.Second)}
	cfg.Alerts.To = []string{"ops@provider.example"}
	cfg.Collection.Retries = 0
	cfg.Collection.CallTimeout = config.Duration(10 * time.Second)
	if o.config != nil {
		o.config(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	app, err := appliance.OpenConfig(context.Background(), &cfg, &logs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(app.Close)
	c := &clock{t: t0}
	base := httpapi.New(app.Store, prometheus.NewRegistry(), "test", migrations.Latest())
	svc := service.New(app, service.Options{Version: "test", Now: c.Now})
	ac := o.auth
	ac.Now = c.Now
	am := auth.New(svc, ac)
	h := New(Options{Service: svc, Auth: am, Health: base.Healthz(), Metrics: base.Metrics(), MetricsToken: "metrics-T0ken", TLS: true})
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	if _, err := auth.SetPassword(context.Background(), app.Store, adminUser, adminPass, t0); err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = openapi3.Servers{{URL: srv.URL + Prefix}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, app: app, svc: svc, auth: am, clock: c, smtp: mailSrv, srv: srv, router: router,
		secrets: []string{adminPass, smtpPass, "metrics-T0ken"}}
	e.client = e.newClient()
	return e
}

// newClient is a client of the test server with its own cookie jar.
func (e *env) newClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	c := e.srv.Client()
	return &http.Client{Transport: c.Transport, Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// resp is an answer, its body read.
type resp struct {
	*http.Response
	body []byte
}

// json decodes the body into v.
func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("%s %s: %d, body not JSON: %v\n%s", r.Request.Method, r.Request.URL.Path, r.StatusCode, err, r.body)
	}
}

// errorText is the body's {"error": ...}.
func (r resp) errorText(t *testing.T) string {
	t.Helper()
	var b struct {
		Error string `json:"error"`
	}
	r.json(t, &b)
	if b.Error == "" {
		t.Fatalf("%s %s: %d without an error message: %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, r.body)
	}
	return b.Error
}

type reqOpt func(*http.Request)

func header(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }

// do sends a request with client c (nil: the env's); body is JSON-encoded
// unless it is a string or []byte (sent as is).
func (e *env) do(c *http.Client, method, path string, body any, opts ...reqOpt) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	if c == nil {
		c = e.client
	}
	// The request body is kept for validating the request.
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		e.t.Fatal(err)
	}
	r := resp{res, b}
	for _, s := range e.secrets {
		if s != "" && bytes.Contains(b, []byte(s)) {
			e.t.Fatalf("%s %s: the response shows a secret:\n%s", method, path, b)
		}
	}
	if strings.HasPrefix(req.URL.Path, Prefix+"/") {
		e.validate(req, reqBody, r)
	}
	return r
}

// validate checks an /api/v1 exchange against the OpenAPI document: the
// route exists, the response (status, headers, JSON body) matches its
// schema, and a request that succeeded matches the request schema.
func (e *env) validate(req *http.Request, reqBody []byte, r resp) {
	e.t.Helper()
	route, params, err := e.router.FindRoute(req)
	if err != nil {
		if r.StatusCode == http.StatusNotFound || r.StatusCode == http.StatusMethodNotAllowed || r.StatusCode == http.StatusBadRequest {
			return // no such route, and the server said so
		}
		e.t.Fatalf("%s %s (%d) is not in the OpenAPI document: %v", req.Method, req.URL.Path, r.StatusCode, err)
	}
	ctx := context.Background()
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	ct := r.Header.Get("Content-Type")
	opts := &openapi3filter.Options{IncludeResponseStatus: true}
	if !strings.HasPrefix(ct, "application/json") {
		opts.ExcludeResponseBody = true
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: r.StatusCode, Header: r.Header,
		Body: io.NopCloser(bytes.NewReader(r.body)), Options: opts}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		e.t.Fatalf("%s %s: the response does not match the OpenAPI document: %v\n%s", req.Method, req.URL.Path, err, r.body)
	}
	if r.StatusCode < 300 {
		req2 := req.Clone(ctx)
		req2.Body = io.NopCloser(bytes.NewReader(reqBody))
		in.Request = req2
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			e.t.Fatalf("%s %s succeeded with a request the OpenAPI document refuses: %v", req.Method, req.URL.Path, err)
		}
		succeededMu.Lock()
		succeeded[req.Method+" "+route.Path] = true
		succeededMu.Unlock()
	}
}

// login logs c in as user.
func (e *env) login(c *http.Client, user, pass string) resp {
	e.t.Helper()
	return e.do(c, "POST", Prefix+"/login", map[string]string{"username": user, "password": pass})
}

// mustStatus fails unless r has status want.
func mustStatus(t *testing.T, r resp, want int) {
	t.Helper()
	if r.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d\n%s", r.Request.Method, r.Request.URL.String(), r.StatusCode, want, r.body)
	}
}

// writeRecipientKey writes an aggregator key pair's public half into dir
// and returns its path.
func writeRecipientKey(t *testing.T, dir string) string {
	t.Helper()
	k, err := report.GenerateKey("Aggregator", "agg@example.com", t0.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := report.ExportPublic(k)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "aggregator.asc")
	if err := os.WriteFile(p, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
