//go:build demo

package cli

import (
	"crypto/sha1"
	"fmt"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	nsxtsim "github.com/usagemeter/usagemeter/collectors/nsxt/simulator"
	nsxvsim "github.com/usagemeter/usagemeter/collectors/nsxv/simulator"
	vcdsim "github.com/usagemeter/usagemeter/collectors/vcd/simulator"
)

// demoVCD is a Cloud Director (collectors/vcd/simulator) in front of vc01: the
// tenants' folders it manages are its organisations, and its VMs are those
// of the folders, followed hour by hour.
type demoVCD struct {
	srv        *vcdsim.Server
	stop       func()
	url, thumb string
	vc         *demoVCenter
	orgs       []demoFolder
	productID  int64
}

const (
	demoVCDUser     = "metering"
	demoVCDPassword = "Vcd-Meter!2026"
)

// demoCloudDirector starts the VCD simulator.
func demoCloudDirector(vc *demoVCenter) *demoVCD {
	d := &demoVCD{vc: vc}
	for _, f := range vc.folders {
		if f.customer == "Acme Corp" || f.customer == "Globex" {
			d.orgs = append(d.orgs, f)
		}
	}
	d.srv = vcdsim.New(d.state())
	d.url, d.thumb, d.stop = d.srv.Serve()
	return d
}

func (d *demoVCD) close() { d.stop() }

// demoID is a stable UUID-shaped id derived from s.
func demoID(s string) string {
	h := sha1.Sum([]byte(s))
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// state is the VCD view of vc01 now.
func (d *demoVCD) state() vcdsim.State {
	vc := vcdsim.VCenter{ID: demoID("vimserver/" + d.vc.name), Name: d.vc.name, UUID: d.vc.sim.InstanceUUID(), URL: d.vc.sim.URL()}
	st := vcdsim.State{User: demoVCDUser, Password: demoVCDPassword, SiteName: "vcd01", VCenters: []vcdsim.VCenter{vc}}
	vdcOf := map[string]string{} // folder name -> VDC id
	for _, f := range d.orgs {
		org := vcdsim.Org{ID: demoID("org/" + f.customer), Name: f.customer}
		vdc := vcdsim.VDC{ID: demoID("vdc/" + f.customer), Name: f.customer + " VDC", Org: org.ID, VCenter: vc.ID}
		st.Orgs = append(st.Orgs, org)
		st.VDCs = append(st.VDCs, vdc)
		vdcOf[f.name] = vdc.ID
	}
	for _, vm := range d.vc.sim.VMs() {
		var fname string
		if vm.Parent != nil {
			if f, ok := d.vc.sim.Model.Map().Get(*vm.Parent).(mo.Entity); ok {
				fname = f.Entity().Name
			}
		}
		vdc, ok := vdcOf[fname]
		if !ok {
			continue
		}
		status := "POWERED_OFF"
		switch vm.Runtime.PowerState {
		case types.VirtualMachinePowerStatePoweredOn:
			status = "POWERED_ON"
		case types.VirtualMachinePowerStateSuspended:
			status = "SUSPENDED"
		}
		host := ""
		if vm.Runtime.Host != nil {
			if h, ok := d.vc.sim.Model.Map().Get(*vm.Runtime.Host).(*simulator.HostSystem); ok {
				host = h.Name
			}
		}
		st.VMs = append(st.VMs, vcdsim.VM{
			ID: demoID("vm/" + vm.Config.InstanceUuid), Name: vm.Name, VApp: strings.SplitN(vm.Name, "-", 2)[0] + "-vapp", VDC: vdc,
			Moref: vm.Self.Value, MemoryMB: int(vm.Config.Hardware.MemoryMB), CPUs: int(vm.Config.Hardware.NumCPU),
			Status: status, HostName: host, Template: vm.Config.Template,
		})
	}
	return st
}

// sync updates the VCD's view after the vCenter changed.
func (d *demoVCD) sync() { d.srv.SetState(d.state()) }

// demoNSXT is an NSX Manager (collectors/nsxt/simulator) paired with vc01: Acme
// Corp's VMs on a routed segment (Professional), Initech's also under a
// distributed firewall policy (Advanced), Umbrella Health's also under a
// distributed IDS/IPS rule (Enterprise Plus). Its simulator's state is set
// once, so NSX sees the VMs of the start of the month; the vRAM of each VM
// comes from the vCenter's hours, so power changes, resizes and deletions
// still count.
type demoNSXT struct {
	stop       func()
	url, thumb string
	productID  int64
}

const (
	demoNSXUser     = "meter-audit"
	demoNSXPassword = "Nsx-Meter!2026-Audit"
)

// demoNSX starts the NSX-T simulator.
func demoNSX(vc *demoVCenter) *demoNSXT {
	type tenant struct{ seg, group, t1 string }
	tenants := map[string]tenant{
		"Acme Corp":       {seg: "acme-web", t1: "t1-acme"},
		"Initech":         {seg: "initech-app", group: "initech-app", t1: "t1-initech"},
		"Umbrella Health": {seg: "umbrella-ehr", group: "umbrella-ehr"},
	}
	st := nsxtsim.State{User: demoNSXUser, Password: demoNSXPassword, Hostname: "nsxmgr-01",
		Licenses: []nsxtsim.License{{Key: "TM234-4NK1H-W82DN-0X120-9D96H", Description: "NSX Data Center Enterprise Plus", Quantity: 64, CapacityType: "CPU"}},
		Policies: []nsxtsim.Policy{{ID: "default-layer3-section", Name: "Default Layer3 Section", Category: "Application", IsDefault: true,
			Rules: []nsxtsim.Rule{{ID: "default-layer3-rule", IsDefault: true}}}},
	}
	members := map[string][]string{}
	folderOf := map[string]string{}
	for _, f := range vc.folders {
		folderOf[f.name] = f.customer
	}
	for _, name := range []string{"Acme Corp", "Initech", "Umbrella Health"} {
		t := tenants[name]
		seg := nsxtsim.Segment{ID: t.seg, Name: t.seg}
		if t.t1 != "" {
			seg.Connectivity = "/infra/tier-1s/" + t.t1
			st.Tier1s = append(st.Tier1s, nsxtsim.Tier1{ID: t.t1, Tier0: "/infra/tier-0s/t0-provider"})
		}
		st.Segments = append(st.Segments, seg)
	}
	for _, vm := range vc.sim.VMs() {
		if vm.Config.Template || vm.Parent == nil {
			continue
		}
		f, ok := vc.sim.Model.Map().Get(*vm.Parent).(mo.Entity)
		if !ok {
			continue
		}
		t, ok := tenants[folderOf[f.Entity().Name]]
		if !ok {
			continue
		}
		power := "VM_STOPPED"
		if vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
			power = "VM_RUNNING"
		}
		ext := demoID("nsx/" + vm.Config.InstanceUuid)
		st.VMs = append(st.VMs, nsxtsim.VM{ExternalID: ext, Name: vm.Name, PowerState: power, InstanceUUID: vm.Config.InstanceUuid,
			Moref: vm.Self.Value, HostID: vm.Runtime.Host.Value, NICs: []nsxtsim.NIC{{Segment: t.seg}}})
		if t.group != "" {
			members[t.group] = append(members[t.group], ext)
		}
	}
	st.Groups = []nsxtsim.Group{{ID: "initech-app", Members: members["initech-app"]}, {ID: "umbrella-ehr", Members: members["umbrella-ehr"]}}
	st.Policies = append(st.Policies, nsxtsim.Policy{ID: "initech-app", Name: "initech app tier", Category: "Application",
		Scope: []string{"/infra/domains/default/groups/initech-app"}, Rules: []nsxtsim.Rule{{ID: "allow-https", Action: "ALLOW"}}})
	st.IDSPolicies = []nsxtsim.Policy{{ID: "umbrella-ids", Name: "umbrella EHR IDS",
		Rules: []nsxtsim.Rule{{ID: "detect", Action: "DETECT", Scope: []string{"/infra/domains/default/groups/umbrella-ehr"}}}}}
	d := &demoNSXT{}
	d.url, d.thumb, d.stop = nsxtsim.New(st).Serve()
	return d
}

func (d *demoNSXT) close() { d.stop() }

// demoNSXVManager is an NSX-V Manager (collectors/nsxv/simulator) paired with vc02,
// whose three port groups back its logical switches: web behind an edge
// with NAT (Base), app under a distributed firewall rule (Advanced), DR
// stretched by an L2 VPN edge (Enterprise). It resolves VMs through vc02,
// so it cannot be collected while vc02 is down.
type demoNSXVManager struct {
	stop       func()
	url, thumb string
	productID  int64
}

const (
	demoNSXVUser     = "meter-nsxv"
	demoNSXVPassword = "NsxV-Meter!2026"
)

// demoNSXV starts the NSX-V simulator when vc has port groups; nil otherwise.
func demoNSXV(vc *demoVCenter) *demoNSXVManager {
	pgs := vc.sim.Portgroups()
	if len(pgs) < 3 {
		return nil
	}
	st := nsxvsim.State{User: demoNSXVUser, Password: demoNSXVPassword, Hostname: "nsxv-mgr-01",
		VirtualWires: []nsxvsim.VirtualWire{
			{ID: "virtualwire-1", Name: "ls-hooli-web", Portgroup: pgs[0].Self.Value},
			{ID: "virtualwire-2", Name: "ls-hooli-app", Portgroup: pgs[1].Self.Value},
			{ID: "virtualwire-3", Name: "ls-hooli-dr", Portgroup: pgs[2].Self.Value},
		},
		Edges: []nsxvsim.Edge{
			{ID: "edge-1", Name: "hooli-esg", Type: "gatewayServices", Networks: []string{"virtualwire-1", "virtualwire-2"}, Features: []string{"firewall", "nat"}},
			{ID: "edge-2", Name: "hooli-dr-l2vpn", Type: "gatewayServices", Networks: []string{"virtualwire-3"}, Features: []string{"l2Vpn"}},
		},
		Sections: []nsxvsim.Section{
			{ID: "1005", Name: "hooli", Rules: []nsxvsim.Rule{{ID: "1010", Name: "app tier", AppliedTo: []string{"VirtualWire:virtualwire-2"}}}},
			{ID: "1003", Name: "Default Section Layer3", Rules: []nsxvsim.Rule{
				{ID: "1002", Name: "Default Rule DHCP", AppliedTo: []string{"DISTRIBUTED_FIREWALL"}},
				{ID: "1001", Name: "Default Rule", AppliedTo: []string{"DISTRIBUTED_FIREWALL"}},
			}},
		},
		Capacity: []nsxvsim.Capacity{{Feature: "vxlan", Type: "VM", Count: len(vc.sim.VMs())}},
	}
	d := &demoNSXVManager{}
	d.url, d.thumb, d.stop = nsxvsim.New(st).Serve()
	return d
}

func (d *demoNSXVManager) close() { d.stop() }
