package nsxv

import (
	"encoding/xml"
)

// pagingInfo is the NSX-V paging element.
type pagingInfo struct {
	PageSize   int `xml:"pageSize"`
	StartIndex int `xml:"startIndex"`
	TotalCount int `xml:"totalCount"`
}

// virtualWire is a logical switch.
type virtualWire struct {
	ObjectID     string `xml:"objectId"`
	Name         string `xml:"name"`
	VdnID        int    `xml:"vdnId"`
	IsUniversal  bool   `xml:"isUniversal"`
	BackingType  string `xml:"vdsContextWithBacking>backingType"`
	BackingValue string `xml:"vdsContextWithBacking>backingValue"`
}

// virtualWires is GET /api/2.0/vdn/virtualwires.
type virtualWires struct {
	XMLName xml.Name      `xml:"virtualWires"`
	Paging  pagingInfo    `xml:"dataPage>pagingInfo"`
	Wires   []virtualWire `xml:"dataPage>virtualWire"`
}

// edgeSummary is one entry of GET /api/4.0/edges.
type edgeSummary struct {
	ID       string `xml:"objectId"`
	Name     string `xml:"name"`
	EdgeType string `xml:"edgeType"`
}

// pagedEdgeList is GET /api/4.0/edges.
type pagedEdgeList struct {
	XMLName xml.Name      `xml:"pagedEdgeList"`
	Paging  pagingInfo    `xml:"edgePage>pagingInfo"`
	Edges   []edgeSummary `xml:"edgePage>edgeSummary"`
}

// feature is an edge feature's enabled flag.
type feature struct {
	Enabled bool `xml:"enabled"`
}

// edge is GET /api/4.0/edges/{id}.
type edge struct {
	XMLName    xml.Name `xml:"edge"`
	ID         string   `xml:"id"`
	Name       string   `xml:"name"`
	Type       string   `xml:"type"`
	Vnics      []string `xml:"vnics>vnic>portgroupId"`
	Interfaces []string `xml:"interfaces>interface>connectedToId"`
	Features   struct {
		Firewall     feature `xml:"firewall"`
		NAT          feature `xml:"nat"`
		L2VPN        feature `xml:"l2Vpn"`
		LoadBalancer feature `xml:"loadBalancer"`
		IPsec        feature `xml:"ipsec"`
		SSLVPN       feature `xml:"sslvpnConfig"`
	} `xml:"features"`
}

// appliedTo is one element of a rule's appliedToList.
type appliedTo struct {
	Value string `xml:"value"`
	Type  string `xml:"type"`
}

// fwRule is a DFW rule.
type fwRule struct {
	ID        string      `xml:"id,attr"`
	Disabled  bool        `xml:"disabled,attr"`
	Name      string      `xml:"name"`
	AppliedTo []appliedTo `xml:"appliedToList>appliedTo"`
}

// fwSection is a DFW section.
type fwSection struct {
	ID    string   `xml:"id,attr"`
	Name  string   `xml:"name,attr"`
	Rules []fwRule `xml:"rule"`
}

// firewallConfig is GET /api/4.0/firewall/globalroot-0/config.
type firewallConfig struct {
	XMLName  xml.Name    `xml:"firewallConfiguration"`
	Layer3   []fwSection `xml:"layer3Sections>section"`
	Redirect []fwSection `xml:"layer3RedirectSections>section"`
}

// vmNodes is GET .../securitygroup/{id}/translation/virtualmachines.
type vmNodes struct {
	XMLName xml.Name `xml:"vmnodes"`
	IDs     []string `xml:"vmnode>vmId"`
}

// capacityUsage is GET /api/2.0/services/licensing/capacityusage.
type capacityUsage struct {
	XMLName  xml.Name `xml:"featureCapacityUsageList"`
	Features []struct {
		Feature string `xml:"feature"`
		Usage   []struct {
			Type  string `xml:"capacityType"`
			Count int    `xml:"usageCount"`
		} `xml:"capacityUsageInfo"`
	} `xml:"featureCapacityUsageInfo"`
}

// globalInfo is GET /api/1.0/appliance-management/global/info.
type globalInfo struct {
	XMLName xml.Name `xml:"globalInfo"`
	Version struct {
		Major string `xml:"majorVersion"`
		Minor string `xml:"minorVersion"`
		Patch string `xml:"patchVersion"`
		Build string `xml:"buildNumber"`
	} `xml:"versionInfo"`
}

// systemSummary is GET /api/1.0/appliance-management/summary/system.
type systemSummary struct {
	XMLName  xml.Name `xml:"systemSummary"`
	HostName string   `xml:"hostName"`
}

// errorBody is the NSX-V error document.
type errorBody struct {
	Details string `xml:"details"`
	Code    int    `xml:"errorCode"`
}
