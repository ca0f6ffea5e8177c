package cli

import (
	"crypto/sha1"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/usagemeter/usagemeter/collectors"
	vcdsim "github.com/usagemeter/usagemeter/internal/sim/vcd"
)

// demoTB lets the REST simulators of internal/sim, whose Start takes a
// testing.TB (for Helper and Cleanup), be served outside a test: Cleanup
// functions run at close. Nothing else of testing.TB is used; calling it
// panics (the embedded interface is nil).
//
// Hook wanted: a Start that does not need a testing.TB in internal/sim.
type demoTB struct {
	testing.TB
	mu      sync.Mutex
	cleanup []func()
}

func (t *demoTB) Helper() {}

func (t *demoTB) Cleanup(f func()) {
	t.mu.Lock()
	t.cleanup = append(t.cleanup, f)
	t.mu.Unlock()
}

func (t *demoTB) close() {
	t.mu.Lock()
	fs := t.cleanup
	t.cleanup = nil
	t.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// demoVCD is a Cloud Director (internal/sim/vcd) in front of vc01: the
// tenants' folders it manages are its organisations, and its VMs are those
// of the folders, followed hour by hour.
type demoVCD struct {
	srv        *vcdsim.Server
	tb         *demoTB
	url, thumb string
	vc         *demoVCenter
	orgs       []demoFolder
	productID  int64
}

const (
	demoVCDUser     = "metering"
	demoVCDPassword = "Vcd-Meter!2026"
)

// demoCloudDirector starts the VCD simulator when the vcd collector is
// linked in; nil when it is not.
func demoCloudDirector(vc *demoVCenter) *demoVCD {
	if !slices.Contains(collectors.Kinds(), "vcd") {
		return nil
	}
	d := &demoVCD{vc: vc, tb: &demoTB{}}
	for _, f := range vc.folders {
		if f.customer == "Acme Corp" || f.customer == "Globex" {
			d.orgs = append(d.orgs, f)
		}
	}
	d.srv = vcdsim.New(d.state())
	d.url, d.thumb = d.srv.Start(d.tb)
	return d
}

func (d *demoVCD) close() { d.tb.close() }

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
