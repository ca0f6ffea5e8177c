package vcenter

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/usagemeter/usagemeter/collectors"
)

// Dimension keys of the observations.
const (
	DimVM             = "vm"
	DimHost           = "host"
	DimCluster        = "cluster"
	DimDatacenter     = "datacenter"
	DimFolder         = "folder"
	DimResourcePool   = "resource_pool"
	DimVCenter        = "vcenter"
	DimLicenseKey     = "license_key"
	DimLicenseEdition = "license_edition"
	DimLicenseName    = "license_name"
	DimVSANFeatures   = "vsan_features"
	// DimMoref is a VM's MoRef value on its vm.vram: products that know a
	// VM by its MoRef only (Aria Operations, SRM) key it
	// "<vc>/moref/<moref>", and the report joins those keys to the VM's
	// vm.vram through it.
	DimMoref = "vm_moref"
)

// wcpExtension is the extension vSphere with Tanzu (Workload Control Plane)
// marks the VMs it manages with, in config.managedBy.extensionKey (VM
// Operator sets it on VM Service and TKG cluster VMs).
const wcpExtension = "com.vmware.vcenter.wcp"

// evalEditionKey is the edition of vSphere's evaluation licence: VMs on hosts
// in evaluation mode are metered but marked not reportable (demo).
const evalEditionKey = "eval"

// licence is the licence assigned to one entity.
type licence struct {
	key, edition, name string
}

// collect runs one collection over the current session.
func (c *Collector) collect(ctx context.Context) ([]collectors.Observation, error) {
	s := c.s
	inv, err := c.retrieveInventory(ctx, s)
	if err != nil {
		return nil, err
	}
	lic, err := c.licences(ctx, s)
	if err != nil {
		return nil, err
	}
	vsan, err := c.vsanClusters(ctx, s, inv)
	if err != nil {
		return nil, err
	}
	if err := c.markErasureCoding(ctx, s, inv, vsan); err != nil {
		return nil, err
	}
	obs, skipped := build(s.about.InstanceUuid, c.host, c.opts, inv, lic, vsan)
	if n := skipped.total(); n > 0 {
		c.log.Warn("VMs skipped: properties missing or VM not usable",
			"skipped", n, "no_config", skipped.noConfig, "orphaned", skipped.orphaned,
			"inaccessible", skipped.inaccessible, "invalid", skipped.invalid)
	}
	if skipped.duplicateUUID > 0 {
		c.log.Warn("VMs sharing an instance UUID with another VM: keyed by UUID and MoRef", "vms", skipped.duplicateUUID)
	}
	return obs, nil
}

// licences returns the licence assigned to each entity (host moref value,
// cluster moref value, vCenter instance UUID), in one call.
func (c *Collector) licences(ctx context.Context, s *sessionState) (map[string]licence, error) {
	out := map[string]licence{}
	if s.lam == nil {
		return out, nil
	}
	var res []types.LicenseAssignmentManagerLicenseAssignment
	err := c.call(ctx, func(ctx context.Context) error {
		r, err := methods.QueryAssignedLicenses(ctx, s.vc, &types.QueryAssignedLicenses{This: *s.lam})
		if err == nil {
			res = r.Returnval
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the assigned licences of %s: %w", c.host, err)
	}
	for _, a := range res {
		out[a.EntityId] = licence{key: a.AssignedLicense.LicenseKey, edition: a.AssignedLicense.EditionKey, name: a.AssignedLicense.Name}
	}
	return out, nil
}

// skipCounts counts the VMs a collection could not meter, by reason.
type skipCounts struct {
	noConfig, orphaned, inaccessible, invalid int
	duplicateUUID                             int // metered, keyed by instance UUID and MoRef
}

func (s skipCounts) total() int { return s.noConfig + s.orphaned + s.inaccessible + s.invalid }

// bills reports whether vm bills its capped billed vRAM in this hour
// (METERING.md): a usable, powered-on VM that is not a template. A VM that
// cannot be metered (properties missing, orphaned, inaccessible, invalid)
// is counted in s. Powered-off and suspended VMs and templates bill
// nothing; a VM on a disconnected host keeps its last known power state,
// and bills.
func (s *skipCounts) bills(vm *vmRec) bool {
	switch {
	case !vm.hasConfig || !vm.hasRuntime:
		s.noConfig++
		return false
	case vm.conn == types.VirtualMachineConnectionStateOrphaned:
		s.orphaned++
		return false
	case vm.conn == types.VirtualMachineConnectionStateInaccessible:
		s.inaccessible++
		return false
	case vm.conn == types.VirtualMachineConnectionStateInvalid:
		s.invalid++
		return false
	}
	return !vm.template && vm.power == types.VirtualMachinePowerStatePoweredOn
}

// build turns an inventory into observations. It is pure: the metering rules
// of METERING.md live here and in collectors.CappedBilledMB.
func build(vcUUID, vcHost string, opts Options, inv *inventory, lic map[string]licence, vsan map[string]vsanCluster) ([]collectors.Observation, skipCounts) {
	var skipped skipCounts
	obs := make([]collectors.Observation, 0, len(inv.vms)+len(inv.hosts)+len(vsan))
	busyHosts := map[string]bool{}  // hosts running a powered-on VM
	tanzuHosts := map[string]bool{} // hosts running a powered-on Tanzu VM
	seen := make(map[string]struct{}, len(inv.vms))

	for i := range inv.vms {
		vm := &inv.vms[i]
		if !skipped.bills(vm) {
			continue
		}
		h := inv.hosts[vm.host]
		busyHosts[vm.host] = true
		mb := collectors.CappedBilledMB(float64(vm.memoryMB), float64(vm.reserveMB))
		dims := vmDims(vcHost, inv, vm, h)
		l := lic[vm.host]
		dims[DimLicenseKey] = l.key
		dims[DimLicenseEdition] = l.edition
		dims[DimLicenseName] = l.name
		dims[DimMoref] = vm.ref
		if l.edition == evalEditionKey {
			dims[collectors.DimNotReportableKey] = "true"
		}
		edition := l.edition
		if opts.VCFEdition == "sddc-manager" {
			edition = EditionSDDCManager
		}
		key := vcUUID + "/vm/" + vm.uuid
		if _, dup := seen[key]; dup {
			// Two VMs with one instance UUID (files copied and registered
			// again, for example): both run, both bill, keys must differ.
			key += "/" + vm.ref
			skipped.duplicateUUID++
		}
		seen[key] = struct{}{}
		obs = append(obs, collectors.Observation{
			Metric: collectors.MetricVMVRAM, ObjectKey: key, Quantity: mb,
			Unit: collectors.UnitMB, Edition: edition, Dims: dims,
		})
		if isTanzu(inv, vm) {
			tanzuHosts[vm.host] = true
			if opts.TanzuMetric == TanzuVRAM {
				obs = append(obs, collectors.Observation{
					Metric: collectors.MetricTanzuVRAM, ObjectKey: key, Quantity: mb,
					Unit: collectors.UnitMB, Edition: EditionTanzuBasic, Dims: vmDims(vcHost, inv, vm, h),
				})
			}
		}
	}

	if opts.vcfCores() {
		obs = appendHosts(obs, vcUUID, vcHost, inv, sortedKeys(busyHosts), collectors.MetricHostCores, opts.VCFEdition)
	}
	if opts.TanzuMetric == TanzuCores {
		obs = appendHosts(obs, vcUUID, vcHost, inv, sortedKeys(tanzuHosts), collectors.MetricTanzuCores, EditionTanzuBasic)
	}

	for _, ref := range sortedKeys(vsan) {
		v := vsan[ref]
		n := inv.nodes[ref]
		obs = append(obs, collectors.Observation{
			Metric:    collectors.MetricVSANUsedGB,
			ObjectKey: vcUUID + "/cluster/" + ref,
			Quantity:  v.usedGB,
			Unit:      collectors.UnitGB,
			Edition:   v.edition(),
			Dims: map[string]string{
				DimCluster:      n.name,
				DimDatacenter:   inv.datacenter(ref),
				DimVCenter:      vcHost,
				DimVSANFeatures: strings.Join(v.features(), ","),
			},
		})
	}
	return obs, skipped
}

func appendHosts(obs []collectors.Observation, vcUUID, vcHost string, inv *inventory, refs []string, metric, edition string) []collectors.Observation {
	for _, ref := range refs {
		h := inv.hosts[ref]
		if h == nil {
			continue // runtime.host pointed at a host outside the view: nothing to count
		}
		obs = append(obs, collectors.Observation{
			Metric:    metric,
			ObjectKey: vcUUID + "/host/" + ref,
			Quantity:  float64(h.cores),
			Unit:      collectors.UnitCores,
			Edition:   edition,
			Dims:      hostDims(vcHost, inv, h),
		})
	}
	return obs
}

// hostDims are a host's name and placement.
func hostDims(vcHost string, inv *inventory, h *hostRec) map[string]string {
	cl, _ := inv.cluster(h)
	return map[string]string{
		DimHost:        h.name,
		DimCluster:     cl,
		DimDatacenter:  inv.datacenter(h.parent),
		DimVCenter:     vcHost,
		"cpu_packages": strconv.Itoa(h.packages),
	}
}

// vmDims are a VM's name and placement.
func vmDims(vcHost string, inv *inventory, vm *vmRec, h *hostRec) map[string]string {
	d := make(map[string]string, 11)
	d[DimVM] = vm.name
	d[DimVCenter] = vcHost
	d[DimFolder] = inv.vmFolder(vm)
	d[DimDatacenter] = inv.vmDatacenter(vm, h)
	if p := inv.nodes[vm.pool]; p != nil {
		d[DimResourcePool] = p.name
	} else {
		d[DimResourcePool] = ""
	}
	if h != nil {
		d[DimHost] = h.name
		d[DimCluster], _ = inv.cluster(h)
	} else {
		d[DimHost], d[DimCluster] = "", ""
	}
	return d
}

// isTanzu reports whether vm is a vSphere with Tanzu namespace VM: marked
// managed by the Workload Control Plane extension, or placed in a
// Supervisor's Namespaces resource pool (Supervisor control plane VMs, vSphere
// Pod VMs, VM Service and TKG cluster VMs all live there).
func isTanzu(inv *inventory, vm *vmRec) bool {
	return vm.managedBy == wcpExtension || inv.inNamespaces(vm.pool)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// bytesToGB converts bytes to GB (GiB, as the vSphere client shows capacity),
// rounded to 2 decimals so an unchanged cluster keeps one span.
func bytesToGB(b int64) float64 {
	return math.Round(float64(b)/(1<<30)*100) / 100
}
