package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"

	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
	"github.com/usagemeter/usagemeter/report"
)

// TestProductVersionAfterUpgrade (issue 17: the Product Version column is
// filled, and kept up to date): a vCenter upgraded after `product add`
// shows its new version and build in the next report, from the next
// successful collection.
func TestProductVersionAfterUpgrade(t *testing.T) {
	bin := binary(t)
	s, m := vcsim(t)
	dir := t.TempDir()
	recipient := pgpKey(t, "Aggregator", time.Now().Add(-time.Hour), 0)
	pub := filepath.Join(dir, "aggregator.asc")
	pw := filepath.Join(dir, "vc.pw")
	for p, b := range map[string][]byte{pub: armored(t, recipient, false), pw: []byte("VcPassw0rd!\n")} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := runner(t, bin, writeConfig(t, filepath.Join(dir, "data"), "database:\n  url: "+pgtest.NewDatabase(t)+"\nreport:\n  recipient_keys: ["+pub+"]\n"))
	must := mustOf(t, run)
	must("product", "add", "--kind", "vcenter", "--endpoint", "https://"+s.URL.Host+"/sdk", "--username", "meter@vsphere.local",
		"--password-file", pw, "--accept-thumbprint", tlsutil.Thumbprint(s.Certificate().Raw))
	must("register", "--contract", "C-1", "--program", "rental")
	must("collect", "--product", "1", "--hour", "2026-01-15T10:00:00Z", "--backfill")

	// The vCenter is upgraded: the same instance, now 8.0.3 build
	// 24322831 (a vCenter upgrade migrates to a new appliance; the admin
	// points the product at it).
	instance := m.Map().Get(vim25.ServiceInstance).(*simulator.ServiceInstance).Content.About.InstanceUuid
	s2, _ := vcsimWith(t, func(m *simulator.Model) {
		si := m.Map().Get(vim25.ServiceInstance).(*simulator.ServiceInstance)
		si.Content.About.Version, si.Content.About.Build, si.Content.About.InstanceUuid = "8.0.3", "24322831", instance
	})
	must("product", "set", "1", "--endpoint", "https://"+s2.URL.Host+"/sdk", "--accept-thumbprint", tlsutil.Thumbprint(s2.Certificate().Raw))
	must("collect", "--product", "1", "--hour", "2026-01-15T11:00:00Z", "--backfill")
	// The simulator's hosts run vSphere's evaluation licence: billed here.
	must("license", "set-category", "00000-00000-00000-00000-00000", "rental", "--from", "2026-01-01T00:00:00Z")

	out := filepath.Join(dir, "out")
	must("report", "generate", "--month", "2026-01", "--out", out, "--plain")
	f, err := os.Open(filepath.Join(out, "usage-2026-01-v1.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files, err := report.ReadTarGz(f)
	if err != nil {
		t.Fatal(err)
	}
	var monthly string
	for _, file := range files {
		if file.Name == report.FileMonthly {
			monthly = string(file.Data)
		}
	}
	if !strings.Contains(monthly, "\t8.0.3 build 24322831\t") {
		t.Fatalf("the report's Product Version after the upgrade:\n%s", monthly)
	}
}
