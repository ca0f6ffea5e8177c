package vrops

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
)

// Dimension names of the observations.
const (
	DimVM           = "vm"
	DimMoref        = "vm_moref"
	DimVCenterUUID  = "vcenter_uuid"
	DimVCenter      = "vcenter"
	DimVROps        = "vrops"
	DimMode         = "mode"
	DimRulesVersion = "rules_version"
)

// vmRec is one VirtualMachine resource as read, before it becomes an
// observation.
type vmRec struct {
	name, moref, vc string
	skip            string // "" when monitored, else why not (skipOf)
}

// summary is what a collection tells in its log line.
type summary struct {
	gone, otherAdapter, noID, duplicates int
	unjoined                             map[string]int // VMs per vCenter other than the paired one
}

// Collect reads Aria Operations and returns one vm.monitored observation per
// monitored VM.
func (c *Collector) Collect(ctx context.Context, hour time.Time) ([]collectors.Observation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ensureSession(ctx); err != nil {
		return nil, err
	}
	var lic licenses
	if err := c.get(ctx, "/deployment/licenses", &lic); err != nil {
		return nil, fmt.Errorf("vrops %s: reading the licences (/deployment/licenses): %w", c.host, err)
	}
	ed := edition(lic.List, c.now())
	vms, err := c.read(ctx)
	if err != nil {
		return nil, err
	}
	obs, sum := build(c.vcUUID, c.vcHost, c.host, c.opts.Mode, ed, vms)
	c.lastVMs = len(vms)
	if sum.noID > 0 || sum.gone > 0 || sum.otherAdapter > 0 {
		c.log.Warn("VM resources not metered", "without_vcenter_or_moref", sum.noID, "no_longer_in_vcenter", sum.gone, "other_adapter", sum.otherAdapter)
	}
	if ed == "" {
		c.log.Warn("no licence names an edition (Standard, Advanced, Enterprise): the VMs are metered without one")
	}
	args := []any{"monitored_vms", len(obs), "edition", ed, "mode", c.opts.Mode, "listed_twice", sum.duplicates}
	if len(sum.unjoined) > 0 {
		vcs := slices.Sorted(maps.Keys(sum.unjoined))
		parts := make([]string, len(vcs))
		n := 0
		for i, vc := range vcs {
			parts[i] = fmt.Sprintf("%s (%d VMs)", vc, sum.unjoined[vc])
			n += sum.unjoined[vc]
		}
		// They join only if their vCenter is registered: say so, once an hour.
		args = append(args, "unjoined_vms", n, "unjoined_vcenters", strings.Join(parts, ", "))
		c.log.Info("monitored VMs of vCenters other than the paired one: counted on their own keys, joined only if those vCenters are registered", args...)
	} else {
		c.log.Info("collected", args...)
	}
	return obs, nil
}

// read lists the VirtualMachine resources of the vSphere adapter, page by
// page to the end.
func (c *Collector) read(ctx context.Context) ([]vmRec, error) {
	const list = "/resources"
	vms := make([]vmRec, 0, c.lastVMs)
	seen := 0
	for page := 0; ; page++ {
		p := new(resourcePage)
		path := fmt.Sprintf("%s?resourceKind=VirtualMachine&adapterKind=VMWARE&page=%d&pageSize=%d", list, page, c.opts.PageSize)
		if err := c.get(ctx, path, p); err != nil {
			return nil, c.rc.PageError(list, page+1, err)
		}
		if err := p.check(); err != nil {
			return nil, c.rc.PageError(list, page+1, err)
		}
		if p.PageInfo.Page != page {
			// A server that ignores page would page forever.
			return nil, c.rc.PageError(list, page+1, fmt.Errorf("the answer is for page %d, asked for %d", p.PageInfo.Page, page))
		}
		for i := range p.ResourceList {
			r := &p.ResourceList[i]
			name := r.ident("VMEntityName")
			if name == "" {
				name = r.ResourceKey.Name
			}
			vms = append(vms, vmRec{name: name, moref: r.ident("VMEntityObjectID"), vc: r.ident("VMEntityVCID"), skip: skipOf(r)})
		}
		// The last page: an empty one, or the total reached (a server may
		// cap pageSize below what was asked, so a short page is not the end).
		n := len(p.ResourceList)
		seen += n
		if n == 0 || (p.PageInfo.TotalCount > 0 && seen >= p.PageInfo.TotalCount) {
			return vms, nil
		}
	}
}

// build turns the VMs read into observations, one per monitored VM. It is
// pure: the rules of METERING.md live here and in rules.go.
func build(vcUUID, vcHost, host, mode, edition string, vms []vmRec) ([]collectors.Observation, summary) {
	sum := summary{unjoined: map[string]int{}}
	seen := make(map[string]bool, len(vms))
	obs := make([]collectors.Observation, 0, len(vms))
	ed := collectors.AriaEdition(edition, mode)
	for i := range vms {
		v := &vms[i]
		switch v.skip {
		case skipGone:
			sum.gone++
			continue
		case skipOtherAdapter:
			sum.otherAdapter++
			continue
		}
		vc, moref := strings.ToLower(strings.TrimSpace(v.vc)), strings.TrimSpace(v.moref)
		if vc == "" || moref == "" {
			sum.noID++
			continue
		}
		key := joinKey(vc, moref)
		if seen[key] {
			sum.duplicates++
			continue
		}
		seen[key] = true
		dims := map[string]string{DimVM: v.name, DimMoref: moref, DimVCenterUUID: vc, DimVROps: host, DimMode: mode, DimRulesVersion: RulesVersion}
		if vc == vcUUID {
			dims[DimVCenter] = vcHost
		} else {
			sum.unjoined[vc]++
		}
		obs = append(obs, collectors.Observation{
			Metric: collectors.MetricMonitoredVM, ObjectKey: key, Quantity: 1, Unit: collectors.UnitCount, Edition: ed, Dims: dims,
		})
	}
	return obs, sum
}
