package horizon

import (
	"slices"
	"strings"

	"github.com/usagemeter/usagemeter/collectors"
)

// RulesVersion names the Horizon metering rules below; it is set on every
// observation (dims) so that a change of rules shows in the spans.
const RulesVersion = "horizon-max-assumed-1"

// The editions of METERING.md.
const (
	EditionStandard     = "Standard"
	EditionAdvanced     = "Advanced"
	EditionEnterprise   = "Enterprise"
	EditionAppsStandard = "Apps Standard"
	EditionAppsAdvanced = "Apps Advanced"
)

// Editions is the Horizon edition ladder (*assumed*: the Apps editions,
// RDSH only, below the VDI ones) and the edition of each license_edition
// value of the reference's LicenseInfo. Workspace ONE Enterprise bundles
// Horizon Apps Advanced, and Workspace ONE Enterprise with VDI bundles
// Horizon Enterprise (*assumed* from the bundle names).
var Editions = collectors.Editions{
	Order: []string{EditionAppsStandard, EditionAppsAdvanced, EditionStandard, EditionAdvanced, EditionEnterprise},
	ByFeature: map[string]string{
		"HORIZON_STANDARD_CONCURRENT_USER":      EditionStandard,
		"HORIZON_STANDARD_NAMED_USER":           EditionStandard,
		"HORIZON_ADVANCED_CONCURRENT_USER":      EditionAdvanced,
		"HORIZON_ADVANCED_NAMED_USER":           EditionAdvanced,
		"HORIZON_ENTERPRISE_CONCURRENT_USER":    EditionEnterprise,
		"HORIZON_ENTERPRISE_NAMED_USER":         EditionEnterprise,
		"ENTERPRISE_CONCURRENT_USER":            EditionEnterprise, // View Enterprise
		"HORIZON_APPS_STANDARD_CONCURRENT_USER": EditionAppsStandard,
		"HORIZON_APPS_STANDARD_NAMED_USER":      EditionAppsStandard,
		"HORIZON_APPS_ADVANCED_CONCURRENT_USER": EditionAppsAdvanced,
		"HORIZON_APPS_ADVANCED_NAMED_USER":      EditionAppsAdvanced,
		"WS1_ENTERPRISE_NAMED_USER":             EditionAppsAdvanced,
		"WS1_ENTERPRISE_WITH_VDI_NAMED_USER":    EditionEnterprise,
	},
}

func editionRank(e string) int { return slices.Index(Editions.Order, e) }

// editionOf is the pod's edition: the highest edition among its licensed
// licences. unknown lists the license_edition values the map does not
// know (logged, never guessed); usage is the usage model of the licence
// that gave the edition.
func editionOf(ls []license) (edition, usage string, unknown []string) {
	for _, l := range ls {
		if !l.Licensed {
			continue
		}
		v := strings.ToUpper(strings.TrimSpace(l.Edition))
		e, ok := Editions.ByFeature[v]
		if !ok {
			if v != "" {
				unknown = append(unknown, v)
			}
			continue
		}
		if editionRank(e) > editionRank(edition) {
			edition, usage = e, l.UsageModel
		}
	}
	return edition, usage, unknown
}

// machineCounts reports whether a machine is a desktop VM under management
// (*assumed*): a machine of a desktop pool counts whatever its state, power
// state or the pool's enabled flag (a disabled pool's VMs are still
// managed), except one being deleted (state DELETING) and one whose VM no
// longer exists in vCenter (managed_machine_data.missing_in_vcenter).
// A machine of no pool (a registered physical machine) is not a desktop
// VM under management.
func machineCounts(m *machine) (ok bool, why string) {
	switch {
	case m.ID == "":
		return false, "without_id"
	case m.PoolID == "":
		return false, "in_no_pool"
	case strings.EqualFold(m.State, "DELETING"):
		return false, "deleting"
	case m.Managed != nil && m.Managed.MissingInVCenter:
		return false, "missing_in_vcenter"
	}
	return true, ""
}

// rdsh reports whether a session is an RDSH session under management: it
// runs on an RDS host, so it names a farm or an RDS server (RDS desktop and
// application sessions). Every state counts (connected, disconnected and
// pending sessions all hold the host: *assumed*). A VDI session (it names a
// machine) is not: its desktop VM is what is billed.
func rdsh(s *session) bool { return s.FarmID != "" || s.RDSServerID != "" }
