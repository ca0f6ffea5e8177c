package vra7

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
)

// Dimension names of the observations.
const (
	DimVM            = "vm"
	DimBusinessGroup = "business_group"
	DimTenant        = "tenant"
	DimPowerState    = "power_state"
	DimVCenterUUID   = "vcenter_uuid"
	DimMoref         = "vm_moref"
	DimVCenterJoin   = "vcenter_join"
	DimVRA           = "vra"
	DimRulesVersion  = "rules_version"
)

// Summary is what one collection found, for its log line and the tests.
type Summary struct {
	Machines int // observations
	// Unjoined are the names of machines that join no registered vCenter:
	// their vCenter or MoRef is not known (counted on their own key), or
	// their vCenter is not registered on this appliance (Target.VCenters).
	Unjoined []string
	// Unregistered are the vCenters (instance UUIDs) of machines that are
	// not registered on this appliance.
	Unregistered []string
	Duplicates   int // records of a VM already counted
	// Skipped records, by reason.
	OtherType, NotVSphere, Deleted, NoID int
	Interfaces                           []string // the endpoint types of the machines skipped as not vSphere
}

// Collect reads the tenant's catalog and returns one vm.managed observation
// per managed vSphere VM.
func (c *Collector) Collect(ctx context.Context, hour time.Time) ([]collectors.Observation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.rc.EnsureSession(ctx, &c.sess); err != nil {
		return nil, err
	}
	res := make([]resource, 0, c.last.Machines)
	if err := c.listMachines(ctx, func(r *resource) { res = append(res, *r) }); err != nil {
		return nil, err
	}
	obs, sum := build(c.host, c.opts.Tenant, res, c.t.RegisteredVCenters(ctx))
	c.last = sum
	if len(sum.Unjoined) > 0 {
		c.log.Warn("vSphere machines counted unjoined: their vCenter or MoRef is not known, or their vCenter is not registered here",
			"count", len(sum.Unjoined), "machines", listed(sum.Unjoined, 10), "unregistered_vcenters", strings.Join(sum.Unregistered, ","))
	}
	if sum.NotVSphere > 0 {
		c.log.Info("machines on endpoints other than vSphere not metered", "count", sum.NotVSphere, "types", strings.Join(sum.Interfaces, ","))
	}
	if sum.NoID > 0 || sum.OtherType > 0 {
		c.log.Warn("catalog records skipped", "without_id", sum.NoID, "not_a_virtual_machine", sum.OtherType)
	}
	c.log.Debug("machines", "count", sum.Machines, "duplicates", sum.Duplicates, "deleted", sum.Deleted)
	return obs, nil
}

// listed joins the first n of names, saying how many more there are.
func listed(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ",")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ","), len(names)-n)
}

// build turns the catalog resources into observations, one per VM. It is
// pure: the Aria Automation 7 rules of METERING.md live here and in
// rules.go. vcenters are the registered vCenters (nil: not known).
func build(host, tenant string, res []resource, vcenters map[string]bool) ([]collectors.Observation, Summary) {
	var sum Summary
	unregistered := map[string]bool{}
	seen := make(map[string]bool, len(res))
	ifaces := map[string]bool{}
	obs := make([]collectors.Observation, 0, len(res))
	for i := range res {
		r := &res[i]
		switch judge(r) {
		case noID:
			sum.NoID++
			continue
		case otherType:
			sum.OtherType++
			continue
		case deleted:
			sum.Deleted++
			continue
		case notVSphere:
			sum.NotVSphere++
			if it := r.Data.get(KeyInterfaceType); !ifaces[it] {
				ifaces[it] = true
				sum.Interfaces = append(sum.Interfaces, it)
			}
			continue
		}
		name := r.Data.get(KeyMachineName)
		if name == "" {
			name = r.Name
		}
		if name == "" {
			name = r.ID
		}
		vc := strings.ToLower(strings.TrimSpace(r.Data.get(KeyVCenterUUID)))
		moref := strings.TrimSpace(r.Data.get(KeyMoRef))
		ten := r.Organization.TenantRef
		if ten == "" {
			ten = tenant
		}
		dims := map[string]string{
			DimVM: name, DimBusinessGroup: r.Organization.SubtenantLabel, DimTenant: ten,
			DimPowerState: r.Data.get(KeyMachineStatus), DimVCenterUUID: vc, DimMoref: moref,
			DimVRA: host, DimRulesVersion: RulesVersion,
		}
		key := host + "/machine/" + strings.TrimSpace(r.ID)
		dims[DimVCenterJoin] = Unjoined
		if vc != "" && moref != "" {
			key = vc + "/moref/" + moref
			dims[DimVCenterJoin] = Joined
			if vcenters != nil && !vcenters[vc] {
				dims[DimVCenterJoin] = Unjoined // identified, but its vCenter is not metered here
			}
		}
		if seen[key] {
			sum.Duplicates++
			continue
		}
		seen[key] = true
		if dims[DimVCenterJoin] == Unjoined {
			sum.Unjoined = append(sum.Unjoined, name)
			if vc != "" && vcenters != nil && !vcenters[vc] && !unregistered[vc] {
				unregistered[vc] = true
				sum.Unregistered = append(sum.Unregistered, vc)
			}
		}
		obs = append(obs, collectors.Observation{
			Metric: collectors.MetricVMManaged, ObjectKey: key, Quantity: 1, Unit: collectors.UnitCount, Dims: dims,
		})
	}
	sort.Strings(sum.Unjoined)
	sort.Strings(sum.Unregistered)
	sort.Strings(sum.Interfaces)
	sum.Machines = len(obs)
	return obs, sum
}
