package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const good = `
data_dir: /var/lib/usagemeter
alerts:
  to: [ops@example.com]
smtp:
  host: smtp.example.com
  username: meter
  password: Sup3rSecret
  from: meter@example.com
`

func TestGoodConfigAndDefaults(t *testing.T) {
	c, err := Parse([]byte(good), "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Collection.Minute != 5 || c.SMTP.Port != 587 || c.SMTP.TLS != "starttls" || c.Report.Anonymization != "hashed" ||
		c.Alerts.ReminderInterval.D() != 24*time.Hour || c.Alerts.DeactivateAfter != 720 || c.Report.Schedule != "0 2 1 * *" {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if !c.HTTP.TLSOn() || c.HTTP.Listen != "127.0.0.1:8080" || c.HTTP.SessionIdle.D() != 30*time.Minute || c.HTTP.LoginMaxFailures != 5 {
		t.Fatalf("http defaults: HTTPS on loopback, 30m idle sessions, 5 failures; got %+v", c.HTTP)
	}
	off, err := Parse([]byte(good+"http:\n  tls: off\n  metrics_token: MetricsT0ken\nreport:\n  upload_proxy: http://meter:Pr0xyPass@proxy.example:3128\n"), "")
	if err != nil || off.HTTP.TLSOn() {
		t.Fatalf("tls: off: %v %+v", err, off)
	}
	if out, err := off.Show(); err != nil || strings.Contains(string(out), "MetricsT0ken") || strings.Contains(string(out), "Pr0xyPass") {
		t.Fatalf("config show prints the metrics token or the proxy's password: %v\n%s", err, out)
	}
	if b := c.Backup; b.Enabled || b.Schedule != "30 3 * * *" || b.Keep != 7 || b.RetentionDays != 0 || b.Directory != "/var/lib/usagemeter/backups" {
		t.Fatalf("backup defaults: %+v", b)
	}
}

// TestBadConfigs is the table of bad files and the exact message a user sees.
func TestBadConfigs(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown key with suggestion", good + "\ncollection:\n  minutes: 5\n", `collection.minutes: unknown key (line 12); did you mean "collection.minute"?`},
		{"unknown top-level key", good + "\nsmpt:\n  host: x\n", `smpt: unknown key (line 11); did you mean "smtp"?`},
		{"port out of range", good + "  port: 70000\n", "smtp.port: must be between 1 and 65535"},
		{"bad tls", good + "  tls: ssl\n", `smtp.tls: must be starttls, tls or none (got "ssl")`},
		{"bad auth", good + "  auth: ntlm\n", `smtp.auth: must be plain, login, cram-md5 or none (got "ntlm")`},
		{"auth without tls", good + "  tls: none\n", "smtp.tls: is none but smtp.auth is plain: the password would cross the network in clear; use starttls or tls, or set smtp.allow_insecure_auth: true"},
		{"timeout too long", good + "collection:\n  timeout: 2h\n", "collection.timeout: must be shorter than 50m so that a collection and its retries end within its hour (got 2h0m0s)"},
		{"not a duration", good + "collection:\n  timeout: soon\n", `collection.timeout: not a duration (use e.g. 30s, 10m, 24h): "soon" (line 11)`},
		{"minute", good + "collection:\n  minute: 60\n", "collection.minute: must be between 0 and 59"},
		{"no alert recipients", strings.Replace(good, "  to: [ops@example.com]\n", "  to: []\n", 1), "alerts.to: must list at least one recipient: nobody would be told when collection fails"},
		{"bad alert address", strings.Replace(good, "ops@example.com", "not-an-address", 1), `alerts.to[0]: not an e-mail address: "not-an-address"`},
		{"anonymization", good + "report:\n  anonymization: plain\n", `report.anonymization: must be hashed, redacted or none (got "plain")`},
		{"timezone", good + "report:\n  timezone: Mars/Olympus\n", `report.timezone: unknown time zone "Mars/Olympus" (use an IANA name such as UTC or Europe/Berlin)`},
		{"schedule", good + "report:\n  schedule: monthly\n", "report.schedule: not a cron schedule"},
		{"report to without keys", good + "report:\n  to: [usage@aggregator.example]\n", "report.recipient_keys: must list at least one PGP public key file when report.to is set: reports are only sent encrypted"},
		{"missing key file", good + "report:\n  recipient_keys: [/nonexistent/key.asc]\n", "report.recipient_keys[0]: stat /nonexistent/key.asc: no such file or directory"},
		{"upload http", good + "report:\n  upload_url: http://x\n  upload_token: t\n", "report.upload_url: must be an https:// URL"},
		{"database down alert never", strings.Replace(good, "  to: [ops@example.com]\n", "  to: [ops@example.com]\n  database_down_after: 0s\n", 1), "alerts.database_down_after: must be between 1s and 1h (got 0s)"},
		{"receiver due day", good + "receiver:\n  due_day: 31\n", "receiver.due_day: must be between 1 and 28"},
		{"receiver cert without key", good + "receiver:\n  cert_file: /etc/r.crt\n", "receiver.cert_file: set both receiver.cert_file and receiver.key_file, or neither"},
		{"receiver silent", good + "receiver:\n  silent_after: 1m\n", "receiver.silent_after: must be at least 10m"},
		{"receiver key file", good + "receiver:\n  aggregator_keys: [/nonexistent/agg.asc]\n", "receiver.aggregator_keys[0]: stat /nonexistent/agg.asc"},
		{"log level", good + "log:\n  level: verbose\n", `log.level: must be debug, info, warn or error (got "verbose")`},
		{"listen", good + "http:\n  listen: 8080\n", "http.listen: must be host:port"},
		{"both passwords", good + "  password_file: /etc/pw\n", "smtp.password_file: set either smtp.password or smtp.password_file, not both"},
		{"wrong type", good + "collection:\n  concurrency: many\n", "collection.concurrency: cannot unmarshal !!str `many` into int (line 11)"},
		{"wrong type in a list", good + "report:\n  to:\n    - [a, b]\n", "report.to[0]: cannot unmarshal !!seq into string (line 12)"},
		{"wrong type for a section", good + "retention: forever\n", "retention: cannot unmarshal !!str `forever` into config.Retention (line 10)"},
		{"listen port out of range", good + "http:\n  listen: 127.0.0.1:80800\n", `http.listen: port "80800" must be a number between 0 and 65535 (or a service name)`},
		{"not yaml", "smtp: [", "not valid YAML"},
		{"backup without a key", good + "backup:\n  enabled: true\n", "backup: set one of backup.passphrase_file or backup.recipient_key_file: a backup holds the appliance's keys and is never written in clear"},
		{"backup with both keys", good + "backup:\n  enabled: true\n  passphrase_file: /etc/pass\n  recipient_key_file: /etc/key.asc\n", "backup: set one of backup.passphrase_file or backup.recipient_key_file"},
		{"backup passphrase file missing", good + "backup:\n  enabled: true\n  passphrase_file: /nonexistent/pass\n", "backup.passphrase_file: stat /nonexistent/pass: no such file or directory"},
		{"backup schedule", good + "backup:\n  schedule: nightly\n", "backup.schedule: not a cron schedule"},
		{"backup keep", good + "backup:\n  keep: 0\n", "backup.keep: must be at least 1"},
		{"backup retention", good + "backup:\n  retention_days: -1\n", "backup.retention_days: must be 0 (keep by count only) or more"},
		{"backup unknown key", good + "backup:\n  retention: 7\n", `backup.retention: unknown key (line 11)`},
		{"no smtp host", strings.Replace(good, "  host: smtp.example.com\n", "", 1), "smtp.host: must be set: alerts are sent by e-mail"},
		{"http tls", good + "http:\n  tls: maybe\n", `http.tls: must be on (HTTPS, the default) or off (plain HTTP), got "maybe"`},
		{"http cert without key", good + "http:\n  tls_cert: /etc/usagemeter/tls/cert.pem\n", "http.tls_cert: set both http.tls_cert and http.tls_key, or neither"},
		{"http cert missing", good + "http:\n  tls_cert: /nonexistent/cert.pem\n  tls_key: /nonexistent/key.pem\n", "http.tls_cert: cannot load the certificate and key: open /nonexistent/cert.pem"},
		{"http cert with tls off", good + "http:\n  tls: off\n  tls_cert: /a.pem\n  tls_key: /b.pem\n", "http.tls_cert: http.tls is off"},
		{"metrics listener not loopback", good + "http:\n  metrics_listen: 0.0.0.0:9090\n", `http.metrics_listen: must be a loopback address (127.0.0.1, ::1 or localhost): it is served without TLS, got "0.0.0.0"`},
		{"session idle over max", good + "http:\n  session_idle: 2h\n  session_max: 1h\n", "http.session_idle: must be at least 1m and at most http.session_max (got 2h0m0s and 1h0m0s)"},
		{"login failures", good + "http:\n  login_max_failures: 0\n", "http.login_max_failures: must be between 1 and 100"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "")
			if err == nil {
				t.Fatalf("accepted; want error %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, tc.want)
			}
			if strings.Contains(err.Error(), "Sup3rSecret") {
				t.Fatal("error leaks the password")
			}
		})
	}
}

func TestAllErrorsReportedAtOnce(t *testing.T) {
	_, err := Parse([]byte(good+"  port: 0\ncollection:\n  minute: 99\n"), "")
	if err == nil || !strings.Contains(err.Error(), "smtp.port") || !strings.Contains(err.Error(), "collection.minute") {
		t.Fatalf("want both errors, got %v", err)
	}
}

func TestPasswordFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "smtp.pw"), []byte("FromFile99\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(good, "  password: Sup3rSecret\n", "  password_file: smtp.pw\n", 1)
	c, err := Parse([]byte(y), dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTP.Password.Reveal() != "FromFile99" {
		t.Fatalf("password from file: %q", c.SMTP.Password.Reveal())
	}
	_, err = Parse([]byte(strings.Replace(y, "smtp.pw", "missing.pw", 1)), dir)
	if err == nil || !strings.HasPrefix(err.Error(), "smtp.password_file: ") {
		t.Fatalf("missing password file: %v", err)
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	c, err := Parse([]byte(good+"database:\n  url: postgres://u:DbPassw0rd@db/x\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Show()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{string(out), fmt.Sprintf("%v %+v %#v", c, c, c), fmt.Sprint(c.SMTP.Password)} {
		if strings.Contains(s, "Sup3rSecret") || strings.Contains(s, "DbPassw0rd") {
			t.Fatalf("secret leaked in:\n%s", s)
		}
	}
	if !strings.Contains(string(out), "password: <secret>") {
		t.Fatalf("config show should mark secrets:\n%s", out)
	}
	if c.SMTP.Password.Reveal() != "Sup3rSecret" {
		t.Fatal("Reveal")
	}
}
