package cli_test

import (
	"bytes"
	"context"
	"errors"
	netmail "net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/smtptest"
)

// deliveredIDs counts the delivered mails per Message-ID.
func deliveredIDs(t *testing.T, msgs []smtptest.Message) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range msgs {
		msg, err := netmail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		out[msg.Header.Get("Message-Id")]++
	}
	return out
}

// TestReportSendTellsTheTruth: `report send` tries the report's mail at
// once. While the relay refuses AUTH it prints why, says the mail is not
// delivered and exits non-zero; run again once AUTH is accepted, it
// delivers the same mail (one Message-ID) and exits 0, and `report list`
// says sent. Before the fix the first run printed "queued (outbox N)",
// exited 0, and the mail was marked failed and never sent.
func TestReportSendTellsTheTruth(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	dbURL := pgtest.NewDatabase(t)
	srv := smtptest.Start(t, smtptest.Options{Username: "meter", Password: "SmtpPassw0rd", AuthRequired: true, AllowInsecureAuth: true})
	recipient := pgpKey(t, "Aggregator", time.Now().Add(-time.Hour), 0)
	pub := filepath.Join(dir, "aggregator.asc")
	if err := writeFile(pub, armored(t, recipient, false)); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.yaml")
	if err := writeFile(cfg, []byte(`data_dir: `+filepath.Join(dir, "data")+`
database:
  url: `+dbURL+`
smtp:
  host: `+srv.Host()+`
  port: `+itoa(srv.Port())+`
  tls: none
  allow_insecure_auth: true
  auth: plain
  username: meter
  password: SmtpPassw0rd
  from: meter@provider.example
  timeout: 5s
alerts:
  to: [ops@provider.example]
report:
  to: [billing@aggregator.example]
  recipient_keys: [`+pub+`]
`)); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string) {
		t.Helper()
		return runConfig(t, bin, cfg, args...)
	}
	if code, out := run("migrate"); code != 0 {
		t.Fatalf("migrate: %s", out)
	}
	seedMarch(t, dbURL)
	if code, out := run("register", "--contract", "C-77", "--program", "rental"); code != 0 {
		t.Fatalf("register: %s", out)
	}

	srv.RefuseAuth(1)
	code, out := run("report", "send", "--month", "2026-03")
	if code == 0 || !strings.Contains(out, "email: queued, not delivered yet (outbox 1)") || !strings.Contains(out, "authentication failed (535") ||
		!strings.Contains(out, "not delivered by email yet") || strings.Contains(out, "SmtpPassw0rd") {
		t.Fatalf("send while AUTH is refused (exit %d):\n%s", code, out)
	}
	if code, out := run("report", "list"); code != 0 || !strings.Contains(out, "email=queued(not delivered: configuration failure, retrying)") {
		t.Fatalf("list while refused (exit %d):\n%s", code, out)
	}
	code, out = run("report", "send", "--month", "2026-03")
	if code != 0 || !strings.Contains(out, "email: sent (outbox 1)") {
		t.Fatalf("send once AUTH is accepted (exit %d):\n%s", code, out)
	}
	if code, out := run("report", "list"); code != 0 || !strings.Contains(out, "email=sent") {
		t.Fatalf("list after delivery (exit %d):\n%s", code, out)
	}
	// Sent: a third run sends nothing.
	if code, out := run("report", "send", "--month", "2026-03"); code != 0 {
		t.Fatalf("third send (exit %d):\n%s", code, out)
	}
	ids := deliveredIDs(t, srv.Messages())
	if len(ids) != 1 {
		t.Fatalf("Message-IDs delivered: %v", ids)
	}
	for id, n := range ids {
		if n != 1 {
			t.Fatalf("%s delivered %d times", id, n)
		}
	}
}

// runConfig runs the binary with args and --config cfg, and returns its
// exit status and combined output.
func runConfig(t *testing.T, bin, cfg string, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(bin, append(args, "--config", cfg)...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

func writeFile(path string, data []byte) error { return os.WriteFile(path, data, 0o600) }

func itoa(n int) string { return strconv.Itoa(n) }

// seedMarch stores a month of usage of one VM, March 2026, every hour
// collected.
func seedMarch(t *testing.T, dbURL string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		`INSERT INTO products (kind, endpoint) VALUES ('vcenter', 'https://vc9.corp.example/sdk')`,
		`INSERT INTO usage_spans (product_id, metric, object_key, first_hour, last_hour, quantity, unit, edition, dims_hash, dims)
		 SELECT id, 'vm.vram', 'vc/vm/1', '2026-03-01', '2026-03-31 23:00', 2048, 'MB', 'ent', '\x00',
		        '{"vm":"web77","vcenter":"vc9.corp.example"}' FROM products`,
		`INSERT INTO collection_runs (product_id, hour, state)
		 SELECT id, h, 'done' FROM products, generate_series('2026-03-01'::timestamptz, '2026-03-31 23:00', interval '1 hour') h`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
}
