package tkgm

import (
	"maps"
	"slices"
	"strings"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/vcenter"
)

// RulesVersion names the TKGm metering rules below; it is set on every
// observation (dims) so that a change of rules shows in the spans.
const RulesVersion = "tkgm-1"

// Edition is the edition of every TKGm observation: METERING.md reports
// TKGm as Standard (an Advanced entitlement is reported as Standard too).
const Edition = "Standard"

// providerPrefix starts the provider ID of a machine on vSphere (Cluster
// API Provider vSphere): vsphere://<the VM's BIOS UUID>.
const providerPrefix = "vsphere://"

// Dimension names the collector adds to the vCenter's.
const (
	DimManagementCluster = "management_cluster" // the management cluster's host
	DimK8sCluster        = "k8s_cluster"        // namespace/name of the Cluster API cluster
	DimK8sClusterRole    = "k8s_cluster_role"   // management or workload
	DimK8sClusters       = "k8s_clusters"       // cores: the clusters with a VM on the host, sorted
	DimMachine           = "machine"            // namespace/name of the Machine
	DimMachineRole       = "machine_role"       // control-plane or worker
	DimRulesVersion      = "rules_version"
)

// Summary counts what one collection read and what it left out.
type Summary struct {
	Clusters     int      // Cluster API clusters listed
	Machines     int      // machines listed
	Billed       int      // machines whose VM bills in the hour
	NotBilled    int      // joined to a VM that does not bill (powered off, suspended, a template, unusable)
	NoProviderID int      // machines without spec.providerID: no VM yet, skipped
	OtherInfra   int      // provider ID of another infrastructure (not vsphere://), skipped
	Unjoined     []string // machines (namespace/name) whose VM the vCenter does not know
	Duplicates   int      // machines naming a VM another machine named already
}

// biosUUID is the BIOS UUID a vSphere provider ID names, "" when it is not
// one.
func biosUUID(providerID string) (string, bool) {
	id := strings.TrimSpace(providerID)
	if len(id) < len(providerPrefix) || !strings.EqualFold(id[:len(providerPrefix)], providerPrefix) {
		return "", false
	}
	u := strings.Trim(id[len(providerPrefix):], "/")
	return u, u != ""
}

// build joins the machines to the vCenter's VMs and returns the
// observations. It is pure: the TKGm rules of METERING.md live here (and
// the vRAM of a VM is the vcenter collector's).
func build(host, metric string, clusters []cluster, machines []machine, vms lookup) ([]collectors.Observation, Summary) {
	sum := Summary{Clusters: len(clusters), Machines: len(machines)}
	role := make(map[string]string, len(clusters))
	for _, c := range clusters {
		if c.management {
			role[c.key()] = "management"
		}
	}
	obs := make([]collectors.Observation, 0, len(machines))
	seen := make(map[string]bool, len(machines))
	type hostUse struct {
		vm       vcenter.BilledVM
		clusters []string
	}
	hosts := map[string]*hostUse{}
	for _, m := range machines {
		if strings.TrimSpace(m.providerID) == "" {
			sum.NoProviderID++
			continue
		}
		uuid, ok := biosUUID(m.providerID)
		if !ok {
			sum.OtherInfra++
			continue
		}
		vm, ok := vms.VM(uuid)
		if !ok {
			sum.Unjoined = append(sum.Unjoined, m.key())
			continue
		}
		if seen[vm.Key] {
			sum.Duplicates++
			continue
		}
		seen[vm.Key] = true
		if !vm.Billed {
			sum.NotBilled++
			continue
		}
		sum.Billed++
		ck := m.namespace + "/" + m.cluster
		r := role[ck]
		if r == "" {
			r = "workload"
		}
		if metric == MetricCores {
			if vm.HostKey == "" {
				continue // the host is not in the vCenter's inventory: no cores to count
			}
			h := hosts[vm.HostKey]
			if h == nil {
				h = &hostUse{vm: vm}
				hosts[vm.HostKey] = h
			}
			if !slices.Contains(h.clusters, ck) {
				h.clusters = append(h.clusters, ck)
			}
			continue
		}
		d := make(map[string]string, len(vm.Dims)+7)
		maps.Copy(d, vm.Dims)
		d[DimManagementCluster] = host
		d[DimK8sCluster] = ck
		d[DimK8sClusterRole] = r
		d[DimMachine] = m.key()
		d[DimMachineRole] = "worker"
		if m.controlPlane {
			d[DimMachineRole] = "control-plane"
		}
		d[DimRulesVersion] = RulesVersion
		obs = append(obs, collectors.Observation{
			Metric: collectors.MetricTanzuVRAM, ObjectKey: vm.Key, Quantity: vm.VRAMMB,
			Unit: collectors.UnitMB, Edition: Edition, Dims: d,
		})
	}
	for _, k := range slices.Sorted(maps.Keys(hosts)) {
		h := hosts[k]
		slices.Sort(h.clusters)
		d := make(map[string]string, len(h.vm.HostDims)+3)
		maps.Copy(d, h.vm.HostDims)
		d[DimManagementCluster] = host
		d[DimK8sClusters] = strings.Join(h.clusters, ",")
		d[DimRulesVersion] = RulesVersion
		obs = append(obs, collectors.Observation{
			Metric: collectors.MetricTanzuCores, ObjectKey: k, Quantity: float64(h.vm.HostCores),
			Unit: collectors.UnitCores, Edition: Edition, Dims: d,
		})
	}
	return obs, sum
}
