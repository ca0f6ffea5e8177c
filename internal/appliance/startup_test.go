package appliance

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/smtptest"
	"github.com/usagemeter/usagemeter/internal/store"
)

// TestServeBeforeTheDatabase (issue 20, item 4): an appliance rebooting
// into a broken database answers /healthz at once (503, degraded, with the
// reason) and mails the admins once the database has been unreachable for
// alerts.database_down_after; when the database returns the daemon comes
// up and records the alert it could only spill.
func TestServeBeforeTheDatabase(t *testing.T) {
	pg := pgtest.NewServer(t)
	if err := pg.Stop(); err != nil { // the reboot finds PostgreSQL down
		t.Fatal(err)
	}
	mailSrv := smtptest.Start(t, smtptest.Options{})
	dataDir := t.TempDir()
	logs, ctx := serveInBackground(t, serveConfig(t, dataDir, pg.URL("postgres"), mailSrv, "  database_down_after: 2s\n"))

	servingRE := regexp.MustCompile(`usagemeter serving.*http=(\S+)`)
	var addr string
	for deadline := time.Now().Add(15 * time.Second); addr == ""; time.Sleep(50 * time.Millisecond) {
		if m := servingRE.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no HTTP listener while the database is down:\n%s", logs.String())
		}
	}
	get := func() (int, map[string]any) {
		t.Helper()
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	code, body := get()
	if code != http.StatusServiceUnavailable || body["status"] != "degraded" || !strings.Contains(fmt.Sprint(body["error"]), "waiting for the database") ||
		!strings.Contains(fmt.Sprint(body["error"]), "connect") {
		t.Fatalf("healthz while the database is down: %d %v", code, body)
	}

	// The admins hear of it within alerts.database_down_after, by SMTP directly.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if got := subjects(mailSrv.Messages()); len(got) == 1 && strings.Contains(got[0], "database unreachable") {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("no database-down mail while starting: %q\n%s", got, logs.String())
		}
	}
	if !strings.Contains(strings.ReplaceAll(string(mailSrv.Messages()[0].Data), "=\r\n", ""), "is waiting for its database since") {
		t.Fatalf("mail does not say the daemon is waiting:\n%s", mailSrv.Messages()[0].Data)
	}

	// The database returns: the daemon comes up, and records the spilled alert.
	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if code, body = get(); code == http.StatusOK && body["status"] == "ok" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("healthz after the database returned: %d %v\n%s", code, body, logs.String())
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dataDir, "alerts-spill.jsonl")); os.IsNotExist(err) {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("spilled alert not recorded once the database returned:\n%s", logs.String())
		}
	}
	pool, err := store.Connect(ctx, pg.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM alerts WHERE kind = 'database_down'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("database_down alerts recorded: %d %v", n, err)
	}
	down := 0
	for _, s := range subjects(mailSrv.Messages()) {
		if strings.Contains(s, "database unreachable") {
			down++
		}
	}
	if down != 1 {
		t.Fatalf("the database-down mail was sent again: %q", subjects(mailSrv.Messages()))
	}
}

// TestReadinessAlertAtStart (issue 16): a daemon started on an appliance
// that could not report its month (not registered, no recipient key, no
// channel, no product) raises the readiness alert at once, naming each
// missing thing with what to do, weeks before the report would fail; the
// alert is queued for the admins at start, not on the 1st.
func TestReadinessAlertAtStart(t *testing.T) {
	mailSrv := smtptest.Start(t, smtptest.Options{})
	dbURL := pgtest.NewDatabase(t)
	logs, ctx := serveInBackground(t, serveConfig(t, t.TempDir(), dbURL, mailSrv, ""))
	pool, err := store.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var text string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		err := pool.QueryRow(ctx, `SELECT o.body_text FROM outbox o JOIN alerts a ON a.kind = 'report_not_ready' AND a.resolved_at IS NULL
			WHERE o.subject = '[usagemeter] the monthly report is not ready'`).Scan(&text)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no readiness alert queued within a minute of start: %v\n%s", err, logs.String())
		}
	}
	for _, want := range []string{"- registration: the appliance is not registered", "usagemeter register --contract",
		"- recipient keys: report.recipient_keys is empty", "- delivery: neither report.to nor report.upload_url", "- products: no active product"} {
		if !strings.Contains(text, want) {
			t.Errorf("readiness mail lacks %q:\n%s", want, text)
		}
	}
}

// serveConfig writes the config of a serve test: the database at dbURL,
// plain SMTP to mailSrv, alerts to ops; alertsExtra goes on in the alerts
// section.
func serveConfig(t *testing.T, dataDir, dbURL string, mailSrv *smtptest.Server, alertsExtra string) string {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`data_dir: %s
database:
  url: %s
http:
  listen: 127.0.0.1:0
  tls: off
smtp:
  host: %s
  port: %d
  tls: none
  auth: none
  from: meter@provider.example
alerts:
  to: [ops@provider.example]
%s`, dataDir, dbURL, mailSrv.Host(), mailSrv.Port(), alertsExtra)), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath
}

// serveInBackground runs Serve on cfgPath until the test ends (then waits
// for it to stop) and returns its log and a context that ends with it.
func serveInBackground(t *testing.T, cfgPath string) (*syncBuffer, context.Context) {
	t.Helper()
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		cfg, err := LoadConfig(cfgPath)
		if err == nil {
			err = Serve(ctx, cfg, logs, "dev")
		}
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Error("serve did not stop")
		}
	})
	return logs, ctx
}
