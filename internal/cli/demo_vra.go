//go:build demo

package cli

import (
	"fmt"
	"net/http"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/vra8"
	vra8sim "github.com/usagemeter/usagemeter/collectors/vra8/simulator"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

const (
	demoVRAUser     = "vra-meter"
	demoVRAPassword = "Vra-Meter!2026"
	demoVRACloudVMs = 6 // machines in each of AWS, Azure and GCP
)

// demoVRA8 is Aria Automation 8 managing the VMs of Umbrella Health's
// folder on vc01 (joined to vc01's VMs by instance UUID and MoRef) and
// demoVRACloudVMs machines in each of AWS, Azure and GCP: the report counts
// them per cloud. The vSphere machines follow vc01's churn.
func demoVRA8(vc *demoVCenter) (*demoProduct, error) {
	refs := func() []vra8sim.VMRef {
		var out []vra8sim.VMRef
		for _, r := range demoAriaRefs(vc, "Umbrella Health") {
			out = append(out, vra8sim.VMRef{VCenterUUID: r.VCenter, MoRef: r.MoRef, Name: r.Name})
		}
		return out
	}
	st := vra8sim.NewDemoState(demoVRAUser, demoVRAPassword, refs(), demoVRACloudVMs)
	srv, err := serveDemoSwap(vra8sim.New(st), st)
	if err != nil {
		return nil, err
	}
	return &demoProduct{
		short: "vra01", srv: srv,
		desc: fmt.Sprintf("Aria Automation 8 managing Umbrella Health's %d VMs on vc01 and %d machines in each of AWS, Azure and GCP", len(refs()), demoVRACloudVMs),
		p: store.Product{Kind: vra8.Kind, Endpoint: srv.url, Username: demoVRAUser, Password: collectors.Secret(demoVRAPassword),
			Thumbprint: tlsutil.Normalize(srv.thumb)},
		tick: func(int, time.Time) {
			st := vra8sim.NewDemoState(demoVRAUser, demoVRAPassword, refs(), demoVRACloudVMs)
			srv.set(st, func() http.Handler { return vra8sim.New(st) })
		},
	}, nil
}
