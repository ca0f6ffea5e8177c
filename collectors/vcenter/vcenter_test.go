package vcenter

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
	vsantypes "github.com/vmware/govmomi/vsan/types"

	"github.com/usagemeter/usagemeter/collectors"
	vcsim "github.com/usagemeter/usagemeter/collectors/vcenter/simulator"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

var hour = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

// client is a govmomi client to the simulator, for tests that change the
// inventory through the API (rename, folders, pools) as an admin would.
func (v *testSim) client() *govmomi.Client {
	v.t.Helper()
	c, err := v.Client(context.Background())
	if err != nil {
		v.t.Fatal(err)
	}
	return c
}

func collect(t *testing.T, c *Collector) []collectors.Observation {
	t.Helper()
	obs, err := c.Collect(context.Background(), hour)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	return obs
}

// byMetric indexes observations of one metric by a dim (or the object key
// when dim is "").
func byMetric(obs []collectors.Observation, metric, dim string) map[string]collectors.Observation {
	m := map[string]collectors.Observation{}
	for _, o := range obs {
		if o.Metric != metric {
			continue
		}
		k := o.ObjectKey
		if dim != "" {
			k = o.Dims[dim]
		}
		m[k] = o
	}
	return m
}

// provider shapes a provider's vCenter: two datacenters, each with a cluster
// of three hosts and a standalone host, four VMs per pool/standalone host.
func provider(m *simulator.Model) {
	m.Datacenter = 2
	m.Cluster = 1
	m.ClusterHost = 3
	m.Host = 1
	m.Machine = 4
}

// TestCollectProviderInventory meters a realistic inventory: memory from 1
// to 128 GB, reservations below, at and above half, VMs above the 24 GB cap,
// powered-off and suspended VMs and a template, a disconnected host still
// running VMs, two datacenters, hosts with different core counts, licences
// per host, VCF cores.
func TestCollectProviderInventory(t *testing.T) {
	v := newSim(t, provider)

	type vmSpec struct {
		memMB  int32
		resvMB int64
		power  types.VirtualMachinePowerState
		host   string
		want   float64 // billed MB; 0 = not billed
	}
	on, off, susp := types.VirtualMachinePowerStatePoweredOn, types.VirtualMachinePowerStatePoweredOff, types.VirtualMachinePowerStateSuspended
	vms := map[string]vmSpec{
		"DC0_C0_RP0_VM0": {1024, 0, on, "DC0_C0_H0", 512},                       // 1 GB, no reservation
		"DC0_C0_RP0_VM1": {8192, 2048, on, "DC0_C0_H0", 4096},                   // reservation below half
		"DC0_C0_RP0_VM2": {16384, 8192, on, "DC0_C0_H1", 8192},                  // reservation at half
		"DC0_C0_RP0_VM3": {16384, 12288, on, "DC0_C0_H1", 12288},                // reservation above half
		"DC0_H0_VM0":     {65536, 0, on, "DC0_H0", collectors.VRAMCapMB},        // 64 GB: capped
		"DC0_H0_VM1":     {131072, 131072, on, "DC0_H0", collectors.VRAMCapMB},  // 128 GB fully reserved: capped
		"DC0_H0_VM2":     {4096, 0, off, "DC0_H0", 0},                           // powered off
		"DC0_H0_VM3":     {4096, 4096, susp, "DC0_H0", 0},                       // suspended
		"DC1_C0_RP0_VM0": {4096, 0, off, "DC1_C0_H0", 0},                        // template (below)
		"DC1_C0_RP0_VM1": {49152, 0, on, "DC1_C0_H0", collectors.VRAMCapMB},     // 48 GB: exactly the cap
		"DC1_C0_RP0_VM2": {2048, 1024, on, "DC1_C0_H2", 1024},                   // 2 GB half reserved
		"DC1_C0_RP0_VM3": {32768, 30000, on, "DC1_C0_H2", collectors.VRAMCapMB}, // reservation above the cap
		"DC1_H0_VM0":     {6144, 0, on, "DC1_H0", 3072},                         // on a disconnected host
		"DC1_H0_VM1":     {3072, 3072, on, "DC1_H0", 3072},                      // on a disconnected host
		"DC1_H0_VM2":     {2048, 0, off, "DC1_H0", 0},
		"DC1_H0_VM3":     {1024, 0, on, "DC1_H0", 512},
	}
	if got := len(v.VMs()); got != len(vms) {
		t.Fatalf("simulator has %d VMs, test shapes %d", got, len(vms))
	}
	for name, s := range vms {
		vm := v.vm(name)
		vcsim.SetMemory(vm, s.memMB, s.resvMB)
		vcsim.SetPower(vm, s.power)
		ref := v.host(s.host).Self
		vm.Runtime.Host = &ref
		vm.Summary.Runtime.Host = &ref
	}
	v.vm("DC1_C0_RP0_VM0").Config.Template = true

	cores := map[string][2]int16{ // packages, cores per package
		"DC0_C0_H0": {2, 16}, "DC0_C0_H1": {2, 24}, "DC0_C0_H2": {1, 32}, "DC0_H0": {2, 8},
		"DC1_C0_H0": {2, 28}, "DC1_C0_H1": {2, 28}, "DC1_C0_H2": {4, 18}, "DC1_H0": {1, 12},
	}
	for name, c := range cores {
		vcsim.SetCores(v.host(name), c[0], c[1])
		switch {
		case strings.HasPrefix(name, "DC0"):
			v.assignLicence(v.host(name).Self, vcsim.LicenseEnterprisePlus)
		case name != "DC1_H0": // DC1_H0 stays in evaluation mode
			v.assignLicence(v.host(name).Self, vcsim.LicenseStandard)
		}
	}
	dis := v.host("DC1_H0")
	dis.Runtime.ConnectionState = types.HostSystemConnectionStateDisconnected
	dis.Summary.Runtime.ConnectionState = types.HostSystemConnectionStateDisconnected

	// A tenant folder two levels deep in DC1.
	ctx := context.Background()
	gc := v.client()
	dc1, err := object.NewSearchIndex(gc.Client).FindByInventoryPath(ctx, "/DC1/vm")
	if err != nil || dc1 == nil {
		t.Fatalf("DC1 vm folder: %v", err)
	}
	tenants, err := dc1.(*object.Folder).CreateFolder(ctx, "Tenants")
	if err != nil {
		t.Fatal(err)
	}
	acme, err := tenants.CreateFolder(ctx, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	task, err := acme.MoveInto(ctx, []types.ManagedObjectReference{v.vm("DC1_C0_RP0_VM1").Self})
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}

	c := v.collector(v.target("", `{"vcf_edition": "enterprise-vsan"}`))
	obs := collect(t, c)
	uuid := v.Model.ServiceContent.About.InstanceUuid

	vram := byMetric(obs, collectors.MetricVMVRAM, DimVM)
	for name, s := range vms {
		o, ok := vram[name]
		if s.want == 0 || name == "DC1_C0_RP0_VM0" {
			if ok {
				t.Errorf("%s: billed %v MB, want not billed", name, o.Quantity)
			}
			continue
		}
		if !ok {
			t.Errorf("%s: not billed, want %v MB", name, s.want)
			continue
		}
		if o.Quantity != s.want || o.Unit != collectors.UnitMB {
			t.Errorf("%s: %v %s, want %v MB", name, o.Quantity, o.Unit, s.want)
		}
		vm := v.vm(name)
		if want := uuid + "/vm/" + vm.Config.InstanceUuid; o.ObjectKey != want {
			t.Errorf("%s: key %s, want %s", name, o.ObjectKey, want)
		}
		if o.Dims[DimHost] != s.host || o.Dims[DimDatacenter] != name[:3] || o.Dims[DimVCenter] != "127.0.0.1" {
			t.Errorf("%s: dims %v", name, o.Dims)
		}
		// The MoRef that Aria's <vc>/moref/<moref> keys join on.
		if o.Dims[DimMoref] != vm.Self.Value {
			t.Errorf("%s: vm_moref %q, want %s", name, o.Dims[DimMoref], vm.Self.Value)
		}
	}
	if len(vram) != 12 {
		t.Errorf("%d VMs billed, want 12", len(vram))
	}

	// Placement.
	if d := vram["DC1_C0_RP0_VM1"].Dims; d[DimFolder] != "/DC1/vm/Tenants/Acme" || d[DimCluster] != "DC1_C0" || d[DimResourcePool] != "Resources" {
		t.Errorf("DC1_C0_RP0_VM1 placement: %v", d)
	}
	if d := vram["DC0_H0_VM0"].Dims; d[DimFolder] != "/DC0/vm" || d[DimCluster] != "" {
		t.Errorf("DC0_H0_VM0 placement: %v", d)
	}

	// Licences: the host's key and edition; evaluation mode is not reportable.
	if o := vram["DC0_C0_RP0_VM0"]; o.Edition != vcsim.LicenseEnterprisePlus.EditionKey || o.Dims[DimLicenseKey] != vcsim.LicenseEnterprisePlus.LicenseKey || o.Dims[DimLicenseEdition] != vcsim.LicenseEnterprisePlus.EditionKey || o.Dims[collectors.DimNotReportableKey] != "" {
		t.Errorf("DC0_C0_RP0_VM0 licence: edition %q dims %v", o.Edition, o.Dims)
	}
	if o := vram["DC1_C0_RP0_VM2"]; o.Edition != vcsim.LicenseStandard.EditionKey || o.Dims[DimLicenseKey] != vcsim.LicenseStandard.LicenseKey {
		t.Errorf("DC1_C0_RP0_VM2 licence: edition %q dims %v", o.Edition, o.Dims)
	}
	if o := vram["DC1_H0_VM0"]; o.Edition != "eval" || o.Dims[collectors.DimNotReportableKey] != "true" {
		t.Errorf("DC1_H0_VM0 (evaluation licence): edition %q dims %v", o.Edition, o.Dims)
	}

	// VCF: cores of every host running a powered-on VM, disconnected included.
	hosts := byMetric(obs, collectors.MetricHostCores, DimHost)
	wantCores := map[string]float64{"DC0_C0_H0": 32, "DC0_C0_H1": 48, "DC0_H0": 16, "DC1_C0_H0": 56, "DC1_C0_H2": 72, "DC1_H0": 12}
	if len(hosts) != len(wantCores) {
		t.Errorf("host.cores for %v, want %v", keys(hosts), keys(wantCores))
	}
	for name, want := range wantCores {
		o := hosts[name]
		if o.Quantity != want || o.Unit != collectors.UnitCores || o.Edition != "enterprise-vsan" {
			t.Errorf("%s: %v %s edition %q, want %v cores enterprise-vsan", name, o.Quantity, o.Unit, o.Edition, want)
		}
		if wantKey := uuid + "/host/" + v.host(name).Self.Value; o.ObjectKey != wantKey {
			t.Errorf("%s: key %s, want %s", name, o.ObjectKey, wantKey)
		}
	}
	if d := hosts["DC1_C0_H2"].Dims; d[DimCluster] != "DC1_C0" || d[DimDatacenter] != "DC1" {
		t.Errorf("DC1_C0_H2 dims %v", d)
	}
}

func keys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

// TestSDDCManagerEdition: the SDDC Manager edition meters vRAM, with its own
// edition, and no host cores.
func TestSDDCManagerEdition(t *testing.T) {
	v := newSim(t, nil)
	obs := collect(t, v.collector(v.target("", `{"vcf_edition": "sddc-manager"}`)))
	n := 0
	for _, o := range obs {
		switch o.Metric {
		case collectors.MetricVMVRAM:
			n++
			if o.Edition != EditionSDDCManager {
				t.Errorf("%s: edition %q, want %q", o.Dims[DimVM], o.Edition, EditionSDDCManager)
			}
		case collectors.MetricHostCores:
			t.Errorf("host.cores emitted for sddc-manager: %+v", o)
		}
	}
	if n == 0 {
		t.Error("no vm.vram observations")
	}
}

// TestRenamedVM: a VM renamed between two collections keeps its object key;
// its name dim follows the rename.
func TestRenamedVM(t *testing.T) {
	v := newSim(t, nil)
	c := v.collector(v.target("", ""))
	before := byMetric(collect(t, c), collectors.MetricVMVRAM, DimVM)

	ctx := context.Background()
	vm := object.NewVirtualMachine(v.client().Client, v.vm("DC0_C0_RP0_VM1").Self)
	task, err := vm.Rename(ctx, "acme-web-01")
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}

	after := byMetric(collect(t, c), collectors.MetricVMVRAM, DimVM)
	old, renamed := before["DC0_C0_RP0_VM1"], after["acme-web-01"]
	if renamed.ObjectKey == "" || renamed.ObjectKey != old.ObjectKey {
		t.Errorf("object key changed with the name: %q -> %q", old.ObjectKey, renamed.ObjectKey)
	}
	if _, still := after["DC0_C0_RP0_VM1"]; still {
		t.Error("old name still reported")
	}
	if len(after) != len(before) {
		t.Errorf("%d VMs after rename, %d before", len(after), len(before))
	}
}

// TestSameVCenterTwoAddresses: the same vCenter reached as 127.0.0.1 and as
// localhost has one identity and the same object keys.
func TestSameVCenterTwoAddresses(t *testing.T) {
	v := newSim(t, nil)
	ctx := context.Background()
	a := v.collector(v.target("127.0.0.1", ""))
	b := v.collector(v.target("localhost", ""))

	ida, err := a.Identify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	idb, err := b.Identify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ida != idb || ida.InstanceID != v.Model.ServiceContent.About.InstanceUuid || ida.Version == "" || ida.Build == "" || ida.Name == "" {
		t.Errorf("identities differ or are incomplete: %+v vs %+v", ida, idb)
	}

	ka, kb := map[string]bool{}, map[string]bool{}
	for _, o := range collect(t, a) {
		ka[o.Metric+" "+o.ObjectKey] = true
		if o.Dims[DimVCenter] != "127.0.0.1" {
			t.Errorf("vcenter dim %q, want 127.0.0.1", o.Dims[DimVCenter])
		}
	}
	for _, o := range collect(t, b) {
		kb[o.Metric+" "+o.ObjectKey] = true
	}
	if len(ka) == 0 || fmt.Sprint(keys(ka)) != fmt.Sprint(keys(kb)) {
		t.Errorf("object keys differ:\n%v\n%v", keys(ka), keys(kb))
	}
}

// TestVSAN meters the used capacity of each vSAN cluster with the edition
// its features require; a cluster without vSAN is not metered.
func TestVSAN(t *testing.T) {
	v := newSim(t, func(m *simulator.Model) {
		m.Cluster = 6
		m.ClusterHost = 2
		m.Host = 0
		m.Machine = 1
	})
	const tib = int64(1) << 40
	on := types.NewBool(true)
	// DC0_C0: no vSAN.
	v.EnableVSANConfig(v.cluster("DC0_C1"), vsantypes.VsanConfigInfoEx{}, nil, 20*tib, 15*tib)
	v.EnableVSANConfig(v.cluster("DC0_C2"), vsantypes.VsanConfigInfoEx{
		DataEfficiencyConfig: &vsantypes.VsanDataEfficiencyConfig{DedupEnabled: true, CompressionEnabled: on},
	}, nil, 40*tib, 25*tib)
	v.EnableVSANConfig(v.cluster("DC0_C3"), vsantypes.VsanConfigInfoEx{
		DataEfficiencyConfig: &vsantypes.VsanDataEfficiencyConfig{DedupEnabled: false, CompressionEnabled: on},
		DataEncryptionConfig: &vsantypes.VsanDataEncryptionConfig{
			EncryptionEnabled: true,
			KmsProviderId:     &types.KeyProviderId{Id: "kms-cluster-01"},
			KekId:             "5b8c1d9e-2a3f-4e6b-9c7d-1e2f3a4b5c6d",
		},
	}, nil, 10*tib, 10*tib-1536*(1<<30))
	witness := v.host("DC0_C4_H1").Self
	v.EnableVSANConfig(v.cluster("DC0_C4"), vsantypes.VsanConfigInfoEx{}, []vsantypes.VimClusterVSANWitnessHostInfo{{
		NodeUuid:        "5f3c2b1a-0d9e-8f7a-6b5c-4d3e2f1a0b9c",
		FaultDomainName: "witness",
		PreferredFdName: "site-a",
		Host:            &witness,
	}}, 30*tib, 29*tib)

	// DC0_C5: a disk of its VM has a RAID-5/6 policy; DC0_C1's VM has a
	// RAID-1 policy.
	v.EnableVSANConfig(v.cluster("DC0_C5"), vsantypes.VsanConfigInfoEx{}, nil, 12*tib, 8*tib)
	v.vsanPolicy("vSAN RAID-5 FTT=1", "RAID-5/6 (Erasure Coding) - Capacity", nil, []string{v.vm("DC0_C5_RP0_VM0").Self.Value + ":2000"})
	v.vsanPolicy("vSAN RAID-1 FTT=1", "RAID-1 (Mirroring) - Performance", []string{v.vm("DC0_C1_RP0_VM0").Self.Value}, nil)

	obs := collect(t, v.collector(v.target("", "")))
	got := byMetric(obs, collectors.MetricVSANUsedGB, DimCluster)
	uuid := v.Model.ServiceContent.About.InstanceUuid
	want := map[string]struct {
		gb       float64
		edition  string
		features string
	}{
		"DC0_C1": {5120, VSANStandard, ""},
		"DC0_C2": {15360, VSANAdvanced, "deduplication,compression"},
		"DC0_C3": {1536, VSANEnterprise, "compression,encryption"},
		"DC0_C4": {1024, VSANEnterprise, "stretched"},
		"DC0_C5": {4096, VSANAdvanced, "raid5/6"},
	}
	if len(got) != len(want) {
		t.Errorf("vSAN clusters metered: %v, want %v", keys(got), keys(want))
	}
	for name, w := range want {
		o := got[name]
		if o.Quantity != w.gb || o.Unit != collectors.UnitGB || o.Edition != w.edition || o.Dims[DimVSANFeatures] != w.features {
			t.Errorf("%s: %v %s %q features %q, want %v GB %q features %q", name, o.Quantity, o.Unit, o.Edition, o.Dims[DimVSANFeatures], w.gb, w.edition, w.features)
		}
		if k := uuid + "/cluster/" + v.cluster(name).Self.Value; o.ObjectKey != k || o.Dims[DimDatacenter] != "DC0" {
			t.Errorf("%s: key %s dims %v, want key %s", name, o.ObjectKey, o.Dims, k)
		}
	}
}

// tanzuSim builds a Supervisor cluster: a "Namespaces" pool under the
// cluster's root pool holding the control plane VMs, a namespace pool with a
// Pod VM and a TKG cluster VM, and a VM Service VM marked by managedBy
// outside the pools.
func tanzuSim(t *testing.T) *testSim {
	v := newSim(t, func(m *simulator.Model) {
		m.ClusterHost = 3
		m.Machine = 6
		m.Host = 0
	})
	ctx := context.Background()
	gc := v.client()
	root := object.NewResourcePool(gc.Client, *v.cluster("DC0_C0").ResourcePool)
	ns, err := root.Create(ctx, "Namespaces", types.DefaultResourceConfigSpec())
	if err != nil {
		t.Fatal(err)
	}
	dev, err := ns.Create(ctx, "ns-dev", types.DefaultResourceConfigSpec())
	if err != nil {
		t.Fatal(err)
	}
	place := func(name string, pool types.ManagedObjectReference, memMB int32, host string) {
		vm := v.vm(name)
		p := pool
		vm.ResourcePool = &p
		vcsim.SetMemory(vm, memMB, 0)
		h := v.host(host).Self
		vm.Runtime.Host = &h
	}
	place("DC0_C0_RP0_VM0", ns.Reference(), 24576, "DC0_C0_H0")  // SupervisorControlPlaneVM (1)
	place("DC0_C0_RP0_VM1", dev.Reference(), 1024, "DC0_C0_H1")  // vSphere Pod VM
	place("DC0_C0_RP0_VM2", dev.Reference(), 8192, "DC0_C0_H1")  // TKG cluster node
	place("DC0_C0_RP0_VM3", root.Reference(), 4096, "DC0_C0_H2") // ordinary VM
	v.vm("DC0_C0_RP0_VM4").Config.ManagedBy = &types.ManagedByInfo{ExtensionKey: wcpExtension, Type: "VirtualMachine"}
	vcsim.SetMemory(v.vm("DC0_C0_RP0_VM4"), 16384, 16384)
	h2 := v.host("DC0_C0_H2").Self
	v.vm("DC0_C0_RP0_VM4").Runtime.Host = &h2
	vcsim.SetPower(v.vm("DC0_C0_RP0_VM5"), types.VirtualMachinePowerStatePoweredOff)
	v.vm("DC0_C0_RP0_VM5").ResourcePool = types.NewReference(dev.Reference())
	vcsim.SetCores(v.host("DC0_C0_H0"), 2, 16)
	vcsim.SetCores(v.host("DC0_C0_H1"), 2, 20)
	vcsim.SetCores(v.host("DC0_C0_H2"), 2, 24)
	return v
}

// TestTanzuVRAM meters the namespace VMs' vRAM as Tanzu Basic.
func TestTanzuVRAM(t *testing.T) {
	v := tanzuSim(t)
	obs := collect(t, v.collector(v.target("", "")))
	got := byMetric(obs, collectors.MetricTanzuVRAM, DimVM)
	want := map[string]float64{"DC0_C0_RP0_VM0": 12288, "DC0_C0_RP0_VM1": 512, "DC0_C0_RP0_VM2": 4096, "DC0_C0_RP0_VM4": 16384}
	if len(got) != len(want) {
		t.Errorf("Tanzu VMs %v, want %v", keys(got), keys(want))
	}
	for name, mb := range want {
		if o := got[name]; o.Quantity != mb || o.Edition != EditionTanzuBasic || o.Unit != collectors.UnitMB {
			t.Errorf("%s: %+v, want %v MB tanzu-basic", name, o, mb)
		}
	}
	if d := got["DC0_C0_RP0_VM2"].Dims; d[DimResourcePool] != "ns-dev" {
		t.Errorf("pool dim %q, want ns-dev", d[DimResourcePool])
	}
	if n := len(byMetric(obs, collectors.MetricTanzuCores, "")); n != 0 {
		t.Errorf("%d tanzu.cores with tanzu_metric vram", n)
	}
}

// TestTanzuCores meters the cores of hosts running a namespace VM instead.
func TestTanzuCores(t *testing.T) {
	v := tanzuSim(t)
	obs := collect(t, v.collector(v.target("", `{"tanzu_metric": "cores"}`)))
	got := byMetric(obs, collectors.MetricTanzuCores, DimHost)
	want := map[string]float64{"DC0_C0_H0": 32, "DC0_C0_H1": 40, "DC0_C0_H2": 48}
	if len(got) != len(want) {
		t.Errorf("hosts %v, want %v", keys(got), keys(want))
	}
	for name, n := range want {
		if o := got[name]; o.Quantity != n || o.Edition != EditionTanzuBasic || o.Unit != collectors.UnitCores {
			t.Errorf("%s: %+v, want %v cores", name, o, n)
		}
	}
	if n := len(byMetric(obs, collectors.MetricTanzuVRAM, "")); n != 0 {
		t.Errorf("%d tanzu.vram with tanzu_metric cores", n)
	}
}

// TestSkippedVMs: VMs without configuration or orphaned are skipped and
// counted in one log line; the others are collected.
func TestSkippedVMs(t *testing.T) {
	v := newSim(t, func(m *simulator.Model) { m.Machine = 3; m.Host = 0 })
	v.vm("DC0_C0_RP0_VM0").Config = nil // inaccessible: vCenter has no config for it
	v.vm("DC0_C0_RP0_VM1").Runtime.ConnectionState = types.VirtualMachineConnectionStateOrphaned

	var logs strings.Builder
	tg := v.target("", "")
	tg.Logger = newTextLogger(&logs)
	obs := collect(t, v.collector(tg))
	got := byMetric(obs, collectors.MetricVMVRAM, DimVM)
	if len(got) != 1 || got["DC0_C0_RP0_VM2"].Quantity == 0 {
		t.Errorf("collected %v, want only DC0_C0_RP0_VM2", keys(got))
	}
	if n := strings.Count(logs.String(), "VMs skipped"); n != 1 {
		t.Errorf("%d skip log lines, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "skipped=2") {
		t.Errorf("log does not count 2 skipped VMs:\n%s", logs.String())
	}
}

// TestPaging reads an inventory larger than one page.
func TestPaging(t *testing.T) {
	v := newSim(t, func(m *simulator.Model) { m.Machine = 20; m.ClusterHost = 2 })
	all := collect(t, v.collector(v.target("", "")))
	c := v.collector(v.target("", `{"page_size": 7}`))
	paged := collect(t, c)
	if c.pages < 5 {
		t.Errorf("%d pages, want several", c.pages)
	}
	if n := len(v.VMs()); len(paged) != len(all) || len(byMetric(paged, collectors.MetricVMVRAM, "")) != n {
		t.Errorf("paged collection has %d observations, unpaged %d (want %d VMs)", len(paged), len(all), n)
	}
}

// TestFaultMidPage: a SOAP fault on a continuation page fails the collection
// and says what was being read.
func TestFaultMidPage(t *testing.T) {
	v := newSim(t, func(m *simulator.Model) { m.Machine = 10 })
	c := v.collector(v.target("", `{"page_size": 5}`))
	v.Model.Service.AddFaultRule(&simulator.FaultInjectionRule{
		MethodName: "ContinueRetrievePropertiesEx", ObjectType: "*", ObjectName: "*",
		Probability: 1, SkipCount: 1, MaxCount: 1, Enabled: true,
		FaultType: simulator.FaultTypeInvalidState, Message: "property collector busy",
	})
	_, err := c.Collect(context.Background(), hour)
	if err == nil {
		t.Fatal("Collect succeeded through a fault")
	}
	if !strings.Contains(err.Error(), "retrieving the inventory of 127.0.0.1 (page 3)") {
		t.Errorf("error does not say what failed: %v", err)
	}
	// The next collection works.
	if obs := collect(t, c); len(obs) == 0 {
		t.Error("no observations after the fault")
	}
}

// TestSessionExpired: vCenter answers NotAuthenticated in the middle of a
// collection; the collector logs in again and the collection succeeds.
func TestSessionExpired(t *testing.T) {
	v := newSim(t, nil)
	tg := v.target("", `{"page_size": 2}`)
	var logs strings.Builder
	tg.Logger = newTextLogger(&logs)
	c := v.collector(tg)
	first := collect(t, c)
	v.Model.Service.AddFaultRule(&simulator.FaultInjectionRule{
		MethodName: "ContinueRetrievePropertiesEx", ObjectType: "*", ObjectName: "*",
		Probability: 1, MaxCount: 1, Enabled: true,
		FaultType: simulator.FaultTypeNotAuthenticated, Message: "The session is not authenticated.",
	})
	second := collect(t, c)
	if len(second) != len(first) {
		t.Errorf("%d observations after re-login, %d before", len(second), len(first))
	}
	if n := v.Logins(); n != 2 {
		t.Errorf("%d logins, want 2", n)
	}
	if !strings.Contains(logs.String(), "logging in again") || strings.Contains(logs.String(), simPassword) {
		t.Errorf("log does not say it logged in again, or shows the password:\n%s", logs.String())
	}
}

// TestSlowResponse: a response later than the deadline fails the collection
// with an error naming the deadline.
func TestSlowResponse(t *testing.T) {
	// The second inventory page takes 2 s to come.
	v := newSim(t, func(m *simulator.Model) {
		m.DelayConfig.MethodDelay = map[string]int{"ContinueRetrievePropertiesEx": 2000}
	})
	tg := v.target("", `{"page_size": 2}`)
	tg.Timeout = 300 * time.Millisecond
	c := v.collector(tg)
	start := time.Now()
	_, err := c.Collect(context.Background(), hour)
	if err == nil {
		t.Fatal("Collect succeeded past its deadline")
	}
	if !strings.Contains(err.Error(), "(page 2)") || !strings.Contains(err.Error(), "deadline") || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error does not name the page and the deadline: %v", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("Collect took %s with a 300ms deadline and a 2s answer", d)
	}
}

// TestCancel: a cancelled context ends a collection waiting on vCenter.
func TestCancel(t *testing.T) {
	v := newSim(t, func(m *simulator.Model) {
		m.DelayConfig.MethodDelay = map[string]int{"ContinueRetrievePropertiesEx": 2000}
	})
	c := v.collector(v.target("", `{"page_size": 2}`))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	time.AfterFunc(300*time.Millisecond, cancel)
	_, err := c.Collect(ctx, hour)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("Collect returned %s after the cancel", d)
	}
}

// TestCertificates: the simulator's self-signed certificate is refused
// unless its thumbprint was accepted, and a changed one says so.
func TestCertificates(t *testing.T) {
	v := newSim(t, nil)
	seen := v.Thumbprint()
	for _, tc := range []struct {
		name, accepted string
		want           error
	}{
		{"untrusted", "", tlsutil.ErrUntrusted},
		{"accepted", seen, nil},
		{"accepted lower case without colons", strings.ToLower(strings.ReplaceAll(seen, ":", "")), nil},
		{"changed", strings.Repeat("AB:", 31) + "AB", tlsutil.ErrChanged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := v.target("", "")
			tg.Thumbprint = tc.accepted
			c := v.collector(tg)
			_, err := c.Collect(context.Background(), hour)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ce *tlsutil.CertError
			if !errors.As(err, &ce) || !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want a CertError %v", err, tc.want)
			}
			if ce.Seen != seen {
				t.Errorf("seen thumbprint %s, want %s", ce.Seen, seen)
			}
			if tc.want == tlsutil.ErrChanged && !strings.Contains(err.Error(), "certificate changed") {
				t.Errorf("message does not say the certificate changed: %v", err)
			}
		})
	}
}

// TestWrongPassword: ErrLogin, one login attempt per Collect, no password
// in the error.
func TestWrongPassword(t *testing.T) {
	v := newSim(t, nil)
	tg := v.target("", "")
	tg.Password = collectors.Secret("Wr0ng-Passw0rd")
	var logs strings.Builder
	tg.Logger = newTextLogger(&logs)
	c := v.collector(tg)
	_, err := c.Collect(context.Background(), hour)
	if !errors.Is(err, ErrLogin) {
		t.Fatalf("error %v, want ErrLogin", err)
	}
	want := "logging in to 127.0.0.1 as " + simUser + ": incorrect user name or password"
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if n := v.Logins(); n != 1 {
		t.Errorf("%d login attempts, want 1", n)
	}
	if strings.Contains(err.Error(), "Wr0ng-Passw0rd") || strings.Contains(logs.String(), "Wr0ng-Passw0rd") {
		t.Error("password in the error or the log")
	}
	if _, err := c.Identify(context.Background()); !errors.Is(err, ErrLogin) {
		t.Errorf("Identify: %v, want ErrLogin", err)
	}
	if n := v.Logins(); n != 2 {
		t.Errorf("%d login attempts after two calls, want 2", n)
	}
}

// TestCloseLogsOut: Close ends the session; the next Collect logs in again.
func TestCloseLogsOut(t *testing.T) {
	v := newSim(t, nil)
	c := v.collector(v.target("", ""))
	collect(t, c)
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	collect(t, c)
	if n := v.Logins(); n != 2 {
		t.Errorf("%d logins, want 2", n)
	}
}

// TestVAppPlacement: a VM in a vApp has no folder of its own; its folder
// is the vApp's path and its datacenter and pool are still known.
func TestVAppPlacement(t *testing.T) {
	v := newSim(t, func(m *simulator.Model) { m.App = 1; m.Host = 0 })
	// vCenter sets parentVApp, not parent, on a VM in a vApp; the simulator
	// sets both.
	for _, vm := range v.VMs() {
		if strings.Contains(vm.Name, "APP") {
			vm.Parent = nil
			vm.ParentVApp = vm.ResourcePool
		}
	}
	obs := collect(t, v.collector(v.target("", "")))
	n := 0
	for _, o := range obs {
		if o.Metric != collectors.MetricVMVRAM || !strings.Contains(o.Dims[DimVM], "APP") {
			continue
		}
		n++
		if o.Dims[DimDatacenter] != "DC0" || o.Dims[DimFolder] != "/DC0/vm/DC0_C0_APP0" || o.Dims[DimResourcePool] != "DC0_C0_APP0" || o.Dims[DimCluster] != "DC0_C0" {
			t.Errorf("%s: dims %v", o.Dims[DimVM], o.Dims)
		}
	}
	if n == 0 {
		t.Errorf("no vApp VM metered in %d observations", len(obs))
	}
}
