package vrops

import (
	"strings"
	"time"
	"unicode"

	"github.com/usagemeter/usagemeter/collectors"
)

// RulesVersion names the Aria Operations metering rules below; it is set on
// every observation (dims) so that a change of rules shows in the spans.
const RulesVersion = "vrops-monitored-assumed-1"

// Editions of Aria Operations, lowest first (METERING.md: from the licences,
// the highest wins).
const (
	EditionStandard   = "Standard"
	EditionAdvanced   = "Advanced"
	EditionEnterprise = "Enterprise"
)

var editions = collectors.Editions{
	Order:     []string{EditionStandard, EditionAdvanced, EditionEnterprise},
	ByFeature: map[string]string{"standard": EditionStandard, "advanced": EditionAdvanced, "enterprise": EditionEnterprise},
}

// edition is the highest edition among the licences that have not expired
// at now: a licence's edition names it as a word ("Advanced", "vRealize
// Operations Enterprise", "ENTERPRISE", "VROPS_ADVANCED"); "" when no
// licence says one.
func edition(ls []license, now time.Time) string {
	var words []string
	for _, l := range ls {
		if l.ExpirationDate > 0 && time.UnixMilli(l.ExpirationDate).Before(now) {
			continue
		}
		words = append(words, strings.FieldsFunc(strings.ToLower(l.Edition), func(r rune) bool { return !unicode.IsLetter(r) })...)
	}
	return editions.Highest(words)
}

// Resource states of a VM that vROps keeps after it left its vCenter (the
// reference's ResourceState).
var goneStates = map[string]bool{"NOT_EXISTING": true, "REMOVING": true}

// Why a VirtualMachine resource is not metered (skipOf).
const (
	skipGone         = "no_longer_in_vcenter" // vROps keeps it after it left its vCenter
	skipOtherAdapter = "other_adapter"        // not a vSphere VM (another adapter's VirtualMachine kind)
)

// skipOf says whether a VirtualMachine resource is a VM under monitoring
// (*assumed*, METERING.md): "" for every VM of the vSphere adapter
// (adapterKindKey VMWARE), powered on or not (the resource list does not
// say, and monitoring is billed, not running), unless each of its status
// states says it no longer exists in its vCenter (NOT_EXISTING, REMOVING).
func skipOf(r *resource) string {
	if !strings.EqualFold(r.ResourceKey.AdapterKindKey, "VMWARE") {
		return skipOtherAdapter
	}
	for _, s := range r.StatusStates {
		if !goneStates[strings.ToUpper(s.ResourceState)] {
			return ""
		}
	}
	if len(r.StatusStates) == 0 {
		return ""
	}
	return skipGone
}
