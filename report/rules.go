package report

import "github.com/usagemeter/usagemeter/collectors"

// RulesVersion names the metering rules this package implements; it goes in
// every manifest. Change it whenever a rule or an assumption below changes.
const RulesVersion = "usagemeter-rules/2026.4"

// Assumptions are the rules marked "assumed" in METERING.md, written into
// the manifest so that the aggregator knows them.
var Assumptions = []string{
	"a missing collection hour counts as zero usage: it lowers monthly averages and counts; missing hours are reported per product",
	"vSAN edition from features in use: Standard = base; Advanced = deduplication/compression or RAID-5/6; Enterprise = encryption or stretched cluster",
	"NSX-T edition per VM from features used: Professional = segments/routing; Advanced = distributed firewall with a non-default rule, load balancer, VPN; Enterprise Plus = IDS/IPS, federation",
	"Site Recovery Manager is billed on the non-unique protected VM count",
	"NSX: a VM reached by NSX features is billed on its vCenter capped billed vRAM in the hours the vCenter bills it; NSX-V Enterprise also on the non-unique count of those VMs",
	"VMs on hosts whose licence is perpetual or demo (or evaluation) are metered but not reported; they are counted under excluded",
	"Aria Operations and Aria Operations for Networks: the billing mode is chosen per product (Flex add-on by default, standalone) and recorded on each hour's edition, so a change of mode applies from the hour it was collected with; a Flex add-on hour bills the capped billed vRAM of each monitored VM that its vCenter bills in that hour (joined by vCenter instance UUID and MoRef), a standalone hour counts every monitored VM (non-unique VM count)",
	"Aria Operations and Aria Operations for Networks: a monitored VM counts whatever its power state (powered off, it bills no vRAM as a Flex add-on); a VM monitored twice counts once an hour; a VM of a vCenter that is not registered counts in standalone mode and bills nothing as a Flex add-on; a VM the product keeps after it left its vCenter does not count",
	"Aria Operations edition: the highest of Standard, Advanced, Enterprise among its unexpired licences; Aria Operations for Networks: Advanced or Enterprise, the highest among its valid licences",
	"Tanzu Kubernetes Grid (TKGm) is reported as edition Standard (Advanced too) on the metric chosen per management cluster: the capped billed vRAM of the powered-on VMs of its management and workload cluster machines, or the cores of the hosts running one, read from the paired vCenter; those VMs bill vCenter Server vRAM as well, as TKGs VMs do",
	"TKGm: a machine is joined to its VM by the BIOS UUID of its vsphere:// provider ID; a machine without one (not provisioned yet, or not on vSphere) or whose VM the paired vCenter does not know bills nothing in that hour",
	"Aria Automation 8 is billed on the non-unique count of the machines it manages, whatever their power state, one line per cloud: the edition column names the cloud (vSphere, AWS, Azure, GCP; any further cloud account type under its type name, a machine of no listed cloud account under unknown)",
	"Aria Automation 7 is billed on the non-unique count of the vSphere virtual machines of its tenant's catalog, whatever their power state; machines on non-vSphere endpoints and deleted resources are not counted",
	"Aria Automation: a vSphere VM is identified by its vCenter instance UUID and MoRef, so that one VM counts once; one whose vCenter or MoRef Aria Automation does not give is counted on its own identity; either, and one of a vCenter not registered on the appliance, counts and is named as unjoined; a public cloud VM is identified by its cloud and its id in that cloud",
}

// Aggregation kinds (METERING.md "Terms"); each is one SQL query in
// internal/store/aggregate.go.
const (
	Average = "average" // sum over collected hours / hours in month (MB reported as GB)
	Count   = "count"   // non-unique object count: object-hours / hours in month
	Maximum = "maximum" // largest hourly total
	Unique  = "unique"  // distinct objects seen in the month
	// AverageVRAM averages the vram_mb dim of objects counted by another
	// metric (Cloud Director reports its VMs with their vRAM), in GB.
	AverageVRAM = "average_vram"
	// JoinedVRAM averages the vCenter vm.vram of the VMs a presence metric
	// counts, hour by hour (NSX reports which VMs it reaches), in GB.
	JoinedVRAM = "joined_vram"
	// JoinedCount is the non-unique count of the VMs a presence metric
	// counts, in the hours the vCenter bills them.
	JoinedCount = "joined_count"
)

// Rule says how a stored metric becomes a line of Monthly_Usage.tsv.
type Rule struct {
	Metric       string   // stored metric (collectors.Metric*)
	ProductKinds []string // product kinds the rule applies to; nil = any
	Editions     []string // editions the rule applies to; nil = any
	Kind         string   // Average, Count, Maximum or Unique
	Product      string   // product column; "" = the product kind's display name (collectors.Kind)
	Name         string   // metric column
	// Mode is the Aria billing mode (collectors.AriaAddon, AriaStandalone)
	// the edition must carry (collectors.AriaMode); "" = any edition.
	Mode string
}

// Rules is METERING.md as a table: one line per monthly figure.
var Rules = []Rule{
	{Metric: collectors.MetricVMVRAM, Kind: Average, Product: "vCenter Server", Name: "Average Capped Billed vRAM"},
	{Metric: collectors.MetricHostCores, Kind: Average, Product: "VMware Cloud Foundation", Name: "Average Cores"},
	{Metric: collectors.MetricVSANUsedGB, Kind: Average, Product: "vSAN", Name: "Average Used Capacity"},
	// TKGm (a management cluster product) before TKGs (the vCenter's
	// namespace VMs): the product column is the kind's display name.
	{Metric: collectors.MetricTanzuVRAM, Kind: Average, ProductKinds: []string{"tkgm"}, Name: "Average Capped Billed vRAM"},
	{Metric: collectors.MetricTanzuCores, Kind: Average, ProductKinds: []string{"tkgm"}, Name: "Average Cores"},
	{Metric: collectors.MetricTanzuVRAM, Kind: Average, Product: "Tanzu Basic", Name: "Average Capped Billed vRAM"},
	{Metric: collectors.MetricTanzuCores, Kind: Average, Product: "Tanzu Basic", Name: "Average Cores"},
	{Metric: collectors.MetricNSXVRAM, Kind: Average, Name: "Average Capped Billed vRAM"},
	{Metric: collectors.MetricNSXVRAM, Kind: Count, ProductKinds: []string{"nsxv"}, Editions: []string{"Enterprise", "enterprise"}, Name: "Non-unique VM Count"},
	{Metric: collectors.MetricNSXVM, Kind: JoinedVRAM, Name: "Average Capped Billed vRAM"},
	{Metric: collectors.MetricNSXVM, Kind: JoinedCount, ProductKinds: []string{"nsxv"}, Editions: []string{"Enterprise", "enterprise"}, Name: "Non-unique VM Count"},
	// Cloud Director, Aria Automation 7 and 8. Aria Automation 8 sets the
	// machine's cloud as the edition (collectors/vra8 Editions: vSphere,
	// AWS, Azure, GCP, or the cloud account type), so this rule gives one
	// line per cloud: the AWS/Azure/GCP/vSphere split.
	{Metric: collectors.MetricVMManaged, Kind: Count, Name: "Non-unique VM Count"},
	{Metric: collectors.MetricVMManaged, Kind: AverageVRAM, ProductKinds: []string{"vcd"}, Name: "Average Capped Billed vRAM"},
	{Metric: collectors.MetricMonitoredVM, Kind: JoinedVRAM, Mode: collectors.AriaAddon, Name: "Average Capped Billed vRAM"},
	{Metric: collectors.MetricMonitoredVM, Kind: Count, Mode: collectors.AriaStandalone, Name: "Non-unique VM Count"},
	{Metric: collectors.MetricVMProtected, Kind: Count, ProductKinds: []string{"srm"}, Name: "Non-unique Protected VM Count"},
	{Metric: collectors.MetricVMProtected, Kind: Unique, ProductKinds: []string{"vcda"}, Name: "Unique Protected VMs"},
	{Metric: collectors.MetricVMMigrated, Kind: Unique, Name: "Unique Migrated VMs"},
	{Metric: collectors.MetricConnections, Kind: Maximum, Name: "Maximum Concurrent Connections"},
	{Metric: collectors.MetricDesktopVM, Kind: Maximum, Name: "Maximum Desktop VMs under Management"},
	{Metric: collectors.MetricRDSHSession, Kind: Maximum, Name: "Maximum RDSH Sessions under Management"},
}

// productName is the product column for rules without Product: the display
// name the kind registered (collectors.Kind).
func productName(kind string) string { return collectors.DisplayName(kind) }

// metricsOf returns the distinct metrics of the rules of an aggregation kind.
func metricsOf(kind string) []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range Rules {
		if r.Kind == kind && !seen[r.Metric] {
			seen[r.Metric] = true
			out = append(out, r.Metric)
		}
	}
	return out
}

// ruleFor finds the rule of kind for a figure of metric from a product of
// productKind with edition, or nil.
func ruleFor(kind, metric, productKind, edition string) *Rule {
	for i := range Rules {
		r := &Rules[i]
		if r.Kind == kind && r.Metric == metric && (r.ProductKinds == nil || contains(r.ProductKinds, productKind)) && (r.Editions == nil || contains(r.Editions, edition)) &&
			(r.Mode == "" || collectors.AriaMode(edition) == r.Mode) {
			return r
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Metrics written to VM_History.tsv and Cluster_History.tsv.
var (
	vmMetrics = []string{collectors.MetricVMVRAM, collectors.MetricTanzuVRAM, collectors.MetricNSXVRAM, collectors.MetricNSXVM, collectors.MetricVMManaged,
		collectors.MetricMonitoredVM, collectors.MetricVMProtected, collectors.MetricVMMigrated}
	clusterMetrics = []string{collectors.MetricHostCores, collectors.MetricTanzuCores, collectors.MetricVSANUsedGB}
	allMetrics     = append(append(append([]string{}, vmMetrics...), clusterMetrics...), collectors.MetricConnections,
		collectors.MetricDesktopVM, collectors.MetricRDSHSession)
)
