//go:build demo

package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/vrni"
	vrnisim "github.com/usagemeter/usagemeter/collectors/vrni/simulator"
	"github.com/usagemeter/usagemeter/collectors/vrops"
	vropssim "github.com/usagemeter/usagemeter/collectors/vrops/simulator"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

const (
	demoAriaUser     = "ops-meter"
	demoAriaPassword = "Aria-Meter!2026"
)

// demoAriaRefs are vc01's live VMs (not templates) in the given folders
// (all folders when none), as the Aria products see them: vCenter instance
// UUID, MoRef, name.
func demoAriaRefs(vc *demoVCenter, folders ...string) []vropssim.VMRef {
	var refs []vropssim.VMRef
	for _, vm := range vc.sim.VMs() {
		if vm.Config.Template || (len(folders) > 0 && !slices.Contains(folders, demoFolderOf(vc, vm))) {
			continue
		}
		refs = append(refs, vropssim.VMRef{VCenter: vc.sim.InstanceUUID(), MoRef: vm.Self.Value, Name: vm.Name})
	}
	return refs
}

// demoVROps is Aria Operations monitoring every VM of vc01, billed as the
// Flex add-on (the capped billed vRAM of the monitored VMs, from vc01's own
// figures).
func demoVROps(vc *demoVCenter) (*demoProduct, error) {
	return demoAria(vc, "vrops01", vrops.Kind, "addon", nil, func(refs []vropssim.VMRef) http.Handler {
		return vropssim.Monitoring(demoAriaUser, demoAriaPassword, "Advanced", refs, len(refs))
	}, "Aria Operations Advanced paired with vc01, monitoring its %d VMs, billed as the Flex add-on")
}

// demoVRNI is Aria Operations for Networks Enterprise watching the
// networks of two customers' VMs on vc01, billed standalone (the
// non-unique count of monitored VMs).
func demoVRNI(vc *demoVCenter) (*demoProduct, error) {
	u, err := url.Parse(vc.sim.URL())
	if err != nil {
		return nil, err
	}
	hosts := map[string]string{vc.sim.InstanceUUID(): u.Hostname()}
	return demoAria(vc, "vrni01", vrni.Kind, "standalone", []string{"Acme Corp", "Globex"}, func(refs []vropssim.VMRef) http.Handler {
		vr := make([]vrnisim.VMRef, len(refs))
		for i, r := range refs {
			vr[i] = vrnisim.VMRef(r)
		}
		return vrnisim.Monitoring(demoAriaUser, demoAriaPassword, "ENTERPRISE", hosts, vr, len(vr))
	}, "Aria Operations for Networks Enterprise paired with vc01, monitoring the %d VMs of Acme Corp and Globex, billed standalone")
}

// demoAria is an Aria product of kind paired with vc, billed in mode,
// monitoring vc's VMs in folders (all when nil) through the simulator mk
// makes; the monitored set follows vc's churn hour by hour. desc has a %d
// for the number of VMs monitored at the start.
func demoAria(vc *demoVCenter, short, kind, mode string, folders []string, mk func([]vropssim.VMRef) http.Handler, desc string) (*demoProduct, error) {
	refs := demoAriaRefs(vc, folders...)
	srv, err := serveDemoSwap(mk(refs), refs)
	if err != nil {
		return nil, err
	}
	return &demoProduct{
		short: short, srv: srv, desc: fmt.Sprintf(desc, len(refs)),
		p: store.Product{Kind: kind, Endpoint: srv.url, Username: demoAriaUser, Password: collectors.Secret(demoAriaPassword),
			Thumbprint: tlsutil.Normalize(srv.thumb), PairedID: vc.productID, Options: []byte(`{"mode":"` + mode + `"}`)},
		tick: func(int, time.Time) {
			refs := demoAriaRefs(vc, folders...)
			srv.set(refs, func() http.Handler { return mk(refs) })
		},
	}, nil
}
