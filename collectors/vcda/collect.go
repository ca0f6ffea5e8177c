package vcda

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
)

// Dimension names of the observations.
const (
	DimVM           = "vm"
	DimVMID         = "vm_id"
	DimVApp         = "vapp"
	DimOrg          = "org"
	DimSourceSite   = "source_site"
	DimDestSite     = "destination_site"
	DimSourceOrg    = "source_org"
	DimDestOrg      = "destination_org"
	DimDirection    = "direction"
	DimVCenterUUID  = "vcenter_uuid"
	DimVCDA         = "vcda"
	DimRulesVersion = "rules_version"
)

// replication is one VM replication as read, before it becomes an
// observation: from /vm-replications or a vApp replication's VMs.
type replication struct {
	vmReplication
	vapp string // the vApp replication's vApp name, "" for a VM replication
}

// Collect reads the VM and vApp replications and returns one vm.protected
// or vm.migrated observation per replicated VM.
func (c *Collector) Collect(ctx context.Context, hour time.Time) ([]collectors.Observation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.rc.EnsureSession(ctx, &c.sess); err != nil {
		return nil, err
	}
	reps := make([]replication, 0, c.last)
	err := listAll(ctx, c, "/vm-replications", func(r *vmReplication) string { return r.ID }, func(r *vmReplication) {
		reps = append(reps, replication{vmReplication: *r})
	})
	if err != nil {
		return nil, err
	}
	err = listAll(ctx, c, "/vapp-replications", func(va *vappReplication) string { return va.ID }, func(va *vappReplication) {
		for _, r := range va.VMReplications {
			// A vApp replication is one kind for all its VMs.
			r.IsMigration = va.IsMigration
			if r.Source.VAppName == "" {
				r.Source.VAppName = va.Source.VAppName
			}
			if r.Source.Site == "" {
				r.Source.Site, r.Source.Org = va.Source.Site, va.Source.Org
			}
			if r.Destination.Site == "" {
				r.Destination.Site, r.Destination.Org = va.Destination.Site, va.Destination.Org
			}
			reps = append(reps, replication{vmReplication: r, vapp: va.Source.VAppName})
		}
	})
	if err != nil {
		return nil, err
	}
	obs, noVM := build(c.site(), c.host, reps)
	if noVM > 0 {
		c.log.Warn("replications whose VM no longer exists skipped", "count", noVM)
	}
	c.last = len(reps)
	return obs, nil
}

// build turns the replications into observations, one per (metric, VM):
// a VM replicated twice (two replications, a VM and a vApp replication,
// twice across pages) counts once; the same VM protected and migrated is
// one vm.protected and one vm.migrated. It is pure: the VCDA rules of
// METERING.md live here and in rules.go. It returns how many records were
// skipped for want of a VM id.
func build(local, host string, reps []replication) ([]collectors.Observation, int) {
	type acc struct {
		metric, key, name, vmID, vcUUID string
		vapps, orgs, srcSites, dstSites values
		srcOrgs, dstOrgs, dirs          values
	}
	add := func(vs *values, v string) { vs.add(v) }
	noVM := 0
	byKey := make(map[string]*acc, len(reps))
	keys := make([]string, 0, len(reps))
	for i := range reps {
		r := &reps[i]
		key := objectKey(r.Source)
		if key == "" {
			noVM++
			continue
		}
		metric := metricOf(r.IsMigration)
		mk := metric + "\x00" + key
		a := byKey[mk]
		if a == nil {
			a = &acc{metric: metric, key: key, vmID: strings.TrimSpace(*r.Source.VMID), vcUUID: strings.TrimSpace(r.Source.VimServer)}
			byKey[mk] = a
			keys = append(keys, mk)
		}
		if a.name == "" {
			a.name = r.VMName
		}
		dir := direction(local, r.Source, r.Destination)
		vapp := r.vapp
		if vapp == "" {
			vapp = r.Source.VAppName
		}
		add(&a.vapps, vapp)
		add(&a.orgs, tenantOf(dir, r.Source, r.Destination))
		add(&a.srcSites, r.Source.Site)
		add(&a.dstSites, r.Destination.Site)
		add(&a.srcOrgs, r.Source.Org)
		add(&a.dstOrgs, r.Destination.Org)
		add(&a.dirs, dir)
	}
	sort.Strings(keys)
	join := func(vs values) string { sort.Strings(vs.list); return strings.Join(vs.list, ",") }
	obs := make([]collectors.Observation, 0, len(keys))
	for _, k := range keys {
		a := byKey[k]
		d := map[string]string{
			DimVM:           a.name,
			DimVMID:         a.vmID,
			DimVApp:         join(a.vapps),
			DimOrg:          join(a.orgs),
			DimSourceSite:   join(a.srcSites),
			DimDestSite:     join(a.dstSites),
			DimSourceOrg:    join(a.srcOrgs),
			DimDestOrg:      join(a.dstOrgs),
			DimDirection:    join(a.dirs),
			DimVCDA:         host,
			DimRulesVersion: RulesVersion,
		}
		if a.vcUUID != "" {
			d[DimVCenterUUID] = a.vcUUID
		}
		obs = append(obs, collectors.Observation{
			Metric: a.metric, ObjectKey: a.key, Quantity: 1, Unit: collectors.UnitCount, Dims: d,
		})
	}
	return obs, noVM
}

// values is a set of dimension values in the order first seen. A VM has a
// few (sites, orgs, vApps); past a handful they are also indexed, so that a
// hostile or broken answer repeating one VM with many values stays linear.
type values struct {
	list []string
	idx  map[string]struct{}
}

func (vs *values) add(v string) {
	if v == "" {
		return
	}
	if vs.idx != nil {
		if _, ok := vs.idx[v]; ok {
			return
		}
		vs.idx[v] = struct{}{}
	} else if slices.Contains(vs.list, v) {
		return
	} else if len(vs.list) >= 8 {
		vs.idx = make(map[string]struct{}, 2*len(vs.list))
		for _, x := range vs.list {
			vs.idx[x] = struct{}{}
		}
		vs.idx[v] = struct{}{}
	}
	vs.list = append(vs.list, v)
}
