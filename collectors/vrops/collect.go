package vrops

import (
	"context"
	"fmt"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/internal/aria"
)

// Dimension names of the observations (collectors/internal/aria).
const (
	DimVM           = aria.DimVM
	DimMoref        = aria.DimMoref
	DimVCenterUUID  = aria.DimVCenterUUID
	DimVCenter      = aria.DimVCenter
	DimVROps        = Kind
	DimMode         = aria.DimMode
	DimRulesVersion = aria.DimRulesVersion
)

// Collect reads Aria Operations and returns one vm.monitored observation per
// monitored VM.
func (c *Collector) Collect(ctx context.Context, hour time.Time) ([]collectors.Observation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.EnsureSession(ctx); err != nil {
		return nil, err
	}
	var lic licenses
	if err := c.get(ctx, "/deployment/licenses", &lic); err != nil {
		return nil, fmt.Errorf("vrops %s: reading the licences (/deployment/licenses): %w", c.Host, err)
	}
	vms, err := c.read(ctx)
	if err != nil {
		return nil, err
	}
	p := c.product(edition(lic.List, time.Now()))
	obs, sum := p.Build(vms)
	c.lastVMs = len(vms)
	sum.Log(c.Log, p, len(obs))
	return obs, nil
}

// product is what aria.Build needs of this collection.
func (c *Collector) product(edition string) aria.Product {
	return aria.Product{Kind: Kind, Host: c.Host, VCenterUUID: c.VCenterUUID, VCenterHost: c.VCenterName, Mode: c.opts.Mode,
		Edition: edition, RulesVersion: RulesVersion}
}

// read lists the VirtualMachine resources of the vSphere adapter, page by
// page to the end.
func (c *Collector) read(ctx context.Context) ([]aria.VM, error) {
	const list = "/resources"
	vms := make([]aria.VM, 0, c.lastVMs)
	seen := 0
	for page := 0; ; page++ {
		p := new(resourcePage)
		path := fmt.Sprintf("%s?resourceKind=VirtualMachine&adapterKind=VMWARE&page=%d&pageSize=%d", list, page, c.opts.PageSize)
		if err := c.get(ctx, path, p); err != nil {
			return nil, c.RC.PageError(list, page+1, err)
		}
		if err := p.check(); err != nil {
			return nil, c.RC.PageError(list, page+1, err)
		}
		if p.PageInfo.Page != page {
			// A server that ignores page would page forever.
			return nil, c.RC.PageError(list, page+1, fmt.Errorf("the answer is for page %d, asked for %d", p.PageInfo.Page, page))
		}
		for i := range p.ResourceList {
			r := &p.ResourceList[i]
			name := r.ident("VMEntityName")
			if name == "" {
				name = r.ResourceKey.Name
			}
			vms = append(vms, aria.VM{Name: name, MoRef: r.ident("VMEntityObjectID"), VCenter: r.ident("VMEntityVCID"), Skip: skipOf(r)})
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
