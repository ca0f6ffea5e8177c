package simulator_test

import (
	"fmt"

	"github.com/usagemeter/usagemeter/collectors/tkgm/simulator"
)

// The demo builds its management cluster from the BIOS UUIDs (config.uuid)
// of VMs it created in its vCenter simulator, then serves it; the tkgm
// product is added with the URL, the thumbprint and the token, paired with
// that vCenter.
func ExampleFleet() {
	st := simulator.Fleet("demo-token",
		[]string{"4237aaaa-0000-4000-8000-000000000001"}, // the management cluster's control plane
		[]string{"4237aaaa-0000-4000-8000-000000000002", "4237aaaa-0000-4000-8000-000000000003"},
		[]string{"4237aaaa-0000-4000-8000-000000000004"},
	)
	for _, m := range st.Machines {
		fmt.Println(m.Namespace, m.Cluster, m.Name, m.ControlPlane, m.ProviderID)
	}
	url, thumbprint, stop := simulator.New(st).Serve()
	defer stop()
	fmt.Println(url != "" && thumbprint != "")
	// Output:
	// tkg-system tkg-mgmt tkg-mgmt-control-plane-0 true vsphere://4237aaaa-0000-4000-8000-000000000001
	// default workload-01 workload-01-control-plane-0 true vsphere://4237aaaa-0000-4000-8000-000000000002
	// default workload-01 workload-01-md-0-1 false vsphere://4237aaaa-0000-4000-8000-000000000003
	// default workload-02 workload-02-control-plane-0 true vsphere://4237aaaa-0000-4000-8000-000000000004
	// true
}
