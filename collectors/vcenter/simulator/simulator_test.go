package simulator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/pbm"
	pbmtypes "github.com/vmware/govmomi/pbm/types"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vsan"
	vsanmethods "github.com/vmware/govmomi/vsan/methods"
	vsantypes "github.com/vmware/govmomi/vsan/types"

	"github.com/usagemeter/usagemeter/collectors"
	_ "github.com/usagemeter/usagemeter/collectors/vcenter"
	vcsim "github.com/usagemeter/usagemeter/collectors/vcenter/simulator"
)

// TestShapedInventoryThroughTheCollector builds a small provider, collects it
// with the real vCenter collector, takes it down and brings it back.
func TestShapedInventoryThroughTheCollector(t *testing.T) {
	ctx := context.Background()
	s, err := vcsim.New(vcsim.Options{Clusters: 2, HostsPerCluster: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	clusters := s.Clusters()
	if len(clusters) != 2 || len(s.Hosts()) != 4 {
		t.Fatalf("%d clusters, %d hosts", len(clusters), len(s.Hosts()))
	}
	for _, h := range s.Hosts() {
		s.SetCores(h, 2, 16)
		if err := s.AssignLicence(h.Self, vcsim.LicenseEnterprisePlus); err != nil {
			t.Fatal(err)
		}
	}
	s.EnableVSAN(clusters[0], vcsim.VSANFeatures{Dedup: true, Compression: true}, 40<<40, 30<<40)
	if _, err := s.CreateFolder(ctx, "Acme"); err != nil {
		t.Fatal(err)
	}
	host := s.ClusterHosts(clusters[0])[0]
	on := types.VirtualMachinePowerStatePoweredOn
	for _, spec := range []vcsim.VMSpec{
		{Name: "acme-web01", Folder: "Acme", Host: host, MemoryMB: 8192, ReservationMB: 0, PowerState: on},                   // 4096 billed
		{Name: "acme-db01", Folder: "Acme", Host: host, MemoryMB: 65536, ReservationMB: 65536, PowerState: on},               // capped 24576
		{Name: "acme-tmpl", Folder: "Acme", Host: host, MemoryMB: 4096, Template: true},                                      // nothing
		{Name: "acme-susp", Folder: "Acme", Host: host, MemoryMB: 4096, PowerState: types.VirtualMachinePowerStateSuspended}, // nothing
	} {
		if _, err := s.CreateVM(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	c, err := collectors.New(collectors.Target{
		ProductID: 1, Kind: "vcenter", Endpoint: s.URL(), Username: s.User(), Password: collectors.Secret(s.Password()),
		Thumbprint: s.Thumbprint(), Options: []byte(`{"vcf_edition":"enterprise"}`), Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.(collectors.Closer).Close(ctx)

	check := func() {
		t.Helper()
		obs, err := c.Collect(ctx, time.Now().Truncate(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		sum := map[string]float64{}
		for _, o := range obs {
			sum[o.Metric] += o.Quantity
			if o.Metric == collectors.MetricVMVRAM && !strings.HasSuffix(o.Dims["folder"], "/Acme") {
				t.Errorf("VM %s in folder %q", o.Dims["vm"], o.Dims["folder"])
			}
			if o.Metric == collectors.MetricVSANUsedGB && o.Edition != "advanced" {
				t.Errorf("vSAN edition %q", o.Edition)
			}
		}
		if sum[collectors.MetricVMVRAM] != 4096+24576 || sum[collectors.MetricHostCores] != 32 || sum[collectors.MetricVSANUsedGB] != 10*1024 {
			t.Fatalf("sums %v", sum)
		}
	}
	check()
	logins := s.Logins()

	if err := s.Down(); err != nil {
		t.Fatal(err)
	}
	// A kept-alive connection is cut (broken pipe, EOF); new ones are refused.
	for i := 0; i < 2; i++ {
		if _, err := c.Collect(ctx, time.Now()); err == nil {
			t.Fatal("collected while down")
		} else if i == 1 && !strings.Contains(err.Error(), "refused") {
			t.Fatalf("second collect while down: %v", err)
		}
	}
	if err := s.Up(); err != nil {
		t.Fatal(err)
	}
	check()
	if s.Logins() != logins {
		t.Fatalf("the session did not survive the outage: %d logins, then %d", logins, s.Logins())
	}

	vm := s.VM("acme-web01")
	s.SetMemory(vm, 16384, 12288) // 12288 billed
	if err := s.DestroyVM(ctx, s.VM("acme-db01")); err != nil {
		t.Fatal(err)
	}
	obs, err := c.Collect(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var vram float64
	for _, o := range obs {
		if o.Metric == collectors.MetricVMVRAM {
			vram += o.Quantity
		}
	}
	if vram != 12288 {
		t.Fatalf("vRAM after resize and delete: %v", vram)
	}
}

// TestLookupsVSANConfigAndDiskPolicies finds objects by name, and answers
// the vSAN health and storage policy services as EnableVSANConfig and
// VSANPolicyEntities set them.
func TestLookupsVSANConfigAndDiskPolicies(t *testing.T) {
	ctx := context.Background()
	s, err := vcsim.New(vcsim.Options{Clusters: 1, HostsPerCluster: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cl, h := s.Cluster("DC0_C0"), s.Host("DC0_C0_H1")
	if cl == nil || cl.Name != "DC0_C0" || h == nil || h.Name != "DC0_C0_H1" {
		t.Fatalf("cluster %v, host %v", cl, h)
	}
	if s.Cluster("DC0_C9") != nil || s.Host("DC0_C0_H9") != nil || s.VM("nope") != nil {
		t.Error("found an object that does not exist")
	}
	vm, err := s.CreateVM(ctx, vcsim.VMSpec{Name: "vm1", Host: h, MemoryMB: 1024})
	if err != nil {
		t.Fatal(err)
	}

	witness := []vsantypes.VimClusterVSANWitnessHostInfo{{NodeUuid: "5f3c2b1a-0d9e-8f7a-6b5c-4d3e2f1a0b9c", FaultDomainName: "witness", PreferredFdName: "site-a", Host: &h.Self}}
	s.EnableVSANConfig(cl, vsantypes.VsanConfigInfoEx{
		DataEncryptionConfig: &vsantypes.VsanDataEncryptionConfig{EncryptionEnabled: true, KekId: "kek-1"},
	}, witness, 10<<40, 4<<40)
	if ci := cl.ConfigurationEx.(*types.ClusterConfigInfoEx).VsanConfigInfo; ci == nil || ci.Enabled == nil || !*ci.Enabled {
		t.Error("vSAN not enabled in the inventory")
	}
	if total, free := s.VSANSpace(cl); total != 10<<40 || free != 4<<40 {
		t.Errorf("space %d, %d", total, free)
	}
	c, err := s.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vc, err := vsan.NewClient(ctx, c.Client)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := vc.VsanClusterGetConfig(ctx, cl.Self)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Enabled == nil || !*cfg.Enabled || cfg.DataEncryptionConfig == nil || cfg.DataEncryptionConfig.KekId != "kek-1" {
		t.Errorf("vSAN config %+v", cfg)
	}
	w, err := vsanmethods.VSANVcGetWitnessHosts(ctx, vc, &vsantypes.VSANVcGetWitnessHosts{This: vsan.VsanVcStretchedClusterSystem, Cluster: cl.Self})
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Returnval) != 1 || w.Returnval[0].PreferredFdName != "site-a" || *w.Returnval[0].Host != h.Self {
		t.Errorf("witness hosts %+v", w.Returnval)
	}

	disk := vm.Self.Value + ":2000"
	if err := s.VSANPolicyEntities(ctx, "disk policy", "RAID-5/6 (Erasure Coding) - Capacity", nil, []string{disk}); err != nil {
		t.Fatal(err)
	}
	if err := s.VSANPolicy(ctx, "VM policy", "RAID-1 (Mirroring) - Performance", []string{vm.Self.Value}); err != nil {
		t.Fatal(err)
	}
	pc, err := pbm.NewClient(ctx, c.Client)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pc.QueryProfile(ctx, pbmtypes.PbmProfileResourceType{ResourceType: string(pbmtypes.PbmProfileResourceTypeEnumSTORAGE)}, string(pbmtypes.PbmProfileCategoryEnumREQUIREMENT))
	if err != nil {
		t.Fatal(err)
	}
	profiles, err := pc.RetrieveContent(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range profiles {
		pp := p.GetPbmProfile()
		for _, kind := range []pbmtypes.PbmObjectType{pbmtypes.PbmObjectTypeVirtualMachine, pbmtypes.PbmObjectTypeVirtualDiskId} {
			refs, err := pc.QueryAssociatedEntity(ctx, pp.ProfileId, string(kind))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range refs {
				got[pp.Name+" "+r.ObjectType] += r.Key
			}
		}
	}
	want := map[string]string{
		"disk policy " + string(pbmtypes.PbmObjectTypeVirtualDiskId): disk,
		"VM policy " + string(pbmtypes.PbmObjectTypeVirtualMachine):  vm.Self.Value,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("associations %v, want %v", got, want)
	}
}
