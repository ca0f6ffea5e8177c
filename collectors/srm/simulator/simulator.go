// Package simulator simulates the parts of the VMware Site Recovery Manager
// (SRM) REST API that the usage meter reads, as govmomi's simulator sits
// beside its client: the srm collector's tests run against it, and it can
// serve `usagemeter demo` (Serve works outside tests).
//
// Reference followed (public): "VMware Site Recovery Manager REST API
// Gateway" (developer.broadcom.com/xapis/vmware-site-recovery-manager-rest-api-gateway,
// versions 1.0.0 and 2.0.0; also developer.vmware.com/apis/srm-rest-api and
// the VMware.Sdk.Srm PowerCLI bindings built from it):
//
//   - Login: POST /session with HTTP Basic; the answer is SessionIdData
//     {"session_id": "..."}; later calls send it in the x-dr-session header.
//     GET /session tells about the current session (SessionInfo
//     {"username"}); DELETE /session logs out. The answers match the
//     reference's OpenAPI document (schema_test.go).
//   - GET /pairings: PairingDrResponseList, items with pairing_id and
//     local_vc_server, local_srm_server, remote_vc_server, remote_srm_server
//     (each id, name, url, server_status).
//   - GET /pairings/{pairing_id}/protection-management/groups:
//     ProtectionGroupInfoDrResponseList, items with id, name, description,
//     protected_site_name, recovery_site_name, protected_vc_guid,
//     recovery_vc_guid, location, location_name, total_vms,
//     replication_type (UNKNOWN, ABR, HBR, VVOL; VSAN on releases with vSAN
//     protection groups), recovery_status, status.
//   - GET /pairings/{pairing_id}/protection-management/groups/{group_id}/vms:
//     ProtectionGroupVmInfoDrResponseList, items with id, name, template,
//     inside_vapp, protection_info, protection_status_details {status,
//     errors}; status is one of the reference's VmProtectionStatusDetails
//     values (OK, NOT_CONFIGURED, ..., MISSING_UNPROTECTED_VM: the VM is in
//     the group but was deleted from the inventory).
//   - Paging: every list takes offset and limit query parameters (limit
//     defaults to 100, the REST API configuration's defaultResponsePageSize);
//     a list answer is {"list": [...], "_meta": {"total", "offset", "limit",
//     "links": {"self", "next", "previous": {"href"}}, "errors"}}; the last
//     page has no next link.
//   - Errors are ResponseError {"error_code", "message", "op_id"}: 401 when
//     the client must authenticate (a wrong password, an expired or unknown
//     session), 404 for an unknown pairing or group, 500 for a server fault.
//
// Where the reference and the project's APIS.md disagree, the reference is
// followed, and the difference is said here:
//   - APIS.md lists replication_type ABR, HBR, VVOL, VSAN as if per VM; the
//     reference puts replication_type on the protection group (a VM's type
//     is its group's) and lists UNKNOWN, ABR, HBR, VVOL. VSAN is kept from
//     APIS.md as a group type of the releases with vSAN protection groups
//     (the reference's .../replication-management/vsan/protection-groups),
//     which the reference's group enum does not show: an assumption.
//   - APIS.md names v2 for "newer releases"; the reference documents 1.0.0
//     and 2.0.0 with the same list shapes. The simulator serves both
//     /api/rest/srm/v1 and /api/rest/srm/v2 (State.Versions) and answers 404
//     under any other version.
//   - APIS.md does not say how lists page: the reference pages every list
//     with offset/limit and _meta (total, links.next), as above.
//
// The simulator's choices where the reference is silent: a VM's id is its
// vCenter MoRef value ("vm-1042"), as the reference's HbrProtectionGroupSpec
// "vms" take VM ids from the vCenter inventory; the reference gives no
// instance UUID and no power state for a protected VM. The remote-site login
// (the reference's "Create Remote Session", which its getting-started steps
// run before listing groups) is not simulated: reading the local site's
// groups and their VMs does not ask for it here. A wrong password at POST
// /session is 401.
package simulator

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/collectors/internal/simhttp"
)

// BasePath is the API's path below which the version comes.
const BasePath = "/api/rest/srm/"

// DefaultPageSize is the limit of a list call that gives none.
const DefaultPageSize = 100

// State is what the simulated SRM server holds.
type State struct {
	User     string `json:"user"`
	Password string `json:"password"`
	// Versions are the REST API versions served (default v1 and v2).
	Versions []string `json:"versions,omitempty"`
	SRM      Server   `json:"srm"`     // the local SRM server
	VCenter  Server   `json:"vcenter"` // the local vCenter; ID is its instance UUID
	// Pairings with remote sites, each with its protection groups.
	Pairings []Pairing `json:"pairings"`
}

// Server is an SRM server or a vCenter.
type Server struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	URL  string `json:"url,omitempty"`
}

// Pairing is a pairing of the local SRM server with a remote one.
type Pairing struct {
	ID        string  `json:"id"`
	RemoteSRM Server  `json:"remote_srm"`
	RemoteVC  Server  `json:"remote_vcenter"`
	Groups    []Group `json:"groups"`
}

// Group is a protection group.
type Group struct {
	ID              string `json:"id"`
	Name            string `json:"name"`
	ReplicationType string `json:"replication_type"` // ABR, HBR, VVOL, VSAN
	// ProtectedVC is the guid of the vCenter whose VMs the group protects;
	// "" means the local vCenter (the remote one's groups protect the other
	// way).
	ProtectedVC string `json:"protected_vc_guid,omitempty"`
	VMs         []VM   `json:"vms"`
}

// VM is a VM in a protection group.
type VM struct {
	ID       string `json:"id"` // vCenter MoRef value, e.g. vm-1042
	Name     string `json:"name"`
	Template bool   `json:"template,omitempty"`
	// Status is the protection status (default OK).
	Status string `json:"status,omitempty"`
	// PowerState is the VM's power state in its vCenter. The SRM API does
	// not show it (a powered-off VM is protected like any other); it is
	// kept so that case folders say what they simulate.
	PowerState string `json:"power_state,omitempty"`
}

// Faults are error modes a test switches on.
type Faults struct {
	ExpireAfter   int           // a session dies after that many calls (0: never)
	RejectAll     bool          // every login and session is refused with 401
	FailPage      int           // page FailPage (1-based) of every group's VM list answers 500
	Delay         time.Duration // added before every answer
	MalformField  string        // that field of every VM record gets a wrong JSON type
	Truncate      bool          // VM list bodies are cut in half
	ThrottleEvery int           // every ThrottleEvery-th call answers 503 Service Unavailable (0: never)
	Throttle429   bool          // the throttled calls answer 429 Too Many Requests instead
	// GoneGroup is the id of a group that is listed but whose VM list
	// answers 404, as when it is deleted between the two calls.
	GoneGroup string
	// IgnoreOffset makes the VM lists answer their first page whatever
	// the offset asked for (a broken proxy or server).
	IgnoreOffset bool
}

// SRM is a simulated SRM server. It is safe for concurrent use.
type SRM struct {
	core     simhttp.Core[Faults]
	sessions simhttp.Sessions[struct{}]
	st       State // not changed after New
}

// New returns a simulator holding st.
func New(st State) *SRM {
	if len(st.Versions) == 0 {
		st.Versions = []string{"v1", "v2"}
	}
	if st.SRM.ID == "" {
		st.SRM.ID = "6f1e2d3c-4b5a-4978-8a1b-2c3d4e5f6a7b"
	}
	if st.SRM.Name == "" {
		st.SRM.Name = "srm01.corp.example"
	}
	if st.VCenter.Name == "" {
		st.VCenter.Name = "vc01.corp.example"
	}
	return &SRM{st: st}
}

// LoadState decodes a State from JSON, refusing unknown keys.
func LoadState(b []byte) (State, error) { return simhttp.LoadState[State]("srm", b) }

// Serve serves s on a loopback TLS server with a self-signed certificate,
// and returns its URL, the SHA-256 thumbprint of its certificate and a
// function that stops it.
func (s *SRM) Serve() (url, thumbprint string, stop func()) { return simhttp.ServeTLS(s) }

// Start is Serve for a test: the server stops when the test ends.
func (s *SRM) Start(t simhttp.TB) (url, thumbprint string) { return simhttp.StartTLS(t, s) }

// SetFaults replaces the error modes.
func (s *SRM) SetFaults(f Faults) { s.core.SetFaults(f) }

// ExpireSessions ends every session.
func (s *SRM) ExpireSessions() { s.sessions.ExpireAll() }

// Logins is the number of sessions created.
func (s *SRM) Logins() int { return s.sessions.Logins() }

// Calls is the number of requests served.
func (s *SRM) Calls() int { return s.core.Calls() }

// respError writes the reference's ResponseError.
func respError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error_code": code, "message": msg, "op_id": opID()})
}

func opID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "op-" + hex.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// ServeHTTP implements http.Handler.
func (s *SRM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, n := s.core.Begin()
	simhttp.Wait(r, f.Delay)
	if f.ThrottleEvery > 0 && n%f.ThrottleEvery == 0 {
		w.Header().Set("Retry-After", "0")
		if f.Throttle429 {
			respError(w, http.StatusTooManyRequests, "TooManyRequests", "Too many requests, try again later.")
			return
		}
		respError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "The server is busy, try again later.")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, BasePath)
	if !ok {
		respError(w, http.StatusNotFound, "NotFound", "Not found: "+r.URL.Path)
		return
	}
	version, p, _ := strings.Cut(rest, "/")
	p = "/" + p
	if !slices.Contains(s.st.Versions, version) {
		respError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("REST API version %q is not supported (supported: %s)",
			version, strings.Join(s.st.Versions, ", ")))
		return
	}
	if p == "/session" && r.Method == http.MethodPost {
		s.login(w, r, f)
		return
	}
	id := r.Header.Get("x-dr-session")
	switch s.sessions.Use(id, f.RejectAll, f.ExpireAfter, nil) {
	case simhttp.Gone:
		respError(w, http.StatusUnauthorized, "Unauthorized", "The session is not authenticated.")
		return
	}
	if p == "/session" && r.Method == http.MethodDelete {
		s.sessions.Close(id)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Method != http.MethodGet {
		respError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "Method not allowed")
		return
	}
	s.get(w, r, f, version, p)
}

func (s *SRM) login(w http.ResponseWriter, r *http.Request, f Faults) {
	user, pass, ok := r.BasicAuth()
	if !ok || f.RejectAll || user != s.st.User || pass != s.st.Password {
		respError(w, http.StatusUnauthorized, "Unauthorized", "Cannot complete login due to an incorrect user name or password.")
		return
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	s.sessions.Open(id, struct{}{})
	writeJSON(w, map[string]any{"session_id": id})
}

func (s *SRM) get(w http.ResponseWriter, r *http.Request, f Faults, version, p string) {
	st := &s.st
	parts := strings.Split(strings.Trim(p, "/"), "/")
	switch {
	case p == "/session":
		writeJSON(w, map[string]any{"username": st.User}) // SessionInfo
	case p == "/pairings":
		s.list(w, r, f, false, len(st.Pairings), func(i int) any { return s.pairing(&st.Pairings[i]) })
	case len(parts) == 2 && parts[0] == "pairings":
		pr := s.findPairing(parts[1])
		if pr == nil {
			respError(w, http.StatusNotFound, "NotFound", "Pairing "+parts[1]+" not found.")
			return
		}
		writeJSON(w, s.pairing(pr))
	case len(parts) == 4 && parts[0] == "pairings" && parts[2] == "protection-management" && parts[3] == "groups":
		pr := s.findPairing(parts[1])
		if pr == nil {
			respError(w, http.StatusNotFound, "NotFound", "Pairing "+parts[1]+" not found.")
			return
		}
		s.list(w, r, f, false, len(pr.Groups), func(i int) any { return s.group(pr, &pr.Groups[i]) })
	case len(parts) == 6 && parts[0] == "pairings" && parts[2] == "protection-management" && parts[3] == "groups" && parts[5] == "vms":
		pr := s.findPairing(parts[1])
		if pr == nil {
			respError(w, http.StatusNotFound, "NotFound", "Pairing "+parts[1]+" not found.")
			return
		}
		var g *Group
		for i := range pr.Groups {
			if pr.Groups[i].ID == parts[4] {
				g = &pr.Groups[i]
			}
		}
		if g == nil || f.GoneGroup == parts[4] {
			respError(w, http.StatusNotFound, "NotFound", "Protection group "+parts[4]+" not found.")
			return
		}
		s.list(w, r, f, true, len(g.VMs), func(i int) any { return vmRecord(g.VMs[i], f.MalformField) })
	default:
		respError(w, http.StatusNotFound, "NotFound", "Not found: "+BasePath+version+p)
	}
}

func (s *SRM) findPairing(id string) *Pairing {
	for i := range s.st.Pairings {
		if s.st.Pairings[i].ID == id {
			return &s.st.Pairings[i]
		}
	}
	return nil
}

func server(sv Server, status string) map[string]any {
	u := sv.URL
	if u == "" {
		u = "https://" + sv.Name + ":443"
	}
	return map[string]any{"id": sv.ID, "name": sv.Name, "url": u, "server_status": status,
		"certificates": []any{}, "certificate_warnings": []any{}}
}

func (s *SRM) pairing(p *Pairing) map[string]any {
	return map[string]any{
		"pairing_id":        p.ID,
		"local_vc_server":   server(s.st.VCenter, "OK"),
		"local_srm_server":  server(s.st.SRM, "OK"),
		"remote_vc_server":  server(p.RemoteVC, "OK"),
		"remote_srm_server": server(p.RemoteSRM, "OK"),
	}
}

func (s *SRM) group(p *Pairing, g *Group) map[string]any {
	prot, rec := s.st.VCenter, p.RemoteVC
	if g.ProtectedVC != "" && g.ProtectedVC != s.st.VCenter.ID {
		prot, rec = p.RemoteVC, s.st.VCenter
	}
	return map[string]any{
		"id": g.ID, "name": g.Name, "description": "",
		"protected_site_name": prot.Name, "recovery_site_name": rec.Name,
		"protected_vc_guid": prot.ID, "recovery_vc_guid": rec.ID,
		"location": "DrProtectionGroupFolder-1", "location_name": "Protection Groups",
		"total_vms": len(g.VMs), "replication_type": g.ReplicationType,
		"recovery_status": "READY", "status": "OK",
	}
}

func vmRecord(v VM, malform string) map[string]any {
	status := v.Status
	if status == "" {
		status = "OK"
	}
	m := map[string]any{
		"id": v.ID, "name": v.Name, "template": v.Template, "inside_vapp": false,
		"protection_info": map[string]any{
			"recovery_folder":        map[string]any{"id": "group-v3", "name": "Recovered VMs"},
			"recovery_resource_pool": map[string]any{"id": "resgroup-8", "name": "Resources"},
			"recovery_networks":      []any{},
			"vmotion_eligible":       false,
		},
		"protection_status_details": map[string]any{"status": status, "errors": []any{}},
	}
	switch malform {
	case "":
	case "protection_status_details":
		m[malform] = "OK"
	case "template":
		m[malform] = "no"
	default:
		m[malform] = 42
	}
	return m
}

// list writes one page of a list, paged with offset and limit. vms marks
// the VM lists, which the FailPage and Truncate faults apply to.
func (s *SRM) list(w http.ResponseWriter, r *http.Request, f Faults, vms bool, total int, item func(int) any) {
	q := r.URL.Query()
	offset, limit := 0, DefaultPageSize
	if bad := simhttp.IntParams(q, simhttp.Int("offset", 0, &offset), simhttp.Int("limit", 1, &limit)); bad != "" {
		respError(w, http.StatusBadRequest, "BadRequest", "Invalid "+bad+": "+q.Get(bad))
		return
	}
	if vms && f.IgnoreOffset {
		offset = 0
	}
	if vms && f.FailPage > 0 && offset/limit+1 == f.FailPage {
		respError(w, http.StatusInternalServerError, "InternalServerError", "An internal error occurred: com.vmware.vcDr.api.fault.ServerFault")
		return
	}
	end := min(offset+limit, total)
	items := make([]any, 0, max(end-offset, 0))
	for i := offset; i < end; i++ {
		items = append(items, item(i))
	}
	href := func(off int) map[string]any {
		u := *r.URL
		v := u.Query()
		v.Set("offset", strconv.Itoa(off))
		v.Set("limit", strconv.Itoa(limit))
		u.RawQuery = v.Encode()
		return map[string]any{"href": "https://" + r.Host + (&url.URL{Path: u.Path, RawQuery: u.RawQuery}).String()}
	}
	links := map[string]any{"self": href(offset)}
	if end < total {
		links["next"] = href(end)
	}
	if offset > 0 {
		links["previous"] = href(max(offset-limit, 0))
	}
	body, _ := json.Marshal(map[string]any{
		"list":  items,
		"_meta": map[string]any{"total": total, "offset": offset, "limit": limit, "links": links, "errors": []any{}},
	})
	if vms && f.Truncate {
		body = body[:len(body)/2]
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.Copy(w, bytes.NewReader(body))
}
