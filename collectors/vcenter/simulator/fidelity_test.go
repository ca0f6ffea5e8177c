package simulator_test

// The fidelity suite: the simulator driven by govc's own commands
// (github.com/vmware/govmomi/cli, run in-process with cli.Run, the govmomi
// version pinned in go.mod), which nobody here wrote. A gap it finds is a
// place where the simulator does not answer as vCenter does.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/vmware/govmomi/cli"
	_ "github.com/vmware/govmomi/cli/about"
	_ "github.com/vmware/govmomi/cli/license"
	_ "github.com/vmware/govmomi/cli/object"
	_ "github.com/vmware/govmomi/cli/vm"
	_ "github.com/vmware/govmomi/cli/vsan"
	"github.com/vmware/govmomi/vim25/types"

	vcsim "github.com/usagemeter/usagemeter/collectors/vcenter/simulator"
)

// govcMu serialises govc runs: cli.Run writes to os.Stdout, which govc
// swaps for a pipe.
var govcMu sync.Mutex

// govc runs one govc command against s in-process and returns what it
// printed; a panic in the command is a test failure, not a crash.
func govc(t *testing.T, s *vcsim.Simulator, args ...string) (out string, rc int) {
	t.Helper()
	govcMu.Lock()
	defer govcMu.Unlock()
	t.Setenv("GOVC_URL", s.URL())
	t.Setenv("GOVC_USERNAME", s.User())
	t.Setenv("GOVC_PASSWORD", s.Password())
	t.Setenv("GOVC_INSECURE", "1")
	t.Setenv("GOVMOMI_HOME", t.TempDir())
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = w, w
	var buf strings.Builder
	done := make(chan struct{})
	go func() { _, _ = io.Copy(&buf, r); close(done) }()
	func() {
		defer func() {
			if p := recover(); p != nil {
				rc = -1
				fmt.Fprintf(w, "govc %s panicked: %v", strings.Join(args, " "), p)
			}
		}()
		rc = cli.Run(args)
	}()
	os.Stdout, os.Stderr = stdout, stderr
	w.Close()
	<-done
	return buf.String(), rc
}

// ok runs a govc command that must succeed.
func ok(t *testing.T, s *vcsim.Simulator, args ...string) string {
	t.Helper()
	out, rc := govc(t, s, args...)
	if rc != 0 {
		t.Fatalf("govc %s: rc %d\n%s", strings.Join(args, " "), rc, out)
	}
	return out
}

func newSim(t *testing.T) *vcsim.Simulator {
	t.Helper()
	s, err := vcsim.New(vcsim.Options{Clusters: 2, HostsPerCluster: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestGovcVsanInfo: vsan.info on a cluster without vSAN prints
// "Enabled: false" (VsanClusterGetConfig must set enabled: govc
// dereferences it), and on a vSAN cluster "Enabled: true".
func TestGovcVsanInfo(t *testing.T) {
	s := newSim(t)
	cl := s.Clusters()
	s.EnableVSAN(cl[0], vcsim.VSANFeatures{Dedup: true}, 10<<40, 5<<40)
	out := ok(t, s, "vsan.info", "/DC0/host/"+cl[1].Name)
	if !strings.Contains(out, "Enabled:") || !strings.Contains(out, "false") {
		t.Fatalf("vsan.info on a cluster without vSAN:\n%s", out)
	}
	out = ok(t, s, "vsan.info", "-json", "/DC0/host/"+cl[0].Name)
	var res struct {
		Clusters []struct {
			Info struct {
				Enabled              *bool
				DataEfficiencyConfig *struct{ DedupEnabled bool }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Clusters) != 1 {
		t.Fatalf("vsan.info -json: %v\n%s", err, out)
	}
	if i := res.Clusters[0].Info; i.Enabled == nil || !*i.Enabled || i.DataEfficiencyConfig == nil || !i.DataEfficiencyConfig.DedupEnabled {
		t.Fatalf("vsan.info on a vSAN cluster: %s", out)
	}
}

// TestGovcMemoryReservation: a VM's memory reservation shows in
// config.memoryAllocation.reservation (what the collector reads) and in
// summary.config.memoryReservation alike, whether set by the simulator or
// by ReconfigVM (govc vm.change).
func TestGovcMemoryReservation(t *testing.T) {
	s := newSim(t)
	host := s.ClusterHosts(s.Clusters()[0])[0]
	vm, err := s.CreateVM(context.Background(), vcsim.VMSpec{Name: "acme-web01", Host: host, MemoryMB: 8192, ReservationMB: 1024})
	if err != nil {
		t.Fatal(err)
	}
	path := "/DC0/vm/acme-web01"
	collect := func() (size, reservation, summary string) {
		return strings.TrimSpace(ok(t, s, "object.collect", "-s", path, "config.hardware.memoryMB")),
			strings.TrimSpace(ok(t, s, "object.collect", "-s", path, "config.memoryAllocation.reservation")),
			strings.TrimSpace(ok(t, s, "object.collect", "-s", path, "summary.config.memoryReservation"))
	}
	if m, r, sr := collect(); m != "8192" || r != "1024" || sr != "1024" {
		t.Fatalf("created: memoryMB %s, reservation %s, summary reservation %s", m, r, sr)
	}
	s.SetMemory(vm, 16384, 4096)
	if m, r, sr := collect(); m != "16384" || r != "4096" || sr != "4096" {
		t.Fatalf("SetMemory: memoryMB %s, reservation %s, summary reservation %s", m, r, sr)
	}
	ok(t, s, "vm.change", "-vm", path, "-m", "4096", "-mem.reservation", "2048")
	if m, r, sr := collect(); m != "4096" || r != "2048" || sr != "2048" {
		t.Fatalf("vm.change: memoryMB %s, reservation %s, summary reservation %s", m, r, sr)
	}
}

// TestGovcLicences: a licence assigned to a host is one the licence manager
// holds; license.ls and license.assigned.ls agree.
func TestGovcLicences(t *testing.T) {
	s := newSim(t)
	hosts := s.Hosts()
	for _, h := range hosts {
		s.SetCores(h, 2, 16)
	}
	for _, h := range hosts[:3] {
		if err := s.AssignLicence(h.Self, vcsim.LicenseEnterprisePlus); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AssignLicence(hosts[3].Self, vcsim.LicenseStandard); err != nil {
		t.Fatal(err)
	}
	var held []types.LicenseManagerLicenseInfo
	if err := json.Unmarshal([]byte(ok(t, s, "license.ls", "-json")), &held); err != nil {
		t.Fatal(err)
	}
	var assigned []types.LicenseAssignmentManagerLicenseAssignment
	if err := json.Unmarshal([]byte(ok(t, s, "license.assigned.ls", "-json")), &assigned); err != nil {
		t.Fatal(err)
	}
	byKey := map[string]types.LicenseManagerLicenseInfo{}
	for _, l := range held {
		byKey[l.LicenseKey] = l
	}
	for _, a := range assigned {
		l, found := byKey[a.AssignedLicense.LicenseKey]
		if !found {
			t.Errorf("%s (%s) is assigned %s, which license.ls does not list", a.EntityDisplayName, a.EntityId, a.AssignedLicense.LicenseKey)
			continue
		}
		if l.EditionKey != a.AssignedLicense.EditionKey || l.Name != a.AssignedLicense.Name {
			t.Errorf("%s: assigned %s %q, licence manager %s %q", a.EntityId, a.AssignedLicense.EditionKey, a.AssignedLicense.Name, l.EditionKey, l.Name)
		}
	}
	// Used counts the CPU packages of the hosts the licence is assigned to.
	if u := byKey[vcsim.LicenseEnterprisePlus.LicenseKey].Used; u != 6 {
		t.Errorf("Enterprise Plus used %d CPU packages, want 6", u)
	}
	if u := byKey[vcsim.LicenseStandard.LicenseKey].Used; u != 2 {
		t.Errorf("Standard used %d CPU packages, want 2", u)
	}
	// govc license.assign goes through UpdateAssignedLicense.
	ok(t, s, "license.assign", "-host", "/DC0/host/"+s.Clusters()[0].Name+"/"+hosts[0].Name, vcsim.LicenseStandard.LicenseKey)
	if err := json.Unmarshal([]byte(ok(t, s, "license.ls", "-json")), &held); err != nil {
		t.Fatal(err)
	}
	for _, l := range held {
		if l.LicenseKey == vcsim.LicenseStandard.LicenseKey && l.Used != 4 {
			t.Errorf("after license.assign, Standard used %d CPU packages, want 4", l.Used)
		}
	}
}

// TestGovcAboutMatchesLicences: the simulated vCenter is a vSphere 8 one,
// as its licences (VMware vSphere 8 ...) are.
func TestGovcAboutMatchesLicences(t *testing.T) {
	s := newSim(t)
	var about types.AboutInfo
	if err := json.Unmarshal([]byte(ok(t, s, "about", "-json")), &struct{ About *types.AboutInfo }{&about}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(about.Version, "8.") || !strings.HasPrefix(about.ApiVersion, "8.") || !strings.Contains(about.FullName, about.Version) ||
		about.LicenseProductVersion != "8.0" || about.ProductLineId != "vpx" {
		t.Fatalf("about: %+v", about)
	}
	if !strings.Contains(vcsim.LicenseEnterprisePlus.Name, "vSphere "+about.Version[:1]) {
		t.Fatalf("vCenter %s with licence %q", about.Version, vcsim.LicenseEnterprisePlus.Name)
	}
}

// TestGovcCollectorProperties: every property path the vCenter collector
// asks for (collectors/vcenter inventory.go) is answered, and the facts it
// reads agree with the ones govc and the vSAN health service show
// elsewhere.
func TestGovcCollectorProperties(t *testing.T) {
	s := newSim(t)
	cl := s.Clusters()
	s.EnableVSAN(cl[0], vcsim.VSANFeatures{Compression: true}, 10<<40, 5<<40)
	host := s.ClusterHosts(cl[0])[0]
	s.SetCores(host, 2, 24)
	if _, err := s.CreateVM(context.Background(), vcsim.VMSpec{Name: "acme-db01", Host: host, MemoryMB: 65536, ReservationMB: 32768,
		PowerState: types.VirtualMachinePowerStatePoweredOn}); err != nil {
		t.Fatal(err)
	}
	vm := "/DC0/vm/acme-db01"
	for _, p := range []string{"name", "parent", "resourcePool", "runtime.powerState", "runtime.host", "runtime.connectionState",
		"config.instanceUuid", "config.template", "config.hardware.memoryMB", "config.memoryAllocation.reservation"} {
		if out := strings.TrimSpace(ok(t, s, "object.collect", "-s", vm, p)); out == "" {
			t.Errorf("%s %s: empty", vm, p)
		}
	}
	pairs := [][2]string{
		{"runtime.powerState", "summary.runtime.powerState"},
		{"config.hardware.memoryMB", "summary.config.memorySizeMB"},
		{"config.instanceUuid", "summary.config.instanceUuid"},
		{"config.template", "summary.config.template"},
	}
	for _, pr := range pairs {
		a := strings.TrimSpace(ok(t, s, "object.collect", "-s", vm, pr[0]))
		b := strings.TrimSpace(ok(t, s, "object.collect", "-s", vm, pr[1]))
		if a != b {
			t.Errorf("%s: %s %q, %s %q", vm, pr[0], a, pr[1], b)
		}
	}
	hp := "/DC0/host/" + cl[0].Name + "/" + host.Name
	if c := strings.TrimSpace(ok(t, s, "object.collect", "-s", hp, "hardware.cpuInfo.numCpuCores")); c != "48" {
		t.Errorf("host cores %s, want 48", c)
	}
	if p, sp := strings.TrimSpace(ok(t, s, "object.collect", "-s", hp, "hardware.cpuInfo.numCpuPackages")),
		strings.TrimSpace(ok(t, s, "object.collect", "-s", hp, "summary.hardware.numCpuPkgs")); p != "2" || sp != "2" {
		t.Errorf("host packages %s, summary %s, want 2", p, sp)
	}
	// The cluster's configurationEx (what the collector reads) and the vSAN
	// health service (what govc vsan.info reads) agree on vSAN.
	for _, c := range cl {
		var ex struct {
			Val struct {
				VsanConfigInfo *struct{ Enabled *bool }
			}
		}
		var props []struct {
			Name string
			Val  json.RawMessage
		}
		if err := json.Unmarshal([]byte(ok(t, s, "object.collect", "-json", "/DC0/host/"+c.Name, "configurationEx")), &props); err != nil || len(props) != 1 {
			t.Fatalf("configurationEx of %s: %v", c.Name, err)
		}
		if err := json.Unmarshal(props[0].Val, &ex.Val); err != nil {
			t.Fatal(err)
		}
		inventory := ex.Val.VsanConfigInfo != nil && ex.Val.VsanConfigInfo.Enabled != nil && *ex.Val.VsanConfigInfo.Enabled
		var res struct {
			Clusters []struct{ Info struct{ Enabled *bool } }
		}
		if err := json.Unmarshal([]byte(ok(t, s, "vsan.info", "-json", "/DC0/host/"+c.Name)), &res); err != nil || len(res.Clusters) != 1 {
			t.Fatal(err)
		}
		health := res.Clusters[0].Info.Enabled != nil && *res.Clusters[0].Info.Enabled
		if inventory != health || inventory != (c == cl[0]) {
			t.Errorf("%s: vSAN enabled %v in configurationEx, %v in the vSAN health service", c.Name, inventory, health)
		}
	}
}
