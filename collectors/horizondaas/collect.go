package horizondaas

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
)

// Dimension names of the observations.
const (
	DimTenant       = "tenant"
	DimDaaS         = "daas"
	DimRulesVersion = "rules_version"
)

// tenantUsage is what one collection reads of one enabled tenant.
type tenantUsage struct {
	id, name, edition string
	connected         int
}

// inventory is what one collection reads.
type inventory struct {
	tenants    []tenantUsage
	disabled   int // tenants not read
	noEdition  int // tenants without a connection quota edition
	duplicates int // sessions listed twice
}

// Collect reads DaaS and returns one connections observation per enabled
// tenant.
func (c *Collector) Collect(ctx context.Context, hour time.Time) ([]collectors.Observation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.rc.EnsureSession(ctx, &c.sess); err != nil {
		return nil, err
	}
	in, err := c.read(ctx)
	if err != nil {
		return nil, err
	}
	if in.disabled > 0 {
		c.log.Info("disabled tenants not metered", "tenants", in.disabled)
	}
	if in.noEdition > 0 {
		c.log.Warn("tenants without a concurrent connection quota edition, metered without an edition", "tenants", in.noEdition)
	}
	if in.duplicates > 0 {
		c.log.Warn("sessions listed more than once were counted once", "sessions", in.duplicates)
	}
	return build(c.host, in.tenants), nil
}

// read lists the organizations, then each enabled tenant's quotas and
// sessions.
func (c *Collector) read(ctx context.Context) (*inventory, error) {
	var orgs orgList
	if err := c.get(ctx, "/security/manager/organizations", &orgs); err != nil {
		return nil, fmt.Errorf("%s %s: /security/manager/organizations: %w", Kind, c.host, err)
	}
	in := &inventory{}
	seenOrg := map[string]bool{}
	for i := range orgs.Orgs {
		o := &orgs.Orgs[i]
		tenant, enabled := metered(o)
		if !tenant || o.ID == "" || seenOrg[o.ID] {
			continue
		}
		seenOrg[o.ID] = true
		if !enabled {
			in.disabled++
			continue
		}
		qpath := "/security/organization/" + url.PathEscape(o.ID) + "/quotas"
		var ql quotaList
		if err := c.get(ctx, qpath, &ql); err != nil {
			return nil, fmt.Errorf("%s %s: %s: %w", Kind, c.host, qpath, err)
		}
		t := tenantUsage{id: o.ID, name: o.Name, edition: editionOf(ql.Quotas)}
		if t.edition == "" {
			in.noEdition++
		}
		n, dup, err := c.countConnected(ctx, o.ID)
		if err != nil {
			return nil, err
		}
		t.connected, in.duplicates = n, in.duplicates+dup
		in.tenants = append(in.tenants, t)
	}
	return in, nil
}

// countConnected pages through a tenant's sessions and counts the
// connected ones, each session id once.
func (c *Collector) countConnected(ctx context.Context, orgID string) (n, dup int, err error) {
	const list = "/session/manager/sessions"
	seen := map[string]struct{}{}
	start, prevFirst := 0, ""
	for page := 1; ; page++ {
		p := new(sessionReport)
		q := url.Values{"orgId": {orgID}, "start": {fmt.Sprint(start)}, "limit": {fmt.Sprint(c.opts.PageSize)}}
		if err := c.get(ctx, list+"?"+q.Encode(), p); err != nil {
			return 0, 0, c.rc.PageError(list+" of tenant "+orgID, page, err)
		}
		if err := p.check(); err != nil {
			return 0, 0, c.rc.PageError(list+" of tenant "+orgID, page, err)
		}
		if len(p.Sessions) > 0 {
			first := p.Sessions[0].ID
			if page > 1 && first != "" && first == prevFirst {
				// A server that ignores start would page forever.
				return 0, 0, c.rc.PageError(list+" of tenant "+orgID, page, fmt.Errorf("the answer for start %d repeats the previous page", start))
			}
			prevFirst = first
		}
		for i := range p.Sessions {
			s := &p.Sessions[i]
			if s.ID != "" {
				if _, ok := seen[s.ID]; ok {
					dup++
					continue
				}
				seen[s.ID] = struct{}{}
			}
			if connected(s.State) {
				n++
			}
		}
		start += len(p.Sessions)
		if len(p.Sessions) == 0 || (p.Total > 0 && start >= p.Total) || (p.Total == 0 && len(p.Sessions) < c.opts.PageSize) {
			return n, dup, nil
		}
	}
}

// build turns the tenants into observations, one per tenant. It is pure:
// the DaaS rules of METERING.md live here and in rules.go.
func build(host string, tenants []tenantUsage) []collectors.Observation {
	obs := make([]collectors.Observation, 0, len(tenants))
	for _, t := range tenants {
		obs = append(obs, collectors.Observation{
			Metric:    collectors.MetricConnections,
			ObjectKey: "tenant/" + t.id,
			Quantity:  float64(t.connected),
			Unit:      collectors.UnitCount,
			Edition:   t.edition,
			Dims:      map[string]string{DimTenant: t.name, DimDaaS: host, DimRulesVersion: RulesVersion},
		})
	}
	sort.Slice(obs, func(i, j int) bool { return obs[i].ObjectKey < obs[j].ObjectKey })
	return obs
}
