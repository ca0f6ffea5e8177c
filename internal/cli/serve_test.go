package cli_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/usagemeter once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "usagemeter-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "usagemeter")
		out, err := exec.Command("go", "build", "-o", binPath, "../../cmd/usagemeter").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// writeConfig writes a minimal valid config with an empty database.url.
func writeConfig(t *testing.T, dataDir, extra string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	cfg := fmt.Sprintf(`data_dir: %s
http:
  listen: 127.0.0.1:0
collection:
  minute: 5
smtp:
  host: 127.0.0.1
  port: 2525
  username: meter
  password: SmtpPassw0rd
  from: meter@example.com
alerts:
  to: [ops@example.com]
%s`, dataDir, extra)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type daemonProc struct {
	cmd    *exec.Cmd
	addr   string // the listener's URL, https://127.0.0.1:PORT
	thumb  string // SHA-256 of its certificate, as logged
	logs   *bytes.Buffer
	mu     *sync.Mutex
	exited chan error
}

func (d *daemonProc) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.String()
}

var servingRE = regexp.MustCompile(`usagemeter serving.* url=(\S+)(?: tls_sha256=(\S+))?`)

func startServe(t *testing.T, cfgPath string) *daemonProc {
	t.Helper()
	cmd := exec.Command(binary(t), "serve", "--config", cfgPath)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemonProc{cmd: cmd, logs: &bytes.Buffer{}, mu: &sync.Mutex{}, exited: make(chan error, 1)}
	addrCh := make(chan []string, 1)
	readyCh := make(chan struct{}, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			d.mu.Lock()
			d.logs.WriteString(line + "\n")
			d.mu.Unlock()
			if m := servingRE.FindStringSubmatch(line); m != nil {
				addrCh <- m
			}
			if strings.Contains(line, "appliance ready") {
				readyCh <- struct{}{}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { d.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.exited:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
			}
		}
	})
	// The listener comes first (it answers while the database is awaited),
	// then the appliance.
	timeout := time.After(90 * time.Second)
	for ready := false; d.addr == "" || !ready; {
		select {
		case m := <-addrCh:
			d.addr, d.thumb = m[1], m[2]
		case <-readyCh:
			ready = true
		case err := <-d.exited:
			t.Fatalf("serve exited early: %v\n%s", err, d.log())
		case <-timeout:
			t.Fatalf("serve did not come up in 90s:\n%s", d.log())
		}
	}
	return d
}

func (d *daemonProc) stop(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.exited:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM:\n%s", err, d.log())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not stop within 60s of SIGTERM:\n%s", d.log())
	}
}

// selfSigned is a client of the daemon's self-signed certificate (the
// tests check its thumbprint separately).
var selfSigned = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

func healthz(t *testing.T, base string) map[string]any {
	t.Helper()
	resp, err := selfSigned.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("healthz %d: %v", resp.StatusCode, body)
	}
	return body
}

// TestServeManagedDatabase: with an empty database.url, serve starts its own
// PostgreSQL, migrates, answers /healthz and /metrics, stops cleanly on
// SIGTERM, and a second start reuses the cluster.
func TestServeManagedDatabase(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	cfg := writeConfig(t, dataDir, "")

	d := startServe(t, cfg)
	h := healthz(t, d.addr)
	if h["database"] != "up" || h["schema_version"].(float64) < 1 {
		t.Fatalf("healthz: %v", h)
	}
	if !strings.HasPrefix(d.addr, "https://") || d.thumb == "" {
		t.Fatalf("serve is not HTTPS by default: %s %q", d.addr, d.thumb)
	}
	if got := presentedThumbprint(t, d.addr); got != d.thumb {
		t.Fatalf("the listener presents %s, the log says %s", got, d.thumb)
	}
	if fi, err := os.Stat(filepath.Join(dataDir, "tls", "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("self-signed key: %v %v", fi, err)
	}
	if !strings.Contains(d.log(), "created a self-signed TLS certificate") {
		t.Fatalf("the new certificate is not logged:\n%s", d.log())
	}
	resp, err := selfSigned.Get(d.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"usagemeter_build_info", "usagemeter_database_up 1"} {
		if !strings.Contains(string(metrics), m) {
			t.Fatalf("/metrics lacks %q", m)
		}
	}
	if !strings.Contains(d.log(), "new_cluster=true") || !strings.Contains(d.log(), "database migrated") {
		t.Fatalf("first start should initialise and migrate:\n%s", d.log())
	}
	fi, err := os.Stat(filepath.Join(dataDir, "credentials.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials key: %v %v", fi, err)
	}
	d.stop(t)
	if _, err := os.Stat(filepath.Join(dataDir, "postgres", "postmaster.pid")); !os.IsNotExist(err) {
		t.Fatalf("PostgreSQL still running after serve stopped (postmaster.pid: %v)", err)
	}

	d2 := startServe(t, cfg)
	healthz(t, d2.addr)
	if d2.thumb != d.thumb || strings.Contains(d2.log(), "created a self-signed TLS certificate") {
		t.Fatalf("the self-signed certificate is made once: %s then %s", d.thumb, d2.thumb)
	}
	if !strings.Contains(d2.log(), "new_cluster=false") || strings.Contains(d2.log(), "database migrated") {
		t.Fatalf("second start should reuse the cluster without migrating:\n%s", d2.log())
	}
	for _, log := range []string{d.log(), d2.log()} {
		if strings.Contains(log, "SmtpPassw0rd") {
			t.Fatal("log leaks the SMTP password")
		}
	}
	d2.stop(t)
}

func TestServeBadInput(t *testing.T) {
	bin := binary(t)
	run := func(args ...string) (int, string) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(out)
	}

	t.Run("unknown key", func(t *testing.T) {
		cfg := writeConfig(t, t.TempDir(), "colection:\n  minute: 5\n")
		code, out := run("serve", "--config", cfg)
		if code != 1 || !strings.Contains(out, `colection: unknown key`) || !strings.Contains(out, `did you mean "collection"?`) {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})
	t.Run("data dir not writable", func(t *testing.T) {
		cfg := writeConfig(t, "/proc/usagemeter", "")
		code, out := run("serve", "--config", cfg)
		if code != 1 || !strings.Contains(out, "data_dir /proc/usagemeter") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})
	t.Run("corrupt key file", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "credentials.key"), []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out := run("migrate", "--config", writeConfig(t, dir, "database:\n  url: postgres://nobody@127.0.0.1:1/x\n"))
		if code != 1 || !strings.Contains(out, "is corrupt") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "credentials.key"))
		if string(b) != "garbage" {
			t.Fatal("corrupt key file overwritten")
		}
	})
	t.Run("unreachable database", func(t *testing.T) {
		code, out := run("migrate", "--config", writeConfig(t, t.TempDir(), "database:\n  url: postgres://meter:DbPassw0rd@127.0.0.1:1/usagemeter?connect_timeout=2\n"))
		if code != 1 || !strings.Contains(out, "connecting to the database at 127.0.0.1:1/usagemeter as meter") || strings.Contains(out, "DbPassw0rd") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})
	t.Run("serve retries an unreachable database", func(t *testing.T) {
		cfg := writeConfig(t, t.TempDir(), "database:\n  url: postgres://meter:DbPassw0rd@127.0.0.1:1/usagemeter?connect_timeout=1\n")
		cmd := exec.Command(bin, "serve", "--config", cfg)
		var out bytes.Buffer
		cmd.Stderr = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2500 * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		log := out.String()
		if strings.Count(log, "database unreachable; retrying") < 2 || !strings.Contains(log, "retry_in=2s") || strings.Contains(log, "DbPassw0rd") {
			t.Fatalf("serve log:\n%s", log)
		}
	})
	t.Run("config show hides secrets", func(t *testing.T) {
		code, out := run("config", "show", "--config", writeConfig(t, t.TempDir(), "database:\n  url: postgres://meter:DbPassw0rd@db/usagemeter\n"))
		if code != 0 || strings.Contains(out, "SmtpPassw0rd") || strings.Contains(out, "DbPassw0rd") || !strings.Contains(out, "password: <secret>") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})
	t.Run("config check rejects a port serve cannot listen on", func(t *testing.T) {
		cfg := writeConfig(t, t.TempDir(), "")
		b, _ := os.ReadFile(cfg)
		if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), "127.0.0.1:0", "127.0.0.1:80800", 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out := run("config", "check", "--config", cfg)
		if code != 1 || !strings.Contains(out, `http.listen: port "80800" must be a number between 0 and 65535`) {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})
	t.Run("wrong type names the key", func(t *testing.T) {
		code, out := run("config", "check", "--config", writeConfig(t, t.TempDir(), "retention:\n  months: forever\n"))
		if code != 1 || !strings.Contains(out, "retention.months: cannot unmarshal !!str `forever` into int (line 15)") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})
	t.Run("unknown command", func(t *testing.T) {
		code, out := run("frobnicate")
		if code != 2 || !strings.Contains(out, `unknown command "frobnicate"`) {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})
}

// TestCommandsBesideTheDaemon: with the managed database, CLI commands run
// while serve runs use the daemon's PostgreSQL (they start and stop
// nothing; before, they failed with `lock file "postmaster.pid" already
// exists` or started a second postmaster), several at once included. A
// command whose output is closed early (`| head -1`) exits in order, 141 as
// for SIGPIPE, and stops the server it started (before, it was killed by
// SIGPIPE).
func TestCommandsBesideTheDaemon(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	cfg := writeConfig(t, dataDir, "")
	pidFile := filepath.Join(dataDir, "postgres", "postmaster.pid")
	postmaster := func() string {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return ""
		}
		line, _, _ := strings.Cut(string(b), "\n")
		return line
	}
	run := func(args ...string) (string, error) {
		cmd := exec.Command(binary(t), append(args, "--config", cfg)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	d := startServe(t, cfg)
	pid := postmaster()
	if pid == "" {
		t.Fatal("serve runs no managed PostgreSQL")
	}
	for i := range 6 {
		for _, c := range [][]string{{"product", "list"}, {"report", "list"}} {
			if out, err := run(c...); err != nil {
				t.Fatalf("%s while serve runs (try %d): %v\n%s", strings.Join(c, " "), i+1, err, out)
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for range 4 {
		wg.Go(func() {
			if out, err := run("product", "list"); err != nil {
				errs <- fmt.Sprintf("%v: %s", err, out)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("simultaneous product list: %s", e)
	}
	if got := postmaster(); got != pid {
		t.Fatalf("the daemon's postmaster %s was replaced by %q", pid, got)
	}
	// version reads the schema of the database the daemon runs.
	if out, err := run("version", "--json"); err != nil || !strings.Contains(out, `"state": "current"`) {
		t.Fatalf("version --json while serve runs: %v\n%s", err, out)
	}
	healthz(t, d.addr)
	d.stop(t)

	// Output closed before the command writes: an orderly exit.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	cmd := exec.Command(binary(t), "product", "list", "--config", cfg)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &stderr
	err = cmd.Run()
	w.Close()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 141 {
		t.Fatalf("product list into a closed pipe: %v (state %v), want exit status 141\n%s", err, cmd.ProcessState, stderr.String())
	}
	if strings.Contains(stderr.String(), "context canceled") || strings.Contains(stderr.String(), "broken pipe") {
		t.Errorf("a closed pipe is reported as an error:\n%s", stderr.String())
	}
	if got := postmaster(); got != "" {
		t.Fatalf("PostgreSQL %s still running after the command into a closed pipe ended", got)
	}
}

// presentedThumbprint is the SHA-256 thumbprint of the certificate the
// listener at base presents.
func presentedThumbprint(t *testing.T, base string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(base, "https://"), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return tlsutil.Thumbprint(conn.ConnectionState().PeerCertificates[0].Raw)
}
