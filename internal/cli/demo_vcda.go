//go:build demo

package cli

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/usagemeter/usagemeter/collectors/vcda"
	vcdasim "github.com/usagemeter/usagemeter/collectors/vcda/simulator"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

const (
	demoVCDAUser = "metering@System" // a Cloud Director account: VCDA's vcd login
	demoVCDASite = "vcd01"           // the local VCDA site, in front of vcd01
	demoVCDADR   = "vcd-dr"          // the provider's other cloud site
)

// demoVCDAWave is a batch of VMs a tenant migrates: the replications exist
// from start to end (hours of the month), then the migrated VMs run in the
// destination and their replications are deleted.
type demoVCDAWave struct {
	start, end int
	reps       []vcdasim.VMReplication
}

// demoVCDAServer is a Cloud Director Availability site in front of vcd01
// (collectors/vcda/simulator). Outgoing: part of the Cloud Director
// organisations' VMs (VMs of vc01) protected to the provider's DR site, one
// vApp as a vApp replication. Incoming: the tenants' on-premises VMs
// protected into their organisations, and waves of on-premises VMs
// migrated in (one VM migrated out). Once a day, at 10:00, tenants protect
// new VMs and stop protecting others; a protected VM deleted from vc01 stays
// listed without its VM (not counted) until then.
type demoVCDAServer struct {
	vcd      *demoVCD
	rng      *rand.Rand
	out      map[string]bool // instance UUIDs of vc01 VMs protected out
	outOrder []string
	vapp     []string // instance UUIDs of the vApp replication's VMs
	in       []vcdasim.VMReplication
	waves    []demoVCDAWave
	nextVM   int
	names    map[string]string // instance UUID -> last known name
	orgOf    map[string]string // instance UUID -> organisation

	protected, unprotected, migrated int
}

// demoVCDA starts the VCDA simulator in front of the demo's Cloud Director.
func demoVCDA(vcd *demoVCD, seed uint64) (*demoProduct, error) {
	s := &demoVCDAServer{vcd: vcd, rng: rand.New(rand.NewPCG(seed, 0xcda)), out: map[string]bool{}, names: map[string]string{}, orgOf: map[string]string{}, nextVM: 2000}
	for _, o := range s.orgVMs() {
		for _, vm := range o {
			if s.rng.Float64() < 0.3 {
				s.protect(vm.Config.InstanceUuid)
			}
		}
	}
	// Globex's order front end, protected as one vApp.
	for _, vm := range s.orgVMs()["Globex"] {
		if len(s.vapp) < 3 && !s.out[vm.Config.InstanceUuid] {
			s.vapp = append(s.vapp, vm.Config.InstanceUuid)
		}
	}
	// The tenants' on-premises VMs protected into their organisations.
	for _, t := range []struct {
		org string
		n   int
	}{{"Acme Corp", 12}, {"Globex", 8}} {
		for i := 0; i < t.n; i++ {
			s.in = append(s.in, s.onPrem(t.org, false))
		}
	}
	// Migration waves: the first starts on the first day, so that a short
	// run has one too.
	for _, d := range []int{0, 8, 15, 22} {
		start := d*24 + 10
		w := demoVCDAWave{start: start, end: start + 24*(2+s.rng.IntN(3))}
		for n := 3 + s.rng.IntN(4); n > 0; n-- {
			w.reps = append(w.reps, s.onPrem("Globex", true))
		}
		s.waves = append(s.waves, w)
	}
	// One VM of Acme Corp migrated out to the DR site, for good.
	if acme := s.orgVMs()["Acme Corp"]; len(acme) > 0 {
		vm := acme[len(acme)-1]
		s.waves[1].reps = append(s.waves[1].reps, vcdasim.VMReplication{ID: "C4-" + demoID("vcda/migrate/"+vm.Config.InstanceUuid),
			VMID: demoID("vm/" + vm.Config.InstanceUuid), VMName: vm.Name, Migration: true,
			Source: vcdasim.End{Site: demoVCDASite, Org: "Acme Corp", VdcName: "Acme Corp VDC"},
			Dest:   vcdasim.End{Site: demoVCDADR, Org: "Acme Corp", VdcName: "Acme Corp DR VDC"}})
	}
	st := s.state(0)
	srv, err := serveDemoSwap(vcdasim.New(st), st)
	if err != nil {
		return nil, err
	}
	orgs := make([]string, len(vcd.orgs))
	for i, f := range vcd.orgs {
		orgs[i] = f.customer
	}
	return &demoProduct{
		short: "vcda01", srv: srv,
		desc: fmt.Sprintf("Cloud Director Availability in front of vcd01: %d VMs of %s protected to %s, %d on-premises VMs protected in, migration waves",
			len(s.outOrder)+len(s.vapp), strings.Join(orgs, ", "), demoVCDADR, len(s.in)),
		p: store.Product{Kind: vcda.Kind, Endpoint: srv.url, Username: demoVCDAUser, Password: config.Secret(demoVCDPassword),
			Thumbprint: tlsutil.Normalize(srv.thumb)},
		tick: func(h int, at time.Time) {
			if h > 0 && at.Hour() == 10 {
				s.churn()
			}
			for _, w := range s.waves {
				if w.start == h {
					s.migrated += len(w.reps)
				}
			}
			st := s.state(h)
			srv.set(st, func() http.Handler { return vcdasim.New(st) })
		},
		churned: func() string {
			return fmt.Sprintf("VCDA: %d VM(s) protected, %d unprotected, %d VM(s) in migration waves", s.protected, s.unprotected, s.migrated)
		},
	}, nil
}

// orgVMs are the VMs (not templates) of the Cloud Director's organisations
// now, by organisation.
func (s *demoVCDAServer) orgVMs() map[string][]*simulator.VirtualMachine {
	org := map[string]string{}
	for _, f := range s.vcd.orgs {
		org[f.name] = f.customer
	}
	out := map[string][]*simulator.VirtualMachine{}
	for _, vm := range s.vcd.vc.sim.VMs() {
		if o, ok := org[demoFolderOf(s.vcd.vc, vm)]; ok && !vm.Config.Template {
			out[o] = append(out[o], vm)
			s.orgOf[vm.Config.InstanceUuid] = o
		}
	}
	return out
}

func (s *demoVCDAServer) protect(uuid string) {
	s.out[uuid] = true
	s.outOrder = append(s.outOrder, uuid)
}

// onPrem is a replication of a tenant's on-premises VM (its vCenter's
// MoRef) into its organisation.
func (s *demoVCDAServer) onPrem(org string, migration bool) vcdasim.VMReplication {
	s.nextVM++
	site := strings.ToLower(strings.Fields(org)[0]) + "-onprem"
	return vcdasim.VMReplication{ID: "H4-" + demoID(fmt.Sprintf("vcda/%s/%d", site, s.nextVM)),
		VMID: fmt.Sprintf("vm-%d", s.nextVM), VMName: fmt.Sprintf("%s-%s%03d", site, demoRoles[s.nextVM%len(demoRoles)], s.nextVM%1000),
		VimServer: demoID("vcenter/" + site), Migration: migration,
		Source: vcdasim.End{Site: site},
		Dest:   vcdasim.End{Site: demoVCDASite, Org: org, VdcName: org + " VDC"}}
}

// churn is the day's change: replications of deleted VMs go, tenants
// protect new VMs and stop protecting others, on premises too.
func (s *demoVCDAServer) churn() {
	live := map[string]bool{}
	var free []string
	for _, o := range s.orgVMs() {
		for _, vm := range o {
			u := vm.Config.InstanceUuid
			live[u] = true
			if !s.out[u] && !slices.Contains(s.vapp, u) {
				free = append(free, u)
			}
		}
	}
	s.outOrder = slices.DeleteFunc(s.outOrder, func(u string) bool {
		if !live[u] {
			delete(s.out, u)
		}
		return !live[u]
	})
	if s.rng.Float64() < 0.4 {
		for n := 1 + s.rng.IntN(2); n > 0 && len(free) > 0; n-- {
			i := s.rng.IntN(len(free))
			s.protect(free[i])
			free = slices.Delete(free, i, i+1)
			s.protected++
		}
	}
	if s.rng.Float64() < 0.2 && len(s.outOrder) > 2 {
		i := s.rng.IntN(len(s.outOrder))
		delete(s.out, s.outOrder[i])
		s.outOrder = slices.Delete(s.outOrder, i, i+1)
		s.unprotected++
	}
	if s.rng.Float64() < 0.15 {
		s.in = append(s.in, s.onPrem([]string{"Acme Corp", "Globex"}[s.rng.IntN(2)], false))
		s.protected++
	}
	if s.rng.Float64() < 0.1 && len(s.in) > 2 {
		i := s.rng.IntN(len(s.in))
		s.in = slices.Delete(s.in, i, i+1)
		s.unprotected++
	}
}

// state is what VCDA shows at hour h of the month.
func (s *demoVCDAServer) state(h int) vcdasim.State {
	st := vcdasim.State{User: demoVCDAUser, Password: demoVCDPassword, Site: demoVCDASite, InstanceID: demoID("vcda/vcda01"),
		VMs: []vcdasim.VMReplication{}, VApps: []vcdasim.VAppReplication{}}
	live := map[string]*simulator.VirtualMachine{}
	for _, o := range s.orgVMs() {
		for _, vm := range o {
			live[vm.Config.InstanceUuid] = vm
		}
	}
	rep := func(u string) vcdasim.VMReplication {
		org := s.orgOf[u]
		r := vcdasim.VMReplication{ID: "C4-" + demoID("vcda/"+u), VMID: demoID("vm/" + u),
			Source: vcdasim.End{Site: demoVCDASite, Org: org, VdcName: org + " VDC"},
			Dest:   vcdasim.End{Site: demoVCDADR, Org: org, VdcName: org + " DR VDC"}}
		if vm, ok := live[u]; ok {
			s.names[u] = vm.Name
			r.VMName = vm.Name
			if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
				r.PowerState = "poweredOff"
			}
		} else {
			r.VMName, r.Deleted = s.names[u], true
		}
		return r
	}
	for _, u := range s.outOrder {
		st.VMs = append(st.VMs, rep(u))
	}
	st.VMs = append(st.VMs, s.in...)
	for _, w := range s.waves {
		if h >= w.start && h < w.end {
			st.VMs = append(st.VMs, w.reps...)
		}
	}
	if len(s.vapp) > 0 {
		va := vcdasim.VAppReplication{ID: "C4VAPP-" + demoID("vcda/vapp/globex"), VAppID: demoID("vapp/globex-orders"), VAppName: "globex-orders",
			Source: vcdasim.End{Site: demoVCDASite, Org: "Globex", VdcName: "Globex VDC"},
			Dest:   vcdasim.End{Site: demoVCDADR, Org: "Globex", VdcName: "Globex DR VDC"}}
		for _, u := range s.vapp {
			va.VMs = append(va.VMs, rep(u))
		}
		st.VApps = append(st.VApps, va)
	}
	return st
}
