package cli_test

import (
	"crypto/tls"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// TestProductDay2 drives the binary through a product's life after its
// first day: an account without a password is refused (it was stored with
// an empty one), a password rotation is taken with product set (before,
// there was no way but remove and add, and add was refused as "already
// exists"), a wrong new password is refused before it is stored, the
// product is deactivated and reactivated, removed with its history, and
// added again under its old id.
func TestProductDay2(t *testing.T) {
	bin := binary(t)
	s, password := vcsimRotating(t, "VcPassw0rd!")
	dir := t.TempDir()
	cfg := writeConfig(t, filepath.Join(dir, "data"), "database:\n  url: "+pgtest.NewDatabase(t)+"\n")
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	oldPw, newPw, wrongPw := file("old.pw", "VcPassw0rd!"), file("new.pw", "Rotated-2026!"), file("wrong.pw", "nope")
	run := runner(t, bin, cfg)
	endpoint := "https://" + s.URL.Host + "/sdk"
	thumb := tlsutil.Thumbprint(s.Certificate().Raw)

	code, out := run("product", "add", "--kind", "vcenter", "--endpoint", endpoint, "--username", "meter@vsphere.local", "--accept-thumbprint", thumb)
	if code != 2 || !strings.Contains(out, "needs its password") {
		t.Fatalf("an account without a password (exit %d):\n%s", code, out)
	}
	if code, out = run("product", "add", "--kind", "vcenter", "--endpoint", endpoint, "--username", "meter@vsphere.local", "--password-file", oldPw, "--accept-thumbprint", thumb); code != 0 || !strings.Contains(out, "added product 1") {
		t.Fatalf("add (exit %d):\n%s", code, out)
	}

	// The vCenter's password is rotated.
	password.Store("Rotated-2026!")
	if code, out = run("product", "set", "1"); code != 2 || !strings.Contains(out, "nothing to change") {
		t.Fatalf("product set without a change (exit %d):\n%s", code, out)
	}
	if code, out = run("product", "set", "1", "--password-file", wrongPw); code != 1 || !strings.Contains(strings.ToLower(out), "password") || strings.Contains(out, "nope") {
		t.Fatalf("a wrong new password (exit %d):\n%s", code, out)
	}
	if code, out = run("product", "set", "1", "--password-file", newPw, "--options", `{"tanzu_metric":"cores"}`); code != 0 || !strings.Contains(out, "product 1 changed (password, options)") {
		t.Fatalf("product set (exit %d):\n%s", code, out)
	}
	if code, out = run("collect", "--product", "1"); code != 0 || !regexp.MustCompile(`vm\.vram\s+\d+`).MatchString(out) {
		t.Fatalf("collect with the rotated password (exit %d):\n%s", code, out)
	}

	if code, out = run("product", "list", "--json"); code != 0 || !strings.Contains(out, `"kind": "vcenter"`) || !strings.Contains(out, `"tanzu_metric": "cores"`) || strings.Contains(out, "Rotated") {
		t.Fatalf("product list --json (exit %d):\n%s", code, out)
	}
	if code, out = run("report", "list", "--json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("report list --json (exit %d):\n%s", code, out)
	}
	if code, out = run("product", "deactivate", "1"); code != 0 || !strings.Contains(out, "deactivated") {
		t.Fatalf("deactivate (exit %d):\n%s", code, out)
	}
	if _, out = run("product", "list"); !strings.Contains(out, "deactivated") {
		t.Fatalf("list after deactivate:\n%s", out)
	}
	if code, out = run("product", "reactivate", "1"); code != 0 || !strings.Contains(out, "reactivated") {
		t.Fatalf("reactivate (exit %d):\n%s", code, out)
	}
	if code, out = run("product", "remove", "1"); code != 0 || !strings.Contains(out, "history is kept") {
		t.Fatalf("remove (exit %d):\n%s", code, out)
	}
	if code, out = run("product", "add", "--kind", "vcenter", "--endpoint", endpoint, "--username", "meter@vsphere.local", "--password-file", newPw, "--accept-thumbprint", thumb); code != 0 || !strings.Contains(out, "added product 1") {
		t.Fatalf("the removed vCenter added again (exit %d):\n%s", code, out)
	}
}

// vcsimRotating is vcsim whose password can be changed while it serves.
func vcsimRotating(t *testing.T, pw string) (*simulator.Server, *atomic.Value) {
	t.Helper()
	var password atomic.Value
	password.Store(pw)
	m := simulator.VPX()
	m.Host, m.Machine = 2, 3
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	m.Service.TLS = new(tls.Config)
	m.Service.Listen = &url.URL{User: url.UserPassword("meter@vsphere.local", pw)}
	sm := m.Map().Get(*m.ServiceContent.SessionManager).(*simulator.SessionManager)
	sm.ValidLogin = func(req *types.Login) bool {
		return req.UserName == "meter@vsphere.local" && req.Password == password.Load().(string)
	}
	s := m.Service.NewServer()
	t.Cleanup(func() { s.Close(); m.Remove() })
	return s, &password
}

// TestHelpExitsZero: every command's -h and --help print its flags and exit
// 0 (several exited 2 with "flag: help requested").
func TestHelpExitsZero(t *testing.T) {
	bin := binary(t)
	out, err := exec.Command(bin, "help").Output()
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, l := range strings.Split(string(out), "\n") {
		if m := regexp.MustCompile(`^  (\S+(?: [a-z][a-z-]+)?)\s{2,}`).FindStringSubmatch(l); m != nil {
			cmds = append(cmds, m[1])
		}
	}
	if len(cmds) < 20 {
		t.Fatalf("commands listed: %q", cmds)
	}
	for _, c := range cmds {
		for _, h := range []string{"-h", "--help"} {
			cmd := exec.Command(bin, append(strings.Fields(c), h)...)
			b, err := cmd.CombinedOutput()
			if err != nil || strings.Contains(string(b), "help requested") {
				t.Errorf("usagemeter %s %s: %v\n%s", c, h, err, b)
			}
		}
	}
}

// TestStatusNamesWhatIsMissing: on a fresh, unregistered appliance without
// keys, channel, reachable SMTP or products, `status` names each thing the
// month's report needs and what to do, and exits 1; once registered, that
// line turns ok. `alerts list` answers in text and JSON.
func TestStatusNamesWhatIsMissing(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	cfg := writeConfig(t, filepath.Join(dir, "data"), "database:\n  url: "+pgtest.NewDatabase(t)+"\n")
	run := runner(t, bin, cfg)
	code, out := run("status")
	if code != 1 {
		t.Fatalf("status of an unready appliance: exit %d\n%s", code, out)
	}
	for _, want := range []string{
		`failing\s+registration\s+.*\n\s+-> run .usagemeter register --contract`,
		`failing\s+recipient keys\s+report.recipient_keys is empty`,
		`failing\s+delivery\s+neither report.to nor report.upload_url`,
		`failing\s+smtp\s+127.0.0.1:2525 does not answer`,
		`failing\s+products\s+no active product`,
		`Open alerts: 0`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if code, out = run("register", "--contract", "CN-42", "--program", "rental"); code != 0 {
		t.Fatalf("register (exit %d):\n%s", code, out)
	}
	if _, out = run("status"); !regexp.MustCompile(`ok\s+registration\s+contract CN-42, programme rental`).MatchString(out) {
		t.Errorf("status after register:\n%s", out)
	}
	if code, out = run("status", "--json"); code != 1 || !strings.Contains(out, `"ready": false`) || !strings.Contains(out, `"name": "registration"`) {
		t.Errorf("status --json (exit %d):\n%s", code, out)
	}
	if code, out = run("alerts", "list"); code != 0 || !strings.Contains(out, "no alerts") {
		t.Errorf("alerts list (exit %d):\n%s", code, out)
	}
	if code, out = run("alerts", "list", "--json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("alerts list --json (exit %d):\n%s", code, out)
	}
}

// TestBackupCommands: backup refuses to write an archive in clear, writes
// an encrypted one, and restore puts it onto a fresh appliance (another
// database and data_dir), registration included.
func TestBackupCommands(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	cfgA := writeConfig(t, filepath.Join(dir, "a"), "database:\n  url: "+pgtest.NewDatabase(t)+"\n")
	cfgB := writeConfig(t, filepath.Join(dir, "b"), "database:\n  url: "+pgtest.NewDatabase(t)+"\n")
	runA, runB := runner(t, bin, cfgA), runner(t, bin, cfgB)
	pass := filepath.Join(dir, "pass")
	if err := os.WriteFile(pass, []byte("a long backup passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "appliance.backup")
	if code, out := runA("register", "--contract", "CN-42", "--program", "rental"); code != 0 {
		t.Fatalf("register (exit %d):\n%s", code, out)
	}
	if code, out := runA("backup", "--out", archive); code != 2 || !strings.Contains(out, "never written in clear") {
		t.Fatalf("backup without a key (exit %d):\n%s", code, out)
	}
	if code, out := runA("backup", "--out", archive, "--passphrase-file", pass); code != 0 || !strings.Contains(out, "encrypted") {
		t.Fatalf("backup (exit %d):\n%s", code, out)
	}
	if code, out := runB("restore", archive, "--passphrase-file", pass); code != 0 || !strings.Contains(out, "restored appliance") {
		t.Fatalf("restore (exit %d):\n%s", code, out)
	}
	if _, out := runB("status"); !regexp.MustCompile(`ok\s+registration\s+contract CN-42`).MatchString(out) {
		t.Fatalf("status of the restored appliance:\n%s", out)
	}
}
