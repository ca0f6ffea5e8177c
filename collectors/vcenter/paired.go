package vcenter

import (
	"context"
	"strings"

	"github.com/usagemeter/usagemeter/collectors"
)

// BilledVM is one VM of the vCenter as this collector bills it, for the
// collectors of products paired with the vCenter that bill the vRAM or the
// host cores of some of its VMs (TKGm joins its machines to them by BIOS
// UUID). The rules are this collector's: the same VMs bill, the same capped
// billed vRAM, the same keys and dims as its vm.vram and host.cores.
type BilledVM struct {
	Key      string // <vCenter instanceUuid>/vm/<config.instanceUuid>, the vm.vram object key
	BIOSUUID string // config.uuid
	// Billed says the VM bills in this hour: usable, powered on and not a
	// template. VRAMMB is 0 otherwise.
	Billed bool
	VRAMMB float64           // capped billed vRAM, MB (collectors.CappedBilledMB)
	Dims   map[string]string // name and placement: vm, vcenter, folder, datacenter, resource_pool, host, cluster
	// HostKey is <vCenter instanceUuid>/host/<MoRef> of the host running
	// the VM, the host.cores object key; "" when the host is unknown.
	HostKey   string
	HostCores int               // the host's physical cores
	HostDims  map[string]string // host, cluster, datacenter, vcenter, cpu_packages
}

// Inventory is one read of the vCenter's VMs and hosts, looked up by BIOS
// UUID (Paired).
type Inventory struct {
	instanceUUID, host string
	inv                *inventory
	byBIOS             map[string]int // lower-case BIOS UUID -> index in inv.vms
	dupBIOS            int
}

// InstanceUUID is the vCenter's about.instanceUuid.
func (p *Inventory) InstanceUUID() string { return p.instanceUUID }

// Len is the number of VMs read.
func (p *Inventory) Len() int { return len(p.inv.vms) }

// DuplicateBIOS is the number of VMs whose BIOS UUID another VM has too;
// VM returns the one that bills (or the first read).
func (p *Inventory) DuplicateBIOS() int { return p.dupBIOS }

// VM returns the VM whose BIOS UUID (config.uuid) is uuid, in any case.
func (p *Inventory) VM(uuid string) (BilledVM, bool) {
	i, ok := p.byBIOS[strings.ToLower(uuid)]
	if !ok {
		return BilledVM{}, false
	}
	vm := &p.inv.vms[i]
	var sk skipCounts
	b := BilledVM{Key: p.instanceUUID + "/vm/" + vm.uuid, BIOSUUID: vm.bios, Billed: sk.bills(vm)}
	h := p.inv.hosts[vm.host]
	if b.Billed {
		b.VRAMMB = collectors.CappedBilledMB(float64(vm.memoryMB), float64(vm.reserveMB))
	}
	b.Dims = vmDims(p.host, p.inv, vm, h)
	if h != nil {
		b.HostKey, b.HostCores, b.HostDims = p.instanceUUID+"/host/"+h.ref, h.cores, hostDims(p.host, p.inv, h)
	}
	return b, true
}

// Paired reads the vCenter's VMs and hosts (the inventory retrieve of
// Collect, over the same kept session, renewed once when it expired) for a
// collector paired with this vCenter. Licences and vSAN are not read.
func (c *Collector) Paired(ctx context.Context) (*Inventory, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var inv *inventory
	err := c.withSession(ctx, func() (err error) {
		inv, err = c.retrieveInventory(ctx, c.s)
		return err
	})
	if err != nil {
		return nil, err
	}
	return newInventoryIndex(c.s.about.InstanceUuid, c.host, inv), nil
}

func newInventoryIndex(vcUUID, host string, inv *inventory) *Inventory {
	p := &Inventory{instanceUUID: vcUUID, host: host, inv: inv, byBIOS: make(map[string]int, len(inv.vms))}
	for i := range inv.vms {
		vm := &inv.vms[i]
		if vm.bios == "" {
			continue
		}
		k := strings.ToLower(vm.bios)
		if j, dup := p.byBIOS[k]; dup {
			p.dupBIOS++
			var sk skipCounts
			if sk.bills(&inv.vms[j]) || !sk.bills(vm) {
				continue // keep the one that bills
			}
		}
		p.byBIOS[k] = i
	}
	return p
}
