package vcenter_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"sort"
	"time"

	"github.com/vmware/govmomi/simulator"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/vcenter"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// A vCenter is metered on the billed vRAM of its powered-on VMs: half the
// configured memory or the reservation if larger, capped at 24 GB. The
// simulator's VMs have 32 MB and hosts in evaluation mode.
func Example() {
	// A simulated vCenter: one cluster and one standalone host, 2 VMs each.
	m := simulator.VPX()
	if err := m.Create(); err != nil {
		panic(err)
	}
	defer m.Remove()
	m.Service.TLS = new(tls.Config)
	m.Service.Listen = &url.URL{User: url.UserPassword("meter@vsphere.local", "secret")}
	s := m.Service.NewServer()
	defer s.Close()

	c, err := collectors.New(collectors.Target{
		Kind:       "vcenter",
		Endpoint:   "https://" + s.URL.Host,
		Username:   "meter@vsphere.local",
		Password:   collectors.Secret("secret"),
		Thumbprint: tlsutil.Thumbprint(s.Certificate().Raw), // accepted by the admin
		Options:    []byte(`{"tanzu_metric": "vram"}`),
		Timeout:    30 * time.Second,
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	defer c.(collectors.Closer).Close(ctx)

	obs, err := c.Collect(ctx, time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC))
	if err != nil {
		panic(err)
	}
	var lines []string
	for _, o := range obs {
		lines = append(lines, fmt.Sprintf("%s %s %v %s %s not_reportable=%s", o.Metric, o.Dims[vcenter.DimVM], o.Quantity, o.Unit, o.Edition, o.Dims[collectors.DimNotReportableKey]))
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// vm.vram DC0_C0_RP0_VM0 16 MB eval not_reportable=true
	// vm.vram DC0_C0_RP0_VM1 16 MB eval not_reportable=true
	// vm.vram DC0_H0_VM0 16 MB eval not_reportable=true
	// vm.vram DC0_H0_VM1 16 MB eval not_reportable=true
}

// ParseOptions validates a product's options at `product add`, naming the
// bad option.
func ExampleParseOptions() {
	_, err := vcenter.ParseOptions([]byte(`{"vcf_edition": "advanced", "tanzu": "cores"}`))
	fmt.Println(err)
	o, _ := vcenter.ParseOptions([]byte(`{"vcf_edition": "advanced-vsan", "tanzu_metric": "cores"}`))
	fmt.Println(o.VCFEdition, o.TanzuMetric)
	// Output:
	// vcenter options: unknown option "tanzu" (known: vcf_edition, tanzu_metric, page_size)
	// advanced-vsan cores
}
