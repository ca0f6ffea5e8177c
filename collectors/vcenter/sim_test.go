package vcenter

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmware/govmomi/pbm"
	pbmmethods "github.com/vmware/govmomi/pbm/methods"
	pbmsim "github.com/vmware/govmomi/pbm/simulator" // the storage policy endpoint (/pbm)
	pbmtypes "github.com/vmware/govmomi/pbm/types"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vsan"
	vsanmethods "github.com/vmware/govmomi/vsan/methods"
	_ "github.com/vmware/govmomi/vsan/simulator" // the vSAN health endpoint (/vsanHealth)
	vsantypes "github.com/vmware/govmomi/vsan/types"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// Credentials the test vCenters accept.
const (
	simUser     = "svc-meter@vsphere.local"
	simPassword = "Gr3en-Tea!42"
)

// vcsim is one simulated vCenter served over TLS, shaped by a test.
type vcsim struct {
	t      testing.TB
	m      *simulator.Model
	s      *simulator.Server
	logins atomic.Int32 // Login calls seen
	vsan   *vsanHandlers
	pbm    *profileManager
}

// newSim creates the model's inventory and serves it. shape (optional) edits
// the model's counts before the inventory is created.
func newSim(t testing.TB, shape func(m *simulator.Model)) *vcsim {
	t.Helper()
	m := simulator.VPX()
	if shape != nil {
		shape(m)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	m.Service.TLS = new(tls.Config)
	m.Service.RegisterEndpoints = true
	m.Service.Listen = &url.URL{User: url.UserPassword(simUser, simPassword)}
	v := &vcsim{t: t, m: m}
	sm := m.Map().Get(*m.ServiceContent.SessionManager).(*simulator.SessionManager)
	sm.ValidLogin = func(req *types.Login) bool {
		v.logins.Add(1)
		return req.UserName == simUser && req.Password == simPassword
	}
	v.s = m.Service.NewServer()
	v.vsan = registerVSAN(m)
	v.pbm = registerPBM(m)
	t.Cleanup(func() {
		v.s.Close()
		m.Remove()
	})
	return v
}

// target is a Target reaching the simulator at host (its IP when "").
func (v *vcsim) target(host string, opts string) collectors.Target {
	ep := v.s.URL.Host
	if host != "" {
		ep = host + ":" + v.s.URL.Port()
	}
	return collectors.Target{
		ProductID:  1,
		Kind:       Kind,
		Endpoint:   "https://" + ep + "/sdk",
		Username:   simUser,
		Password:   config.Secret(simPassword),
		Thumbprint: tlsutil.Thumbprint(v.s.Certificate().Raw),
		Options:    []byte(opts),
		Timeout:    10 * time.Second,
	}
}

// collector builds a collector for t and closes it at the end of the test.
func (v *vcsim) collector(t collectors.Target) *Collector {
	v.t.Helper()
	c, err := collectors.New(t)
	if err != nil {
		v.t.Fatal(err)
	}
	v.t.Cleanup(func() { _ = c.(collectors.Closer).Close(context.Background()) })
	return c.(*Collector)
}

// vm returns the simulator's VM named name.
func (v *vcsim) vm(name string) *simulator.VirtualMachine {
	v.t.Helper()
	for _, e := range v.m.Map().All("VirtualMachine") {
		if e.Entity().Name == name {
			return e.(*simulator.VirtualMachine)
		}
	}
	v.t.Fatalf("no VM %s", name)
	return nil
}

// vms returns the simulator's VMs.
func (v *vcsim) vms() []*simulator.VirtualMachine {
	var out []*simulator.VirtualMachine
	for _, e := range v.m.Map().All("VirtualMachine") {
		out = append(out, e.(*simulator.VirtualMachine))
	}
	return out
}

// host returns the simulator's host named name.
func (v *vcsim) host(name string) *simulator.HostSystem {
	v.t.Helper()
	for _, e := range v.m.Map().All("HostSystem") {
		if e.Entity().Name == name {
			return e.(*simulator.HostSystem)
		}
	}
	v.t.Fatalf("no host %s", name)
	return nil
}

// cluster returns the simulator's cluster named name.
func (v *vcsim) cluster(name string) *simulator.ClusterComputeResource {
	v.t.Helper()
	for _, e := range v.m.Map().All("ClusterComputeResource") {
		if e.Entity().Name == name {
			return e.(*simulator.ClusterComputeResource)
		}
	}
	v.t.Fatalf("no cluster %s", name)
	return nil
}

// setMemory sets a VM's configured memory and reservation (MB).
func setMemory(vm *simulator.VirtualMachine, memoryMB int32, reservationMB int64) {
	vm.Config.Hardware.MemoryMB = memoryMB
	vm.Config.MemoryAllocation.Reservation = types.NewInt64(reservationMB)
	vm.Summary.Config.MemorySizeMB = memoryMB
}

// setPower sets a VM's power state (as vCenter reports it).
func setPower(vm *simulator.VirtualMachine, s types.VirtualMachinePowerState) {
	vm.Runtime.PowerState = s
	vm.Summary.Runtime.PowerState = s
}

// setCores gives a host packages sockets of coresPer cores.
func setCores(h *simulator.HostSystem, packages, coresPer int16) {
	h.Hardware.CpuInfo.NumCpuPackages = packages
	h.Hardware.CpuInfo.NumCpuCores = packages * coresPer
	h.Hardware.CpuInfo.NumCpuThreads = packages * coresPer * 2
	h.Summary.Hardware.NumCpuPkgs = packages
	h.Summary.Hardware.NumCpuCores = packages * coresPer
}

// Licences as a provider's vCenter has them (keys are made up).
var (
	licEntPlus = types.LicenseManagerLicenseInfo{
		LicenseKey: "4N4KH-0M2D5-48J8A-0R3A2-A7L4N",
		EditionKey: "esx.enterprisePlus.cpuPackageCoreLimited",
		Name:       "VMware vSphere 8 Enterprise Plus",
		Total:      0,
		CostUnit:   "cpuPackage:32core",
	}
	licStandard = types.LicenseManagerLicenseInfo{
		LicenseKey: "MJ0AH-4R29K-J8M81-0A0AH-2XK5H",
		EditionKey: "esx.standard.cpuPackageCoreLimited",
		Name:       "VMware vSphere 8 Standard",
		Total:      0,
		CostUnit:   "cpuPackage:32core",
	}
)

// assignLicence assigns lic to the entity (host or cluster) ref, as
// LicenseAssignmentManager.UpdateAssignedLicense would.
func (v *vcsim) assignLicence(ref types.ManagedObjectReference, lic types.LicenseManagerLicenseInfo) {
	v.t.Helper()
	lm := v.m.Map().Get(*v.m.ServiceContent.LicenseManager).(*simulator.LicenseManager)
	lam := v.m.Map().Get(*lm.LicenseAssignmentManager).(*simulator.LicenseAssignmentManager)
	for i, a := range lam.QueryAssignedLicensesResponse.Returnval {
		if a.EntityId == ref.Value {
			lam.QueryAssignedLicensesResponse.Returnval[i].AssignedLicense = lic
			return
		}
	}
	v.t.Fatalf("no licence assignment for %s", ref)
}

// vsanHandlers answer the vSAN health service methods the simulator does not
// (or answers empty), with per-cluster values a test sets.
type vsanHandlers struct {
	config  *clusterConfigSystem
	stretch *stretchedClusterSystem
	space   *spaceReportSystem
}

type clusterConfigSystem struct {
	types.ManagedObjectReference
	config map[string]*vsantypes.VsanConfigInfoEx
}

// VsanClusterGetConfig answers as vSAN health does for a cluster.
func (s *clusterConfigSystem) VsanClusterGetConfig(ctx *simulator.Context, req *vsantypes.VsanClusterGetConfig) soap.HasFault {
	cfg := s.config[req.Cluster.Value]
	if cfg == nil {
		cfg = &vsantypes.VsanConfigInfoEx{}
	}
	return &vsanmethods.VsanClusterGetConfigBody{Res: &vsantypes.VsanClusterGetConfigResponse{Returnval: *cfg}}
}

type stretchedClusterSystem struct {
	types.ManagedObjectReference
	witness map[string][]vsantypes.VimClusterVSANWitnessHostInfo
}

// VSANVcGetWitnessHosts lists a cluster's witness hosts (none unless stretched).
func (s *stretchedClusterSystem) VSANVcGetWitnessHosts(ctx *simulator.Context, req *vsantypes.VSANVcGetWitnessHosts) soap.HasFault {
	return &vsanmethods.VSANVcGetWitnessHostsBody{Res: &vsantypes.VSANVcGetWitnessHostsResponse{Returnval: s.witness[req.Cluster.Value]}}
}

type spaceReportSystem struct {
	types.ManagedObjectReference
	usage map[string]vsantypes.VsanSpaceUsage
}

// VsanQuerySpaceUsage answers a cluster's capacity and free space.
func (s *spaceReportSystem) VsanQuerySpaceUsage(ctx *simulator.Context, req *vsantypes.VsanQuerySpaceUsage) soap.HasFault {
	u, ok := s.usage[req.Cluster.Value]
	if !ok {
		return &vsanmethods.VsanQuerySpaceUsageBody{Fault_: simulator.Fault("vSAN is not enabled on the cluster", &types.InvalidState{})}
	}
	return &vsanmethods.VsanQuerySpaceUsageBody{Res: &vsantypes.VsanQuerySpaceUsageResponse{Returnval: u}}
}

// registerVSAN puts the handlers into the simulator's vSAN health endpoint,
// replacing the simulator's own config and stretched-cluster systems.
func registerVSAN(m *simulator.Model) *vsanHandlers {
	h := &vsanHandlers{
		config:  &clusterConfigSystem{ManagedObjectReference: vsan.VsanVcClusterConfigSystemInstance, config: map[string]*vsantypes.VsanConfigInfoEx{}},
		stretch: &stretchedClusterSystem{ManagedObjectReference: vsan.VsanVcStretchedClusterSystem, witness: map[string][]vsantypes.VimClusterVSANWitnessHostInfo{}},
		space:   &spaceReportSystem{ManagedObjectReference: vsanSpaceReportSystem, usage: map[string]vsantypes.VsanSpaceUsage{}},
	}
	r := simulator.NewRegistry()
	r.Namespace = vsan.Namespace
	r.Path = vsan.Path
	r.Put(h.config)
	r.Put(h.stretch)
	r.Put(h.space)
	m.Service.RegisterSDK(r) // merged into the endpoint registered by vsan/simulator
	return h
}

// enableVSAN turns vSAN on for a cluster in the inventory and gives it a
// configuration, witness hosts and space usage on the vSAN health service.
func (v *vcsim) enableVSAN(cl *simulator.ClusterComputeResource, cfg vsantypes.VsanConfigInfoEx, witness []vsantypes.VimClusterVSANWitnessHostInfo, totalB, freeB int64) {
	cl.ConfigurationEx.(*types.ClusterConfigInfoEx).VsanConfigInfo = &types.VsanClusterConfigInfo{
		Enabled: types.NewBool(true),
		DefaultConfig: &types.VsanClusterConfigInfoHostDefaultInfo{
			Uuid:             "52a1bdc5-6a7e-1b2f-8c93-0f4b1c2d3e4f",
			AutoClaimStorage: types.NewBool(false),
		},
	}
	cfg.Enabled = types.NewBool(true)
	ref := cl.Self.Value
	v.vsan.config.config[ref] = &cfg
	v.vsan.stretch.witness[ref] = witness
	v.vsan.space.usage[ref] = vsantypes.VsanSpaceUsage{TotalCapacityB: totalB, FreeCapacityB: freeB}
}

// entity returns the managed object reference of a simulator object.
func entity(e mo.Reference) types.ManagedObjectReference { return e.Reference() }

// newTextLogger logs to w as text, for tests that read the log.
func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, nil))
}

// profileManager is the simulator's storage policy manager plus the
// association query it does not answer (PbmQueryAssociatedEntity), with the
// VMs and disks a test associates with each policy.
type profileManager struct {
	*pbmsim.ProfileManager
	assoc map[string]map[string][]pbmtypes.PbmServerObjectRef // policy id -> entity type -> entities
}

// PbmQueryAssociatedEntity lists the entities of a type that use a policy.
func (m *profileManager) PbmQueryAssociatedEntity(req *pbmtypes.PbmQueryAssociatedEntity) soap.HasFault {
	return &pbmmethods.PbmQueryAssociatedEntityBody{Res: &pbmtypes.PbmQueryAssociatedEntityResponse{
		Returnval: m.assoc[req.Profile.UniqueId][req.EntityType],
	}}
}

// registerPBM replaces the simulator's storage policy manager by one that
// also answers association queries.
func registerPBM(m *simulator.Model) *profileManager {
	ref := types.ManagedObjectReference{Type: "PbmProfileProfileManager", Value: "ProfileManager"}
	pm := &profileManager{
		ProfileManager: pbmsim.New().Get(ref).(*pbmsim.ProfileManager),
		assoc:          map[string]map[string][]pbmtypes.PbmServerObjectRef{},
	}
	r := simulator.NewRegistry()
	r.Namespace = pbm.Namespace
	r.Path = pbm.Path
	r.Put(pm)
	m.Service.RegisterSDK(r)
	return pm
}

// vsanPolicy creates a vSAN storage policy tolerating one failure with the
// given replica preference, and associates it with entities (VM morefs, or
// "vm-N:2000" for a disk).
func (v *vcsim) vsanPolicy(name, replica string, vms []string, disks []string) {
	v.t.Helper()
	ctx := context.Background()
	pc, err := pbm.NewClient(ctx, v.client().Client)
	if err != nil {
		v.t.Fatal(err)
	}
	capability := func(id string, value any) pbmtypes.PbmCapabilityInstance {
		return pbmtypes.PbmCapabilityInstance{
			Id: pbmtypes.PbmCapabilityMetadataUniqueId{Namespace: "VSAN", Id: id},
			Constraint: []pbmtypes.PbmCapabilityConstraintInstance{{
				PropertyInstance: []pbmtypes.PbmCapabilityPropertyInstance{{Id: id, Value: value}},
			}},
		}
	}
	id, err := pc.CreateProfile(ctx, pbmtypes.PbmCapabilityProfileCreateSpec{
		Name:         name,
		Category:     string(pbmtypes.PbmProfileCategoryEnumREQUIREMENT),
		ResourceType: pbmtypes.PbmProfileResourceType{ResourceType: string(pbmtypes.PbmProfileResourceTypeEnumSTORAGE)},
		Constraints: &pbmtypes.PbmCapabilitySubProfileConstraints{SubProfiles: []pbmtypes.PbmCapabilitySubProfile{{
			Name: "VSAN sub-profile",
			Capability: []pbmtypes.PbmCapabilityInstance{
				capability("hostFailuresToTolerate", int32(1)),
				capability("replicaPreference", replica),
			},
		}}},
	})
	if err != nil {
		v.t.Fatal(err)
	}
	a := map[string][]pbmtypes.PbmServerObjectRef{}
	for _, k := range vms {
		a[string(pbmtypes.PbmObjectTypeVirtualMachine)] = append(a[string(pbmtypes.PbmObjectTypeVirtualMachine)],
			pbmtypes.PbmServerObjectRef{ObjectType: string(pbmtypes.PbmObjectTypeVirtualMachine), Key: k})
	}
	for _, k := range disks {
		a[string(pbmtypes.PbmObjectTypeVirtualDiskId)] = append(a[string(pbmtypes.PbmObjectTypeVirtualDiskId)],
			pbmtypes.PbmServerObjectRef{ObjectType: string(pbmtypes.PbmObjectTypeVirtualDiskId), Key: k})
	}
	v.pbm.assoc[id.UniqueId] = a
}
