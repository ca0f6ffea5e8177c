package cli_test

import (
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usagemeter/usagemeter/internal/pgtest"
)

// TestAdminAndAPIThroughServe: `admin set-password` creates the first
// account (password from a file or standard input, never an argument),
// changes it, refuses a short one, lists accounts without hashes; the
// daemon then serves the REST API over HTTPS to that account, and the
// audit log names the command line's user and the admin.
func TestAdminAndAPIThroughServe(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	cfg := writeConfig(t, filepath.Join(dir, "data"), "database:\n  url: "+pgtest.NewDatabase(t)+"\n")
	run := runner(t, bin, cfg)
	withStdin := func(stdin string, args ...string) (int, string) {
		t.Helper()
		return runWithStdin(t, bin, cfg, stdin, args...)
	}

	if code, out := run("admin", "list"); code != 0 || !strings.Contains(out, "no admin accounts") {
		t.Fatalf("admin list before any (exit %d):\n%s", code, out)
	}
	if code, out := run("admin", "set-password", "alice"); code != 2 || !strings.Contains(out, "--password-stdin") {
		t.Fatalf("no password given (exit %d):\n%s", code, out)
	}
	if code, out := withStdin("short\n", "admin", "set-password", "alice", "--password-stdin"); code != 1 || !strings.Contains(out, "at least 12 characters") {
		t.Fatalf("a short password (exit %d):\n%s", code, out)
	}
	if code, out := withStdin("Long-Enough-Passw0rd\n", "admin", "set-password", "bad name", "--password-stdin"); code != 1 || !strings.Contains(out, `user name "bad name"`) {
		t.Fatalf("a bad user name (exit %d):\n%s", code, out)
	}
	if code, out := withStdin("First-Passw0rd-123\n", "admin", "set-password", "alice", "--password-stdin"); code != 0 || out != "admin alice created\n" {
		t.Fatalf("set-password (exit %d):\n%s", code, out)
	}
	pwFile := filepath.Join(dir, "alice.pw")
	if err := os.WriteFile(pwFile, []byte("Second-Passw0rd-456\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := run("admin", "set-password", "--password-file", pwFile, "alice"); code != 0 || !strings.Contains(out, "admin alice: password changed") {
		t.Fatalf("set-password from a file (exit %d):\n%s", code, out)
	}
	code, out := run("admin", "list", "--json")
	if code != 0 || !strings.Contains(out, `"username": "alice"`) || strings.Contains(out, "argon2") || strings.Contains(out, "Passw0rd") {
		t.Fatalf("admin list --json (exit %d):\n%s", code, out)
	}

	// Changes on the command line are audited too, failed ones included.
	if code, out := run("customer", "add", "--label", "ACME", "--object-type", "folder", "--object", "acme"); code != 0 {
		t.Fatalf("customer add (exit %d):\n%s", code, out)
	}
	if code, out := run("customer", "remove", "--id", "999"); code != 1 {
		t.Fatalf("customer remove of a missing rule (exit %d):\n%s", code, out)
	}

	d := startServe(t, cfg)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Transport: selfSigned.Transport}
	post := func(path, body string) *http.Response {
		t.Helper()
		res, err := c.Post(d.addr+"/api/v1"+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	if res := post("/login", `{"username":"alice","password":"First-Passw0rd-123"}`); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the old password: %d", res.StatusCode)
	}
	if res := post("/login", `{"username":"alice","password":"Second-Passw0rd-456"}`); res.StatusCode != http.StatusOK {
		t.Fatalf("login: %d", res.StatusCode)
	}
	res, err := c.Get(d.addr + "/api/v1/audit")
	if err != nil {
		t.Fatal(err)
	}
	var audit []struct {
		Actor, Action, Target string
		OK                    bool
	}
	if err := json.NewDecoder(res.Body).Decode(&audit); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Strict-Transport-Security") == "" {
		t.Fatalf("audit over HTTPS: %d %v", res.StatusCode, res.Header)
	}
	var cli, login, added, removeFailed bool
	for _, a := range audit {
		cli = cli || (strings.HasPrefix(a.Actor, "cli:") && a.Action == "admin.set_password" && a.Target == "user alice")
		login = login || (a.Actor == "alice" && a.Action == "login")
		added = added || (strings.HasPrefix(a.Actor, "cli:") && a.Action == "customer.add" && a.Target == `folder "acme"` && a.OK)
		removeFailed = removeFailed || (strings.HasPrefix(a.Actor, "cli:") && a.Action == "customer.remove" && a.Target == "rule 999" && !a.OK)
	}
	if !cli || !login || !added || !removeFailed {
		t.Fatalf("audit: %+v", audit)
	}
	d.stop(t)
}
