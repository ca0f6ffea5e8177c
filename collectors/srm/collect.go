package srm

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// Dimension names of the observations.
const (
	DimVM              = "vm"
	DimGroup           = "protection_group"
	DimReplicationType = "replication_type"
	DimSRM             = "srm"
	DimMoref           = "vm_moref"
	DimRulesVersion    = "rules_version"
)

// protectedVM is one VM as read from the groups, before it becomes an
// observation.
type protectedVM struct {
	id, name, group, replication string
	status                       string
}

// inventory is what one collection reads.
type inventory struct {
	vms           []protectedVM
	pairings      int // pairings whose local vCenter is the paired one
	otherPairings []string
	otherGroups   int // groups protecting another vCenter's VMs
	gone          int // pairings or groups deleted while being read
}

// Collect reads SRM and returns one vm.protected observation per protected
// VM of the paired vCenter.
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
	if in.pairings == 0 && len(in.otherPairings) > 0 {
		return nil, fmt.Errorf("srm %s: no pairing has the paired vCenter %s as its local vCenter (local vCenters: %s): is the product paired with the right vCenter?",
			c.host, c.vcUUID, strings.Join(in.otherPairings, ", "))
	}
	obs, sk := build(c.vcUUID, c.host, in.vms)
	if sk.missing > 0 || sk.noID > 0 {
		c.log.Warn("protected VM records skipped", "deleted_from_inventory", sk.missing, "without_id", sk.noID)
	}
	if in.gone > 0 {
		c.log.Info("pairings or protection groups deleted during the collection were skipped", "count", in.gone)
	}
	if in.otherGroups > 0 {
		c.log.Debug("protection groups of the remote vCenter not metered here", "groups", in.otherGroups)
	}
	c.lastVMs = len(in.vms)
	return obs, nil
}

// read lists the pairings, their groups protecting the paired vCenter and
// those groups' VMs.
func (c *Collector) read(ctx context.Context) (*inventory, error) {
	in := &inventory{vms: make([]protectedVM, 0, c.lastVMs)}
	var prs []pairing
	if err := listAll(ctx, c, "/pairings", func(p *pairing) { prs = append(prs, *p) }); err != nil {
		return nil, err
	}
	for _, p := range prs {
		if !strings.EqualFold(p.LocalVC.ID, c.vcUUID) {
			in.otherPairings = append(in.otherPairings, p.LocalVC.ID)
			continue
		}
		in.pairings++
		gpath := "/pairings/" + url.PathEscape(p.PairingID) + "/protection-management/groups"
		var groups []group
		if err := listAll(ctx, c, gpath, func(g *group) { groups = append(groups, *g) }); err != nil {
			if deleted(err) {
				in.gone++ // unpaired since /pairings was read: it protects nothing now
				continue
			}
			return nil, err
		}
		for _, g := range groups {
			if !strings.EqualFold(g.ProtectedVCGUID, c.vcUUID) {
				in.otherGroups++
				continue
			}
			name := g.Name
			if name == "" {
				name = g.ID
			}
			err := listAll(ctx, c, gpath+"/"+url.PathEscape(g.ID)+"/vms", func(v *groupVM) {
				in.vms = append(in.vms, protectedVM{id: v.ID, name: v.Name, group: name,
					replication: g.ReplicationType, status: v.Status.Status})
			})
			if deleted(err) {
				in.gone++ // deleted since its pairing's groups were read: its VMs are not protected now
				continue
			}
			if err != nil {
				return nil, err
			}
		}
	}
	return in, nil
}

// deleted reports whether a list answered 404 Not Found: its pairing or
// group was removed after the list that named it was read.
func deleted(err error) bool { return rest.StatusIs(err, http.StatusNotFound) }

// skipped counts the records build leaves out.
type skipped struct{ missing, noID int }

// build turns the protected VMs into observations, one per VM. It is pure:
// the SRM rules of METERING.md live here and in rules.go.
func build(vcUUID, host string, vms []protectedVM) ([]collectors.Observation, skipped) {
	type acc struct {
		name, moref        string
		groups, replicated []string
	}
	var sk skipped
	byKey := make(map[string]*acc, len(vms))
	keys := make([]string, 0, len(vms))
	for i := range vms {
		v := &vms[i]
		if !counts(v.status) {
			sk.missing++
			continue
		}
		moref := morefOf(v.id)
		if moref == "" {
			sk.noID++
			continue
		}
		key := vcUUID + "/moref/" + moref
		a := byKey[key]
		if a == nil {
			a = &acc{name: v.name, moref: moref}
			byKey[key] = a
			keys = append(keys, key)
		}
		if a.name == "" {
			a.name = v.name
		}
		if !slices.Contains(a.groups, v.group) {
			a.groups = append(a.groups, v.group)
		}
		rt := strings.ToUpper(v.replication)
		if rt != "" && !slices.Contains(a.replicated, rt) {
			a.replicated = append(a.replicated, rt)
		}
	}
	sort.Strings(keys)
	obs := make([]collectors.Observation, 0, len(keys))
	for _, k := range keys {
		a := byKey[k]
		sort.Strings(a.groups)
		sort.Strings(a.replicated)
		obs = append(obs, collectors.Observation{
			Metric:    collectors.MetricVMProtected,
			ObjectKey: k,
			Quantity:  1,
			Unit:      collectors.UnitCount,
			Dims: map[string]string{
				DimVM:              a.name,
				DimGroup:           strings.Join(a.groups, ","),
				DimReplicationType: strings.Join(a.replicated, ","),
				DimSRM:             host,
				DimMoref:           a.moref,
				DimRulesVersion:    RulesVersion,
			},
		})
	}
	return obs, sk
}
