// Package nsxv simulates the parts of the NSX for vSphere (NSX-V) Manager XML
// API that the usage meter reads.
//
// References followed (public): vmware-archive/nsxraml, nsxvapi.raml and its
// md-version/nsxvapi.md, schemas/*.xsd and example XML:
//   - every call uses HTTP Basic; a wrong password is 403 Forbidden (the
//     reference's 403 status-code text), no session;
//   - GET /api/2.0/services/licensing/capacityusage:
//     featureCapacityUsageList/featureCapacityUsageInfo{feature, featureName,
//     capacityUsageInfo{capacityType, usageCount}};
//   - GET /api/2.0/vdn/virtualwires?startindex=&pagesize= (pagesize at most
//     1024): virtualWires/dataPage{pagingInfo{pageSize, startIndex,
//     totalCount}, virtualWire{objectId, name, vdnId, isUniversal,
//     vdsContextWithBacking{switch{objectId}, backingType, backingValue}}};
//     the backingValue is the logical switch's dvportgroup MoRef;
//   - GET /api/4.0/edges?startIndex=&pageSize=: pagedEdgeList/edgePage
//     {pagingInfo, edgeSummary{objectId, id, name, edgeType}}, and
//     GET /api/4.0/edges/{edgeId}: edge{id, name, type, vnics/vnic
//     {portgroupId, isConnected}, interfaces/interface{connectedToId} for a
//     distributed router, features{firewall, nat, l2Vpn, loadBalancer,
//     ipsec, sslvpnConfig}{enabled}};
//   - GET /api/4.0/firewall/globalroot-0/config: firewallConfiguration
//     {layer3Sections, layer2Sections, layer3RedirectSections}/section{id,
//     name, type}/rule{id, disabled}{name, action, appliedToList/appliedTo
//     {name, value, type, isValid}}; the default rules are in the last
//     layer-3 section, "Default Section Layer3";
//   - GET /api/2.0/services/securitygroup/{id}/translation/virtualmachines:
//     vmnodes/vmnode{vmId, vmName} (effective membership, VM MoRefs);
//   - GET /api/1.0/appliance-management/global/info: globalInfo
//     {currentLoggedInUser, versionInfo{majorVersion, minorVersion,
//     patchVersion, buildNumber}}; GET /api/1.0/appliance-management/
//     summary/system: systemSummary{hostName, ...}.
//
// APIS.md lists the same endpoints; it does not say that the logical
// switches do not list their VMs: NSX-V has no such call, so which VMs are on
// a logical switch is a vCenter fact (the dvportgroup's VMs).
//
// The simulator's choices: a call on a page past the end returns an empty
// page; the XML carries no namespace (as NSX-V answers).
package simulator

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/usagemeter/usagemeter/collectors/internal/simhttp"
)

// State is what the simulated NSX-V Manager holds. VM and portgroup
// references are vCenter MoRefs (vm-N, dvportgroup-N).
type State struct {
	User     string `json:"user"`
	Password string `json:"password"`
	Hostname string `json:"hostname"`
	Version  string `json:"version"` // major.minor.patch

	VirtualWires   []VirtualWire   `json:"virtualwires"`
	Edges          []Edge          `json:"edges"`
	Sections       []Section       `json:"sections"` // layer-3 sections; the last is the default one
	RedirectRules  []Rule          `json:"redirect_rules"`
	SecurityGroups []SecurityGroup `json:"security_groups"`
	Capacity       []Capacity      `json:"capacity"`
}

// VirtualWire is a logical switch.
type VirtualWire struct {
	ID        string `json:"id"` // virtualwire-N
	Name      string `json:"name"`
	Portgroup string `json:"portgroup"` // backing dvportgroup MoRef
	Universal bool   `json:"universal,omitempty"`
}

// Edge is an edge services gateway or a distributed logical router.
type Edge struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Type     string   `json:"type"`     // gatewayServices or distributedRouter
	Networks []string `json:"networks"` // portgroup ids its vNICs/interfaces connect to (virtualwire-N)
	Features []string `json:"features"` // enabled: firewall, nat, l2Vpn, loadBalancer, ipsec, sslvpnConfig
}

// Section is a layer-3 DFW section.
type Section struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Rules []Rule `json:"rules"`
}

// Rule is a DFW rule; AppliedTo entries are "TYPE:value" (DISTRIBUTED_FIREWALL,
// VirtualWire:virtualwire-N, VirtualMachine:vm-N, SecurityGroup:securitygroup-N).
type Rule struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Disabled  bool     `json:"disabled,omitempty"`
	AppliedTo []string `json:"applied_to"`
}

// SecurityGroup is a security group with its effective VM members (MoRefs).
type SecurityGroup struct {
	ID      string   `json:"id"`
	Members []string `json:"members"`
	Names   []string `json:"names,omitempty"`
}

// Capacity is one licence usage figure.
type Capacity struct {
	Feature string `json:"feature"`
	Type    string `json:"type"` // CPU, VM, CONCURRENT_USER
	Count   int    `json:"count"`
}

// Faults are error modes a test switches on.
type Faults struct {
	FailPage     int           // virtualwires page FailPage (1-based) answers 500
	Delay        time.Duration // added before every answer
	MalformField string        // that element of every virtualWire gets a non-XML-safe or wrong value
	Truncate     bool          // the virtualwires bodies are cut in half
	Endless      bool          // the virtualwires answer is a page whose logical switches never end
	RejectAll    bool          // every call is refused with 403 (password changed)
}

// Server is a simulated NSX-V Manager. It is safe for concurrent use.
type Server struct {
	core simhttp.Core[Faults]

	mu sync.Mutex
	st State
}

// New returns a simulator holding st.
func New(st State) *Server {
	if st.Hostname == "" {
		st.Hostname = "nsxv-mgr-01"
	}
	if st.Version == "" {
		st.Version = "6.4.14"
	}
	return &Server{st: st}
}

// LoadState decodes a State from JSON, refusing unknown keys.
func LoadState(b []byte) (State, error) { return simhttp.LoadState[State]("nsxv", b) }

// Start serves s on a TLS test server; it returns the URL and thumbprint.
func (s *Server) Start(t simhttp.TB) (url, thumbprint string) {
	t.Helper()
	return simhttp.StartTLS(t, s)
}

// Serve is Start outside a test: it returns a function that stops the server.
func (s *Server) Serve() (url, thumbprint string, stop func()) { return simhttp.ServeTLS(s) }

// SetFaults replaces the error modes.
func (s *Server) SetFaults(f Faults) { s.core.SetFaults(f) }

// SetState replaces the state.
func (s *Server) SetState(st State) {
	n := New(st)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st = n.st
}

// Calls is the number of requests served.
func (s *Server) Calls() int { return s.core.Calls() }

// apiError writes the NSX-V error document.
func apiError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error><details>%s</details><errorCode>%d</errorCode><moduleName>core-services</moduleName></error>", xmlEscape(msg), code)
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func writeXML(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/xml")
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(body)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, _ := s.core.Begin()
	s.mu.Lock()
	st := s.st
	s.mu.Unlock()
	simhttp.Wait(r, f.Delay)
	w.Header().Set("Server", "")
	u, p, ok := r.BasicAuth()
	if !ok || f.RejectAll || u != st.User || p != st.Password {
		w.Header().Set("WWW-Authenticate", `Basic realm="NSX Manager"`)
		apiError(w, http.StatusForbidden, 403, "The credentials were incorrect or the account specified has been locked.")
		return
	}
	if r.Method != http.MethodGet {
		apiError(w, http.StatusMethodNotAllowed, 100, "Method not allowed")
		return
	}
	q := r.URL.Query()
	path := r.URL.Path
	switch {
	case path == "/api/2.0/services/licensing/capacityusage":
		var b strings.Builder
		b.WriteString("<featureCapacityUsageList>")
		byFeature := map[string][]Capacity{}
		var order []string
		for _, c := range st.Capacity {
			if _, ok := byFeature[c.Feature]; !ok {
				order = append(order, c.Feature)
			}
			byFeature[c.Feature] = append(byFeature[c.Feature], c)
		}
		for _, feat := range order {
			fmt.Fprintf(&b, "<featureCapacityUsageInfo><feature>%s</feature><featureName>%s</featureName>", xmlEscape(feat), xmlEscape(feat))
			for _, c := range byFeature[feat] {
				fmt.Fprintf(&b, "<capacityUsageInfo><capacityType>%s</capacityType><usageCount>%d</usageCount></capacityUsageInfo>", xmlEscape(c.Type), c.Count)
			}
			b.WriteString("</featureCapacityUsageInfo>")
		}
		b.WriteString("</featureCapacityUsageList>")
		writeXML(w, []byte(b.String()))
	case path == "/api/2.0/vdn/virtualwires":
		start, size, ok := paging(w, q, "startindex", "pagesize", 20, 1024)
		if !ok {
			return
		}
		if f.FailPage > 0 && start/size+1 == f.FailPage {
			apiError(w, http.StatusInternalServerError, 100, "Internal server error has occurred.")
			return
		}
		if f.Endless {
			head := fmt.Sprintf("%s<virtualWires><dataPage><pagingInfo><pageSize>%d</pageSize><startIndex>%d</startIndex><totalCount>%d</totalCount><sortOrderAscending>true</sortOrderAscending></pagingInfo>", xml.Header, size, start, len(st.VirtualWires))
			wire := "<virtualWire><objectId>virtualwire-42</objectId><objectTypeName>VirtualWire</objectTypeName><name>tenant-a-web</name><tenantId>virtual wire tenant</tenantId><vdnScopeId>vdnscope-1</vdnScopeId><vdsContextWithBacking><switch><objectId>dvs-21</objectId><objectTypeName>VmwareDistributedVirtualSwitch</objectTypeName><name>dvs-compute</name></switch><mtu>1600</mtu><promiscuousMode>false</promiscuousMode><backingType>portgroup</backingType><backingValue>dvportgroup-142</backingValue></vdsContextWithBacking><vdnId>5042</vdnId><guestVlanAllowed>false</guestVlanAllowed><controlPlaneMode>UNICAST_MODE</controlPlaneMode><isUniversal>false</isUniversal><universalRevision>0</universalRevision></virtualWire>"
			simhttp.Endless(w, r, "application/xml", []byte(head), []byte(wire), nil)
			return
		}
		end := min(start+size, len(st.VirtualWires))
		var b strings.Builder
		fmt.Fprintf(&b, "<virtualWires><dataPage><pagingInfo><pageSize>%d</pageSize><startIndex>%d</startIndex><totalCount>%d</totalCount><sortOrderAscending>true</sortOrderAscending></pagingInfo>", size, start, len(st.VirtualWires))
		for i := start; i < end; i++ {
			vw := st.VirtualWires[i]
			vdn := strconv.Itoa(5000 + i)
			universal := strconv.FormatBool(vw.Universal)
			if f.MalformField == "vdnId" {
				vdn = "five-thousand"
			}
			if f.MalformField == "isUniversal" {
				universal = "maybe"
			}
			name := xmlEscape(vw.Name)
			if f.MalformField == "name" {
				name = "<b>unclosed"
			}
			fmt.Fprintf(&b, "<virtualWire><objectId>%s</objectId><objectTypeName>VirtualWire</objectTypeName><name>%s</name><tenantId>virtual wire tenant</tenantId><vdnScopeId>vdnscope-1</vdnScopeId><vdsContextWithBacking><switch><objectId>dvs-21</objectId><objectTypeName>VmwareDistributedVirtualSwitch</objectTypeName><name>dvs-compute</name></switch><mtu>1600</mtu><promiscuousMode>false</promiscuousMode><backingType>portgroup</backingType><backingValue>%s</backingValue></vdsContextWithBacking><vdnId>%s</vdnId><guestVlanAllowed>false</guestVlanAllowed><controlPlaneMode>UNICAST_MODE</controlPlaneMode><isUniversal>%s</isUniversal><universalRevision>0</universalRevision></virtualWire>",
				xmlEscape(vw.ID), name, xmlEscape(vw.Portgroup), vdn, universal)
		}
		b.WriteString("</dataPage></virtualWires>")
		body := []byte(b.String())
		if f.Truncate {
			body = body[:len(body)/2]
		}
		writeXML(w, body)
	case path == "/api/4.0/edges":
		start, size, ok := paging(w, q, "startIndex", "pageSize", 256, 1024)
		if !ok {
			return
		}
		end := min(start+size, len(st.Edges))
		var b strings.Builder
		fmt.Fprintf(&b, "<pagedEdgeList><edgePage><pagingInfo><pageSize>%d</pageSize><startIndex>%d</startIndex><totalCount>%d</totalCount><sortOrderAscending>true</sortOrderAscending><sortBy>id</sortBy></pagingInfo>", size, start, len(st.Edges))
		for i := start; i < end; i++ {
			e := st.Edges[i]
			fmt.Fprintf(&b, "<edgeSummary><objectId>%s</objectId><objectTypeName>Edge</objectTypeName><name>%s</name><id>%s</id><state>deployed</state><edgeType>%s</edgeType><datacenterMoid>datacenter-2</datacenterMoid></edgeSummary>",
				xmlEscape(e.ID), xmlEscape(e.Name), xmlEscape(e.ID), xmlEscape(e.Type))
		}
		b.WriteString("</edgePage></pagedEdgeList>")
		writeXML(w, []byte(b.String()))
	case strings.HasPrefix(path, "/api/4.0/edges/"):
		id := strings.TrimPrefix(path, "/api/4.0/edges/")
		for _, e := range st.Edges {
			if e.ID == id {
				writeXML(w, edgeXML(e))
				return
			}
		}
		apiError(w, http.StatusNotFound, 10013, "Edge "+id+" not found.")
	case path == "/api/4.0/firewall/globalroot-0/config":
		writeXML(w, firewallXML(st))
	case strings.HasPrefix(path, "/api/2.0/services/securitygroup/") && strings.HasSuffix(path, "/translation/virtualmachines"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/api/2.0/services/securitygroup/"), "/translation/virtualmachines")
		for _, g := range st.SecurityGroups {
			if g.ID != id {
				continue
			}
			var b strings.Builder
			b.WriteString("<vmnodes>")
			for i, m := range g.Members {
				name := m
				if i < len(g.Names) {
					name = g.Names[i]
				}
				fmt.Fprintf(&b, "<vmnode><vmId>%s</vmId><vmName>%s</vmName></vmnode>", xmlEscape(m), xmlEscape(name))
			}
			b.WriteString("</vmnodes>")
			writeXML(w, []byte(b.String()))
			return
		}
		apiError(w, http.StatusNotFound, 202, "Security group "+id+" not found.")
	case path == "/api/1.0/appliance-management/global/info":
		v := strings.SplitN(st.Version, ".", 3)
		for len(v) < 3 {
			v = append(v, "0")
		}
		writeXML(w, fmt.Appendf(nil, "<globalInfo><currentLoggedInUser>%s</currentLoggedInUser><versionInfo><majorVersion>%s</majorVersion><minorVersion>%s</minorVersion><patchVersion>%s</patchVersion><buildNumber>17803445</buildNumber></versionInfo></globalInfo>",
			xmlEscape(st.User), v[0], v[1], v[2]))
	case path == "/api/1.0/appliance-management/summary/system":
		writeXML(w, fmt.Appendf(nil, "<systemSummary><ipv4Address>192.0.2.10</ipv4Address><dnsName>%s.example.net</dnsName><hostName>%s</hostName><domainName>example.net</domainName><applianceName>vShield Virtual Appliance Management</applianceName></systemSummary>",
			xmlEscape(st.Hostname), xmlEscape(st.Hostname)))
	default:
		apiError(w, http.StatusNotFound, 202, "The requested URI: "+path+" could not be found.")
	}
}

// paging reads start/size parameters (NSX-V names differ per API).
func paging(w http.ResponseWriter, q map[string][]string, startKey, sizeKey string, def, maxSize int) (start, size int, ok bool) {
	size = def
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if v := get(sizeKey); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			apiError(w, http.StatusBadRequest, 210, "Invalid value for "+sizeKey)
			return 0, 0, false
		}
		size = min(n, maxSize)
	}
	if v := get(startKey); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			apiError(w, http.StatusBadRequest, 210, "Invalid value for "+startKey)
			return 0, 0, false
		}
		start = n
	}
	return start, size, true
}

func edgeXML(e Edge) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "<edge><id>%s</id><version>3</version><status>deployed</status><datacenterMoid>datacenter-2</datacenterMoid><name>%s</name><tenant>default</tenant><type>%s</type>",
		xmlEscape(e.ID), xmlEscape(e.Name), xmlEscape(e.Type))
	if e.Type == "distributedRouter" {
		b.WriteString("<interfaces>")
		for i, n := range e.Networks {
			fmt.Fprintf(&b, "<interface><label>27110000000%d</label><name>lif-%d</name><type>internal</type><mtu>1500</mtu><isConnected>true</isConnected><connectedToId>%s</connectedToId><index>%d</index></interface>", i, i, xmlEscape(n), 10+i)
		}
		b.WriteString("</interfaces>")
	} else {
		b.WriteString("<vnics>")
		for i, n := range e.Networks {
			fmt.Fprintf(&b, "<vnic><label>vNic_%d</label><name>vnic%d</name><mtu>1500</mtu><type>internal</type><isConnected>true</isConnected><index>%d</index><portgroupId>%s</portgroupId></vnic>", i, i, i, xmlEscape(n))
		}
		b.WriteString("</vnics>")
	}
	b.WriteString("<features>")
	for _, feat := range []string{"firewall", "nat", "l2Vpn", "loadBalancer", "ipsec", "sslvpnConfig", "routing", "dhcp"} {
		on := false
		for _, f := range e.Features {
			on = on || f == feat
		}
		fmt.Fprintf(&b, "<%s><version>1</version><enabled>%t</enabled></%s>", feat, on, feat)
	}
	b.WriteString("</features></edge>")
	return []byte(b.String())
}

func appliedTo(b *strings.Builder, list []string) {
	b.WriteString("<appliedToList>")
	if len(list) == 0 {
		list = []string{"DISTRIBUTED_FIREWALL"}
	}
	for _, a := range list {
		typ, val, ok := strings.Cut(a, ":")
		if !ok {
			val = typ
		}
		fmt.Fprintf(b, "<appliedTo><name>%s</name><value>%s</value><type>%s</type><isValid>true</isValid></appliedTo>", xmlEscape(val), xmlEscape(val), xmlEscape(typ))
	}
	b.WriteString("</appliedToList>")
}

func firewallXML(st State) []byte {
	var b strings.Builder
	b.WriteString("<firewallConfiguration timestamp=\"1700000000000\"><contextId>globalroot-0</contextId><layer3Sections>")
	for _, s := range st.Sections {
		fmt.Fprintf(&b, "<section id=\"%s\" name=\"%s\" generationNumber=\"1700000000000\" timestamp=\"1700000000000\" type=\"LAYER3\">", xmlEscape(s.ID), xmlEscape(s.Name))
		for _, r := range s.Rules {
			fmt.Fprintf(&b, "<rule id=\"%s\" disabled=\"%t\" logged=\"false\"><name>%s</name><action>allow</action>", xmlEscape(r.ID), r.Disabled, xmlEscape(r.Name))
			appliedTo(&b, r.AppliedTo)
			fmt.Fprintf(&b, "<sectionId>%s</sectionId><direction>inout</direction><packetType>any</packetType></rule>", xmlEscape(s.ID))
		}
		b.WriteString("</section>")
	}
	b.WriteString("</layer3Sections><layer2Sections><section id=\"1001\" name=\"Default Section Layer2\" type=\"LAYER2\"><rule id=\"1000\" disabled=\"false\" logged=\"false\"><name>Default Rule</name><action>allow</action>")
	appliedTo(&b, nil)
	b.WriteString("<sectionId>1001</sectionId></rule></section></layer2Sections><layer3RedirectSections>")
	if len(st.RedirectRules) > 0 {
		b.WriteString("<section id=\"1002\" name=\"Partner services\" type=\"L3REDIRECT\">")
		for _, r := range st.RedirectRules {
			fmt.Fprintf(&b, "<rule id=\"%s\" disabled=\"%t\" logged=\"false\"><name>%s</name><action>redirect</action>", xmlEscape(r.ID), r.Disabled, xmlEscape(r.Name))
			appliedTo(&b, r.AppliedTo)
			b.WriteString("<sectionId>1002</sectionId></rule>")
		}
		b.WriteString("</section>")
	}
	b.WriteString("</layer3RedirectSections></firewallConfiguration>")
	return []byte(b.String())
}
