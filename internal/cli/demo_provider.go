//go:build demo

package cli

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	vcsim "github.com/usagemeter/usagemeter/collectors/vcenter/simulator"
)

// demoVCenter is one simulated vCenter of the demo provider and how it is
// registered.
type demoVCenter struct {
	name       string // short name for the summary, e.g. "vc01"
	sim        *vcsim.Simulator
	vcfEdition string
	folders    []demoFolder
	vsan       *simulator.ClusterComputeResource // nil = no vSAN cluster
	vsanUsedB  int64
	productID  int64
	nextVM     int
	networks   []types.ManagedObjectReference // port groups new VMs are put on, round robin ("" = none)
}

// demoFolder is a VM folder with how many VMs it starts with and the
// customer label a rule gives it ("" = none).
type demoFolder struct {
	name, customer, prefix string
	vms                    int
}

// Memory sizes (GB) a provider's VMs have, most of them small.
var demoMemoryGB = []int32{1, 2, 2, 4, 4, 4, 8, 8, 8, 8, 12, 16, 16, 16, 24, 32, 32, 48, 64, 96, 128}

// demoRoles name VMs.
var demoRoles = []string{"web", "app", "db", "cache", "mq", "k8s", "ci", "vdi", "mail", "dns", "lb", "etl"}

const gib = int64(1) << 30

// demoProvider builds the simulated vCenters: vc01, VCF-flagged with two
// clusters (one vSAN) and about 200 VMs in customers' folders; vc02, a small
// edge vCenter (one host in evaluation mode), the one that goes down.
func demoProvider(ctx context.Context, rng *rand.Rand, vms int) ([]*demoVCenter, error) {
	var out []*demoVCenter
	fail := func(err error) ([]*demoVCenter, error) {
		for _, v := range out {
			v.sim.Close()
		}
		return nil, err
	}
	// vc01: two clusters of four hosts.
	s1, err := vcsim.New(vcsim.Options{Clusters: 2, HostsPerCluster: 4, ListenIP: "127.0.0.11", InstanceUUID: "6c1b7a2e-0d1f-4a5b-9c3d-0000000000c1"})
	if err != nil {
		return fail(err)
	}
	vc1 := &demoVCenter{name: "vc01", sim: s1, vcfEdition: "enterprise"}
	out = append(out, vc1)
	cl := s1.Clusters()
	for i, h := range s1.Hosts() {
		lic := vcsim.LicenseEnterprisePlus
		cores := int16(24)
		if i >= 4 { // second cluster: older, smaller hosts with Standard
			lic, cores = vcsim.LicenseStandard, 16
		}
		s1.SetCores(h, 2, cores)
		if err := s1.AssignLicence(h.Self, lic); err != nil {
			return fail(err)
		}
	}
	// vSAN on the first cluster: 4 hosts x 4 x 3.84 TB capacity disks,
	// deduplication and compression on (Advanced).
	vc1.vsan = cl[0]
	total := 4 * 4 * 3840 * 1000 * 1000 * 1000 * int64(1)
	vc1.vsanUsedB = total * 38 / 100
	s1.EnableVSAN(cl[0], vcsim.VSANFeatures{Dedup: true, Compression: true}, total, total-vc1.vsanUsedB)
	scale := func(n int) int { return max(1, n*vms/200) }
	vc1.folders = []demoFolder{
		{name: "Acme Corp", customer: "Acme Corp", prefix: "acme", vms: scale(60)},
		{name: "Globex", customer: "Globex", prefix: "globex", vms: scale(50)},
		{name: "Initech", customer: "Initech", prefix: "initech", vms: scale(40)},
		{name: "Umbrella Health", customer: "Umbrella Health", prefix: "umbrella", vms: scale(30)},
		{name: "Provider Infra", prefix: "infra", vms: scale(20)},
	}
	if err := vc1.populate(ctx, rng); err != nil {
		return fail(err)
	}

	// vc02: one cluster of two hosts, the second in evaluation mode. Each
	// vCenter has a loopback address of its own, so that host names differ
	// (the REST simulators listen on 127.0.0.1).
	s2, err := vcsim.New(vcsim.Options{Clusters: 1, HostsPerCluster: 2, ListenIP: "127.0.0.12",
		Shape:        func(m *simulator.Model) { m.Portgroup = 3 }, // NSX-V logical switches (demoNSXV)
		InstanceUUID: "6c1b7a2e-0d1f-4a5b-9c3d-0000000000c2"})
	if err != nil {
		return fail(err)
	}
	vc2 := &demoVCenter{name: "vc02", sim: s2}
	out = append(out, vc2)
	for i, h := range s2.Hosts() {
		lic := vcsim.LicenseStandard
		if i == 1 {
			lic = vcsim.LicenseEvaluation
		}
		s2.SetCores(h, 2, 12)
		if err := s2.AssignLicence(h.Self, lic); err != nil {
			return fail(err)
		}
	}
	vc2.folders = []demoFolder{{name: "Hooli", customer: "Hooli", prefix: "hooli", vms: scale(16)}}
	for _, pg := range s2.Portgroups() {
		vc2.networks = append(vc2.networks, pg.Self)
	}
	if err := vc2.populate(ctx, rng); err != nil {
		return fail(err)
	}
	return out, nil
}

// populate creates the folders and their VMs: memory from 1 to 128 GB,
// reservations below, at and above half the memory, and power states with
// templates and suspended VMs among them.
func (v *demoVCenter) populate(ctx context.Context, rng *rand.Rand) error {
	hosts := v.sim.Hosts()
	for _, f := range v.folders {
		if _, err := v.sim.CreateFolder(ctx, f.name); err != nil {
			return err
		}
		for i := 0; i < f.vms; i++ {
			spec := v.randomVM(rng, f, hosts)
			switch p := rng.IntN(100); {
			case p < 6:
				spec.Template, spec.PowerState = true, types.VirtualMachinePowerStatePoweredOff
				spec.Name = f.prefix + "-tmpl-" + fmt.Sprintf("%02d", i)
			case p < 10:
				spec.PowerState = types.VirtualMachinePowerStateSuspended
			case p < 20:
				spec.PowerState = types.VirtualMachinePowerStatePoweredOff
			}
			if _, err := v.sim.CreateVM(ctx, spec); err != nil {
				return err
			}
		}
	}
	return nil
}

// randomVM is a new powered-on VM in folder f.
func (v *demoVCenter) randomVM(rng *rand.Rand, f demoFolder, hosts []*simulator.HostSystem) vcsim.VMSpec {
	v.nextVM++
	mem, res := randomMemory(rng)
	var nets []types.ManagedObjectReference
	if len(v.networks) > 0 {
		nets = []types.ManagedObjectReference{v.networks[v.nextVM%len(v.networks)]}
	}
	return vcsim.VMSpec{
		Networks:      nets,
		Name:          fmt.Sprintf("%s-%s%03d", f.prefix, demoRoles[rng.IntN(len(demoRoles))], v.nextVM),
		Folder:        f.name,
		Host:          hosts[rng.IntN(len(hosts))],
		MemoryMB:      mem,
		ReservationMB: res,
		PowerState:    types.VirtualMachinePowerStatePoweredOn,
	}
}

// randomMemory is a memory size (MB) and a reservation: none (most VMs),
// a quarter, exactly half, three quarters or all of it.
func randomMemory(rng *rand.Rand) (int32, int64) {
	mb := demoMemoryGB[rng.IntN(len(demoMemoryGB))] * 1024
	var res int64
	switch p := rng.IntN(100); {
	case p < 55:
	case p < 65:
		res = int64(mb) / 4
	case p < 80:
		res = int64(mb) / 2
	case p < 90:
		res = int64(mb) * 3 / 4
	default:
		res = int64(mb)
	}
	return mb, res
}

// churnStats counts what churn did over the run.
type churnStats struct {
	powerOn, powerOff, suspended, resized, created, deleted int
}

// churn changes the vCenter between two hours as tenants do: power cycles,
// resizes, new and deleted VMs, vSAN capacity used growing.
func (v *demoVCenter) churn(ctx context.Context, rng *rand.Rand, st *churnStats) error {
	vms := v.sim.VMs()
	var live []*simulator.VirtualMachine // not templates
	for _, vm := range vms {
		if !vm.Config.Template {
			live = append(live, vm)
		}
	}
	if len(live) == 0 {
		return nil
	}
	// Power cycles: a few VMs an hour on a large vCenter, one now and then
	// on a small one.
	var on, off []*simulator.VirtualMachine
	for _, vm := range live {
		if vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
			on = append(on, vm)
		} else {
			off = append(off, vm)
		}
	}
	// Mean-reverting: powering off is likelier when more than 80% run.
	pOff := 0.5 * float64(len(on)) / float64(len(live)) / 0.8
	n := rng.IntN(max(2, len(live)/50))
	for i := 0; i < n; i++ {
		if rng.Float64() < pOff && len(on) > 0 {
			j := rng.IntN(len(on))
			vm := on[j]
			on = append(on[:j], on[j+1:]...)
			if rng.IntN(5) == 0 {
				v.sim.SetPower(vm, types.VirtualMachinePowerStateSuspended)
				st.suspended++
			} else {
				v.sim.SetPower(vm, types.VirtualMachinePowerStatePoweredOff)
				st.powerOff++
			}
		} else if len(off) > 0 {
			j := rng.IntN(len(off))
			vm := off[j]
			off = append(off[:j], off[j+1:]...)
			v.sim.SetPower(vm, types.VirtualMachinePowerStatePoweredOn)
			st.powerOn++
		}
	}
	// Resizes.
	if rng.Float64() < 0.04*float64(len(live))/20 {
		vm := live[rng.IntN(len(live))]
		mem, res := randomMemory(rng)
		v.sim.SetMemory(vm, mem, res)
		st.resized++
	}
	// New VMs, in a customer's folder.
	if rng.Float64() < 0.0004*float64(len(live)) {
		f := v.folders[rng.IntN(len(v.folders))]
		if _, err := v.sim.CreateVM(ctx, v.randomVM(rng, f, v.sim.Hosts())); err != nil {
			return err
		}
		st.created++
	}
	// Deleted VMs.
	if rng.Float64() < 0.0003*float64(len(live)) {
		vm := live[rng.IntN(len(live))]
		if err := v.sim.DestroyVM(ctx, vm); err != nil {
			return err
		}
		st.deleted++
	}
	// vSAN: used capacity grows about 40 GB a day, with noise.
	if v.vsan != nil {
		total, _ := v.sim.VSANSpace(v.vsan)
		v.vsanUsedB += int64((1.7 + rng.NormFloat64()*6) * float64(gib))
		v.vsanUsedB = min(max(v.vsanUsedB, total/10), total*9/10)
		v.sim.SetVSANSpace(v.vsan, total, total-v.vsanUsedB)
	}
	return nil
}

// inventory counts VMs by state, for the progress line.
func (v *demoVCenter) inventory() (on, total int) {
	for _, vm := range v.sim.VMs() {
		total++
		if vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn && !vm.Config.Template {
			on++
		}
	}
	return on, total
}

// customers lists the customer folders of all vCenters, for the rules.
func demoCustomers(vcs []*demoVCenter) []demoFolder {
	var out []demoFolder
	for _, v := range vcs {
		for _, f := range v.folders {
			if f.customer != "" {
				out = append(out, f)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return strings.Compare(out[i].name, out[j].name) < 0 })
	return out
}
