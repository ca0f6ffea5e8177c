package vrni

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
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
	DimVRNI         = Kind
	DimMode         = aria.DimMode
	DimRulesVersion = aria.DimRulesVersion
)

// Collect reads Aria Operations for Networks and returns one vm.monitored
// observation per monitored VM.
func (c *Collector) Collect(ctx context.Context, hour time.Time) ([]collectors.Observation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.EnsureSession(ctx); err != nil {
		return nil, err
	}
	var lic licensing
	if err := c.Call(ctx, http.MethodGet, "/settings/licensing", nil, &lic); err != nil {
		return nil, fmt.Errorf("vrni %s: reading the licences (/settings/licensing): %w", c.Host, err)
	}
	vcs, err := c.vcenters(ctx)
	if err != nil {
		return nil, err
	}
	vms, err := c.vms(ctx, vcs)
	if err != nil {
		return nil, err
	}
	p := aria.Product{Kind: Kind, Host: c.Host, VCenterUUID: c.VCenterUUID, VCenterHost: c.VCenterName, Mode: c.opts.Mode,
		Edition: edition(lic.Result.Licenses), RulesVersion: RulesVersion}
	obs, sum := p.Build(vms)
	c.lastVMs = len(vms)
	sum.Log(c.Log, p, len(obs))
	return obs, nil
}

// listAll pages through a list of references with cursor and size,
// calling page with each page's references.
func (c *Collector) listAll(ctx context.Context, list string, page func([]ref) error) error {
	cursor, seen := "", 0
	for n := 1; ; n++ {
		q := url.Values{"size": {fmt.Sprint(c.opts.PageSize)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		p := new(refPage)
		if err := c.Call(ctx, http.MethodGet, list+"?"+q.Encode(), nil, p); err != nil {
			return c.RC.PageError(list, n, err)
		}
		if err := p.check(); err != nil {
			return c.RC.PageError(list, n, err)
		}
		if err := page(p.Results); err != nil {
			return c.RC.PageError(list, n, err)
		}
		seen += len(p.Results)
		if p.Cursor == "" || len(p.Results) == 0 {
			return nil
		}
		if p.Cursor == cursor || (p.TotalCount > 0 && seen > p.TotalCount) {
			// A cursor that does not move would page forever.
			return c.RC.PageError(list, n, fmt.Errorf("the cursor does not advance (%d references read, total_count %d)", seen, p.TotalCount))
		}
		cursor = p.Cursor
	}
}

// fetch reads the entities of refs of type typ in one POST /entities/fetch.
func fetch[E any](ctx context.Context, c *Collector, typ string, refs []ref) (*fetched[E], error) {
	ids := make([]ref, 0, len(refs))
	for _, r := range refs {
		if r.Type == "" || r.Type == typ {
			ids = append(ids, ref{ID: r.ID, Type: typ})
		}
	}
	f := new(fetched[E])
	if len(ids) == 0 {
		return f, nil
	}
	body, _ := json.Marshal(map[string]any{"entity_ids": ids})
	if err := c.Call(ctx, http.MethodPost, "/entities/fetch", body, f); err != nil {
		return nil, fmt.Errorf("fetching %d %s entities: %w", len(ids), typ, err)
	}
	return f, nil
}

// vcenters maps the entity id of each vCenter data source to its vCenter's
// instance UUID, when known, or else its fqdn (or name, or IP).
func (c *Collector) vcenters(ctx context.Context) (map[string]string, error) {
	vcs := map[string]string{}
	err := c.listAll(ctx, "/entities/vcenter-managers", func(refs []ref) error {
		f, err := fetch[vcEntity](ctx, c, "VCenterManager", refs)
		if err != nil {
			return err
		}
		for _, r := range f.Results {
			vcs[r.Entity.ID] = c.uuidOf(r.Entity)
		}
		return nil
	})
	return vcs, err
}

// uuidOf is a vCenter data source's instance UUID: the paired vCenter's
// when its fqdn or IP is the address the paired vCenter was added with,
// else the one option vcenter_uuids gives for its fqdn or IP; else its
// fqdn, name or IP, a key that joins nothing.
func (c *Collector) uuidOf(v vcEntity) string {
	for _, a := range []string{v.FQDN, v.IPAddress.IP, v.Name} {
		a = normalAddr(a)
		switch {
		case a == "":
		case a == c.vcHost:
			return c.VCenterUUID
		case c.opts.VCenterUUIDs[a] != "":
			return c.opts.VCenterUUIDs[a]
		}
	}
	for _, a := range []string{v.FQDN, v.Name, v.IPAddress.IP} {
		if a = normalAddr(a); a != "" {
			return a
		}
	}
	return ""
}

// vms lists the VMs, page by page, each page's entities fetched at once.
func (c *Collector) vms(ctx context.Context, vcs map[string]string) ([]aria.VM, error) {
	vms := make([]aria.VM, 0, c.lastVMs)
	err := c.listAll(ctx, "/entities/vms", func(refs []ref) error {
		f, err := fetch[vmEntity](ctx, c, "VirtualMachine", refs)
		if err != nil {
			return err
		}
		for _, r := range f.Results {
			e := &r.Entity
			v := aria.VM{Name: e.Name, MoRef: e.VendorID}
			switch {
			case e.VCenterManager == nil || e.VCenterManager.ID == "":
				v.Skip = skipNoVCenter
			default:
				// A data source removed since the list was read: its
				// entity id stands for it (it joins nothing).
				v.VCenter = vcs[e.VCenterManager.ID]
				if v.VCenter == "" {
					v.VCenter = e.VCenterManager.ID
				}
			}
			vms = append(vms, v)
		}
		return nil
	})
	return vms, err
}
