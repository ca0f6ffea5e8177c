package vcenter

import (
	"testing"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/usagemeter/usagemeter/collectors"
)

// TestBilledVRAMRules is the billing table of METERING.md applied to single
// VMs: what is billed, and what is not.
func TestBilledVRAMRules(t *testing.T) {
	on, off, susp := types.VirtualMachinePowerStatePoweredOn, types.VirtualMachinePowerStatePoweredOff, types.VirtualMachinePowerStateSuspended
	for _, tc := range []struct {
		name     string
		vm       vmRec
		hostConn types.HostSystemConnectionState
		want     float64 // -1: not billed
	}{
		{"1 GB, no reservation", vmRec{memoryMB: 1024, power: on}, "connected", 512},
		{"4 GB, reservation below half", vmRec{memoryMB: 4096, reserveMB: 1024, power: on}, "connected", 2048},
		{"4 GB, reservation at half", vmRec{memoryMB: 4096, reserveMB: 2048, power: on}, "connected", 2048},
		{"4 GB, reservation above half", vmRec{memoryMB: 4096, reserveMB: 3000, power: on}, "connected", 3000},
		{"4 GB, fully reserved", vmRec{memoryMB: 4096, reserveMB: 4096, power: on}, "connected", 4096},
		{"47 GB: under the cap", vmRec{memoryMB: 48128, power: on}, "connected", 24064},
		{"48 GB: at the cap", vmRec{memoryMB: 49152, power: on}, "connected", 24576},
		{"128 GB: capped", vmRec{memoryMB: 131072, power: on}, "connected", 24576},
		{"8 GB, 30 GB reservation: capped", vmRec{memoryMB: 8192, reserveMB: 30720, power: on}, "connected", 24576},
		{"odd size", vmRec{memoryMB: 1500, power: on}, "connected", 750},
		{"powered off", vmRec{memoryMB: 4096, reserveMB: 4096, power: off}, "connected", -1},
		{"suspended", vmRec{memoryMB: 4096, power: susp}, "connected", -1},
		{"template (reported powered on)", vmRec{memoryMB: 4096, power: on, template: true}, "connected", -1},
		{"on a disconnected host", vmRec{memoryMB: 4096, power: on, conn: "disconnected"}, "disconnected", 2048},
		{"on a host not responding", vmRec{memoryMB: 4096, power: on}, "notResponding", 2048},
		{"orphaned", vmRec{memoryMB: 4096, power: on, conn: "orphaned"}, "connected", -1},
		{"inaccessible", vmRec{memoryMB: 4096, power: on, conn: "inaccessible"}, "connected", -1},
		{"no config", vmRec{memoryMB: 4096, power: on, hasConfig: false}, "connected", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := newInventory()
			inv.hosts["host-1"] = &hostRec{ref: "host-1", name: "esx01", cores: 32, packages: 2, conn: tc.hostConn}
			vm := tc.vm
			vm.ref, vm.name, vm.uuid, vm.host = "vm-1", "web01", "5003c2b1-0d9e-8f7a-6b5c-4d3e2f1a0b9c", "host-1"
			vm.hasRuntime = true
			if tc.name != "no config" {
				vm.hasConfig = true
			}
			vm.bios = "4237c2b1-0d9e-8f7a-6b5c-4d3e2f1a0b9c"
			inv.vms = append(inv.vms, vm)
			// What Paired gives a paired collector (TKGm) is billed alike.
			pv, ok := newInventoryIndex("vc-uuid", "vc01", inv).VM("4237C2B1-0D9E-8F7A-6B5C-4D3E2F1A0B9C")
			if !ok || pv.Billed != (tc.want >= 0) || (tc.want >= 0 && pv.VRAMMB != tc.want) || pv.Key != "vc-uuid/vm/"+vm.uuid ||
				pv.HostKey != "vc-uuid/host/host-1" || pv.HostCores != 32 || pv.Dims[DimVM] != "web01" {
				t.Errorf("Paired: %+v, %v; want billed %v MB", pv, ok, tc.want)
			}
			obs, _ := build("vc-uuid", "vc01", Options{TanzuMetric: TanzuVRAM, VCFEdition: "standard"}, inv, nil, nil)
			var got []collectors.Observation
			for _, o := range obs {
				if o.Metric == collectors.MetricVMVRAM {
					got = append(got, o)
				}
			}
			if tc.want < 0 {
				if len(got) != 0 {
					t.Fatalf("billed %v MB, want nothing", got[0].Quantity)
				}
				if len(obs) != 0 {
					t.Errorf("host cores metered for a host with no billable VM: %+v", obs)
				}
				return
			}
			if len(got) != 1 || got[0].Quantity != tc.want || got[0].ObjectKey != "vc-uuid/vm/5003c2b1-0d9e-8f7a-6b5c-4d3e2f1a0b9c" {
				t.Fatalf("got %+v, want %v MB", got, tc.want)
			}
			if len(obs) != 2 || obs[1].Metric != collectors.MetricHostCores || obs[1].Quantity != 32 {
				t.Errorf("host cores: %+v", obs)
			}
		})
	}
}

// TestVSANEdition is the assumed vSAN feature-to-edition map.
func TestVSANEdition(t *testing.T) {
	for _, tc := range []struct {
		v    vsanCluster
		want string
	}{
		{vsanCluster{}, VSANStandard},
		{vsanCluster{dedup: true}, VSANAdvanced},
		{vsanCluster{compression: true}, VSANAdvanced},
		{vsanCluster{dedup: true, compression: true}, VSANAdvanced},
		{vsanCluster{encryption: true}, VSANEnterprise},
		{vsanCluster{stretched: true}, VSANEnterprise},
		{vsanCluster{dedup: true, stretched: true}, VSANEnterprise},
	} {
		if got := tc.v.edition(); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.v, got, tc.want)
		}
	}
}

// TestDuplicateInstanceUUID: two powered-on VMs with one instance UUID both
// bill, under different keys.
func TestDuplicateInstanceUUID(t *testing.T) {
	inv := newInventory()
	inv.hosts["host-1"] = &hostRec{ref: "host-1", name: "esx01", cores: 32}
	for _, ref := range []string{"vm-1", "vm-2"} {
		inv.vms = append(inv.vms, vmRec{ref: ref, name: ref, uuid: "5003c2b1-0d9e-8f7a-6b5c-4d3e2f1a0b9c", host: "host-1",
			memoryMB: 2048, power: types.VirtualMachinePowerStatePoweredOn, hasConfig: true, hasRuntime: true})
	}
	obs, skipped := build("vc", "vc01", Options{TanzuMetric: TanzuVRAM}, inv, nil, nil)
	if len(obs) != 2 || obs[0].ObjectKey == obs[1].ObjectKey || skipped.duplicateUUID != 1 {
		t.Errorf("observations %+v, duplicates %d", obs, skipped.duplicateUUID)
	}
	if obs[1].ObjectKey != "vc/vm/5003c2b1-0d9e-8f7a-6b5c-4d3e2f1a0b9c/vm-2" {
		t.Errorf("second key %s", obs[1].ObjectKey)
	}
}

// TestPairedDuplicateBIOS: two VMs with one BIOS UUID (a copied VM): the
// lookup returns the one that bills, and counts the duplicate.
func TestPairedDuplicateBIOS(t *testing.T) {
	on, off := types.VirtualMachinePowerStatePoweredOn, types.VirtualMachinePowerStatePoweredOff
	inv := newInventory()
	for i, p := range []types.VirtualMachinePowerState{off, on, off} {
		inv.vms = append(inv.vms, vmRec{ref: "vm-" + string(rune('1'+i)), uuid: "i" + string(rune('1'+i)), bios: "b-1",
			memoryMB: 2048, power: p, hasConfig: true, hasRuntime: true})
	}
	inv.vms = append(inv.vms, vmRec{ref: "vm-9", uuid: "i9", memoryMB: 2048, power: on, hasConfig: true, hasRuntime: true}) // no BIOS UUID
	p := newInventoryIndex("vc", "vc01", inv)
	v, ok := p.VM("B-1")
	if !ok || !v.Billed || v.Key != "vc/vm/i2" || v.VRAMMB != 1024 || v.HostKey != "" || p.DuplicateBIOS() != 2 || p.Len() != 4 {
		t.Fatalf("VM = %+v, %v; duplicates %d", v, ok, p.DuplicateBIOS())
	}
	if _, ok := p.VM(""); ok {
		t.Fatal("a VM without a BIOS UUID is found by an empty one")
	}
}
