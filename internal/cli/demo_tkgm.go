//go:build demo

package cli

import (
	"fmt"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/tkgm"
	tkgsim "github.com/usagemeter/usagemeter/collectors/tkgm/simulator"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// demoTKGmToken is the bearer token of the demo's read-only service account.
const demoTKGmToken = "eyJhbGciOiJSUzI1NiJ9.demo-usagemeter-reader.c2lnbmF0dXJl"

// demoTKGm is a Tanzu Kubernetes Grid (multi-cloud) management cluster on
// vc01 with two workload clusters, metered by vRAM: the management cluster
// runs on three Provider Infra VMs, the workload clusters on Initech's and
// Globex's first VMs (by BIOS UUID, as Cluster API's providerID names
// them). A node VM that vc01's churn deletes stays a machine the vCenter
// no longer knows (named as unjoined).
func demoTKGm(vc *demoVCenter) (*demoProduct, error) {
	byFolder := map[string][]string{}
	for _, vm := range vc.sim.VMs() {
		if !vm.Config.Template {
			f := demoFolderOf(vc, vm)
			byFolder[f] = append(byFolder[f], vm.Config.Uuid)
		}
	}
	take := func(folder string, n int) []string { return byFolder[folder][:min(n, len(byFolder[folder]))] }
	mgmt, w1, w2 := take("Provider Infra", 3), take("Initech", 4), take("Globex", 3)
	st := tkgsim.Fleet(demoTKGmToken, mgmt, w1, w2)
	srv, err := serveDemoSwap(tkgsim.New(st), st)
	if err != nil {
		return nil, err
	}
	return &demoProduct{
		short: "tkgm01", srv: srv,
		desc: fmt.Sprintf("a TKGm management cluster of %d node VMs on vc01 with two workload clusters of %d and %d, metered by vRAM", len(mgmt), len(w1), len(w2)),
		p: store.Product{Kind: tkgm.Kind, Endpoint: srv.url, Password: collectors.Secret(demoTKGmToken),
			Thumbprint: tlsutil.Normalize(srv.thumb), PairedID: vc.productID, Options: []byte(`{"metric":"vram"}`)},
		tick: func(int, time.Time) {},
	}, nil
}
