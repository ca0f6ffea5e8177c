// Package aria is what the two Aria collectors (collectors/vrops, Aria
// Operations, and collectors/vrni, Aria Operations for Networks) share: the
// connection (Conn: the REST client, the pairing with a vCenter, a token
// that expires, kept between hours and renewed, Token), the billing mode
// option, and turning the monitored VMs each reads into vm.monitored
// observations keyed "<vCenter instance UUID>/moref/<MoRef>", with the
// summary each collection logs (the VMs not metered, and why; the vCenters
// other than the paired one, "unjoined"). Each product package keeps its
// API's shapes, its login body, its paging and its edition rules.
package aria

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/usagemeter/usagemeter/collectors"
)

// Dimension names of the observations (the product's host is under the
// product kind's name: "vrops", "vrni").
const (
	DimVM           = "vm"
	DimMoref        = "vm_moref"
	DimVCenterUUID  = "vcenter_uuid"
	DimVCenter      = "vcenter"
	DimMode         = "mode"
	DimRulesVersion = "rules_version"
)

// ParseMode checks the mode option of kind ("" is the default mode).
func ParseMode(kind, mode string) (string, error) {
	if mode == "" {
		return collectors.AriaModes[0], nil
	}
	if !slices.Contains(collectors.AriaModes, mode) {
		return "", fmt.Errorf("%s options: mode %q: must be one of %s", kind, mode, strings.Join(collectors.AriaModes, ", "))
	}
	return mode, nil
}

// JoinKey is the object key of the VM with MoRef value moref in the vCenter
// vc (its instance UUID, lower-cased as vCenter reports it; or, when it is
// not known, the vCenter's name): "<vc>/moref/<moref>", the key the srm
// collector uses, which the report joins to the vCenter's vm.vram through
// its vm_moref dim.
func JoinKey(vc, moref string) string {
	return strings.ToLower(strings.TrimSpace(vc)) + "/moref/" + strings.TrimSpace(moref)
}

// VM is one VM as a product lists it.
type VM struct {
	Name, MoRef string
	VCenter     string // instance UUID (or name, when the product does not say the UUID)
	// Skip is why the VM is not under monitoring ("" when it is), a
	// snake_case reason the summary counts.
	Skip string
}

// Product is what Build needs of a collection.
type Product struct {
	Kind         string // the dim the product's host goes under
	Host         string
	VCenterUUID  string // the paired vCenter's instance UUID ("" if none)
	VCenterHost  string // the paired vCenter's host name, the vcenter dim of its VMs
	Mode         string // collectors.AriaAddon or AriaStandalone
	Edition      string // the licence edition, "" if none
	RulesVersion string
}

// Summary is what Build left out or could not join.
type Summary struct {
	Skipped    map[string]int // VMs not under monitoring, by reason
	NoID       int            // VMs without a MoRef or a vCenter
	Duplicates int            // VMs listed more than once
	Unjoined   map[string]int // VMs by vCenter other than the paired one
}

// Build turns the VMs into one vm.monitored observation per monitored VM:
// a VM listed twice counts once, a VM without a MoRef or vCenter is left
// out (never guessed), a VM of another vCenter than the paired one is kept
// on its own key and counted in Summary.Unjoined. It is pure.
func (p Product) Build(vms []VM) ([]collectors.Observation, Summary) {
	sum := Summary{Skipped: map[string]int{}, Unjoined: map[string]int{}}
	seen := make(map[string]bool, len(vms))
	obs := make([]collectors.Observation, 0, len(vms))
	ed := collectors.AriaEdition(p.Edition, p.Mode)
	paired := strings.ToLower(p.VCenterUUID)
	for i := range vms {
		v := &vms[i]
		if v.Skip != "" {
			sum.Skipped[v.Skip]++
			continue
		}
		vc, moref := strings.ToLower(strings.TrimSpace(v.VCenter)), strings.TrimSpace(v.MoRef)
		if vc == "" || moref == "" {
			sum.NoID++
			continue
		}
		key := JoinKey(vc, moref)
		if seen[key] {
			sum.Duplicates++
			continue
		}
		seen[key] = true
		dims := map[string]string{DimVM: v.Name, DimMoref: moref, DimVCenterUUID: vc, p.Kind: p.Host, DimMode: p.Mode, DimRulesVersion: p.RulesVersion}
		if vc == paired {
			dims[DimVCenter] = p.VCenterHost
		} else {
			sum.Unjoined[vc]++
		}
		obs = append(obs, collectors.Observation{
			Metric: collectors.MetricMonitoredVM, ObjectKey: key, Quantity: 1, Unit: collectors.UnitCount, Edition: ed, Dims: dims,
		})
	}
	return obs, sum
}

// Log writes the summary of a collection that metered n VMs: a warning
// for the VMs left out, and one line that names the vCenters whose VMs
// were not joined to the paired one ("unjoined": they join only if those
// vCenters are registered too).
func (s Summary) Log(log *slog.Logger, p Product, n int) {
	if s.NoID > 0 || len(s.Skipped) > 0 {
		args := []any{"without_vcenter_or_moref", s.NoID}
		for _, r := range slices.Sorted(maps.Keys(s.Skipped)) {
			args = append(args, r, s.Skipped[r])
		}
		log.Warn("VMs not metered", args...)
	}
	if p.Edition == "" {
		log.Warn("no licence names an edition: the VMs are metered without one")
	}
	args := []any{"monitored_vms", n, "edition", p.Edition, "mode", p.Mode, "listed_twice", s.Duplicates}
	if len(s.Unjoined) == 0 {
		log.Info("collected", args...)
		return
	}
	vcs := slices.Sorted(maps.Keys(s.Unjoined))
	parts := make([]string, len(vcs))
	total := 0
	for i, vc := range vcs {
		parts[i] = fmt.Sprintf("%s (%d VMs)", vc, s.Unjoined[vc])
		total += s.Unjoined[vc]
	}
	args = append(args, "unjoined_vms", total, "unjoined_vcenters", strings.Join(parts, ", "))
	log.Info("collected; monitored VMs of vCenters other than the paired one are counted on their own keys and joined only if those vCenters are registered", args...)
}
