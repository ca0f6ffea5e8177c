package nsxt

import "github.com/usagemeter/usagemeter/collectors"

// The NSX-T edition map of METERING.md, all in one place. The map is
// *assumed*: no public source settles it; RulesVersion names it in the report
// manifest.
//
//	Professional:    switching and routing (a VM on an NSX segment)
//	Advanced:        distributed firewall with a non-default rule,
//	                 load balancer, VPN
//	Enterprise Plus: distributed IDS/IPS (federation: not read, see README)

// RulesVersion identifies this edition map.
const RulesVersion = "nsxt-editions-assumed-1"

// Editions, from lowest to highest.
const (
	EditionProfessional   = "professional"
	EditionAdvanced       = "advanced"
	EditionEnterprisePlus = "enterprise-plus"
)

// Features that reach a VM.
const (
	FeatureSegment = "segment" // a VIF attached to an NSX segment port
	FeatureRouting = "routing" // that segment is connected to a gateway
	FeatureDFW     = "dfw"     // an enabled, non-default DFW rule applies to the VM
	FeatureLB      = "lb"      // the VM is a member of a load balancer pool's group
	FeatureVPN     = "vpn"     // the VM's segment is behind a gateway with a VPN service
	FeatureIDS     = "ids"     // an enabled distributed IDS/IPS rule applies to the VM
)

// featureEdition is the edition each feature needs (*assumed*).
var featureEdition = map[string]string{
	FeatureSegment: EditionProfessional,
	FeatureRouting: EditionProfessional,
	FeatureDFW:     EditionAdvanced,
	FeatureLB:      EditionAdvanced,
	FeatureVPN:     EditionAdvanced,
	FeatureIDS:     EditionEnterprisePlus,
}

// editionLadder is the ladder features climb: a VM is billed at the highest
// edition among the features that reach it.
var editionLadder = collectors.Editions{Order: []string{EditionProfessional, EditionAdvanced, EditionEnterprisePlus}, ByFeature: featureEdition}

// highestEdition is the highest edition among features.
func highestEdition(features []string) string { return editionLadder.Highest(features) }
