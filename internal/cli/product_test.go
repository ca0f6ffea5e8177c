package cli_test

import (
	"context"
	"crypto/tls"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// vcsim serves a simulated vCenter on loopback for the CLI tests.
func vcsim(t *testing.T) (*simulator.Server, *simulator.Model) {
	t.Helper()
	return vcsimWith(t, nil)
}

// vcsimWith is vcsim with the model shaped by shape before it serves.
func vcsimWith(t *testing.T, shape func(m *simulator.Model)) (*simulator.Server, *simulator.Model) {
	t.Helper()
	m := simulator.VPX()
	m.Host = 2
	m.Machine = 3
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	if shape != nil {
		shape(m)
	}
	m.Service.TLS = new(tls.Config)
	m.Service.Listen = &url.URL{User: url.UserPassword("meter@vsphere.local", "VcPassw0rd!")}
	sm := m.Map().Get(*m.ServiceContent.SessionManager).(*simulator.SessionManager)
	sm.ValidLogin = func(req *types.Login) bool {
		return req.UserName == "meter@vsphere.local" && req.Password == "VcPassw0rd!"
	}
	s := m.Service.NewServer()
	t.Cleanup(func() { s.Close(); m.Remove() })
	return s, m
}

// TestProductAddAndCollect drives the binary: product add refuses an
// untrusted certificate and shows how to accept it, accepts the thumbprint,
// refuses the same vCenter under another address, collects an hour, and
// treats a second collection of the hour as a no-op.
func TestProductAddAndCollect(t *testing.T) {
	bin := binary(t)
	s, _ := vcsim(t)
	dir := t.TempDir()
	dbURL := pgtest.NewDatabase(t)
	cfg := writeConfig(t, filepath.Join(dir, "data"), "database:\n  url: "+dbURL+"\n")
	pwFile := filepath.Join(dir, "vc.pw")
	if err := os.WriteFile(pwFile, []byte("VcPassw0rd!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := runner(t, bin, cfg)
	endpoint := "https://" + s.URL.Host + "/sdk"
	thumb := tlsutil.Thumbprint(s.Certificate().Raw)

	code, out := run("product", "add", "--kind", "vcenter", "--endpoint", endpoint, "--username", "meter@vsphere.local", "--password-file", pwFile)
	if code == 0 || !strings.Contains(out, "certificate not trusted") || !strings.Contains(out, thumb) {
		t.Fatalf("untrusted certificate accepted or unexplained (exit %d):\n%s", code, out)
	}
	code, out = run("product", "test", "--kind", "vcenter", "--endpoint", endpoint)
	if code != 0 || !strings.Contains(out, "SHA-256:    "+thumb) || !strings.Contains(out, "subject:") {
		t.Fatalf("product test (exit %d):\n%s", code, out)
	}
	code, out = run("product", "add", "--kind", "vcenter", "--endpoint", endpoint, "--username", "meter@vsphere.local", "--password-file", filepath.Join(dir, "missing.pw"))
	if code == 0 || !strings.Contains(out, "--password-file") {
		t.Fatalf("missing password file (exit %d):\n%s", code, out)
	}
	wrong := filepath.Join(dir, "wrong.pw")
	_ = os.WriteFile(wrong, []byte("nope"), 0o600)
	code, out = run("product", "add", "--kind", "vcenter", "--endpoint", endpoint, "--username", "meter@vsphere.local", "--password-file", wrong, "--accept-thumbprint", thumb)
	if code == 0 || !strings.Contains(strings.ToLower(out), "password") || strings.Contains(out, "nope") {
		t.Fatalf("wrong password (exit %d):\n%s", code, out)
	}
	code, out = run("product", "add", "--kind", "vcenter", "--endpoint", endpoint, "--username", "meter@vsphere.local", "--password-file", pwFile, "--accept-thumbprint", strings.ToLower(thumb), "--vcf-edition", "enterprise")
	if code != 0 || !strings.Contains(out, "added product 1") {
		t.Fatalf("product add (exit %d):\n%s", code, out)
	}
	// The same vCenter under another address is one product.
	other := strings.Replace(endpoint, "127.0.0.1", "localhost", 1)
	code, out = run("product", "add", "--kind", "vcenter", "--endpoint", other, "--username", "meter@vsphere.local", "--password-file", pwFile, "--accept-thumbprint", thumb)
	if code == 0 || !strings.Contains(out, "already exists") {
		t.Fatalf("duplicate vCenter (exit %d):\n%s", code, out)
	}
	code, out = run("product", "add", "--kind", "vcenter", "--endpoint", endpoint+"2", "--options", `{"vcf_edition":"platinum"}`, "--accept-thumbprint", thumb)
	if code == 0 || !strings.Contains(out, "vcf_edition") {
		t.Fatalf("bad option (exit %d):\n%s", code, out)
	}

	// Pairing follows each kind's declaration (collectors.Kind.PairsWith).
	code, out = run("product", "add", "--kind", "nsxt", "--endpoint", "https://nsx.invalid", "--username", "admin", "--password-file", pwFile)
	if code == 0 || !strings.Contains(out, "a nsxt product must be paired with its vCenter Server") || !strings.Contains(out, "--vcenter ID") {
		t.Fatalf("unpaired NSX-T (exit %d):\n%s", code, out)
	}
	code, out = run("product", "add", "--kind", "vcd", "--endpoint", "https://vcd.invalid", "--username", "admin", "--password-file", pwFile, "--vcenter", "1")
	if code == 0 || !strings.Contains(out, "a vcd product is not paired with another product") {
		t.Fatalf("paired Cloud Director (exit %d):\n%s", code, out)
	}
	code, out = run("product", "add", "--kind", "horizon-classic", "--endpoint", "https://hz.invalid")
	if code == 0 || !strings.Contains(out, `unknown product kind "horizon-classic"`) || !strings.Contains(out, "vcenter") {
		t.Fatalf("unknown kind (exit %d):\n%s", code, out)
	}

	code, out = run("product", "list")
	if code != 0 || !strings.Contains(out, endpoint) || !strings.Contains(out, "active") {
		t.Fatalf("product list (exit %d):\n%s", code, out)
	}
	if strings.Contains(out, "VcPassw0rd") {
		t.Fatal("product list shows the password")
	}

	// An earlier hour is not collected without --backfill: it would get
	// today's state.
	code, out = run("collect", "--product", "1", "--hour", "2026-01-15T10:00:00Z")
	if code != 2 || !strings.Contains(out, "is not the current hour") || !strings.Contains(out, "add --backfill") {
		t.Fatalf("past hour without --backfill (exit %d):\n%s", code, out)
	}
	code, out = run("collect", "--product", "1", "--backfill")
	if code != 2 || !strings.Contains(out, "collect it without --backfill") {
		t.Fatalf("--backfill of the current hour (exit %d):\n%s", code, out)
	}
	code, out = run("collect", "--product", "1", "--hour", "2026-01-15T10:00:00Z", "--backfill")
	if code != 0 || !strings.Contains(out, "recorded as backfilled") || !regexp.MustCompile(`vm\.vram\s+\d+`).MatchString(out) || !strings.Contains(out, "host.cores") || !strings.Contains(out, "total capped billed vRAM") {
		t.Fatalf("collect (exit %d):\n%s", code, out)
	}
	code, out = run("collect", "--product", "1", "--hour", "2026-01-15T10:00:00Z", "--backfill")
	if code != 0 || !strings.Contains(out, "already collected") || strings.Contains(out, "recorded as backfilled") {
		t.Fatalf("second collect of the hour (exit %d):\n%s", code, out)
	}
	// The journal marks the hour backfilled.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var backfilled bool
	if err := conn.QueryRow(ctx, `SELECT backfilled FROM collection_runs WHERE product_id = 1 AND hour = '2026-01-15T10:00:00Z'`).Scan(&backfilled); err != nil || !backfilled {
		t.Fatalf("journal: backfilled %v, %v", backfilled, err)
	}
	// The version the vCenter reported when added fills the report's
	// Product Version column.
	var version string
	if err := conn.QueryRow(ctx, `SELECT version FROM products WHERE id = 1`).Scan(&version); err != nil || !regexp.MustCompile(`^\d+\.\d+\.\d+ build \d+$`).MatchString(version) {
		t.Errorf("product version %q, %v: want about.version and build", version, err)
	}
	// A month already reported is not backfilled.
	if _, err := conn.Exec(ctx, `INSERT INTO reports (month, version, rules_version, figures_sha256, bundle_sha256, path) VALUES ('2026-01-01', 1, 'r', 'f', 'b', '/x')`); err != nil {
		t.Fatal(err)
	}
	code, out = run("collect", "--product", "1", "--hour", "2026-01-15T11:00:00Z", "--backfill")
	if code != 1 || !strings.Contains(out, "2026-01 was reported already (version 1)") || !strings.Contains(out, "Leave the hour as a gap") {
		t.Fatalf("backfill of a reported month (exit %d):\n%s", code, out)
	}
	code, out = run("collect", "--hour", "2999-01-01T00:00:00Z")
	if code != 2 || !strings.Contains(out, "in the future") {
		t.Fatalf("future hour (exit %d):\n%s", code, out)
	}
}

// mustOf is run that fails the test on a non-zero exit, returning the output.
func mustOf(t *testing.T, run func(args ...string) (int, string)) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		code, out := run(args...)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
}

// runner runs the binary with --config cfg and standard input that is not
// a terminal, and returns its exit status and output.
func runner(t *testing.T, bin, cfg string) func(args ...string) (int, string) {
	return func(args ...string) (int, string) {
		t.Helper()
		return runWithStdin(t, bin, cfg, "", args...)
	}
}

// runWithStdin runs the binary with --config cfg, stdin on its standard
// input, and returns its exit status and combined output.
func runWithStdin(t *testing.T, bin, cfg, stdin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, append(args, "--config", cfg)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}
