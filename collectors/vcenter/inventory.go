package vcenter

import (
	"context"
	"fmt"

	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"
)

// Property paths read per object type. Nothing else is asked for: vCenter
// builds (and the wire carries) only these.
var propertySpecs = []types.PropertySpec{
	{Type: "VirtualMachine", PathSet: []string{
		"name", "parent", "resourcePool",
		"runtime.powerState", "runtime.host", "runtime.connectionState",
		"config.instanceUuid", "config.uuid", "config.template", "config.hardware.memoryMB",
		"config.memoryAllocation.reservation", "config.managedBy",
	}},
	{Type: "HostSystem", PathSet: []string{
		"name", "parent", "runtime.connectionState",
		"hardware.cpuInfo.numCpuCores", "hardware.cpuInfo.numCpuPackages",
	}},
	// configurationEx is read whole: vsanConfigInfo belongs to the
	// ClusterConfigInfoEx subtype and cannot be named in a path. Clusters are
	// few.
	{Type: "ClusterComputeResource", PathSet: []string{"name", "parent", "configurationEx"}},
	{Type: "ComputeResource", PathSet: []string{"name", "parent"}},
	{Type: "ResourcePool", PathSet: []string{"name", "parent"}},
	{Type: "VirtualApp", PathSet: []string{"name", "parent", "parentFolder"}},
	{Type: "Folder", PathSet: []string{"name", "parent"}},
	{Type: "Datacenter", PathSet: []string{"name", "parent"}},
}

// vmRec is what is kept of one VM.
type vmRec struct {
	ref        string
	name       string
	uuid       string // config.instanceUuid
	bios       string // config.uuid, the BIOS UUID (Kubernetes provider IDs name it)
	template   bool
	memoryMB   int64
	reserveMB  int64
	power      types.VirtualMachinePowerState
	conn       types.VirtualMachineConnectionState
	host       string // moref value of runtime.host
	pool       string // moref value of resourcePool
	parent     string // moref value of the VM folder
	managedBy  string // config.managedBy.extensionKey
	hasConfig  bool   // config.instanceUuid and config.hardware.memoryMB present
	hasRuntime bool   // runtime.powerState present
}

// hostRec is what is kept of one host.
type hostRec struct {
	ref      string
	name     string
	parent   string // ComputeResource or ClusterComputeResource
	cores    int
	packages int
	conn     types.HostSystemConnectionState
}

// node is a container in the inventory tree (folder, datacenter, compute
// resource, resource pool, vApp).
type node struct {
	typ    string
	name   string
	parent string // moref value, "" for the root folder
	folder string // VirtualApp: its VM folder (parentFolder), "" for a child vApp
	vsan   bool   // ClusterComputeResource with vSAN enabled
}

// inventory is one collection's view of vCenter.
type inventory struct {
	vms   []vmRec
	hosts map[string]*hostRec
	nodes map[string]*node // by moref value

	paths map[string]string // folder moref -> inventory path, memo
	dcs   map[string]string // node moref -> datacenter name, memo
	tanzu map[string]bool   // pool moref -> inside a Supervisor "Namespaces" pool, memo
}

func newInventory() *inventory {
	return &inventory{
		hosts: map[string]*hostRec{},
		nodes: map[string]*node{},
		paths: map[string]string{},
		dcs:   map[string]string{},
		tanzu: map[string]bool{},
	}
}

// retrieveInventory reads every object of the session's views in pages of
// Options.PageSize: one RetrievePropertiesEx, then ContinueRetrievePropertiesEx
// while vCenter returns a token. Each page has its own deadline.
func (c *Collector) retrieveInventory(ctx context.Context, s *sessionState) (*inventory, error) {
	spec := types.PropertyFilterSpec{PropSet: propertySpecs}
	for _, v := range s.views {
		spec.ObjectSet = append(spec.ObjectSet, types.ObjectSpec{
			Obj:  v,
			Skip: types.NewBool(true),
			SelectSet: []types.BaseSelectionSpec{&types.TraversalSpec{
				Type: "ContainerView",
				Path: "view",
			}},
		})
	}
	pc := s.vc.ServiceContent.PropertyCollector
	inv := newInventory()

	var res *types.RetrieveResult
	err := c.call(ctx, func(ctx context.Context) error {
		r, err := methods.RetrievePropertiesEx(ctx, s.vc, &types.RetrievePropertiesEx{
			This:    pc,
			SpecSet: []types.PropertyFilterSpec{spec},
			Options: types.RetrieveOptions{MaxObjects: int32(c.opts.PageSize)},
		})
		if err == nil {
			res = r.Returnval
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("retrieving the inventory of %s (page 1): %w", c.host, err)
	}
	c.pages = 1
	for page := 2; res != nil; page++ {
		inv.add(res.Objects)
		if res.Token == "" {
			break
		}
		token := res.Token
		res = nil
		err := c.call(ctx, func(ctx context.Context) error {
			r, err := methods.ContinueRetrievePropertiesEx(ctx, s.vc, &types.ContinueRetrievePropertiesEx{This: pc, Token: token})
			if err == nil {
				res = &r.Returnval
				c.pages++
			}
			return err
		})
		if err != nil {
			// Free the server-side result set; best effort.
			_ = c.call(ctx, func(ctx context.Context) error {
				_, err := methods.CancelRetrievePropertiesEx(ctx, s.vc, &types.CancelRetrievePropertiesEx{This: pc, Token: token})
				return err
			})
			return nil, fmt.Errorf("retrieving the inventory of %s (page %d): %w", c.host, page, err)
		}
	}
	return inv, nil
}

// add decodes one page of objects.
func (inv *inventory) add(objs []types.ObjectContent) {
	for i := range objs {
		oc := &objs[i]
		switch oc.Obj.Type {
		case "VirtualMachine":
			inv.vms = append(inv.vms, decodeVM(oc))
		case "HostSystem":
			h := decodeHost(oc)
			inv.hosts[h.ref] = h
		default:
			n := &node{typ: oc.Obj.Type}
			for _, p := range oc.PropSet {
				switch p.Name {
				case "name":
					n.name, _ = p.Val.(string)
				case "parent":
					n.parent = refValue(p.Val)
				case "parentFolder":
					n.folder = refValue(p.Val)
				case "configurationEx":
					n.vsan = vsanEnabled(p.Val)
				}
			}
			inv.nodes[oc.Obj.Value] = n
		}
	}
}

func decodeVM(oc *types.ObjectContent) vmRec {
	vm := vmRec{ref: oc.Obj.Value}
	var hasUUID, hasMem bool
	for _, p := range oc.PropSet {
		switch p.Name {
		case "name":
			vm.name, _ = p.Val.(string)
		case "parent":
			vm.parent = refValue(p.Val)
		case "resourcePool":
			vm.pool = refValue(p.Val)
		case "runtime.powerState":
			vm.power, vm.hasRuntime = p.Val.(types.VirtualMachinePowerState)
		case "runtime.host":
			vm.host = refValue(p.Val)
		case "runtime.connectionState":
			vm.conn, _ = p.Val.(types.VirtualMachineConnectionState)
		case "config.instanceUuid":
			vm.uuid, _ = p.Val.(string)
			hasUUID = vm.uuid != ""
		case "config.uuid":
			vm.bios, _ = p.Val.(string)
		case "config.template":
			vm.template, _ = p.Val.(bool)
		case "config.hardware.memoryMB":
			if v, ok := p.Val.(int32); ok {
				vm.memoryMB, hasMem = int64(v), true
			}
		case "config.memoryAllocation.reservation":
			vm.reserveMB, _ = p.Val.(int64)
		case "config.managedBy":
			switch m := p.Val.(type) {
			case types.ManagedByInfo:
				vm.managedBy = m.ExtensionKey
			case *types.ManagedByInfo:
				vm.managedBy = m.ExtensionKey
			}
		}
	}
	vm.hasConfig = hasUUID && hasMem
	return vm
}

func decodeHost(oc *types.ObjectContent) *hostRec {
	h := &hostRec{ref: oc.Obj.Value}
	for _, p := range oc.PropSet {
		switch p.Name {
		case "name":
			h.name, _ = p.Val.(string)
		case "parent":
			h.parent = refValue(p.Val)
		case "runtime.connectionState":
			h.conn, _ = p.Val.(types.HostSystemConnectionState)
		case "hardware.cpuInfo.numCpuCores":
			h.cores = int(asInt64(p.Val))
		case "hardware.cpuInfo.numCpuPackages":
			h.packages = int(asInt64(p.Val))
		}
	}
	return h
}

func refValue(v any) string {
	switch r := v.(type) {
	case types.ManagedObjectReference:
		return r.Value
	case *types.ManagedObjectReference:
		if r != nil {
			return r.Value
		}
	}
	return ""
}

func asInt64(v any) int64 {
	switch n := v.(type) {
	case int16:
		return int64(n)
	case int32:
		return int64(n)
	case int64:
		return n
	case int:
		return int64(n)
	}
	return 0
}

func vsanEnabled(v any) bool {
	var cfg *types.VsanClusterConfigInfo
	switch c := v.(type) {
	case types.ClusterConfigInfoEx:
		cfg = c.VsanConfigInfo
	case *types.ClusterConfigInfoEx:
		cfg = c.VsanConfigInfo
	}
	return cfg != nil && cfg.Enabled != nil && *cfg.Enabled
}

// datacenter returns the name of the datacenter above ref ("" if none).
func (inv *inventory) datacenter(ref string) string {
	if dc, ok := inv.dcs[ref]; ok {
		return dc
	}
	dc := ""
	inv.dcs[ref] = dc // guards against a cycle
	if n := inv.nodes[ref]; n != nil {
		if n.typ == "Datacenter" {
			dc = n.name
		} else if n.parent != "" && n.parent != ref {
			dc = inv.datacenter(n.parent)
		}
	}
	inv.dcs[ref] = dc
	return dc
}

// folderPath returns the inventory path of a folder, e.g. "/DC0/vm/Prod".
// The root folder is "" (not part of paths).
func (inv *inventory) folderPath(ref string) string {
	if p, ok := inv.paths[ref]; ok {
		return p
	}
	p := ""
	inv.paths[ref] = p // guards against a cycle
	if n := inv.nodes[ref]; n != nil && n.parent != "" && n.parent != ref {
		p = inv.folderPath(n.parent) + "/" + n.name
	}
	inv.paths[ref] = p
	return p
}

// vmFolder returns the inventory path of the folder holding vm. A VM in a
// vApp has no parent folder: its path is the vApp's (e.g. "/DC0/vm/apps/crm").
func (inv *inventory) vmFolder(vm *vmRec) string {
	if vm.parent != "" {
		return inv.folderPath(vm.parent)
	}
	return inv.vappPath(vm.pool, 0)
}

// vappPath returns the inventory path of a vApp, "" if ref is not one.
func (inv *inventory) vappPath(ref string, depth int) string {
	n := inv.nodes[ref]
	if n == nil || n.typ != "VirtualApp" || depth > 32 {
		return ""
	}
	if n.folder != "" {
		return inv.folderPath(n.folder) + "/" + n.name
	}
	if p := inv.vappPath(n.parent, depth+1); p != "" {
		return p + "/" + n.name
	}
	return ""
}

// vmDatacenter returns the datacenter of vm: from its folder, else from its
// host (a VM in a vApp has no folder).
func (inv *inventory) vmDatacenter(vm *vmRec, h *hostRec) string {
	if dc := inv.datacenter(vm.parent); dc != "" {
		return dc
	}
	if n := inv.nodes[vm.pool]; n != nil && n.typ == "VirtualApp" && n.folder != "" {
		if dc := inv.datacenter(n.folder); dc != "" {
			return dc
		}
	}
	if h != nil {
		return inv.datacenter(h.parent)
	}
	return ""
}

// cluster returns the cluster name of a host ("" for a standalone host) and
// the cluster's moref value.
func (inv *inventory) cluster(h *hostRec) (name, ref string) {
	if h == nil {
		return "", ""
	}
	if n := inv.nodes[h.parent]; n != nil && n.typ == "ClusterComputeResource" {
		return n.name, h.parent
	}
	return "", ""
}

// namespacesPool is the name vSphere with Tanzu gives the resource pool it
// creates under a Supervisor cluster's root pool; the Supervisor control
// plane VMs run in it and every vSphere Namespace is a child pool of it (with
// its vSphere Pod VMs, VM Service VMs and TKG cluster VMs).
const namespacesPool = "Namespaces"

// inNamespaces reports whether pool is, or is below, a Supervisor's
// "Namespaces" pool.
func (inv *inventory) inNamespaces(pool string) bool {
	if t, ok := inv.tanzu[pool]; ok {
		return t
	}
	t := false
	inv.tanzu[pool] = t // guards against a cycle
	if n := inv.nodes[pool]; n != nil && (n.typ == "ResourcePool" || n.typ == "VirtualApp") {
		if n.name == namespacesPool && inv.isRootPool(n.parent) {
			t = true
		} else if n.parent != pool {
			t = inv.inNamespaces(n.parent)
		}
	}
	inv.tanzu[pool] = t
	return t
}

// isRootPool reports whether ref is a cluster's root resource pool.
func (inv *inventory) isRootPool(ref string) bool {
	n := inv.nodes[ref]
	if n == nil || n.typ != "ResourcePool" {
		return false
	}
	p := inv.nodes[n.parent]
	return p != nil && p.typ == "ClusterComputeResource"
}
