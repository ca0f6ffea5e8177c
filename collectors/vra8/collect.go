package vra8

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
	DimVM           = "vm"
	DimCloud        = "cloud" // cloud account type: vsphere, aws, azure, gcp, ...
	DimCloudAccount = "cloud_account"
	DimRegion       = "region"
	DimPowerState   = "power_state"
	DimVCenterUUID  = "vcenter_uuid"
	DimMoref        = "vm_moref"
	DimInstanceUUID = "vm_instance_uuid" // a vSphere machine's externalId: the VM's instance UUID
	DimVCenterJoin  = "vcenter_join"     // vSphere machines: joined or unjoined
	DimVCenter      = "vcenter"          // a vSphere machine's vCenter host name (its cloud account's hostName), as the vcenter collector's
	DimVRA          = "vra"
	DimRulesVersion = "rules_version"
)

// Summary is what one collection found, for its log line and the tests.
type Summary struct {
	Machines int            // observations
	ByCloud  map[string]int // observations per cloud type
	// UnknownTypes are the cloud account types outside METERING.md's
	// vSphere, AWS, Azure and GCP, each counted under its own name.
	UnknownTypes []string
	// Unjoined are the names (or ids) of vSphere machines that join no
	// registered vCenter: their vCenter or MoRef is not known (they are
	// counted on their own key), or their vCenter is not registered on
	// this appliance (Target.VCenters).
	Unjoined []string
	// Unregistered are the vCenters (instance UUIDs) of vSphere machines
	// that are not registered on this appliance.
	Unregistered []string
	Duplicates   int // machine records of a VM already counted
	NoID         int // records with neither id nor externalId, skipped
}

// Collect reads Aria Automation and returns one vm.managed observation per
// managed machine.
func (c *Collector) Collect(ctx context.Context, hour time.Time) ([]collectors.Observation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.rc.EnsureSession(ctx, &c.sess); err != nil {
		return nil, err
	}
	accounts := map[string]*cloudAccount{}
	err := listAll(ctx, c, cloudAccountsPath, func(a *cloudAccount) string { return a.ID }, func(a *cloudAccount) {
		cp := *a
		accounts[a.ID] = &cp
	})
	if err != nil {
		return nil, err
	}
	machines := make([]machine, 0, c.last.Machines)
	err = listAll(ctx, c, machinesPath, func(m *machine) string { return m.ID }, func(m *machine) { machines = append(machines, *m) })
	if err != nil {
		return nil, err
	}
	obs, sum := build(c.host, accounts, machines, c.t.RegisteredVCenters(ctx))
	c.last = sum
	if len(sum.UnknownTypes) > 0 {
		c.log.Warn("machines of cloud account types other than vSphere, AWS, Azure and GCP, counted under their type",
			"types", strings.Join(sum.UnknownTypes, ","))
	}
	if len(sum.Unjoined) > 0 {
		c.log.Warn("vSphere machines counted unjoined: their vCenter or MoRef is not known, or their vCenter is not registered here",
			"count", len(sum.Unjoined), "machines", listed(sum.Unjoined, 10), "unregistered_vcenters", strings.Join(sum.Unregistered, ","))
	}
	if sum.NoID > 0 {
		c.log.Warn("machine records without an id skipped", "count", sum.NoID)
	}
	c.log.Debug("machines", "count", sum.Machines, "by_cloud", fmt.Sprint(sum.ByCloud), "duplicates", sum.Duplicates)
	return obs, nil
}

// listed joins the first n of names, saying how many more there are.
func listed(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ",")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ","), len(names)-n)
}

// build turns the machines into observations, one per VM. It is pure: the
// Aria Automation 8 rules of METERING.md live here and in rules.go.
// vcenters are the registered vCenters (nil: not known).
func build(host string, accounts map[string]*cloudAccount, machines []machine, vcenters map[string]bool) ([]collectors.Observation, Summary) {
	sum := Summary{ByCloud: map[string]int{}}
	unregistered := map[string]bool{}
	byKey := make(map[string]int, len(machines))
	obs := make([]collectors.Observation, 0, len(machines))
	unknown := map[string]bool{}
	for i := range machines {
		m := &machines[i]
		if !counts(m) {
			sum.NoID++
			continue
		}
		var acct *cloudAccount
		for _, id := range m.CloudAccountIDs {
			if a := accounts[id]; a != nil {
				acct = a
				break
			}
		}
		cloud := CloudUnknown
		vc, moref := strings.ToLower(strings.TrimSpace(m.CustomProperties[PropVCenterUUID])), morefOf(m.CustomProperties[PropMoRef])
		switch {
		case acct != nil && strings.TrimSpace(acct.Type) != "":
			cloud = strings.ToLower(strings.TrimSpace(acct.Type))
		case vc != "" || moref != "":
			cloud = CloudVSphere // its account is not listed, but it is a vCenter VM
		}
		if vc == "" && acct != nil && cloud == CloudVSphere {
			vc = strings.ToLower(strings.TrimSpace(acct.CustomProperties[PropVCenterUUID]))
		}
		name := m.Name
		if name == "" {
			name = m.ID
		}
		dims := map[string]string{
			DimVM: name, DimCloud: cloud, DimRegion: m.ExternalRegionID, DimPowerState: m.PowerState,
			DimVRA: host, DimRulesVersion: RulesVersion,
		}
		if acct != nil {
			dims[DimCloudAccount] = acct.Name
			if cloud == CloudVSphere && acct.Properties[PropHostName] != "" {
				dims[DimVCenter] = acct.Properties[PropHostName] // customer rules bound to the vCenter reach it
			}
		}
		own := host + "/machine/" + m.ID
		if m.ID == "" {
			own = host + "/machine/" + m.ExternalID
		}
		var key string
		switch {
		case cloud == CloudVSphere && vc != "" && moref != "":
			key = vc + "/moref/" + moref
			dims[DimInstanceUUID] = strings.ToLower(strings.TrimSpace(m.ExternalID))
			dims[DimVCenterUUID], dims[DimMoref], dims[DimVCenterJoin] = vc, moref, Joined
			if vcenters != nil && !vcenters[vc] {
				dims[DimVCenterJoin] = Unjoined // identified, but its vCenter is not metered here
			}
		case cloud == CloudVSphere:
			key = own
			dims[DimInstanceUUID] = strings.ToLower(strings.TrimSpace(m.ExternalID))
			dims[DimVCenterUUID], dims[DimMoref], dims[DimVCenterJoin] = vc, moref, Unjoined
		case strings.TrimSpace(m.ExternalID) != "":
			key = cloud + "/" + strings.TrimSpace(m.ExternalID)
		default:
			key = own
		}
		if _, dup := byKey[key]; dup {
			sum.Duplicates++
			continue
		}
		byKey[key] = len(obs)
		if cloud == CloudVSphere && dims[DimVCenterJoin] == Unjoined {
			sum.Unjoined = append(sum.Unjoined, name)
			if vc != "" && vcenters != nil && !vcenters[vc] && !unregistered[vc] {
				unregistered[vc] = true
				sum.Unregistered = append(sum.Unregistered, vc)
			}
		}
		if !Known(cloud) && !unknown[cloud] {
			unknown[cloud] = true
			sum.UnknownTypes = append(sum.UnknownTypes, cloud)
		}
		sum.ByCloud[cloud]++
		obs = append(obs, collectors.Observation{
			Metric: collectors.MetricVMManaged, ObjectKey: key, Quantity: 1, Unit: collectors.UnitCount,
			Edition: edition(cloud), Dims: dims,
		})
	}
	sort.Strings(sum.UnknownTypes)
	sort.Strings(sum.Unjoined)
	sort.Strings(sum.Unregistered)
	sum.Machines = len(obs)
	return obs, sum
}
