package nsxv

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
)

// Dimension names of the observations.
const (
	DimVM            = "vm"
	DimPowerState    = "power_state"
	DimLogicalSwitch = "logical_switches"
	DimFeatures      = "features"
	DimNSX           = "nsx"
	DimMoref         = "vm_moref"
	DimRulesVersion  = "rules_version"
)

// nsxState is what one collection reads from NSX-V.
type nsxState struct {
	wires    []virtualWire
	edges    []edge
	fw       firewallConfig
	groups   map[string][]string // security group id -> VM MoRefs
	capacity capacityUsage
}

// Collect reads NSX-V and the paired vCenter and returns one nsx.vm
// observation per VM reached by an NSX feature.
func (c *Collector) Collect(ctx context.Context, hour time.Time) ([]collectors.Observation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := c.readNSX(ctx)
	if err != nil {
		return nil, err
	}
	vms, err := c.vc.vms(ctx)
	if err != nil {
		return nil, fmt.Errorf("nsxv %s: %w", c.host, err)
	}
	obs, sk := build(c.vcUUID, c.host, st, vms)
	for _, f := range st.capacity.Features {
		for _, u := range f.Usage {
			c.log.Debug("licence capacity usage", "feature", f.Feature, "capacity_type", u.Type, "usage", u.Count)
		}
	}
	if sk.unknownVM > 0 || sk.noUUID > 0 || sk.unresolved > 0 {
		c.log.Warn("VMs or rule targets skipped", "unknown_vm", sk.unknownVM, "no_instance_uuid", sk.noUUID, "unresolved_applied_to", sk.unresolved)
	}
	return obs, nil
}

func (c *Collector) readNSX(ctx context.Context) (*nsxState, error) {
	st := &nsxState{groups: map[string][]string{}}
	size := strconv.Itoa(c.opts.PageSize)
	for page, start := 1, 0; ; page++ {
		var p virtualWires
		if err := c.get(ctx, "/api/2.0/vdn/virtualwires?startindex="+strconv.Itoa(start)+"&pagesize="+size, &p); err != nil {
			return nil, c.rc.PageError("logical switches", page, err)
		}
		st.wires = append(st.wires, p.Wires...)
		start += len(p.Wires)
		if len(p.Wires) == 0 || start >= p.Paging.TotalCount {
			break
		}
	}
	var summaries []edgeSummary
	for page, start := 1, 0; ; page++ {
		var p pagedEdgeList
		if err := c.get(ctx, "/api/4.0/edges?startIndex="+strconv.Itoa(start)+"&pageSize="+size, &p); err != nil {
			return nil, c.rc.PageError("edges", page, err)
		}
		summaries = append(summaries, p.Edges...)
		start += len(p.Edges)
		if len(p.Edges) == 0 || start >= p.Paging.TotalCount {
			break
		}
	}
	for _, s := range summaries {
		var e edge
		if err := c.get(ctx, "/api/4.0/edges/"+s.ID, &e); err != nil {
			return nil, fmt.Errorf("nsxv %s: edge %s: %w", c.host, s.ID, err)
		}
		st.edges = append(st.edges, e)
	}
	if err := c.get(ctx, "/api/4.0/firewall/globalroot-0/config", &st.fw); err != nil {
		return nil, fmt.Errorf("nsxv %s: firewall configuration: %w", c.host, err)
	}
	for _, secs := range [][]fwSection{st.fw.Layer3, st.fw.Redirect} {
		for _, s := range secs {
			for _, r := range s.Rules {
				for _, a := range r.AppliedTo {
					if a.Type != "SecurityGroup" || st.groups[a.Value] != nil {
						continue
					}
					var n vmNodes
					if err := c.get(ctx, "/api/2.0/services/securitygroup/"+a.Value+"/translation/virtualmachines", &n); err != nil {
						return nil, fmt.Errorf("nsxv %s: security group %s members: %w", c.host, a.Value, err)
					}
					st.groups[a.Value] = append([]string{}, n.IDs...)
				}
			}
		}
	}
	if err := c.get(ctx, "/api/2.0/services/licensing/capacityusage", &st.capacity); err != nil {
		return nil, fmt.Errorf("nsxv %s: licence capacity usage: %w", c.host, err)
	}
	return st, nil
}

// skips counts what build could not tie to a VM, without guessing.
type skips struct {
	unknownVM  int // a rule names a VM MoRef the vCenter does not list
	noUUID     int // a reached VM has no instance UUID
	unresolved int // appliedTo types not resolved to VMs (datacenter, resource pool, IP set, ...)
}

// isDefaultRule reports whether r is one of the rules NSX-V creates in its
// default section ("Default Rule", "Default Rule NDP", "Default Rule DHCP").
func isDefaultRule(s fwSection, r fwRule) bool {
	return strings.HasPrefix(s.Name, "Default Section") && strings.HasPrefix(r.Name, "Default Rule")
}

// build turns NSX-V's state and the vCenter's VMs into observations. It is
// pure: the NSX-V rules of METERING.md live here and in editions.go.
func build(vcUUID, host string, st *nsxState, vms []vcVM) ([]collectors.Observation, skips) {
	var sk skips
	byMoref := make(map[string]*vcVM, len(vms))
	onNetwork := map[string][]string{} // network MoRef -> VM MoRefs
	onHost := map[string][]string{}    // host or cluster MoRef -> VM MoRefs
	var all []string
	for i := range vms {
		v := &vms[i]
		if v.template {
			continue
		}
		byMoref[v.moref] = v
		all = append(all, v.moref)
		for _, n := range v.networks {
			onNetwork[n] = append(onNetwork[n], v.moref)
		}
		if v.host != "" {
			onHost[v.host] = append(onHost[v.host], v.moref)
		}
		if v.cluster != "" {
			onHost[v.cluster] = append(onHost[v.cluster], v.moref)
		}
	}
	reach := map[string]map[string]bool{}
	add := func(moref, f string) {
		if _, ok := byMoref[moref]; !ok {
			sk.unknownVM++
			return
		}
		m := reach[moref]
		if m == nil {
			m = map[string]bool{}
			reach[moref] = m
		}
		m[f] = true
	}
	switches := map[string][]string{} // VM MoRef -> logical switch names
	wireByID := map[string]virtualWire{}
	for _, w := range st.wires {
		wireByID[w.ObjectID] = w
		for _, m := range onNetwork[w.BackingValue] {
			add(m, FeatureLogicalSwitch)
			if w.IsUniversal {
				add(m, FeatureCrossVCenter)
			}
			if !slices.Contains(switches[m], w.Name) {
				switches[m] = append(switches[m], w.Name)
			}
		}
	}
	for _, e := range st.edges {
		var feats []string
		if e.Type == "distributedRouter" {
			feats = append(feats, FeatureRouting)
		} else {
			f := e.Features
			for _, x := range []struct {
				on   bool
				name string
			}{
				{f.Firewall.Enabled, FeatureEdgeFirewall}, {f.NAT.Enabled, FeatureNAT}, {f.L2VPN.Enabled, FeatureL2VPN},
				{f.LoadBalancer.Enabled, FeatureEdgeLB}, {f.IPsec.Enabled, FeatureIPsecVPN}, {f.SSLVPN.Enabled, FeatureSSLVPN},
			} {
				if x.on {
					feats = append(feats, x.name)
				}
			}
		}
		for _, n := range append(slices.Clone(e.Vnics), e.Interfaces...) {
			pg := n
			if w, ok := wireByID[n]; ok {
				pg = w.BackingValue
			}
			for _, m := range onNetwork[pg] {
				for _, f := range feats {
					add(m, f)
				}
			}
		}
	}
	resolve := func(list []appliedTo) []string {
		var out []string
		for _, a := range list {
			switch a.Type {
			case "DISTRIBUTED_FIREWALL", "ANY":
				return all
			case "VirtualMachine":
				out = append(out, a.Value)
			case "SecurityGroup":
				out = append(out, st.groups[a.Value]...)
			case "VirtualWire":
				out = append(out, onNetwork[wireByID[a.Value].BackingValue]...)
			case "DistributedVirtualPortgroup", "Network":
				out = append(out, onNetwork[a.Value]...)
			case "HostSystem", "ClusterComputeResource":
				out = append(out, onHost[a.Value]...)
			case "ALL_EDGES", "Edge":
				// applies to edges, not to VMs
			default:
				sk.unresolved++
			}
		}
		return out
	}
	for _, s := range st.fw.Layer3 {
		for _, r := range s.Rules {
			if r.Disabled || isDefaultRule(s, r) {
				continue
			}
			for _, m := range resolve(r.AppliedTo) {
				add(m, FeatureDFW)
			}
		}
	}
	for _, s := range st.fw.Redirect {
		for _, r := range s.Rules {
			if r.Disabled {
				continue
			}
			for _, m := range resolve(r.AppliedTo) {
				add(m, FeatureServiceInsertion)
			}
		}
	}
	morefs := make([]string, 0, len(reach))
	for m := range reach {
		morefs = append(morefs, m)
	}
	sort.Strings(morefs)
	obs := make([]collectors.Observation, 0, len(morefs))
	for _, m := range morefs {
		v := byMoref[m]
		if v.uuid == "" {
			sk.noUUID++
			continue
		}
		feats := make([]string, 0, len(reach[m]))
		for f := range reach[m] {
			feats = append(feats, f)
		}
		sort.Strings(feats)
		sw := slices.Clone(switches[m])
		sort.Strings(sw)
		obs = append(obs, collectors.Observation{
			Metric:    collectors.MetricNSXVM,
			ObjectKey: vcUUID + "/vm/" + v.uuid,
			Quantity:  1,
			Unit:      collectors.UnitCount,
			Edition:   highestEdition(feats),
			Dims: map[string]string{
				DimVM:            v.name,
				DimPowerState:    v.power,
				DimLogicalSwitch: strings.Join(sw, ","),
				DimFeatures:      strings.Join(feats, ","),
				DimNSX:           host,
				DimMoref:         m,
				DimRulesVersion:  RulesVersion,
			},
		})
	}
	return obs, sk
}
