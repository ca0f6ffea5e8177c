package nsxv

import "github.com/usagemeter/usagemeter/collectors"

// The NSX-V edition map of METERING.md, all in one place. Features METERING.md
// names are taken as written; the rows marked *assumed* are features it does
// not name, placed where no public source settles them. RulesVersion names
// the map in the report manifest.
//
//	Base:       logical switching, logical routing (DLR), Edge firewall, NAT
//	Advanced:   distributed firewall with a non-default rule, service
//	            insertion (network introspection redirect rules);
//	            Edge load balancer, IPsec VPN, SSL VPN-Plus (*assumed*)
//	Enterprise: cross-vCenter (universal logical switches), L2VPN
//	            (hardware VTEP: not read, see README)

// RulesVersion identifies this edition map.
const RulesVersion = "nsxv-editions-1-partly-assumed"

// Editions, from lowest to highest.
const (
	EditionBase       = "base"
	EditionAdvanced   = "advanced"
	EditionEnterprise = "enterprise"
)

// Features that reach a VM.
const (
	FeatureLogicalSwitch    = "logical-switch"
	FeatureRouting          = "routing"
	FeatureEdgeFirewall     = "edge-firewall"
	FeatureNAT              = "nat"
	FeatureDFW              = "dfw"
	FeatureServiceInsertion = "service-insertion"
	FeatureEdgeLB           = "edge-lb"  // *assumed* Advanced
	FeatureIPsecVPN         = "ipsec"    // *assumed* Advanced
	FeatureSSLVPN           = "ssl-vpn"  // *assumed* Advanced
	FeatureCrossVCenter     = "cross-vc" // universal logical switch
	FeatureL2VPN            = "l2vpn"
)

var featureEdition = map[string]string{
	FeatureLogicalSwitch:    EditionBase,
	FeatureRouting:          EditionBase,
	FeatureEdgeFirewall:     EditionBase,
	FeatureNAT:              EditionBase,
	FeatureDFW:              EditionAdvanced,
	FeatureServiceInsertion: EditionAdvanced,
	FeatureEdgeLB:           EditionAdvanced,
	FeatureIPsecVPN:         EditionAdvanced,
	FeatureSSLVPN:           EditionAdvanced,
	FeatureCrossVCenter:     EditionEnterprise,
	FeatureL2VPN:            EditionEnterprise,
}

// editionLadder is the ladder features climb: a VM is billed at the highest
// edition among the features that reach it.
var editionLadder = collectors.Editions{Order: []string{EditionBase, EditionAdvanced, EditionEnterprise}, ByFeature: featureEdition}

// highestEdition is the highest edition among features.
func highestEdition(features []string) string { return editionLadder.Highest(features) }
