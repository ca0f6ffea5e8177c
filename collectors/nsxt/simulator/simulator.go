// Package nsxt simulates the parts of the NSX-T (NSX Data Center) Manager and
// Policy APIs that the usage meter reads.
//
// References followed (public):
//   - NSX API reference, CreateAuthenticatedSession: POST /api/session/create
//     with a form body j_username, j_password; the answer sets the JSESSIONID
//     cookie and carries an X-XSRF-TOKEN header, both sent on later calls.
//     HTTP Basic on every call is accepted as well.
//   - vmware/go-vmware-nsxt manager/virtual_machine.go (VirtualMachine:
//     external_id, display_name, host_id, local_id_on_host, power_state,
//     compute_ids "instanceUuid:...", "moIdOnHost:...", "biosUuid:...",
//     source, type, resource_type) and the list results (results,
//     result_count, cursor) of GET /api/v1/fabric/virtual-machines;
//     manager/virtual_network_interface.go for GET /api/v1/fabric/vifs
//     (external_id, owner_vm_id, lport_attachment_id, device_name,
//     mac_address, host_id).
//   - ManageIQ/manageiq-providers-nsxt spec/vcr_cassettes (refresher.yml):
//     recorded licence ("NSX Data Center Enterprise Plus", capacity_type CPU),
//     Policy API objects with id, display_name, path, relative_path,
//     parent_path, marked_for_delete, _revision, and the "Server: NSX" and
//     JSON content-type headers.
//   - Policy API: /policy/api/v1/infra/segments and .../segments/{id}/ports
//     (SegmentPort.attachment.id is the VIF's lport_attachment_id),
//     /policy/api/v1/infra/tier-1s (tier0_path),
//     /policy/api/v1/infra/domains/default/security-policies and .../{id}/rules
//     (is_default, scope, source_groups, destination_groups, disabled,
//     sequence_number), .../intrusion-service-policies/{id}/rules (distributed
//     IDS/IPS), .../groups/{id}/members/virtual-machines,
//     /policy/api/v1/infra/lb-pools (member_group.group_path) and the search
//     API /policy/api/v1/search/query?query=resource_type:... for VPN services
//     (parent_path is the gateway's locale service).
//   - Licences GET /api/v1/licenses (license_key, description, quantity,
//     capacity_type, is_eval, is_expired, expiry, features), the deprecated
//     GET /api/v1/license (the first licence) and the usage report GET
//     /api/v1/licenses/licenses-usage (feature_usage_info: feature,
//     capacity_usage of capacity_type VM, CPU, USER, CORE with usage_count),
//     as go-vmware-nsxt licensing_api.go and licensing/*.go read them;
//     identity GET /api/v1/cluster
//     (cluster_id) and GET /api/v1/node (product_version, hostname).
//
// Paging: cursor and page_size on every list; the last page has no cursor.
// page_size is 0 to 1000 in the API schema (ListRequestParameters; 1000, the
// default, when 0 or absent): a larger one is refused with NSX's field
// validation error (400, error_code 255), not served short; the message's
// wording is the simulator's. The list filters of the reference are
// honoured: display_name, external_id and host_id on
// /api/v1/fabric/virtual-machines; owner_vm_id, vm_id, host_id and
// lport_attachment_id on /api/v1/fabric/vifs; included_fields (a
// comma-separated list of fields) trims every list's records to those fields.
// Checked with go-vmware-nsxt by fidelity_test.go. Errors are the NSX error body
// {"httpStatus", "error_code", "module_name", "error_message"}.
//
// Over the API rate limit NSX answers 429 Too Many Requests (ThrottleEvery).
//
// The simulator's choices where the references are silent: a wrong password
// at /api/session/create is 403 Forbidden (as NSX answers); an expired or
// unknown JSESSIONID, or a missing X-XSRF-TOKEN, is 401 Unauthorized. The
// realized VM members of a group are listed with "id" = the VM's external_id.
package simulator

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/collectors/internal/simhttp"
)

// MaxPageSize is the largest and default page of a list.
const MaxPageSize = 1000

// State is what the simulated NSX Manager holds.
type State struct {
	User      string `json:"user"`
	Password  string `json:"password"`
	ClusterID string `json:"cluster_id"`
	Version   string `json:"version"`
	Hostname  string `json:"hostname"`

	VMs         []VM      `json:"vms"`
	Segments    []Segment `json:"segments"`
	Tier1s      []Tier1   `json:"tier1s"`
	Groups      []Group   `json:"groups"`
	Policies    []Policy  `json:"security_policies"`
	IDSPolicies []Policy  `json:"ids_policies"`
	LBPools     []LBPool  `json:"lb_pools"`
	VPNs        []VPN     `json:"vpns"`
	Licenses    []License `json:"licenses"`
	// LicenseUsage is the per-feature usage report; nil: derived from VMs.
	LicenseUsage []FeatureUsage `json:"license_usage,omitempty"`
}

// FeatureUsage is one feature's line of the licence usage report.
type FeatureUsage struct {
	Feature string `json:"feature"`
	VMs     int    `json:"vms"`
	CPUs    int    `json:"cpus"`
	Cores   int    `json:"cores"`
	Users   int    `json:"users"`
}

// VM is a VM in the fabric inventory; each NIC is on an NSX segment or on a
// plain (non-NSX) port group.
type VM struct {
	ExternalID   string `json:"external_id"` // usually the BIOS UUID-derived id NSX uses
	Name         string `json:"name"`
	PowerState   string `json:"power_state"` // VM_RUNNING, VM_STOPPED, VM_SUSPENDED, UNKNOWN
	InstanceUUID string `json:"instance_uuid"`
	Moref        string `json:"moref"`
	HostID       string `json:"host_id"`
	Type         string `json:"type,omitempty"` // REGULAR (default), EDGE, SERVICE
	NICs         []NIC  `json:"nics"`
}

// NIC is a VM network interface.
type NIC struct {
	Segment string `json:"segment,omitempty"` // Segment.ID; "" for a plain port group
}

// Segment is a Policy segment.
type Segment struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Connectivity string `json:"connectivity_path,omitempty"` // /infra/tier-1s/<id> or /infra/tier-0s/<id>
}

// Tier1 is a Tier-1 gateway.
type Tier1 struct {
	ID    string `json:"id"`
	Tier0 string `json:"tier0_path,omitempty"`
}

// Group is a Policy group with its realized VM members (external ids).
type Group struct {
	ID      string   `json:"id"`
	Members []string `json:"members"`
}

// Policy is a DFW security policy or an IDS/IPS policy.
type Policy struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Category  string   `json:"category,omitempty"`
	IsDefault bool     `json:"is_default,omitempty"`
	Scope     []string `json:"scope,omitempty"` // group paths; empty means ANY
	Rules     []Rule   `json:"rules"`
}

// Rule is a DFW or IDS rule.
type Rule struct {
	ID           string   `json:"id"`
	Action       string   `json:"action,omitempty"`
	Scope        []string `json:"scope,omitempty"`
	Sources      []string `json:"source_groups,omitempty"`
	Destinations []string `json:"destination_groups,omitempty"`
	Disabled     bool     `json:"disabled,omitempty"`
	IsDefault    bool     `json:"is_default,omitempty"`
}

// LBPool is a load balancer pool; MemberGroup is a group path.
type LBPool struct {
	ID          string `json:"id"`
	MemberGroup string `json:"member_group,omitempty"`
}

// VPN is an IPSec or L2 VPN service on a gateway.
type VPN struct {
	ID      string `json:"id"`
	Type    string `json:"type"`    // IPSecVpnService or L2VPNService
	Gateway string `json:"gateway"` // /infra/tier-1s/<id> or /infra/tier-0s/<id>
}

// License is an installed licence.
type License struct {
	Key          string `json:"key"`
	Description  string `json:"description"`
	Quantity     int    `json:"quantity"`
	CapacityType string `json:"capacity_type"`
	IsEval       bool   `json:"is_eval,omitempty"`
	Features     string `json:"features,omitempty"` // ";"-separated, as NSX lists them
}

// Faults are error modes a test switches on.
type Faults struct {
	ExpireAfter   int           // a session dies after that many calls (0: never)
	RejectAll     bool          // every session and Basic call is refused with 401
	FailPage      int           // page FailPage (1-based) of the VM list answers 500
	Delay         time.Duration // added before every answer
	MalformField  string        // that field of every VM record gets a wrong JSON type
	Truncate      bool          // the VM list bodies are cut in half
	Endless       bool          // the VM list answers a page whose results never end
	ThrottleEvery int           // every ThrottleEvery-th call answers 429 Too Many Requests (0: never)
}

// Server is a simulated NSX Manager. It is safe for concurrent use.
type Server struct {
	core     simhttp.Core[Faults]
	sessions simhttp.Sessions[string] // JSESSIONID -> X-XSRF-TOKEN

	st      State            // not changed after New
	vifs    []any            // built once from st
	ports   map[string][]any // segment id -> its ports, built once
	byExtID map[string]VM
}

// New returns a simulator holding st.
func New(st State) *Server {
	if st.ClusterID == "" {
		st.ClusterID = "9f3b8d2e-6c1a-4e5f-8a7b-0c1d2e3f4a5b"
	}
	if st.Version == "" {
		st.Version = "4.1.2.0.0.22589037"
	}
	if st.Hostname == "" {
		st.Hostname = "nsxmgr-01"
	}
	s := &Server{st: st, vifs: vifList(st), ports: map[string][]any{}, byExtID: map[string]VM{}}
	for _, vm := range st.VMs {
		s.byExtID[vm.ExternalID] = vm
		for n, nic := range vm.NICs {
			if nic.Segment == "" {
				continue
			}
			id := nic.Segment
			pid := portID(vm, n)
			m := policyObject("SegmentPort", pid, vm.Name+"/"+vm.ExternalID+"-vif-"+strconv.Itoa(n),
				"/infra/segments/"+id+"/ports/"+pid, "/infra/segments/"+id)
			m["attachment"] = map[string]any{"id": attachmentID(vm, n), "type": "PARENT", "traffic_tag": 0,
				"hyperbus_mode": "DISABLE"}
			m["admin_state"] = "UP"
			s.ports[id] = append(s.ports[id], m)
		}
	}
	return s
}

// LoadState decodes a State from JSON, refusing unknown keys.
func LoadState(b []byte) (State, error) { return simhttp.LoadState[State]("nsxt", b) }

// Start serves s on a TLS test server; it returns the URL and the
// certificate thumbprint.
func (s *Server) Start(t simhttp.TB) (url, thumbprint string) {
	t.Helper()
	return simhttp.StartTLS(t, s)
}

// Serve is Start outside a test: it returns a function that stops the server.
func (s *Server) Serve() (url, thumbprint string, stop func()) { return simhttp.ServeTLS(s) }

// SetFaults replaces the error modes.
func (s *Server) SetFaults(f Faults) { s.core.SetFaults(f) }

// ExpireSessions ends every session.
func (s *Server) ExpireSessions() { s.sessions.ExpireAll() }

// Logins is the number of sessions created.
func (s *Server) Logins() int { return s.sessions.Logins() }

// Calls is the number of requests served.
func (s *Server) Calls() int { return s.core.Calls() }

// nsxError writes the NSX error body.
func nsxError(w http.ResponseWriter, status, code int, module, msg string) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"httpStatus": strings.ToUpper(strings.ReplaceAll(http.StatusText(status), " ", "_")),
		"error_code": code, "module_name": module, "error_message": msg,
	})
}

func token() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return strings.ToUpper(fmt.Sprintf("%x", b))
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, n := s.core.Begin()
	st := s.st
	simhttp.Wait(r, f.Delay)
	w.Header().Set("Server", "NSX")
	if f.ThrottleEvery > 0 && n%f.ThrottleEvery == 0 {
		// NSX's API rate limit (default 100 requests/s per client).
		w.Header().Set("Retry-After", "0")
		nsxError(w, http.StatusTooManyRequests, 102, "common-services", "Client has exceeded the API rate limit.")
		return
	}
	if r.URL.Path == "/api/session/create" && r.Method == http.MethodPost {
		s.createSession(w, r, st, f)
		return
	}
	if !s.authorized(w, r, st, f) {
		return
	}
	if r.Method != http.MethodGet {
		if r.URL.Path == "/api/session/destroy" && r.Method == http.MethodPost {
			if c, err := r.Cookie("JSESSIONID"); err == nil {
				s.sessions.Close(c.Value)
			}
			w.WriteHeader(http.StatusOK)
			return
		}
		nsxError(w, http.StatusMethodNotAllowed, 99, "common-services", "Method not allowed")
		return
	}
	p := r.URL.Path
	switch {
	case p == "/api/v1/cluster":
		writeJSON(w, map[string]any{"cluster_id": st.ClusterID, "control_cluster_changes_allowed": true,
			"mgmt_cluster_changes_allowed": true, "nodes": []any{}, "_revision": 3})
	case p == "/api/v1/node":
		writeJSON(w, map[string]any{"product_version": st.Version, "node_version": st.Version,
			"hostname": st.Hostname, "fully_qualified_domain_name": st.Hostname + ".example.net",
			"resource_type": "NodeProperties"})
	case p == "/api/v1/licenses":
		s.list(w, r, f, false, len(st.Licenses), func(i int) any { return licenseRecord(st.Licenses[i]) })
	case p == "/api/v1/license":
		// Deprecated in the reference ("Return the Enterprise License"):
		// the first licence.
		if len(st.Licenses) == 0 {
			nsxError(w, http.StatusNotFound, 202, "common-services", "No license is installed.")
			return
		}
		writeJSON(w, licenseRecord(st.Licenses[0]))
	case p == "/api/v1/licenses/licenses-usage":
		writeJSON(w, map[string]any{"feature_usage_info": s.licenseUsage()})
	case p == "/api/v1/fabric/virtual-machines":
		s.list(w, r, f, true, len(st.VMs), func(i int) any { return vmRecord(st.VMs[i]) },
			"display_name", "display_name", "external_id", "external_id", "host_id", "host_id")
	case p == "/api/v1/fabric/vifs":
		s.list(w, r, f, false, len(s.vifs), func(i int) any { return s.vifs[i] },
			"owner_vm_id", "owner_vm_id", "vm_id", "owner_vm_id", "host_id", "host_id", "lport_attachment_id", "lport_attachment_id")
	case p == "/policy/api/v1/infra/segments":
		s.list(w, r, f, false, len(st.Segments), func(i int) any {
			g := st.Segments[i]
			m := policyObject("Segment", g.ID, g.Name, "/infra/segments/"+g.ID, "/infra")
			m["type"] = "ROUTED"
			if g.Connectivity == "" {
				m["type"] = "DISCONNECTED"
			} else {
				m["connectivity_path"] = g.Connectivity
			}
			m["transport_zone_path"] = "/infra/sites/default/enforcement-points/default/transport-zones/overlay-tz"
			return m
		})
	case strings.HasPrefix(p, "/policy/api/v1/infra/segments/") && strings.HasSuffix(p, "/ports"):
		id := strings.TrimSuffix(strings.TrimPrefix(p, "/policy/api/v1/infra/segments/"), "/ports")
		found := false
		for _, g := range st.Segments {
			found = found || g.ID == id
		}
		if !found {
			nsxError(w, http.StatusNotFound, 500012, "Policy", fmt.Sprintf("Segment /infra/segments/%s not found", id))
			return
		}
		ports := s.ports[id]
		s.list(w, r, f, false, len(ports), func(i int) any { return ports[i] })
	case p == "/policy/api/v1/infra/tier-1s":
		s.list(w, r, f, false, len(st.Tier1s), func(i int) any {
			t := st.Tier1s[i]
			m := policyObject("Tier1", t.ID, t.ID, "/infra/tier-1s/"+t.ID, "/infra")
			if t.Tier0 != "" {
				m["tier0_path"] = t.Tier0
			}
			return m
		})
	case p == "/policy/api/v1/infra/domains/default/security-policies":
		s.policies(w, r, f, st.Policies, "SecurityPolicy", "security-policies")
	case p == "/policy/api/v1/infra/domains/default/intrusion-service-policies":
		s.policies(w, r, f, st.IDSPolicies, "IdsSecurityPolicy", "intrusion-service-policies")
	case strings.HasPrefix(p, "/policy/api/v1/infra/domains/default/security-policies/") && strings.HasSuffix(p, "/rules"):
		s.rules(w, r, f, st.Policies, "Rule", "security-policies", p)
	case strings.HasPrefix(p, "/policy/api/v1/infra/domains/default/intrusion-service-policies/") && strings.HasSuffix(p, "/rules"):
		s.rules(w, r, f, st.IDSPolicies, "IdsRule", "intrusion-service-policies", p)
	case strings.HasPrefix(p, "/policy/api/v1/infra/domains/default/groups/") && strings.HasSuffix(p, "/members/virtual-machines"):
		id := strings.TrimSuffix(strings.TrimPrefix(p, "/policy/api/v1/infra/domains/default/groups/"), "/members/virtual-machines")
		var members []any
		found := false
		names := s.byExtID
		for _, g := range st.Groups {
			if g.ID != id {
				continue
			}
			found = true
			for _, m := range g.Members {
				members = append(members, map[string]any{"resource_type": "RealizedVirtualMachine", "id": m,
					"display_name": names[m].Name, "host_id": names[m].HostID, "power_state": names[m].PowerState})
			}
		}
		if !found {
			nsxError(w, http.StatusNotFound, 500012, "Policy", fmt.Sprintf("Group /infra/domains/default/groups/%s not found", id))
			return
		}
		s.list(w, r, f, false, len(members), func(i int) any { return members[i] })
	case p == "/policy/api/v1/infra/lb-pools":
		s.list(w, r, f, false, len(st.LBPools), func(i int) any {
			l := st.LBPools[i]
			m := policyObject("LBPool", l.ID, l.ID, "/infra/lb-pools/"+l.ID, "/infra")
			if l.MemberGroup != "" {
				m["member_group"] = map[string]any{"group_path": l.MemberGroup, "ip_revision_filter": "IPV4"}
			}
			m["algorithm"] = "ROUND_ROBIN"
			return m
		})
	case p == "/policy/api/v1/search/query":
		var hits []any
		for _, term := range strings.Split(r.URL.Query().Get("query"), " OR ") {
			typ, ok := strings.CutPrefix(strings.TrimSpace(term), "resource_type:")
			if !ok {
				nsxError(w, http.StatusBadRequest, 60508, "search", "Only resource_type: queries are simulated")
				return
			}
			for _, v := range st.VPNs {
				if v.Type == typ {
					parent := v.Gateway + "/locale-services/default"
					hits = append(hits, policyObject(v.Type, v.ID, v.ID, parent+"/"+vpnCollection(v.Type)+"/"+v.ID, parent))
				}
			}
		}
		s.list(w, r, f, false, len(hits), func(i int) any { return hits[i] })
	default:
		nsxError(w, http.StatusNotFound, 202, "common-services", "The requested URI: "+p+" could not be found.")
	}
}

func vpnCollection(typ string) string {
	if typ == "L2VPNService" {
		return "l2vpn-services"
	}
	return "ipsec-vpn-services"
}

func (s *Server) createSession(w http.ResponseWriter, r *http.Request, st State, f Faults) {
	if err := r.ParseForm(); err != nil {
		nsxError(w, http.StatusBadRequest, 99, "common-services", "Malformed form")
		return
	}
	if f.RejectAll || r.PostForm.Get("j_username") != st.User || r.PostForm.Get("j_password") != st.Password {
		nsxError(w, http.StatusForbidden, 403, "common-services", "The credentials were incorrect or the account specified has been locked.")
		return
	}
	id, xsrf := token(), token()
	s.sessions.Open(id, xsrf)
	http.SetCookie(w, &http.Cookie{Name: "JSESSIONID", Value: id, Path: "/", Secure: true, HttpOnly: true})
	w.Header().Set("X-XSRF-TOKEN", xsrf)
	w.WriteHeader(http.StatusOK)
}

// authorized checks the session cookie and XSRF header, or Basic.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request, st State, f Faults) bool {
	if u, p, ok := r.BasicAuth(); ok {
		if !f.RejectAll && u == st.User && p == st.Password {
			return true
		}
		nsxError(w, http.StatusForbidden, 403, "common-services", "The credentials were incorrect or the account specified has been locked.")
		return false
	}
	c, err := r.Cookie("JSESSIONID")
	verdict := http.StatusUnauthorized
	if err == nil {
		xsrf := r.Header.Get("X-XSRF-TOKEN")
		switch s.sessions.Use(c.Value, f.RejectAll, f.ExpireAfter, func(want string) bool { return xsrf == want }) {
		case simhttp.Refused:
			verdict = http.StatusForbidden
		case simhttp.Accepted:
			verdict = http.StatusOK
		}
	}
	switch verdict {
	case http.StatusOK:
		return true
	case http.StatusForbidden:
		nsxError(w, http.StatusForbidden, 98, "common-services", "XSRF token missing or invalid")
	default:
		nsxError(w, http.StatusUnauthorized, 401, "common-services", "The session is not valid; authenticate again.")
	}
	return false
}

// policyObject is the common part of a Policy object.
func policyObject(typ, id, name, path, parent string) map[string]any {
	rel := path[strings.LastIndexByte(path, '/')+1:]
	return map[string]any{"resource_type": typ, "id": id, "display_name": name, "path": path,
		"relative_path": rel, "parent_path": parent, "marked_for_delete": false, "overridden": false,
		"_create_user": "admin", "_create_time": 1700000000000, "_last_modified_user": "admin",
		"_last_modified_time": 1700000000000, "_system_owned": false, "_protection": "NOT_PROTECTED", "_revision": 0}
}

func (s *Server) policies(w http.ResponseWriter, r *http.Request, f Faults, ps []Policy, typ, coll string) {
	s.list(w, r, f, false, len(ps), func(i int) any {
		p := ps[i]
		m := policyObject(typ, p.ID, p.Name, "/infra/domains/default/"+coll+"/"+p.ID, "/infra/domains/default")
		m["category"] = p.Category
		m["is_default"] = p.IsDefault
		m["scope"] = anyIfEmpty(p.Scope)
		m["sequence_number"] = i * 10
		m["stateful"] = true
		m["rule_count"] = len(p.Rules)
		return m
	})
}

func (s *Server) rules(w http.ResponseWriter, r *http.Request, f Faults, ps []Policy, typ, coll, path string) {
	id := strings.TrimSuffix(strings.TrimPrefix(path, "/policy/api/v1/infra/domains/default/"+coll+"/"), "/rules")
	for _, p := range ps {
		if p.ID != id {
			continue
		}
		s.list(w, r, f, false, len(p.Rules), func(i int) any {
			rl := p.Rules[i]
			base := "/infra/domains/default/" + coll + "/" + p.ID
			m := policyObject(typ, rl.ID, rl.ID, base+"/rules/"+rl.ID, base)
			m["action"] = rl.Action
			if m["action"] == "" {
				m["action"] = "ALLOW"
			}
			m["scope"] = anyIfEmpty(rl.Scope)
			m["source_groups"] = anyIfEmpty(rl.Sources)
			m["destination_groups"] = anyIfEmpty(rl.Destinations)
			m["services"] = []string{"ANY"}
			m["disabled"] = rl.Disabled
			m["is_default"] = rl.IsDefault
			m["sequence_number"] = i * 10
			m["direction"] = "IN_OUT"
			m["logged"] = false
			return m
		})
		return
	}
	nsxError(w, http.StatusNotFound, 500012, "Policy", fmt.Sprintf("%s /infra/domains/default/%s/%s not found", typ, coll, id))
}

func anyIfEmpty(l []string) []string {
	if len(l) == 0 {
		return []string{"ANY"}
	}
	return l
}

func portID(vm VM, nic int) string { return vm.ExternalID + "-port-" + strconv.Itoa(nic) }

func attachmentID(vm VM, nic int) string { return vm.ExternalID + "-att-" + strconv.Itoa(nic) }

func vmRecord(vm VM) map[string]any {
	typ := vm.Type
	if typ == "" {
		typ = "REGULAR"
	}
	ids := []string{"moIdOnHost:" + strings.TrimPrefix(vm.Moref, "vm-"), "hostLocalId:" + strings.TrimPrefix(vm.Moref, "vm-"),
		"locationId:" + vm.ExternalID, "externalId:" + vm.ExternalID}
	if vm.InstanceUUID != "" {
		ids = append(ids, "instanceUuid:"+vm.InstanceUUID)
	}
	ids = append(ids, "biosUuid:"+vm.ExternalID)
	return map[string]any{
		"resource_type": "VirtualMachine", "external_id": vm.ExternalID, "display_name": vm.Name,
		"host_id": vm.HostID, "local_id_on_host": strings.TrimPrefix(vm.Moref, "vm-"), "power_state": vm.PowerState,
		"compute_ids": ids, "type": typ,
		"source":          map[string]any{"target_id": vm.HostID, "target_display_name": "esx-" + vm.HostID, "target_type": "HostNode", "is_valid": true},
		"_last_sync_time": 1700000000000,
	}
}

// vifList is the VIFs of every VM: those on a segment carry the attachment id
// of their segment port; those on plain port groups carry none.
func vifList(st State) []any {
	var out []any
	for _, vm := range st.VMs {
		for n, nic := range vm.NICs {
			m := map[string]any{"resource_type": "VirtualNetworkInterface", "external_id": vm.ExternalID + "-vif-" + strconv.Itoa(n),
				"owner_vm_id": vm.ExternalID, "owner_vm_type": "REGULAR", "host_id": vm.HostID,
				"device_key": strconv.Itoa(4000 + n), "device_name": "Network adapter " + strconv.Itoa(n+1),
				"mac_address":         fmt.Sprintf("00:50:56:%02x:%02x:%02x", len(vm.Name)%256, n, len(out)%256),
				"vm_local_id_on_host": strings.TrimPrefix(vm.Moref, "vm-"), "_last_sync_time": 1700000000000}
			if nic.Segment != "" {
				m["lport_attachment_id"] = attachmentID(vm, n)
			}
			out = append(out, m)
		}
	}
	return out
}

func licenseRecord(l License) map[string]any {
	m := map[string]any{"license_key": l.Key, "description": l.Description, "quantity": l.Quantity,
		"capacity_type": l.CapacityType, "is_eval": l.IsEval, "is_expired": false, "expiry": 0}
	if l.Features != "" {
		m["features"] = l.Features
	}
	return m
}

// licenseUsage is the feature_usage_info of GET
// /api/v1/licenses/licenses-usage: State.LicenseUsage, or else the VMs with
// a NIC on a segment counted for switching and routing and for the
// distributed firewall (no CPU, core or user counts: the simulator knows no
// host sockets).
func (s *Server) licenseUsage() []any {
	usage := s.st.LicenseUsage
	if usage == nil {
		vms := 0
		for _, vm := range s.st.VMs {
			if vm.Type != "" && vm.Type != "REGULAR" {
				continue
			}
			for _, nic := range vm.NICs {
				if nic.Segment != "" {
					vms++
					break
				}
			}
		}
		usage = []FeatureUsage{{Feature: "Switching and Routing", VMs: vms}, {Feature: "Distributed Firewall", VMs: vms}}
	}
	out := make([]any, 0, len(usage))
	for _, u := range usage {
		out = append(out, map[string]any{"feature": u.Feature, "capacity_usage": []any{
			map[string]any{"capacity_type": "VM", "usage_count": u.VMs},
			map[string]any{"capacity_type": "CPU", "usage_count": u.CPUs},
			map[string]any{"capacity_type": "USER", "usage_count": u.Users},
			map[string]any{"capacity_type": "CORE", "usage_count": u.Cores},
		}})
	}
	return out
}

// list writes one page of a cursor-paged list. vmList marks the VM list,
// which the page faults apply to. filters are pairs of a query parameter
// and the record field it selects on (display_name, display_name); a record
// is listed when every such parameter given equals its field. The
// included_fields parameter trims each record to the fields it names.
func (s *Server) list(w http.ResponseWriter, r *http.Request, f Faults, vmList bool, n int, item func(i int) any, filters ...string) {
	q := r.URL.Query()
	size := MaxPageSize
	if v := q.Get("page_size"); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 0 {
			nsxError(w, http.StatusBadRequest, 255, "common-services", "Field level validation errors: {page_size must be a positive integer}")
			return
		}
		if k > MaxPageSize {
			nsxError(w, http.StatusBadRequest, 255, "common-services",
				fmt.Sprintf("Field level validation errors: {page_size %d is greater than the maximum value %d}", k, MaxPageSize))
			return
		}
		if k > 0 {
			size = k
		}
	}
	if sel := selection(q, filters); len(sel) > 0 {
		var idx []int
		for i := range n {
			m, _ := item(i).(map[string]any)
			ok := true
			for field, want := range sel {
				ok = ok && fmt.Sprint(m[field]) == want
			}
			if ok {
				idx = append(idx, i)
			}
		}
		all := item
		n, item = len(idx), func(i int) any { return all(idx[i]) }
	}
	if inc := q.Get("included_fields"); inc != "" {
		keep := strings.Split(inc, ",")
		full := item
		item = func(i int) any {
			m, ok := full(i).(map[string]any)
			if !ok {
				return full(i)
			}
			out := map[string]any{}
			for _, k := range keep {
				if v, ok := m[strings.TrimSpace(k)]; ok {
					out[strings.TrimSpace(k)] = v
				}
			}
			return out
		}
	}
	start := 0
	if c := q.Get("cursor"); c != "" {
		b, err := base64.StdEncoding.DecodeString(c)
		k, err2 := strconv.Atoi(strings.TrimPrefix(string(b), "offset="))
		if err != nil || err2 != nil || k < 0 || k > n {
			nsxError(w, http.StatusBadRequest, 223, "common-services", "Invalid cursor "+c)
			return
		}
		start = k
	}
	if vmList && f.FailPage > 0 && start/size+1 == f.FailPage {
		nsxError(w, http.StatusInternalServerError, 100, "common-services", "General error has occurred.")
		return
	}
	if vmList && f.Endless {
		rec, _ := json.Marshal(vmRecord(VM{ExternalID: "50 1c 3e 7a 9b 2d 4f 61-8a 0b 1c 2d 3e 4f 5a 6b", Name: "web-frontend-01",
			PowerState: "VM_RUNNING", InstanceUUID: "501c3e7a-9b2d-4f61-8a0b-1c2d3e4f5a6b", Moref: "vm-1042",
			HostID: "8d3e2f1a-4b5c-4d6e-9f0a-1b2c3d4e5f6a"}))
		simhttp.Endless(w, r, "application/json;charset=UTF-8", []byte(`{"results":[`), rec, []byte(","))
		return
	}
	end := min(start+size, n)
	res := make([]json.RawMessage, 0, end-start)
	for i := start; i < end; i++ {
		it := item(i)
		if vmList && f.MalformField != "" {
			if m, ok := it.(map[string]any); ok {
				switch m[f.MalformField].(type) {
				case string:
					m[f.MalformField] = 7
				default:
					m[f.MalformField] = "seven"
				}
			}
		}
		b, _ := json.Marshal(it)
		res = append(res, b)
	}
	// Assembled by hand: the records are already JSON (re-marshalling a
	// RawMessage slice would compact every byte again).
	var buf bytes.Buffer
	buf.WriteString(`{"results":[`)
	for i, b := range res {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(b)
	}
	fmt.Fprintf(&buf, `],"result_count":%d,"sort_by":"display_name","sort_ascending":true`, n)
	if end < n {
		fmt.Fprintf(&buf, `,"cursor":%q`, base64.StdEncoding.EncodeToString([]byte("offset="+strconv.Itoa(end))))
	}
	buf.WriteByte('}')
	body := buf.Bytes()
	if vmList && f.Truncate {
		body = body[:len(body)/2]
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	_, _ = w.Write(body)
}

// selection is the record fields and values the filter parameters of q
// select on; filters pairs each parameter with its field.
func selection(q url.Values, filters []string) map[string]string {
	sel := map[string]string{}
	for i := 0; i+1 < len(filters); i += 2 {
		if v := q.Get(filters[i]); v != "" {
			sel[filters[i+1]] = v
		}
	}
	return sel
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	_ = json.NewEncoder(w).Encode(v)
}
