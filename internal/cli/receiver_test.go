package cli_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/smtptest"
)

// The receiver's commands end to end with the binary: a receiver serving
// on loopback, an appliance enrolling with a token and sending March to
// it, the receiver listing, merging and revoking it.
func TestReceiverCommands(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	srv := smtptest.Start(t, smtptest.Options{})
	agg := pgpKey(t, "Aggregator", time.Now().Add(-time.Hour), 0)
	priv, pub := filepath.Join(dir, "aggregator-private.asc"), filepath.Join(dir, "aggregator.asc")
	if err := writeFile(priv, armored(t, agg, true)); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(pub, armored(t, agg, false)); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	common := `smtp:
  host: ` + srv.Host() + `
  port: ` + itoa(srv.Port()) + `
  tls: none
  auth: none
  from: meter@provider.example
alerts:
  to: [ops@provider.example]
`
	recvCfg, appCfg := filepath.Join(dir, "receiver.yaml"), filepath.Join(dir, "appliance.yaml")
	if err := writeFile(recvCfg, []byte(`data_dir: `+filepath.Join(dir, "receiver")+`
database:
  url: `+pgtest.NewDatabase(t)+`
`+common+`receiver:
  listen: `+addr+`
  hosts: [127.0.0.1]
  aggregator_keys: [`+priv+`]
  admin_token: Adm1nT0ken
`)); err != nil {
		t.Fatal(err)
	}
	appDB := pgtest.NewDatabase(t)
	if err := writeFile(appCfg, []byte(`data_dir: `+filepath.Join(dir, "appliance")+`
database:
  url: `+appDB+`
`+common+`report:
  recipient_keys: [`+pub+`]
`)); err != nil {
		t.Fatal(err)
	}
	run := func(cfg string, args ...string) (int, string) {
		t.Helper()
		return runConfig(t, bin, cfg, args...)
	}

	code, out := run(recvCfg, "receiver", "token", "create", "--note", "appliance 1")
	tok := regexp.MustCompile(`umr1\.[A-Za-z0-9_-]+\.[0-9a-f]{64}`).FindString(out)
	if code != 0 || tok == "" {
		t.Fatalf("token create (exit %d):\n%s", code, out)
	}
	serve := exec.Command(bin, "receiver", "serve", "--config", recvCfg)
	logPath := filepath.Join(dir, "serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	serve.Stdout, serve.Stderr = logFile, logFile
	serveLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = serve.Process.Signal(syscall.SIGTERM)
		_ = serve.Wait()
	})
	for deadline := time.Now().Add(30 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver serve did not listen:\n%s", serveLog())
		}
		time.Sleep(100 * time.Millisecond)
	}

	if code, out := run(appCfg, "migrate"); code != 0 {
		t.Fatalf("migrate: %s", out)
	}
	seedMarch(t, appDB)
	if code, out := run(appCfg, "register", "--contract", "C-77", "--program", "rental"); code != 0 {
		t.Fatalf("register: %s", out)
	}
	code, out = run(appCfg, "enrol", "--receiver", "https://"+addr, "--token", tok)
	m := regexp.MustCompile(`appliance (\S+) enrolled with receiver`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("enrol (exit %d):\n%s", code, out)
	}
	id := m[1]
	if code, out := run(appCfg, "enrol", "--receiver", "https://"+addr, "--token", tok); code == 0 || !strings.Contains(out, "already used") {
		t.Fatalf("enrol with a used token (exit %d):\n%s", code, out)
	}
	if _, out := run(appCfg, "status"); !strings.Contains(out, "signed upload to the receiver https://"+addr) {
		t.Fatalf("status after enrolment:\n%s", out)
	}
	if code, out := run(appCfg, "report", "send", "--month", "2026-03"); code != 0 || !strings.Contains(out, "receiver") {
		t.Fatalf("report send (exit %d):\n%s", code, out)
	}
	if code, out := run(recvCfg, "receiver", "appliances", "list"); code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "active") {
		t.Fatalf("appliances list (exit %d):\n%s", code, out)
	}
	code, out = run(recvCfg, "receiver", "report", "--month", "2026-03")
	if code != 0 || !regexp.MustCompile(`\tALL\t\t[0-9.]+\tyes\n`).MatchString(out) || !strings.Contains(out, "\t"+id+"\t") {
		t.Fatalf("receiver report (exit %d):\n%s", code, out)
	}
	// The console of `receiver serve`: an account made on the command
	// line logs in over HTTPS and sees the appliance.
	if code, out := runWithStdin(t, bin, recvCfg, "Fleet-Admin-Passw0rd\n", "receiver", "admin", "set-password", "fleet", "--password-stdin"); code != 0 || out != "admin fleet created\n" {
		t.Fatalf("receiver admin set-password (exit %d):\n%s", code, out)
	}
	if code, out := run(recvCfg, "receiver", "admin", "list"); code != 0 || !strings.Contains(out, "fleet ") {
		t.Fatalf("receiver admin list (exit %d):\n%s", code, out)
	}
	if code, out := run(recvCfg, "receiver", "admin", "remove", "fleet"); code != 2 || !strings.Contains(out, "set-password USER | list") {
		t.Fatalf("receiver admin remove (exit %d):\n%s", code, out)
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, "receiver", "receiver-tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := hc.PostForm("https://"+addr+"/login", url.Values{"username": {"fleet"}, "password": {"Fleet-Admin-Passw0rd"}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), `data-appliance="`+id+`"`) || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Fatalf("the console after logging in: %d\n%s", resp.StatusCode, page)
	}

	if code, out := run(recvCfg, "receiver", "revoke", id); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke (exit %d):\n%s", code, out)
	}
	if code, out := run(recvCfg, "receiver", "appliances", "list"); code != 0 || !strings.Contains(out, "revoked 20") {
		t.Fatalf("appliances list after revoke (exit %d):\n%s", code, out)
	}
	if code, out := run(recvCfg, "receiver", "report"); code != 2 || !strings.Contains(out, "--month") {
		t.Fatalf("receiver report without --month (exit %d):\n%s", code, out)
	}
	if strings.Contains(serveLog()+out, "Adm1nT0ken") {
		t.Fatal("the admin token leaked")
	}
}
