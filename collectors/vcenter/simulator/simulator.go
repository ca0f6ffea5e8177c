// Package simulator is a vCenter simulator shaped like a cloud provider's, usable
// outside tests (`usagemeter demo`) as well as in them.
//
// It is govmomi's simulator (simulator.VPX) with what that simulator does not
// model added (the vCenter collector's tests shape their simulators with it
// too, collectors/vcenter sim_test.go): memory sizes and reservations, power
// states, host core counts, licence editions answered by
// the LicenseAssignmentManager, and the vSAN health service methods the
// collector calls (VsanClusterGetConfig, VSANVcGetWitnessHosts,
// VsanQuerySpaceUsage) plus storage-policy associations
// (PbmQueryAssociatedEntity).
//
// Clients reach the simulator through a TCP relay that Down and Up can take
// away and bring back on the same address: while down, connections are
// refused, as when a vCenter is unreachable, and sessions survive.
//
// Where govmomi's simulator and vCenter differ, the simulator answers as
// vCenter does, checked with govc's own commands by fidelity_test.go: it
// calls itself vCenter 8.0 Update 3 (the VPX model says 6.5, which vSphere 8
// licences do not fit); VsanClusterGetConfig of a cluster without vSAN says
// enabled false (govc vsan.info dereferences it); summary.config's
// memoryReservation follows config.memoryAllocation.reservation (SetMemory,
// ReconfigVM_Task); an assigned licence is one the LicenseManager holds,
// with its use counted (CPU packages of its hosts for a cpuPackage licence),
// so that govc license.ls and license.assigned.ls agree.
//
// Inventory edits (SetMemory, SetPower, CreateVM, ...) are meant to be made
// between collections; each takes the simulator's lock on the object it edits.
package simulator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/pbm"
	pbmmethods "github.com/vmware/govmomi/pbm/methods"
	pbmsim "github.com/vmware/govmomi/pbm/simulator" // the storage policy endpoint (/pbm)
	pbmtypes "github.com/vmware/govmomi/pbm/types"
	govsim "github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vsan"
	vsanmethods "github.com/vmware/govmomi/vsan/methods"
	_ "github.com/vmware/govmomi/vsan/simulator" // the vSAN health endpoint (/vsanHealth)
	vsantypes "github.com/vmware/govmomi/vsan/types"

	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// Default credentials of the simulated metering account.
const (
	DefaultUser     = "svc-meter@vsphere.local"
	DefaultPassword = "Gr3en-Tea!42"
)

// Options shape a Simulator.
type Options struct {
	User, Password  string // accepted credentials; default DefaultUser, DefaultPassword
	Datacenters     int    // default 1
	Clusters        int    // clusters per datacenter; default 2
	HostsPerCluster int    // default 4
	// ListenIP is the loopback address clients connect to (default
	// 127.0.0.1); another one (127.0.0.2) gives a second simulator another
	// host name. If it cannot be listened on, 127.0.0.1 is used.
	ListenIP string
	// InstanceUUID is the vCenter's about.instanceUuid, by which a vCenter
	// is identified; default the simulator's own. Two simulators registered
	// as two products need two.
	InstanceUUID string
	// Shape, if set, edits the model's counts after the defaults above and
	// before the inventory is created.
	Shape func(m *govsim.Model)
}

// Simulator is one running simulated vCenter.
type Simulator struct {
	Model *govsim.Model

	server   *govsim.Server
	relay    *relay
	user     string
	password string
	logins   atomic.Int32
	refuse   atomic.Bool
	vsan     *vsanHandlers
	pbm      *profileManager

	mu     sync.Mutex
	client *govmomi.Client // the simulator's own admin session, for inventory edits
}

// New creates the inventory and serves it over TLS on 127.0.0.1.
func New(o Options) (*Simulator, error) {
	if o.User == "" {
		o.User, o.Password = DefaultUser, DefaultPassword
	}
	m := govsim.VPX()
	m.Datacenter = max(o.Datacenters, 1)
	m.Cluster = 2
	if o.Clusters > 0 {
		m.Cluster = o.Clusters
	}
	m.ClusterHost = 4
	if o.HostsPerCluster > 0 {
		m.ClusterHost = o.HostsPerCluster
	}
	m.Host = 0
	m.Machine = 0
	if o.InstanceUUID != "" {
		m.ServiceContent.About.InstanceUuid = o.InstanceUUID
	}
	// govmomi's VPX model calls itself vCenter 6.5; the licences a
	// provider's vCenter holds (LicenseEnterprisePlus, ...) are vSphere 8
	// ones, so the simulated vCenter is vCenter 8.0 Update 3.
	about := &m.ServiceContent.About
	about.Version, about.Build, about.ApiVersion = "8.0.3", "24022515", "8.0.3.0"
	about.FullName = "VMware vCenter Server " + about.Version + " build-" + about.Build
	about.LicenseProductVersion = "8.0"
	if o.Shape != nil {
		o.Shape(m)
	}
	if err := m.Create(); err != nil {
		return nil, fmt.Errorf("vcsim: creating the inventory: %w", err)
	}
	m.Service.TLS = new(tls.Config)
	m.Service.RegisterEndpoints = true
	m.Service.Listen = &url.URL{User: url.UserPassword(o.User, o.Password)}
	s := &Simulator{Model: m, user: o.User, password: o.Password}
	sm := m.Map().Get(*m.ServiceContent.SessionManager).(*govsim.SessionManager)
	sm.ValidLogin = func(req *types.Login) bool {
		s.logins.Add(1)
		return !s.refuse.Load() && req.UserName == s.user && req.Password == s.password
	}
	s.server = m.Service.NewServer()
	s.vsan = registerVSAN(m)
	s.pbm = registerPBM(m)
	m.Map().AddHandler(&summarySync{})
	s.registerLicences()
	r, err := newRelay(o.ListenIP, s.server.URL.Host)
	if err != nil {
		s.server.Close()
		m.Remove()
		return nil, err
	}
	s.relay = r
	return s, nil
}

// Close stops serving and removes the simulator's files.
func (s *Simulator) Close() {
	s.mu.Lock()
	if s.client != nil {
		_ = s.client.Logout(context.Background())
		s.client = nil
	}
	s.mu.Unlock()
	s.relay.close()
	s.server.Close()
	s.Model.Remove()
}

// Addr is the host:port clients connect to (the relay).
func (s *Simulator) Addr() string { return s.relay.addr }

// URL is the SDK endpoint, e.g. https://127.0.0.1:43211/sdk.
func (s *Simulator) URL() string { return "https://" + s.Addr() + "/sdk" }

// Thumbprint is the SHA-256 thumbprint of the server certificate, in the form
// an admin accepts (tlsutil).
func (s *Simulator) Thumbprint() string { return tlsutil.Thumbprint(s.server.Certificate().Raw) }

// User and Password are the accepted credentials.
func (s *Simulator) User() string     { return s.user }
func (s *Simulator) Password() string { return s.password }

// InstanceUUID is the vCenter's about.instanceUuid.
func (s *Simulator) InstanceUUID() string { return s.Model.ServiceContent.About.InstanceUuid }

// Logins counts the Login calls seen (accepted or not).
func (s *Simulator) Logins() int { return int(s.logins.Load()) }

// RefuseLogins makes every login fail as with a wrong password (true) or
// accepts the credentials again (false). Sessions already open stay valid.
func (s *Simulator) RefuseLogins(refuse bool) { s.refuse.Store(refuse) }

// Down makes the vCenter unreachable: open connections are cut and new ones
// refused, as when its host is down. Up brings it back on the same address.
func (s *Simulator) Down() error { return s.relay.down() }

// Up ends Down.
func (s *Simulator) Up() error { return s.relay.up() }

// IsDown reports whether the simulator is down.
func (s *Simulator) IsDown() bool { return s.relay.isDown() }

// withLock runs f holding the simulator's lock on obj.
func (s *Simulator) withLock(obj mo.Reference, f func()) {
	ctx := s.Model.Service.Context
	ctx.Map.WithLock(ctx, obj, f)
}

// VMs returns the simulator's VMs sorted by name.
func (s *Simulator) VMs() []*govsim.VirtualMachine {
	var out []*govsim.VirtualMachine
	for _, e := range s.Model.Map().All("VirtualMachine") {
		out = append(out, e.(*govsim.VirtualMachine))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// VM returns the VM named name, nil if there is none.
func (s *Simulator) VM(name string) *govsim.VirtualMachine {
	return byName[*govsim.VirtualMachine](s.Model, "VirtualMachine", name)
}

// Host returns the host named name, nil if there is none.
func (s *Simulator) Host(name string) *govsim.HostSystem {
	return byName[*govsim.HostSystem](s.Model, "HostSystem", name)
}

// Cluster returns the cluster named name, nil if there is none.
func (s *Simulator) Cluster(name string) *govsim.ClusterComputeResource {
	return byName[*govsim.ClusterComputeResource](s.Model, "ClusterComputeResource", name)
}

// byName returns the inventory object of a type (kind, e.g. "HostSystem")
// named name, the zero T if there is none.
func byName[T mo.Entity](m *govsim.Model, kind, name string) T {
	for _, e := range m.Map().All(kind) {
		if e.Entity().Name == name {
			if o, ok := e.(T); ok {
				return o
			}
		}
	}
	var zero T
	return zero
}

// Hosts returns the simulator's hosts sorted by name.
func (s *Simulator) Hosts() []*govsim.HostSystem {
	var out []*govsim.HostSystem
	for _, e := range s.Model.Map().All("HostSystem") {
		out = append(out, e.(*govsim.HostSystem))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Clusters returns the simulator's clusters sorted by name.
func (s *Simulator) Clusters() []*govsim.ClusterComputeResource {
	var out []*govsim.ClusterComputeResource
	for _, e := range s.Model.Map().All("ClusterComputeResource") {
		out = append(out, e.(*govsim.ClusterComputeResource))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ClusterHosts returns the hosts of cl sorted by name.
func (s *Simulator) ClusterHosts(cl *govsim.ClusterComputeResource) []*govsim.HostSystem {
	var out []*govsim.HostSystem
	for _, ref := range cl.Host {
		if h, ok := s.Model.Map().Get(ref).(*govsim.HostSystem); ok {
			out = append(out, h)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Portgroups returns the distributed port groups VMs can be on (not the
// uplink ones), sorted by name; Options.Shape sets how many (m.Portgroup).
func (s *Simulator) Portgroups() []*govsim.DistributedVirtualPortgroup {
	var out []*govsim.DistributedVirtualPortgroup
	for _, e := range s.Model.Map().All("DistributedVirtualPortgroup") {
		if pg := e.(*govsim.DistributedVirtualPortgroup); !strings.Contains(pg.Name, "DVUplinks") {
			out = append(out, pg)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// SetNetworks sets the networks (port groups) a VM is on, as its network
// property reports them.
func (s *Simulator) SetNetworks(vm *govsim.VirtualMachine, networks ...types.ManagedObjectReference) {
	s.withLock(vm, func() { vm.Network = append([]types.ManagedObjectReference(nil), networks...) })
}

// SetMemory sets a VM's configured memory and its reservation (MB).
func (s *Simulator) SetMemory(vm *govsim.VirtualMachine, memoryMB int32, reservationMB int64) {
	s.withLock(vm, func() { SetMemory(vm, memoryMB, reservationMB) })
}

// SetPower sets a VM's power state as vCenter reports it.
func (s *Simulator) SetPower(vm *govsim.VirtualMachine, st types.VirtualMachinePowerState) {
	s.withLock(vm, func() { SetPower(vm, st) })
}

// SetTemplate marks a VM as a template (or not).
func (s *Simulator) SetTemplate(vm *govsim.VirtualMachine, template bool) {
	s.withLock(vm, func() {
		vm.Config.Template = template
		vm.Summary.Config.Template = template
	})
}

// SetCores gives a host packages sockets of coresPer cores each.
func (s *Simulator) SetCores(h *govsim.HostSystem, packages, coresPer int16) {
	s.withLock(h, func() { SetCores(h, packages, coresPer) })
}

// SetMemory sets a VM's configured memory and reservation (MB) on the object
// itself, in its config and in its summary as vCenter reports both; the
// caller holds the simulator's lock or nothing is being served.
func SetMemory(vm *govsim.VirtualMachine, memoryMB int32, reservationMB int64) {
	vm.Config.Hardware.MemoryMB = memoryMB
	vm.Config.MemoryAllocation.Reservation = types.NewInt64(reservationMB)
	vm.Summary.Config.MemorySizeMB = memoryMB
	vm.Summary.Config.MemoryReservation = int32(reservationMB)
}

// summarySync keeps a VM's summary.config.memoryReservation equal to its
// config.memoryAllocation.reservation after a reconfiguration
// (ReconfigVM_Task, govc vm.change), as vCenter does; govmomi's simulator
// updates the config only. It is a handler of the simulator's registry,
// told of every property change: a successful reconfiguration changes
// config.changeVersion.
type summarySync struct{}

func (*summarySync) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "UsagemeterSummarySync", Value: "summary-sync"}
}

func (*summarySync) PutObject(*govsim.Context, mo.Reference) {}

func (*summarySync) RemoveObject(*govsim.Context, types.ManagedObjectReference) {}

func (*summarySync) UpdateObject(_ *govsim.Context, obj mo.Reference, changes []types.PropertyChange) {
	vm, ok := obj.(*mo.VirtualMachine)
	if !ok || vm.Config == nil || vm.Config.MemoryAllocation.Reservation == nil {
		return
	}
	for _, c := range changes {
		if c.Name == "config.changeVersion" {
			vm.Summary.Config.MemoryReservation = int32(*vm.Config.MemoryAllocation.Reservation)
			return
		}
	}
}

// SetPower sets a VM's power state (as vCenter reports it) on the object.
func SetPower(vm *govsim.VirtualMachine, st types.VirtualMachinePowerState) {
	vm.Runtime.PowerState = st
	vm.Summary.Runtime.PowerState = st
}

// SetCores gives a host packages sockets of coresPer cores on the object.
func SetCores(h *govsim.HostSystem, packages, coresPer int16) {
	h.Hardware.CpuInfo.NumCpuPackages = packages
	h.Hardware.CpuInfo.NumCpuCores = packages * coresPer
	h.Hardware.CpuInfo.NumCpuThreads = packages * coresPer * 2
	h.Summary.Hardware.NumCpuPkgs = packages
	h.Summary.Hardware.NumCpuCores = packages * coresPer
}

// Licences as a provider's vCenter has them (the keys are made up).
var (
	LicenseEnterprisePlus = types.LicenseManagerLicenseInfo{
		LicenseKey: "4N4KH-0M2D5-48J8A-0R3A2-A7L4N",
		EditionKey: "esx.enterprisePlus.cpuPackageCoreLimited",
		Name:       "VMware vSphere 8 Enterprise Plus",
		CostUnit:   "cpuPackage:32core",
	}
	LicenseStandard = types.LicenseManagerLicenseInfo{
		LicenseKey: "MJ0AH-4R29K-J8M81-0A0AH-2XK5H",
		EditionKey: "esx.standard.cpuPackageCoreLimited",
		Name:       "VMware vSphere 8 Standard",
		CostUnit:   "cpuPackage:32core",
	}
	// LicenseEvaluation is vSphere's evaluation mode: metered, not reported.
	LicenseEvaluation = types.LicenseManagerLicenseInfo{
		LicenseKey: "00000-00000-00000-00000-00000",
		EditionKey: "eval",
		Name:       "Evaluation Mode",
	}
)

// AssignLicence assigns lic to the entity (host or cluster) ref, as
// LicenseAssignmentManager.UpdateAssignedLicense would, after adding lic to
// the licence manager (vCenter assigns only licences it holds) if it is not
// there yet.
func (s *Simulator) AssignLicence(ref types.ManagedObjectReference, lic types.LicenseManagerLicenseInfo) error {
	lm := s.licenceManager()
	lam := s.Model.Map().Get(*lm.LicenseAssignmentManager).(*licenceAssignments)
	s.withLock(lm, func() {
		for _, l := range lm.Licenses {
			if l.LicenseKey == lic.LicenseKey {
				return
			}
		}
		lm.Licenses = append(lm.Licenses, lic)
	})
	found := false
	s.withLock(lam, func() {
		for i, a := range lam.QueryAssignedLicensesResponse.Returnval {
			if a.EntityId == ref.Value {
				lam.QueryAssignedLicensesResponse.Returnval[i].AssignedLicense = lic
				found = true
				return
			}
		}
	})
	if !found {
		return fmt.Errorf("vcsim: no licence assignment for %s", ref)
	}
	s.withLock(lm, func() { s.countLicenceUse(lm, lam.QueryAssignedLicensesResponse.Returnval) })
	return nil
}

func (s *Simulator) licenceManager() *govsim.LicenseManager {
	return s.Model.Map().Get(*s.Model.ServiceContent.LicenseManager).(*govsim.LicenseManager)
}

// countLicenceUse sets each licence's Used (but the evaluation one's) from
// the assignments: the CPU packages of the hosts it is assigned to for a
// cpuPackage licence, else the number of entities; the caller holds the
// licence manager's lock.
func (s *Simulator) countLicenceUse(lm *govsim.LicenseManager, assigned []types.LicenseAssignmentManagerLicenseAssignment) {
	for i := range lm.Licenses {
		l := &lm.Licenses[i]
		if l.LicenseKey == LicenseEvaluation.LicenseKey {
			continue
		}
		l.Used = 0
		for _, a := range assigned {
			if a.AssignedLicense.LicenseKey != l.LicenseKey {
				continue
			}
			h, isHost := s.Model.Map().Get(types.ManagedObjectReference{Type: "HostSystem", Value: a.EntityId}).(*govsim.HostSystem)
			if isHost && strings.HasPrefix(l.CostUnit, "cpuPackage") {
				l.Used += int32(h.Summary.Hardware.NumCpuPkgs)
			} else {
				l.Used++
			}
		}
	}
}

// licenceAssignments is the simulator's LicenseAssignmentManager, which
// also counts each licence's use after UpdateAssignedLicense (govc
// license.assign), as vCenter's licence manager shows it.
type licenceAssignments struct {
	*govsim.LicenseAssignmentManager
	s *Simulator
}

// UpdateAssignedLicense assigns a licence the licence manager holds.
func (m *licenceAssignments) UpdateAssignedLicense(ctx *govsim.Context, req *types.UpdateAssignedLicense) soap.HasFault {
	res := m.LicenseAssignmentManager.UpdateAssignedLicense(ctx, req)
	lm := m.s.licenceManager()
	ctx.WithLock(lm, func() { m.s.countLicenceUse(lm, m.QueryAssignedLicensesResponse.Returnval) })
	return res
}

// registerLicences replaces the simulator's LicenseAssignmentManager by
// licenceAssignments (the same assignments: its registry handler, which
// adds new hosts' assignments, stays).
func (s *Simulator) registerLicences() {
	lm := s.licenceManager()
	lam := s.Model.Map().Get(*lm.LicenseAssignmentManager).(*govsim.LicenseAssignmentManager)
	s.Model.Map().Put(&licenceAssignments{LicenseAssignmentManager: lam, s: s})
}

// vsanSpaceReportSystem is the vSAN health service object that answers
// VsanQuerySpaceUsage (pyVmomi vsanapiutils names it so); the collector
// addresses it by this reference.
var vsanSpaceReportSystem = types.ManagedObjectReference{
	Type:  "VsanSpaceReportSystem",
	Value: "vsan-cluster-space-report-system",
}

// vsanHandlers answer the vSAN health service methods the simulator does not
// (or answers empty), with per-cluster values.
type vsanHandlers struct {
	mu      sync.Mutex
	config  *clusterConfigSystem
	stretch *stretchedClusterSystem
	space   *spaceReportSystem
}

type clusterConfigSystem struct {
	types.ManagedObjectReference
	h      *vsanHandlers
	config map[string]*vsantypes.VsanConfigInfoEx
}

// VsanClusterGetConfig answers as vSAN health does for a cluster.
func (s *clusterConfigSystem) VsanClusterGetConfig(ctx *govsim.Context, req *vsantypes.VsanClusterGetConfig) soap.HasFault {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	cfg := s.config[req.Cluster.Value]
	if cfg == nil {
		// vSAN off: enabled is false, not absent (govc vsan.info
		// dereferences it).
		cfg = &vsantypes.VsanConfigInfoEx{}
		cfg.Enabled = types.NewBool(false)
	}
	return &vsanmethods.VsanClusterGetConfigBody{Res: &vsantypes.VsanClusterGetConfigResponse{Returnval: *cfg}}
}

type stretchedClusterSystem struct {
	types.ManagedObjectReference
	h       *vsanHandlers
	witness map[string][]vsantypes.VimClusterVSANWitnessHostInfo
}

// VSANVcGetWitnessHosts lists a cluster's witness hosts (none unless stretched).
func (s *stretchedClusterSystem) VSANVcGetWitnessHosts(ctx *govsim.Context, req *vsantypes.VSANVcGetWitnessHosts) soap.HasFault {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	return &vsanmethods.VSANVcGetWitnessHostsBody{Res: &vsantypes.VSANVcGetWitnessHostsResponse{Returnval: s.witness[req.Cluster.Value]}}
}

type spaceReportSystem struct {
	types.ManagedObjectReference
	h     *vsanHandlers
	usage map[string]vsantypes.VsanSpaceUsage
}

// VsanQuerySpaceUsage answers a cluster's capacity and free space.
func (s *spaceReportSystem) VsanQuerySpaceUsage(ctx *govsim.Context, req *vsantypes.VsanQuerySpaceUsage) soap.HasFault {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	u, ok := s.usage[req.Cluster.Value]
	if !ok {
		return &vsanmethods.VsanQuerySpaceUsageBody{Fault_: govsim.Fault("vSAN is not enabled on the cluster", &types.InvalidState{})}
	}
	return &vsanmethods.VsanQuerySpaceUsageBody{Res: &vsantypes.VsanQuerySpaceUsageResponse{Returnval: u}}
}

// registerVSAN puts the handlers into the simulator's vSAN health endpoint,
// replacing the simulator's own config and stretched-cluster systems.
func registerVSAN(m *govsim.Model) *vsanHandlers {
	h := &vsanHandlers{}
	h.config = &clusterConfigSystem{ManagedObjectReference: vsan.VsanVcClusterConfigSystemInstance, h: h, config: map[string]*vsantypes.VsanConfigInfoEx{}}
	h.stretch = &stretchedClusterSystem{ManagedObjectReference: vsan.VsanVcStretchedClusterSystem, h: h, witness: map[string][]vsantypes.VimClusterVSANWitnessHostInfo{}}
	h.space = &spaceReportSystem{ManagedObjectReference: vsanSpaceReportSystem, h: h, usage: map[string]vsantypes.VsanSpaceUsage{}}
	r := govsim.NewRegistry()
	r.Namespace = vsan.Namespace
	r.Path = vsan.Path
	r.Put(h.config)
	r.Put(h.stretch)
	r.Put(h.space)
	m.Service.RegisterSDK(r) // merged into the endpoint registered by vsan/simulator
	return h
}

// VSANFeatures are the vSAN features a cluster uses; they decide its
// edition (METERING.md, assumed map).
type VSANFeatures struct {
	Dedup, Compression bool
	Encryption         bool
	Stretched          bool // a witness host is configured
}

// EnableVSAN turns vSAN on for a cluster: enabled in the inventory, its
// configuration and witness host on the vSAN health service, and its
// capacity and free space (bytes).
func (s *Simulator) EnableVSAN(cl *govsim.ClusterComputeResource, f VSANFeatures, totalB, freeB int64) {
	cfg := vsantypes.VsanConfigInfoEx{}
	if f.Dedup || f.Compression {
		cfg.DataEfficiencyConfig = &vsantypes.VsanDataEfficiencyConfig{
			DedupEnabled: f.Dedup, CompressionEnabled: types.NewBool(f.Compression),
		}
	}
	if f.Encryption {
		cfg.DataEncryptionConfig = &vsantypes.VsanDataEncryptionConfig{EncryptionEnabled: true}
	}
	var witness []vsantypes.VimClusterVSANWitnessHostInfo
	if f.Stretched {
		witness = []vsantypes.VimClusterVSANWitnessHostInfo{{NodeUuid: "5f1e2d3c-0000-4000-8000-000000000001", FaultDomainName: "witness"}}
	}
	s.EnableVSANConfig(cl, cfg, witness, totalB, freeB)
}

// EnableVSANConfig is EnableVSAN with the cluster's configuration and witness
// hosts given as the vSAN health service answers them (VsanClusterGetConfig,
// VSANVcGetWitnessHosts), for what VSANFeatures does not describe (key
// providers, preferred fault domains, several witnesses). cfg.Enabled is set.
func (s *Simulator) EnableVSANConfig(cl *govsim.ClusterComputeResource, cfg vsantypes.VsanConfigInfoEx, witness []vsantypes.VimClusterVSANWitnessHostInfo, totalB, freeB int64) {
	s.withLock(cl, func() {
		cl.ConfigurationEx.(*types.ClusterConfigInfoEx).VsanConfigInfo = &types.VsanClusterConfigInfo{
			Enabled: types.NewBool(true),
			DefaultConfig: &types.VsanClusterConfigInfoHostDefaultInfo{
				Uuid:             "52a1bdc5-6a7e-1b2f-8c93-0f4b1c2d3e4f",
				AutoClaimStorage: types.NewBool(false),
			},
		}
	})
	cfg.Enabled = types.NewBool(true)
	ref := cl.Self.Value
	s.vsan.mu.Lock()
	s.vsan.config.config[ref] = &cfg
	s.vsan.stretch.witness[ref] = witness
	s.vsan.space.usage[ref] = vsantypes.VsanSpaceUsage{TotalCapacityB: totalB, FreeCapacityB: freeB}
	s.vsan.mu.Unlock()
}

// SetVSANSpace changes a vSAN cluster's capacity and free space (bytes).
func (s *Simulator) SetVSANSpace(cl *govsim.ClusterComputeResource, totalB, freeB int64) {
	s.vsan.mu.Lock()
	s.vsan.space.usage[cl.Self.Value] = vsantypes.VsanSpaceUsage{TotalCapacityB: totalB, FreeCapacityB: freeB}
	s.vsan.mu.Unlock()
}

// VSANSpace returns a vSAN cluster's capacity and free space (bytes).
func (s *Simulator) VSANSpace(cl *govsim.ClusterComputeResource) (totalB, freeB int64) {
	s.vsan.mu.Lock()
	defer s.vsan.mu.Unlock()
	u := s.vsan.space.usage[cl.Self.Value]
	return u.TotalCapacityB, u.FreeCapacityB
}

// profileManager is the simulator's storage policy manager plus the
// association query it does not answer (PbmQueryAssociatedEntity).
type profileManager struct {
	*pbmsim.ProfileManager
	mu    sync.Mutex
	assoc map[string]map[string][]pbmtypes.PbmServerObjectRef // policy id -> entity type -> entities
}

// PbmQueryAssociatedEntity lists the entities of a type that use a policy.
func (m *profileManager) PbmQueryAssociatedEntity(req *pbmtypes.PbmQueryAssociatedEntity) soap.HasFault {
	m.mu.Lock()
	defer m.mu.Unlock()
	return &pbmmethods.PbmQueryAssociatedEntityBody{Res: &pbmtypes.PbmQueryAssociatedEntityResponse{
		Returnval: m.assoc[req.Profile.UniqueId][req.EntityType],
	}}
}

// registerPBM replaces the simulator's storage policy manager by one that
// also answers association queries.
func registerPBM(m *govsim.Model) *profileManager {
	ref := types.ManagedObjectReference{Type: "PbmProfileProfileManager", Value: "ProfileManager"}
	pm := &profileManager{
		ProfileManager: pbmsim.New().Get(ref).(*pbmsim.ProfileManager),
		assoc:          map[string]map[string][]pbmtypes.PbmServerObjectRef{},
	}
	r := govsim.NewRegistry()
	r.Namespace = pbm.Namespace
	r.Path = pbm.Path
	r.Put(pm)
	m.Service.RegisterSDK(r)
	return pm
}

// Client returns the simulator's own session (logged in directly, not
// through the relay, so it works while the simulator is Down), for edits
// that go through the vSphere API: folders, new and destroyed VMs.
func (s *Simulator) Client(ctx context.Context) (*govmomi.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		return s.client, nil
	}
	u := *s.server.URL
	u.User = url.UserPassword(s.user, s.password)
	refuse := s.refuse.Swap(false)
	c, err := govmomi.NewClient(ctx, &u, true)
	s.refuse.Store(refuse)
	if err != nil {
		return nil, fmt.Errorf("vcsim: admin session: %w", err)
	}
	s.client = c
	return c, nil
}

// VSANPolicy creates a vSAN storage policy tolerating one failure with the
// given replica preference (e.g. "RAID-5/6 (Erasure Coding) - Capacity") and
// associates it with VMs (morefs).
func (s *Simulator) VSANPolicy(ctx context.Context, name, replica string, vms []string) error {
	return s.VSANPolicyEntities(ctx, name, replica, vms, nil)
}

// VSANPolicyEntities is VSANPolicy associating the policy with VMs (morefs)
// and with virtual disks, each named by its VM's moref and its device key
// ("vm-42:2000"), as PbmQueryAssociatedEntity lists them.
func (s *Simulator) VSANPolicyEntities(ctx context.Context, name, replica string, vms, disks []string) error {
	c, err := s.Client(ctx)
	if err != nil {
		return err
	}
	pc, err := pbm.NewClient(ctx, c.Client)
	if err != nil {
		return err
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
		return err
	}
	a := map[string][]pbmtypes.PbmServerObjectRef{}
	associate := func(typ pbmtypes.PbmObjectType, keys []string) {
		for _, k := range keys {
			a[string(typ)] = append(a[string(typ)], pbmtypes.PbmServerObjectRef{ObjectType: string(typ), Key: k})
		}
	}
	associate(pbmtypes.PbmObjectTypeVirtualMachine, vms)
	associate(pbmtypes.PbmObjectTypeVirtualDiskId, disks)
	s.pbm.mu.Lock()
	s.pbm.assoc[id.UniqueId] = a
	s.pbm.mu.Unlock()
	return nil
}

// Datacenter returns the first datacenter's object (through the API).
func (s *Simulator) datacenter(ctx context.Context) (*govmomi.Client, *object.Datacenter, error) {
	c, err := s.Client(ctx)
	if err != nil {
		return nil, nil, err
	}
	dc, err := find.NewFinder(c.Client).DefaultDatacenter(ctx)
	if err != nil {
		return nil, nil, err
	}
	return c, dc, nil
}

// CreateFolder creates a VM folder named name under the first datacenter's
// VM folder (a customer's folder, typically) and returns its path.
func (s *Simulator) CreateFolder(ctx context.Context, name string) (string, error) {
	_, dc, err := s.datacenter(ctx)
	if err != nil {
		return "", err
	}
	folders, err := dc.Folders(ctx)
	if err != nil {
		return "", err
	}
	f, err := folders.VmFolder.CreateFolder(ctx, name)
	if err != nil {
		return "", fmt.Errorf("vcsim: creating folder %s: %w", name, err)
	}
	return f.InventoryPath, nil
}

// VMSpec describes a VM CreateVM creates.
type VMSpec struct {
	Name          string
	Folder        string // folder name under the datacenter's VM folder; "" = the VM folder itself
	Host          *govsim.HostSystem
	MemoryMB      int32
	ReservationMB int64
	PowerState    types.VirtualMachinePowerState // "" = poweredOff
	Template      bool
	Networks      []types.ManagedObjectReference // port groups the VM is on (its network property)
	BIOSUUID      string                         // config.uuid; "" = vcsim's (Kubernetes provider IDs name it)
	InstanceUUID  string                         // config.instanceUuid; "" = vcsim's
}

// CreateVM creates a VM through the API (CreateVM_Task) on spec.Host's
// cluster, then sets its memory reservation, power state and template flag.
func (s *Simulator) CreateVM(ctx context.Context, spec VMSpec) (*govsim.VirtualMachine, error) {
	c, dc, err := s.datacenter(ctx)
	if err != nil {
		return nil, err
	}
	if spec.Host == nil {
		return nil, errors.New("vcsim: CreateVM needs a host")
	}
	folders, err := dc.Folders(ctx)
	if err != nil {
		return nil, err
	}
	folder := folders.VmFolder
	if spec.Folder != "" {
		f, err := find.NewFinder(c.Client).Folder(ctx, folders.VmFolder.InventoryPath+"/"+spec.Folder)
		if err != nil {
			return nil, fmt.Errorf("vcsim: folder %s: %w", spec.Folder, err)
		}
		folder = f
	}
	host := object.NewHostSystem(c.Client, spec.Host.Self)
	pool, err := host.ResourcePool(ctx)
	if err != nil {
		return nil, err
	}
	var ds []types.ManagedObjectReference = spec.Host.Datastore
	if len(ds) == 0 {
		return nil, fmt.Errorf("vcsim: host %s has no datastore", spec.Host.Name)
	}
	dsName := s.Model.Map().Get(ds[0]).(*govsim.Datastore).Name
	cfg := types.VirtualMachineConfigSpec{
		Name:         spec.Name,
		GuestId:      string(types.VirtualMachineGuestOsIdentifierOtherGuest64),
		NumCPUs:      2,
		MemoryMB:     int64(spec.MemoryMB),
		Files:        &types.VirtualMachineFileInfo{VmPathName: "[" + dsName + "]"},
		Uuid:         spec.BIOSUUID,
		InstanceUuid: spec.InstanceUUID,
	}
	task, err := folder.CreateVM(ctx, cfg, pool, host)
	if err != nil {
		return nil, err
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("vcsim: creating VM %s: %w", spec.Name, err)
	}
	vm, ok := s.Model.Map().Get(info.Result.(types.ManagedObjectReference)).(*govsim.VirtualMachine)
	if !ok {
		return nil, fmt.Errorf("vcsim: VM %s not in the inventory after creation", spec.Name)
	}
	if spec.PowerState == "" {
		spec.PowerState = types.VirtualMachinePowerStatePoweredOff
	}
	s.withLock(vm, func() {
		SetMemory(vm, spec.MemoryMB, spec.ReservationMB)
		SetPower(vm, spec.PowerState)
		vm.Config.Template = spec.Template
		vm.Summary.Config.Template = spec.Template
		if spec.Networks != nil {
			vm.Network = append([]types.ManagedObjectReference(nil), spec.Networks...)
		}
	})
	return vm, nil
}

// DestroyVM deletes a VM through the API (Destroy_Task).
func (s *Simulator) DestroyVM(ctx context.Context, vm *govsim.VirtualMachine) error {
	c, err := s.Client(ctx)
	if err != nil {
		return err
	}
	// The simulator refuses to destroy a running VM, as vCenter does.
	s.SetPower(vm, types.VirtualMachinePowerStatePoweredOff)
	task, err := object.NewVirtualMachine(c.Client, vm.Self).Destroy(ctx)
	if err != nil {
		return err
	}
	if err := task.Wait(ctx); err != nil {
		return fmt.Errorf("vcsim: destroying VM %s: %w", vm.Name, err)
	}
	return nil
}

// relay forwards TCP connections from its own listener to the simulator, and
// can be taken down (listener closed, connections cut) and brought back on
// the same address.
type relay struct {
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newRelay(ip, target string) (*relay, error) {
	r := &relay{target: target, conns: map[net.Conn]struct{}{}}
	if ip == "" {
		ip = "127.0.0.1"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil && ip != "127.0.0.1" {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		return nil, fmt.Errorf("vcsim: listening: %w", err)
	}
	r.addr = ln.Addr().String()
	r.ln = ln
	r.wg.Add(1)
	go r.accept(ln)
	return r, nil
}

func (r *relay) accept(ln net.Listener) {
	defer r.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		r.wg.Add(1)
		go r.forward(c)
	}
}

func (r *relay) forward(c net.Conn) {
	defer r.wg.Done()
	up, err := net.Dial("tcp", r.target)
	if err != nil {
		c.Close()
		return
	}
	r.mu.Lock()
	r.conns[c] = struct{}{}
	r.conns[up] = struct{}{}
	r.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
	c.Close()
	up.Close()
	r.mu.Lock()
	delete(r.conns, c)
	delete(r.conns, up)
	r.mu.Unlock()
}

func (r *relay) down() error {
	r.mu.Lock()
	ln := r.ln
	r.ln = nil
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	if ln == nil {
		return nil
	}
	return ln.Close()
}

func (r *relay) up() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		return fmt.Errorf("vcsim: listening again on %s: %w", r.addr, err)
	}
	r.ln = ln
	r.wg.Add(1)
	go r.accept(ln)
	return nil
}

func (r *relay) isDown() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ln == nil
}

func (r *relay) close() {
	_ = r.down()
	r.wg.Wait()
}
