package nsxt

import (
	"context"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
)

// Dimension names of the observations.
const (
	DimVM           = "vm"
	DimPowerState   = "power_state"
	DimSegments     = "segments"
	DimFeatures     = "features"
	DimNSX          = "nsx"
	DimExternalID   = "vm_external_id"
	DimLicense      = "nsx_license"
	DimRulesVersion = "rules_version"
)

// inventory is what one collection reads.
type inventory struct {
	vms      []vm
	reach    map[string]map[string]bool // external id -> features
	segments map[string][]string        // external id -> segment names
	licences []string
}

func (in *inventory) add(extID, feature string) {
	m := in.reach[extID]
	if m == nil {
		m = map[string]bool{}
		in.reach[extID] = m
	}
	m[feature] = true
}

// Collect reads NSX and returns one nsx.vm observation per VM reached by an
// NSX feature.
func (c *Collector) Collect(ctx context.Context, hour time.Time) ([]collectors.Observation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ensureSession(ctx); err != nil {
		return nil, err
	}
	in, err := c.read(ctx)
	if err != nil {
		return nil, err
	}
	obs, skipped := build(c.vcUUID, c.host, in)
	if skipped > 0 {
		c.log.Warn("VMs reached by NSX without an instanceUuid in compute_ids were skipped", "skipped", skipped)
	}
	c.lastVMs = len(in.vms)
	return obs, nil
}

// read fetches the inventory and works out which features reach which VM.
func (c *Collector) read(ctx context.Context) (*inventory, error) {
	in := &inventory{vms: make([]vm, 0, c.lastVMs), reach: map[string]map[string]bool{}, segments: map[string][]string{}}
	if err := listAll(ctx, c, "/api/v1/fabric/virtual-machines", func(v *vm) { in.vms = append(in.vms, *v) }); err != nil {
		return nil, err
	}
	all := make([]string, 0, len(in.vms))
	for i := range in.vms {
		all = append(all, in.vms[i].ExternalID)
	}
	owner := map[string]string{} // lport attachment id -> VM external id
	if err := listAll(ctx, c, "/api/v1/fabric/vifs", func(v *vif) {
		if v.LportAttachmentID != "" {
			owner[v.LportAttachmentID] = v.OwnerVMID
		}
	}); err != nil {
		return nil, err
	}
	var segs []segment
	if err := listAll(ctx, c, "/policy/api/v1/infra/segments", func(s *segment) { segs = append(segs, *s) }); err != nil {
		return nil, err
	}
	tier0Of := map[string]string{}
	if err := listAll(ctx, c, "/policy/api/v1/infra/tier-1s", func(t *tier1) { tier0Of[t.Path] = t.Tier0Path }); err != nil {
		return nil, err
	}
	vpnGateways := map[string]bool{}
	if err := listAll(ctx, c, "/policy/api/v1/search/query?query="+url.QueryEscape("resource_type:IPSecVpnService OR resource_type:L2VPNService"), func(h *searchHit) {
		if gw, _, ok := strings.Cut(h.ParentPath, "/locale-services"); ok {
			vpnGateways[gw] = true
		}
	}); err != nil {
		return nil, err
	}
	for _, s := range segs {
		name := s.DisplayName
		if name == "" {
			name = s.ID
		}
		gw := s.ConnectivityPath
		vpn := gw != "" && (vpnGateways[gw] || vpnGateways[tier0Of[gw]])
		err := listAll(ctx, c, "/policy/api/v1/infra/segments/"+s.ID+"/ports", func(p *segmentPort) {
			if p.Attachment == nil {
				return
			}
			id, ok := owner[p.Attachment.ID]
			if !ok {
				return
			}
			in.add(id, FeatureSegment)
			if gw != "" {
				in.add(id, FeatureRouting)
			}
			if vpn {
				in.add(id, FeatureVPN)
			}
			if !slices.Contains(in.segments[id], name) {
				in.segments[id] = append(in.segments[id], name)
			}
		})
		if err != nil {
			return nil, err
		}
	}

	groups := map[string][]string{} // group path -> member external ids
	members := func(paths []string) ([]string, error) {
		if len(paths) == 0 || slices.Contains(paths, "ANY") {
			return all, nil
		}
		var out []string
		for _, g := range paths {
			m, ok := groups[g]
			if !ok {
				m = []string{}
				err := listAll(ctx, c, "/policy/api/v1"+g+"/members/virtual-machines", func(r *member) { m = append(m, r.ID) })
				if err != nil {
					return nil, err
				}
				groups[g] = m
			}
			out = append(out, m...)
		}
		return out, nil
	}
	for _, kind := range []struct{ coll, feature string }{
		{"security-policies", FeatureDFW},
		{"intrusion-service-policies", FeatureIDS},
	} {
		var pols []policy
		base := "/policy/api/v1/infra/domains/default/" + kind.coll
		if err := listAll(ctx, c, base, func(p *policy) { pols = append(pols, *p) }); err != nil {
			return nil, err
		}
		for _, p := range pols {
			if p.IsDefault {
				continue
			}
			var rules []rule
			if err := listAll(ctx, c, base+"/"+p.ID+"/rules", func(r *rule) { rules = append(rules, *r) }); err != nil {
				return nil, err
			}
			for _, r := range rules {
				if r.IsDefault || r.Disabled {
					continue
				}
				scope := r.Scope
				if len(scope) == 0 || slices.Contains(scope, "ANY") {
					scope = p.Scope
				}
				ids, err := members(scope)
				if err != nil {
					return nil, err
				}
				for _, id := range ids {
					in.add(id, kind.feature)
				}
			}
		}
	}
	var pools []lbPool
	if err := listAll(ctx, c, "/policy/api/v1/infra/lb-pools", func(p *lbPool) { pools = append(pools, *p) }); err != nil {
		return nil, err
	}
	for _, p := range pools {
		if p.MemberGroup == nil || p.MemberGroup.GroupPath == "" {
			continue // static IP members cannot be tied to a VM without guessing
		}
		ids, err := members([]string{p.MemberGroup.GroupPath})
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			in.add(id, FeatureLB)
		}
	}
	if err := listAll(ctx, c, "/api/v1/licenses", func(l *license) {
		d := l.Description
		if l.IsEval {
			d += " (evaluation)"
		}
		in.licences = append(in.licences, d)
	}); err != nil {
		return nil, err
	}
	sort.Strings(in.licences)
	return in, nil
}

// build turns an inventory into observations. It is pure: the NSX-T rules of
// METERING.md live here and in editions.go.
func build(vcUUID, host string, in *inventory) ([]collectors.Observation, int) {
	obs := make([]collectors.Observation, 0, len(in.reach))
	skipped := 0
	lic := strings.Join(in.licences, "; ")
	for i := range in.vms {
		v := &in.vms[i]
		feats := in.reach[v.ExternalID]
		if len(feats) == 0 || (v.Type != "" && v.Type != "REGULAR") {
			continue
		}
		uuid := v.computeID("instanceUuid")
		if uuid == "" {
			skipped++
			continue
		}
		list := make([]string, 0, len(feats))
		for f := range feats {
			list = append(list, f)
		}
		sort.Strings(list)
		segs := slices.Clone(in.segments[v.ExternalID])
		sort.Strings(segs)
		obs = append(obs, collectors.Observation{
			Metric:    collectors.MetricNSXVM,
			ObjectKey: vcUUID + "/vm/" + uuid,
			Quantity:  1,
			Unit:      collectors.UnitCount,
			Edition:   highestEdition(list),
			Dims: map[string]string{
				DimVM:           v.DisplayName,
				DimPowerState:   v.PowerState,
				DimSegments:     strings.Join(segs, ","),
				DimFeatures:     strings.Join(list, ","),
				DimNSX:          host,
				DimExternalID:   v.ExternalID,
				DimLicense:      lic,
				DimRulesVersion: RulesVersion,
			},
		})
	}
	return obs, skipped
}
