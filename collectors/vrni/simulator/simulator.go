// Package simulator simulates the parts of the VMware Aria Operations for
// Networks (vRealize Network Insight, vRNI) API that the usage meter reads,
// as govmomi's simulator sits beside its client: the vrni collector's tests
// run against it, and `usagemeter demo` can serve it (Serve works outside
// tests; Monitoring builds one from the demo's VMs).
//
// Reference followed (public): "VMware Aria Operations for Networks API"
// (developer.broadcom.com/xapis/vmware-aria-operations-for-networks-api, and
// the vRealize Network Insight API reference 1.x before it):
//
//   - Login: POST /api/ni/auth/token with {"username", "password",
//     "domain": {"domain_type": "LOCAL" | "LDAP" | "VIDM", "value"}} answers
//     {"token", "expiry" (epoch ms)}; later calls send "Authorization:
//     NetworkInsight <token>". DELETE /api/ni/auth/token ends the token. A
//     wrong password, and a call with an expired or unknown token, is 401.
//   - GET /api/ni/entities/vms?size=N&cursor=C and
//     GET /api/ni/entities/vcenter-managers: PagedListResponseWithTime
//     {"results": [{"entity_id", "entity_type", "time"}], "cursor",
//     "total_count", "start_time", "end_time"}: references only; the last
//     page has no cursor. size defaults to 10.
//   - POST /api/ni/entities/fetch {"entity_ids": [{"entity_id",
//     "entity_type"}]} (at most 1000): BulkFetchResponse {"results":
//     [{"entity_id", "entity_type", "entity": {...}, "time"}]}. A
//     VirtualMachine entity has "entity_id", "name", "vendor_id" (its vCenter
//     MoRef), "vcenter_manager" {"entity_id", "entity_type":
//     "VCenterManager"}, "host", "cluster", "datacenter", "ip_addresses"...;
//     a VCenterManager has "entity_id", "name", "fqdn", "ip_address"
//     {"ip_address"}.
//   - GET /api/ni/settings/licensing: {"result": {"licenses": [{"licenseKey",
//     "edition" (ADVANCED, ENTERPRISE, ROBO, SDWAN, NAV, UNIVERSAL, VRNIC),
//     "evaluation", "expired", "deleted", "suspended", "invalid", ...}],
//     "licenseUsage": [...]}} (deprecated for /settings/licensing/v2 on the
//     newest releases, still served).
//   - GET /api/ni/info/version: {"api_version"}.
//   - Errors are ApiError {"code", "message", "details"}.
//
// The simulator's choices where the reference is silent: entity ids are
// "10000:1:<n>" for VMs and "10000:8:<n>" for vCenter managers; a cursor is
// opaque (base64 of the next offset); a VCenterManager carries no vCenter
// instance UUID (the reference shows none), so a client maps its fqdn or IP
// to a UUID itself.
package simulator

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/collectors/internal/simhttp"
)

// BasePath is the API's path.
const BasePath = "/api/ni"

// DefaultPageSize is the size of a list call that gives none.
const DefaultPageSize = 10

// MaxFetch is the most entities one fetch may ask for.
const MaxFetch = 1000

// TokenValidity is how long a token lives (the reference: 5 hours).
const TokenValidity = 5 * time.Hour

// State is what the simulated instance holds.
type State struct {
	User     string `json:"user"`
	Password string `json:"password"`
	// Domain is the user's LDAP domain; "" is a local user.
	Domain   string    `json:"domain,omitempty"`
	Licenses []License `json:"licenses"`
	VCenters []VCenter `json:"vcenters"`
	// VMs in the order they are listed (a VM listed twice is two entities).
	VMs []VM `json:"vms"`
}

// License is an installed licence.
type License struct {
	Key        string `json:"key"`
	Edition    string `json:"edition"` // ADVANCED, ENTERPRISE, ...
	Expired    bool   `json:"expired,omitempty"`
	Evaluation bool   `json:"evaluation,omitempty"`
}

// VCenter is a vCenter data source (a VCenterManager entity).
type VCenter struct {
	ID   string `json:"id"` // its entity id, e.g. 10000:8:1
	FQDN string `json:"fqdn"`
	IP   string `json:"ip,omitempty"`
}

// VM is a VirtualMachine entity.
type VM struct {
	Name    string `json:"name"`
	MoRef   string `json:"moref"`   // vendor_id
	VCenter string `json:"vcenter"` // the VCenterManager's entity id; "" for a VM no vCenter manages
	// PowerState is the VM's power state in its vCenter, kept so that case
	// folders say what they simulate.
	PowerState string `json:"power_state,omitempty"`
}

// VMRef names a VM of a vCenter: its instance UUID and MoRef value.
type VMRef struct {
	VCenter, MoRef, Name string
}

// Faults are error modes a test switches on.
type Faults struct {
	ExpireAfter   int           // a token dies after that many calls (0: never)
	RejectAll     bool          // every login and token is refused with 401
	FailPage      int           // page FailPage (1-based) of the VM list answers 500
	FailFetch     bool          // every fetch answers 500
	Delay         time.Duration // added before every answer
	MalformField  string        // that field of every VM entity gets a wrong JSON type
	Truncate      bool          // VM list bodies are cut in half
	ThrottleEvery int           // every ThrottleEvery-th call answers 503 (0: never)
	// StuckCursor makes the VM list answer the same cursor on every page
	// (a server gone wrong): a client that follows it pages forever.
	StuckCursor bool
}

// NI is a simulated Aria Operations for Networks instance. It is safe for
// concurrent use.
type NI struct {
	core     simhttp.Core[Faults]
	sessions simhttp.Sessions[struct{}]
	st       State // not changed after New
	vms      map[string]int
	vcs      map[string]int
}

// New returns a simulator holding st.
func New(st State) *NI {
	s := &NI{st: st, vms: map[string]int{}, vcs: map[string]int{}}
	for i := range st.VMs {
		s.vms[vmID(i)] = i
	}
	for i, v := range st.VCenters {
		s.vcs[v.ID] = i
	}
	return s
}

// Monitoring is a simulator for the demo: user and password, one licence of
// edition (ADVANCED or ENTERPRISE), monitoring the first n VMs of refs (all
// of them when n is larger). hosts gives the fqdn of each vCenter by its
// instance UUID (the address the vCenter was registered with, so that the
// collector of a product paired with it finds its UUID).
func Monitoring(user, password, edition string, hosts map[string]string, refs []VMRef, n int) *NI {
	st := State{User: user, Password: password, Licenses: []License{{Key: "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", Edition: edition}}}
	ids := map[string]string{}
	for _, r := range refs[:min(n, len(refs))] {
		id, ok := ids[r.VCenter]
		if !ok {
			id = fmt.Sprintf("10000:8:%d", len(ids)+1)
			ids[r.VCenter] = id
			fqdn := hosts[r.VCenter]
			if fqdn == "" {
				fqdn = r.VCenter
			}
			st.VCenters = append(st.VCenters, VCenter{ID: id, FQDN: fqdn})
		}
		name := r.Name
		if name == "" {
			name = r.MoRef
		}
		st.VMs = append(st.VMs, VM{Name: name, MoRef: r.MoRef, VCenter: id})
	}
	return New(st)
}

func vmID(i int) string { return fmt.Sprintf("10000:1:%d", 5000+i) }

// LoadState decodes a State from JSON, refusing unknown keys.
func LoadState(b []byte) (State, error) { return simhttp.LoadState[State]("vrni", b) }

// Serve serves s on a loopback TLS server with a self-signed certificate,
// and returns its URL, the SHA-256 thumbprint of its certificate and a
// function that stops it.
func (s *NI) Serve() (url, thumbprint string, stop func()) { return simhttp.ServeTLS(s) }

// Start is Serve for a test: the server stops when the test ends.
func (s *NI) Start(t simhttp.TB) (url, thumbprint string) { return simhttp.StartTLS(t, s) }

// SetFaults replaces the error modes.
func (s *NI) SetFaults(f Faults) { s.core.SetFaults(f) }

// ExpireSessions ends every token.
func (s *NI) ExpireSessions() { s.sessions.ExpireAll() }

// Logins is the number of tokens created.
func (s *NI) Logins() int { return s.sessions.Logins() }

// Calls is the number of requests served.
func (s *NI) Calls() int { return s.core.Calls() }

func apiError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": status, "message": msg, "details": []any{}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// ServeHTTP implements http.Handler.
func (s *NI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, n := s.core.Begin()
	simhttp.Wait(r, f.Delay)
	if f.ThrottleEvery > 0 && n%f.ThrottleEvery == 0 {
		w.Header().Set("Retry-After", "0")
		apiError(w, http.StatusServiceUnavailable, "Service unavailable, try again later.")
		return
	}
	p, ok := strings.CutPrefix(r.URL.Path, BasePath)
	if !ok {
		apiError(w, http.StatusNotFound, "Not found: "+r.URL.Path)
		return
	}
	if p == "/auth/token" && r.Method == http.MethodPost {
		s.login(w, r, f)
		return
	}
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if scheme != "NetworkInsight" {
		token = ""
	}
	if s.sessions.Use(token, f.RejectAll, f.ExpireAfter, nil) == simhttp.Gone {
		apiError(w, http.StatusUnauthorized, "Unauthorized: the token is invalid or has expired.")
		return
	}
	switch {
	case p == "/auth/token" && r.Method == http.MethodDelete:
		s.sessions.Close(token)
		w.WriteHeader(http.StatusNoContent)
	case p == "/entities/fetch" && r.Method == http.MethodPost:
		s.fetch(w, r, f)
	case r.Method != http.MethodGet:
		apiError(w, http.StatusMethodNotAllowed, "Method not allowed")
	case p == "/info/version":
		writeJSON(w, map[string]any{"api_version": "1.2.0"})
	case p == "/settings/licensing":
		s.licensing(w)
	case p == "/entities/vms":
		s.list(w, r, f, true, len(s.st.VMs), "VirtualMachine", vmID)
	case p == "/entities/vcenter-managers":
		s.list(w, r, f, false, len(s.st.VCenters), "VCenterManager", func(i int) string { return s.st.VCenters[i].ID })
	default:
		apiError(w, http.StatusNotFound, "Not found: "+r.URL.Path)
	}
}

func (s *NI) login(w http.ResponseWriter, r *http.Request, f Faults) {
	var in struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Domain   struct {
			Type  string `json:"domain_type"`
			Value string `json:"value"`
		} `json:"domain"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		apiError(w, http.StatusBadRequest, "Invalid request body: "+err.Error())
		return
	}
	wantType, wantValue := "LOCAL", "local"
	if s.st.Domain != "" {
		wantType, wantValue = "LDAP", s.st.Domain
	}
	if f.RejectAll || in.Username != s.st.User || in.Password != s.st.Password || in.Domain.Type != wantType || !strings.EqualFold(in.Domain.Value, wantValue) {
		apiError(w, http.StatusUnauthorized, "Invalid user name or password.")
		return
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := base64.StdEncoding.EncodeToString(b)
	s.sessions.Open(token, struct{}{})
	writeJSON(w, map[string]any{"token": token, "expiry": time.Now().Add(TokenValidity).UnixMilli()})
}

func (s *NI) licensing(w http.ResponseWriter) {
	list := make([]any, 0, len(s.st.Licenses))
	for _, l := range s.st.Licenses {
		list = append(list, map[string]any{"productName": "VMware Aria Operations for Networks", "licenseKey": l.Key, "edition": l.Edition,
			"evaluation": l.Evaluation, "expired": l.Expired, "deleted": false, "suspended": false, "invalid": false,
			"capacityType": "CPU", "numberOfSockets": 64, "deploymentType": "onprem", "entitlements": []any{}})
	}
	writeJSON(w, map[string]any{"result": map[string]any{"licenses": list, "licenseUsage": []any{}}})
}

func cursorOf(offset int) string {
	return base64.StdEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(offset)))
}

// list writes one page of references; vms marks the VM list, which the
// FailPage, Truncate and StuckCursor faults apply to.
func (s *NI) list(w http.ResponseWriter, r *http.Request, f Faults, vms bool, total int, typ string, id func(int) string) {
	q := r.URL.Query()
	size, offset := DefaultPageSize, 0
	if v := q.Get("size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxFetch {
			apiError(w, http.StatusBadRequest, "Invalid size: "+v)
			return
		}
		size = n
	}
	if c := q.Get("cursor"); c != "" {
		b, err := base64.StdEncoding.DecodeString(c)
		o, ok := strings.CutPrefix(string(b), "offset:")
		n, err2 := strconv.Atoi(o)
		if err != nil || !ok || err2 != nil || n < 0 {
			apiError(w, http.StatusBadRequest, "Invalid cursor")
			return
		}
		offset = n
	}
	if vms && f.FailPage > 0 && offset/size+1 == f.FailPage {
		apiError(w, http.StatusInternalServerError, "Internal error: the query service failed.")
		return
	}
	end := min(offset+size, total)
	now := time.Now().Unix()
	results := make([]any, 0, max(end-offset, 0))
	for i := offset; i < end; i++ {
		results = append(results, map[string]any{"entity_id": id(i), "entity_type": typ, "time": now})
	}
	page := map[string]any{"results": results, "total_count": total, "start_time": now, "end_time": now}
	switch {
	case vms && f.StuckCursor:
		page["cursor"] = cursorOf(0)
	case end < total:
		page["cursor"] = cursorOf(end)
	}
	body, _ := json.Marshal(page)
	if vms && f.Truncate {
		body = body[:len(body)/2]
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.Copy(w, bytes.NewReader(body))
}

func (s *NI) fetch(w http.ResponseWriter, r *http.Request, f Faults) {
	if f.FailFetch {
		apiError(w, http.StatusInternalServerError, "Internal error: fetching the entities failed.")
		return
	}
	var in struct {
		IDs []struct {
			ID   string `json:"entity_id"`
			Type string `json:"entity_type"`
		} `json:"entity_ids"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		apiError(w, http.StatusBadRequest, "Invalid request body: "+err.Error())
		return
	}
	if len(in.IDs) > MaxFetch {
		apiError(w, http.StatusBadRequest, fmt.Sprintf("At most %d entities can be fetched at once.", MaxFetch))
		return
	}
	now := time.Now().Unix()
	results := make([]any, 0, len(in.IDs))
	for _, e := range in.IDs {
		var ent map[string]any
		if i, ok := s.vms[e.ID]; ok && e.Type == "VirtualMachine" {
			ent = s.vmEntity(e.ID, s.st.VMs[i], f.MalformField)
		} else if i, ok := s.vcs[e.ID]; ok && e.Type == "VCenterManager" {
			v := s.st.VCenters[i]
			ent = map[string]any{"entity_id": v.ID, "entity_type": "VCenterManager", "name": v.FQDN, "fqdn": v.FQDN,
				"ip_address": map[string]any{"ip_address": v.IP, "netmask": "255.255.255.0"}}
		} else {
			continue // unknown: left out, as deleted entities are
		}
		results = append(results, map[string]any{"entity_id": e.ID, "entity_type": e.Type, "entity": ent, "time": now})
	}
	writeJSON(w, map[string]any{"results": results})
}

func (s *NI) vmEntity(id string, v VM, malform string) map[string]any {
	m := map[string]any{
		"entity_id": id, "entity_type": "VirtualMachine", "name": v.Name, "vendor_id": v.MoRef,
		"ip_addresses": []any{}, "default_gateway": "", "vnics": []any{}, "security_groups": []any{},
		"host": map[string]any{"entity_id": "10000:4:1", "entity_type": "Host"}, "cluster": map[string]any{"entity_id": "10000:66:1", "entity_type": "Cluster"},
	}
	if v.VCenter != "" {
		m["vcenter_manager"] = map[string]any{"entity_id": v.VCenter, "entity_type": "VCenterManager"}
	}
	switch malform {
	case "":
	case "vcenter_manager":
		m[malform] = v.VCenter
	default:
		m[malform] = 42
	}
	return m
}
