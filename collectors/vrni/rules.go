package vrni

import (
	"strings"

	"github.com/usagemeter/usagemeter/collectors"
)

// RulesVersion names the Aria Operations for Networks metering rules below;
// it is set on every observation (dims) so that a change of rules shows in
// the spans.
const RulesVersion = "vrni-monitored-assumed-1"

// Editions of Aria Operations for Networks, lowest first (METERING.md).
const (
	EditionAdvanced   = "Advanced"
	EditionEnterprise = "Enterprise"
)

// editions maps the reference's licence editions to the billed ones
// (*assumed*: UNIVERSAL, the subscription licence with Enterprise features,
// is Enterprise; ROBO, SDWAN, NAV and VRNIC editions bill no VM edition).
var editions = collectors.Editions{
	Order:     []string{EditionAdvanced, EditionEnterprise},
	ByFeature: map[string]string{"ADVANCED": EditionAdvanced, "ENTERPRISE": EditionEnterprise, "UNIVERSAL": EditionEnterprise},
}

// edition is the highest edition among the licences in force: not
// expired, deleted, suspended or invalid (an evaluation licence counts: it
// is the edition in use); "" when none names one.
func edition(ls []license) string {
	var eds []string
	for _, l := range ls {
		if l.Expired || l.Deleted || l.Suspended || l.Invalid {
			continue
		}
		eds = append(eds, strings.ToUpper(strings.TrimSpace(l.Edition)))
	}
	return editions.Highest(eds)
}

// skipNoVCenter is why a VM no vCenter manages is not metered (*assumed*:
// METERING.md bills vSphere VMs, joined to their vCenter; a public-cloud VM
// a vRNI also lists has no vCenter MoRef).
const skipNoVCenter = "not_in_a_vcenter"
