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

	"github.com/usagemeter/usagemeter/collectors/srm"
	srmsim "github.com/usagemeter/usagemeter/collectors/srm/simulator"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

const (
	demoSRMUser     = "srm-meter@vsphere.local"
	demoSRMPassword = "Srm-Meter!2026"
)

// demoSRMGroup is a protection group of the demo's SRM: the VMs of one
// vc01 folder it protects, by MoRef.
type demoSRMGroup struct {
	id, name, typ, folder string
	share                 float64 // of the folder's VMs protected at the start
	vms                   []string
}

// demoSRMServer is an SRM server paired with vc01 (collectors/srm/simulator),
// protecting part of each customer's VMs to a recovery site. Once a day, at
// 10:00, the provider protects new VMs and stops protecting others; a VM
// deleted from vc01 stays in its group (MISSING_UNPROTECTED_VM, not counted)
// until then.
type demoSRMServer struct {
	vc      *demoVCenter
	rng     *rand.Rand
	groups  []*demoSRMGroup
	names   map[string]string // MoRef -> last known name
	missing map[string]bool   // MoRefs seen deleted

	protected, unprotected, deleted int
}

// demoSRM starts the SRM simulator in front of vc (vc01).
func demoSRM(vc *demoVCenter, seed uint64) (*demoProduct, error) {
	s := &demoSRMServer{vc: vc, rng: rand.New(rand.NewPCG(seed, 0x5a3)), names: map[string]string{}, missing: map[string]bool{}}
	s.groups = []*demoSRMGroup{
		{id: "protection-group-101", name: "acme-erp", typ: "HBR", folder: "Acme Corp", share: 0.4},
		{id: "protection-group-102", name: "globex-tier1", typ: "ABR", folder: "Globex", share: 0.35},
		{id: "protection-group-103", name: "umbrella-ehr", typ: "VSAN", folder: "Umbrella Health", share: 0.5},
		{id: "protection-group-104", name: "infra-core", typ: "ABR", folder: "Provider Infra", share: 0.3},
	}
	byFolder := s.candidates()
	for _, g := range s.groups {
		for _, vm := range byFolder[g.folder] {
			if s.rng.Float64() < g.share {
				g.vms = append(g.vms, vm.Self.Value)
			}
		}
	}
	st := s.state()
	srv, err := serveDemoSwap(srmsim.New(st), st)
	if err != nil {
		return nil, err
	}
	n := 0
	var reps []string
	for _, g := range s.groups {
		n += len(g.vms)
		if !slices.Contains(reps, g.typ) {
			reps = append(reps, g.typ)
		}
	}
	return &demoProduct{
		short: "srm01", srv: srv,
		desc: fmt.Sprintf("SRM paired with vc01: %d of its VMs in %d protection groups (%s) replicated to srm-dr01 at the recovery site", n, len(s.groups), strings.Join(reps, ", ")),
		p: store.Product{Kind: srm.Kind, Endpoint: srv.url, Username: demoSRMUser, Password: config.Secret(demoSRMPassword),
			Thumbprint: tlsutil.Normalize(srv.thumb), PairedID: vc.productID},
		tick: func(h int, at time.Time) {
			if h > 0 && at.Hour() == 10 {
				s.churn()
			}
			st := s.state()
			srv.set(st, func() http.Handler { return srmsim.New(st) })
		},
		churned: func() string {
			return fmt.Sprintf("SRM: %d VM(s) protected, %d unprotected, %d deleted from vc01 while protected", s.protected, s.unprotected, s.deleted)
		},
	}, nil
}

// candidates are vc01's VMs (not templates) by folder.
func (s *demoSRMServer) candidates() map[string][]*simulator.VirtualMachine {
	out := map[string][]*simulator.VirtualMachine{}
	for _, vm := range s.vc.sim.VMs() {
		if !vm.Config.Template {
			f := demoFolderOf(s.vc, vm)
			out[f] = append(out[f], vm)
		}
	}
	return out
}

// churn is the day's change: VMs deleted from vc01 leave their groups, new
// VMs are protected, some no longer are.
func (s *demoSRMServer) churn() {
	byFolder := s.candidates()
	for _, g := range s.groups {
		g.vms = slices.DeleteFunc(g.vms, func(m string) bool { return s.missing[m] })
	}
	for _, g := range s.groups {
		if s.rng.Float64() < 0.15 {
			var free []string
			for _, vm := range byFolder[g.folder] {
				if !slices.Contains(g.vms, vm.Self.Value) {
					free = append(free, vm.Self.Value)
				}
			}
			for n := 1 + s.rng.IntN(2); n > 0 && len(free) > 0; n-- {
				i := s.rng.IntN(len(free))
				g.vms = append(g.vms, free[i])
				free = slices.Delete(free, i, i+1)
				s.protected++
			}
		}
		if s.rng.Float64() < 0.12 && len(g.vms) > 2 {
			i := s.rng.IntN(len(g.vms))
			g.vms = slices.Delete(g.vms, i, i+1)
			s.unprotected++
		}
	}
}

// state is what SRM shows now.
func (s *demoSRMServer) state() srmsim.State {
	live := map[string]*simulator.VirtualMachine{}
	for _, vm := range s.vc.sim.VMs() {
		live[vm.Self.Value] = vm
	}
	st := srmsim.State{User: demoSRMUser, Password: demoSRMPassword,
		SRM:     srmsim.Server{ID: demoID("srm/srm01"), Name: "srm01"},
		VCenter: srmsim.Server{ID: s.vc.sim.InstanceUUID(), Name: s.vc.name},
	}
	p := srmsim.Pairing{ID: "pairing-" + demoID("pairing/srm01-srm-dr01")[:8],
		RemoteSRM: srmsim.Server{ID: demoID("srm/srm-dr01"), Name: "srm-dr01"},
		RemoteVC:  srmsim.Server{ID: demoID("vcenter/vc-dr01"), Name: "vc-dr01"}}
	for _, g := range s.groups {
		sg := srmsim.Group{ID: g.id, Name: g.name, ReplicationType: g.typ, VMs: []srmsim.VM{}}
		for _, m := range g.vms {
			vm, ok := live[m]
			if !ok {
				if !s.missing[m] {
					s.missing[m] = true
					s.deleted++
				}
				sg.VMs = append(sg.VMs, srmsim.VM{ID: m, Name: s.names[m], Status: srm.StatusMissing})
				continue
			}
			// No power state: SRM does not show it (a powered-off VM is
			// protected like any other), and a new simulator for a power
			// change alone would only cost the collector a login.
			s.names[m] = vm.Name
			sg.VMs = append(sg.VMs, srmsim.VM{ID: m, Name: vm.Name})
		}
		p.Groups = append(p.Groups, sg)
	}
	st.Pairings = []srmsim.Pairing{p}
	return st
}
