package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	daassim "github.com/usagemeter/usagemeter/collectors/horizondaas/simulator"
	"github.com/usagemeter/usagemeter/internal/pgtest"
)

// TestCollectSixHourProduct: `collect` without --product collects the
// products due at the hour; a Horizon DaaS product alone is due at 00, 06,
// 12 and 18 UTC only, and at another hour the command says so (not "no
// active products"); --product collects it at any hour.
func TestCollectSixHourProduct(t *testing.T) {
	bin := binary(t)
	sim := daassim.New(daassim.State{User: "meter", Password: "DaasPw-1", Domain: "SP",
		Tenants: []daassim.Tenant{{ID: "1001", Name: "Acme", Edition: "ENTERPRISE", Sessions: []daassim.Session{{ID: "s-1", VM: "VDI-1", User: "alice"}}}}})
	u, thumb := sim.Start(t)
	dir := t.TempDir()
	cfg := writeConfig(t, filepath.Join(dir, "data"), "database:\n  url: "+pgtest.NewDatabase(t)+"\n")
	pwFile := filepath.Join(dir, "daas.pw")
	if err := os.WriteFile(pwFile, []byte("DaasPw-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string) {
		t.Helper()
		out, err := exec.Command(bin, append(args, "--config", cfg)...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	if code, out := run("product", "add", "--kind", "horizon-daas", "--endpoint", u, "--username", `SP\meter`, "--password-file", pwFile, "--accept-thumbprint", thumb); code != 0 {
		t.Fatalf("product add (exit %d):\n%s", code, out)
	}
	if code, out := run("collect", "--hour", "2026-01-15T10:00:00Z", "--backfill"); code == 0 || !strings.Contains(out, "no product is due at 2026-01-15T10:00:00Z") || !strings.Contains(out, "--product ID") {
		t.Fatalf("collect at 10:00 (exit %d):\n%s", code, out)
	}
	if code, out := run("collect", "--hour", "2026-01-15T12:00:00Z", "--backfill"); code != 0 || !strings.Contains(out, "connections") {
		t.Fatalf("collect at 12:00 (exit %d):\n%s", code, out)
	}
	if code, out := run("collect", "--product", "1", "--hour", "2026-01-15T11:00:00Z", "--backfill"); code != 0 || !strings.Contains(out, "connections") || strings.Contains(out, "alice") {
		t.Fatalf("collect --product at 11:00 (exit %d):\n%s", code, out)
	}
}
