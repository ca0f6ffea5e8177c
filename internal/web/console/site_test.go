package console_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/usagemeter/usagemeter/collectors/all"
	"github.com/usagemeter/usagemeter/internal/appliance"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/smtptest"
	"github.com/usagemeter/usagemeter/internal/web"
	"github.com/usagemeter/usagemeter/internal/web/auth"
	"github.com/usagemeter/usagemeter/internal/web/console"
	"github.com/usagemeter/usagemeter/internal/web/service"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

const (
	adminUser     = "admin"
	adminPassword = "Correct-Horse-42"
)

// site is the whole HTTPS handler of the appliance (web.New with the
// console mounted) on a loopback TLS listener with a self-signed
// certificate, over a real PostgreSQL, with one admin account and a daemon
// whose scheduler collects on demand.
type site struct {
	t      testing.TB
	app    *appliance.App
	svc    *service.Service
	am     *auth.Manager
	daemon *appliance.Daemon
	srv    *httptest.Server
	logs   *bytes.Buffer
}

func newSite(t testing.TB, tweak func(*config.Config)) *site {
	t.Helper()
	mail := smtptest.Start(t, smtptest.Options{STARTTLS: true, Username: "meter", Password: "SmtpPassw0rd", AuthRequired: true})
	cfg := config.Default()
	cfg.SMTP = config.SMTP{Host: mail.Host(), Port: mail.Port(), TLS: "starttls", Auth: "plain", Username: "meter", Password: "SmtpPassw0rd",
		From: "meter@provider.example", Timeout: config.Duration(5 * time.Second)}
	cfg.Alerts.To = []string{"ops@provider.example"}
	cfg.DataDir = t.TempDir()
	cfg.Database.URL = config.Secret(pgtest.NewDatabase(t))
	cfg.Collection.Retries = 0
	cfg.Collection.CallTimeout = config.Duration(5 * time.Second)
	cfg.Log.Level = "warn"
	if tweak != nil {
		tweak(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	ctx := context.Background()
	app, err := appliance.OpenConfig(ctx, &cfg, logs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(app.Close)
	if _, err := auth.SetPassword(ctx, app.Store, adminUser, adminPassword, time.Now()); err != nil {
		t.Fatal(err)
	}
	s := &site{t: t, app: app, logs: logs}
	s.svc = service.New(app, service.Options{Version: "test"})
	s.am = auth.New(s.svc, auth.Config{})
	if s.daemon, err = appliance.NewDaemon(app, nil, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.daemon.Scheduler().Stop(time.Second) })
	s.srv = httptest.NewUnstartedServer(web.New(web.Options{Service: s.svc, Auth: s.am, Console: console.New, TLS: true}))
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

// collect collects product id's hour as the daemon does (alerts included).
func (s *site) collect(id int64, hour time.Time) error {
	s.t.Helper()
	ctx := context.Background()
	p, err := s.app.Store.Product(ctx, id)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.daemon.Scheduler().CollectProduct(ctx, p, hour).Err
}

// client is an HTTP client logged in as the admin (for tests without a
// browser and the benchmark).
func (s *site) client() *http.Client {
	s.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := s.srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.PostForm(s.srv.URL+"/login", url.Values{"username": {adminUser}, "password": {adminPassword}})
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		s.t.Fatalf("login: %s", resp.Status)
	}
	return c
}

// get fetches path and returns the status and the body.
func get(t testing.TB, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
