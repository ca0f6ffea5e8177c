// Package simulator simulates the parts of the VMware Aria Operations
// (vRealize Operations, vROps) suite API that the usage meter reads, as
// govmomi's simulator sits beside its client: the vrops collector's tests run
// against it, and `usagemeter demo` can serve it (Serve works outside tests;
// Monitoring builds one from the demo's VMs).
//
// Reference followed (public): "VMware Aria Operations API" (the suite API,
// developer.broadcom.com/xapis/vmware-vrealize-operations-api, also served by
// every instance at /suite-api/doc/swagger-ui.html):
//
//   - Login: POST /suite-api/api/auth/token/acquire with {"username",
//     "password", "authSource"} answers {"token", "validity" (expiry, epoch
//     ms), "expiresAt", "roles"}; later calls send "Authorization: OpsToken
//     <token>". POST /suite-api/api/auth/token/release ends the token. A
//     wrong password, and a call with an expired or unknown token, is 401.
//   - GET /suite-api/api/resources?resourceKind=VirtualMachine&adapterKind=VMWARE
//     &page=N&pageSize=M: {"pageInfo": {"totalCount", "page", "pageSize"},
//     "links": [...], "resourceList": [...]}; page is 0-based, pageSize
//     defaults to 1000. Each resource has "identifier" (its vROps id),
//     "resourceKey" {"name", "adapterKindKey", "resourceKindKey",
//     "resourceIdentifiers": [{"identifierType": {"name", "dataType",
//     "isPartOfUniqueness"}, "value"}]} and "resourceStatusStates"
//     [{"adapterInstanceId", "resourceStatus", "resourceState"}]. A vSphere
//     VM's identifiers are VMEntityName, VMEntityObjectID (its MoRef value),
//     VMEntityVCID (its vCenter's instance UUID), VMEntityInstanceUUID and
//     isPingEnabled.
//   - GET /suite-api/api/deployment/licenses: {"solutionLicenses": [{"id",
//     "licenseKey", "edition", "capacity", "usage", "expirationDate"}]}.
//   - GET /suite-api/api/versions/current: {"releaseName", "buildNumber",
//     "releasedDate", "humanlyReadableReleaseDate"}.
//   - Errors are {"message", "httpStatusCode", "apiErrorCode"}.
//
// Where the reference and the project's APIS.md disagree, the reference is
// followed: APIS.md names no licence call; the brief and APIS.md speak of
// "licence groups" (GET /deployment/licenses/group), the simulator serves the
// solution licences, whose "edition" names the edition directly. The
// simulator's choices where the reference is silent: the edition strings
// are "Standard", "Advanced" and "Enterprise" (real instances may add the
// product name; the collector matches the word); a resource's power state is
// not in the resource list (it is a property), so State.VMs keep it only to
// document the case folders.
package simulator

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/collectors/internal/simhttp"
)

// BasePath is the suite API's path.
const BasePath = "/suite-api/api"

// DefaultPageSize is the pageSize of a list call that gives none.
const DefaultPageSize = 1000

// TokenValidity is how long a token lives (the reference: 6 hours).
const TokenValidity = 6 * time.Hour

// State is what the simulated Aria Operations instance holds.
type State struct {
	User       string `json:"user"`
	Password   string `json:"password"`
	AuthSource string `json:"auth_source,omitempty"` // "" is the local users
	// Licences installed (solution licences).
	Licenses []License `json:"licenses"`
	// VMs is the VirtualMachine resources of the VMWARE adapter, in the
	// order they are listed (a VM listed twice is two resources, as after
	// a vCenter adapter was added twice).
	VMs []VM `json:"vms"`
}

// License is a solution licence.
type License struct {
	Key     string `json:"key"`
	Edition string `json:"edition"` // e.g. "Advanced"
	// Expired sets an expirationDate in the past.
	Expired bool `json:"expired,omitempty"`
}

// VM is a VirtualMachine resource.
type VM struct {
	Name    string `json:"name"`
	MoRef   string `json:"moref"`   // VMEntityObjectID, e.g. vm-1042
	VCenter string `json:"vcenter"` // VMEntityVCID: the vCenter's instance UUID
	// State is the resourceState (default STARTED); NOT_EXISTING marks a
	// VM deleted from its vCenter that vROps still keeps.
	State string `json:"state,omitempty"`
	// Adapter is the adapterKindKey (default VMWARE).
	Adapter string `json:"adapter,omitempty"`
	// PowerState is the VM's power state in its vCenter: not in the
	// resource list, kept so that case folders say what they simulate.
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
	FailPage      int           // page FailPage (1-based) of the resource list answers 500
	Delay         time.Duration // added before every answer
	MalformField  string        // that field of every resource gets a wrong JSON type
	Truncate      bool          // resource list bodies are cut in half
	ThrottleEvery int           // every ThrottleEvery-th call answers 503 (0: never)
	// IgnorePage makes the resource list answer its first page whatever
	// page is asked for (a broken proxy or server).
	IgnorePage bool
}

// Ops is a simulated Aria Operations instance. It is safe for concurrent use.
type Ops struct {
	core     simhttp.Core[Faults]
	sessions simhttp.Sessions[struct{}]
	st       State // not changed after New
}

// New returns a simulator holding st.
func New(st State) *Ops { return &Ops{st: st} }

// Monitoring is a simulator for the demo: user and password, one licence of
// edition, monitoring the first n VMs of refs (all of them when n is larger).
func Monitoring(user, password, edition string, refs []VMRef, n int) *Ops {
	st := State{User: user, Password: password,
		Licenses: []License{{Key: "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", Edition: edition}}}
	for _, r := range refs[:min(n, len(refs))] {
		name := r.Name
		if name == "" {
			name = r.MoRef
		}
		st.VMs = append(st.VMs, VM{Name: name, MoRef: r.MoRef, VCenter: r.VCenter})
	}
	return New(st)
}

// LoadState decodes a State from JSON, refusing unknown keys.
func LoadState(b []byte) (State, error) { return simhttp.LoadState[State]("vrops", b) }

// Serve serves s on a loopback TLS server with a self-signed certificate,
// and returns its URL, the SHA-256 thumbprint of its certificate and a
// function that stops it.
func (s *Ops) Serve() (url, thumbprint string, stop func()) { return simhttp.ServeTLS(s) }

// Start is Serve for a test: the server stops when the test ends.
func (s *Ops) Start(t simhttp.TB) (url, thumbprint string) { return simhttp.StartTLS(t, s) }

// SetFaults replaces the error modes.
func (s *Ops) SetFaults(f Faults) { s.core.SetFaults(f) }

// ExpireSessions ends every token.
func (s *Ops) ExpireSessions() { s.sessions.ExpireAll() }

// Logins is the number of tokens acquired.
func (s *Ops) Logins() int { return s.sessions.Logins() }

// Calls is the number of requests served.
func (s *Ops) Calls() int { return s.core.Calls() }

func apiError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"message": msg, "httpStatusCode": status, "apiErrorCode": status})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// ServeHTTP implements http.Handler.
func (s *Ops) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, n := s.core.Begin()
	simhttp.Wait(r, f.Delay)
	if f.ThrottleEvery > 0 && n%f.ThrottleEvery == 0 {
		w.Header().Set("Retry-After", "0")
		apiError(w, http.StatusServiceUnavailable, "The server is busy, try again later.")
		return
	}
	p, ok := strings.CutPrefix(r.URL.Path, BasePath)
	if !ok {
		apiError(w, http.StatusNotFound, "Not found: "+r.URL.Path)
		return
	}
	if p == "/auth/token/acquire" && r.Method == http.MethodPost {
		s.acquire(w, r, f)
		return
	}
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if scheme != "OpsToken" && scheme != "vRealizeOpsToken" {
		token = ""
	}
	if s.sessions.Use(token, f.RejectAll, f.ExpireAfter, nil) == simhttp.Gone {
		apiError(w, http.StatusUnauthorized, "Authentication failed: the token is invalid or has expired.")
		return
	}
	switch {
	case p == "/auth/token/release" && r.Method == http.MethodPost:
		s.sessions.Close(token)
		w.WriteHeader(http.StatusOK)
	case r.Method != http.MethodGet:
		apiError(w, http.StatusMethodNotAllowed, "Method not allowed")
	case p == "/versions/current":
		writeJSON(w, map[string]any{"releaseName": "VMware Aria Operations 8.18.2", "buildNumber": "24137496",
			"releasedDate": 1727827200000, "humanlyReadableReleaseDate": "October 2, 2024"})
	case p == "/deployment/licenses":
		s.licenses(w)
	case p == "/resources":
		s.resources(w, r, f)
	default:
		apiError(w, http.StatusNotFound, "Not found: "+r.URL.Path)
	}
}

func (s *Ops) acquire(w http.ResponseWriter, r *http.Request, f Faults) {
	var in struct {
		Username   string `json:"username"`
		Password   string `json:"password"`
		AuthSource string `json:"authSource"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		apiError(w, http.StatusBadRequest, "Invalid input format: "+err.Error())
		return
	}
	if f.RejectAll || in.Username != s.st.User || in.Password != s.st.Password || !strings.EqualFold(in.AuthSource, s.st.AuthSource) {
		apiError(w, http.StatusUnauthorized, "Invalid credentials: the user name or password is incorrect.")
		return
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b) + "::" + hex.EncodeToString(b[:8])
	s.sessions.Open(token, struct{}{})
	exp := time.Now().Add(TokenValidity)
	writeJSON(w, map[string]any{"token": token, "validity": exp.UnixMilli(),
		"expiresAt": exp.UTC().Format("Monday, January 2, 2006 at 3:04:05 PM Coordinated Universal Time"), "roles": []any{}})
}

func (s *Ops) licenses(w http.ResponseWriter) {
	list := make([]any, 0, len(s.st.Licenses))
	for i, l := range s.st.Licenses {
		exp := time.Now().AddDate(1, 0, 0)
		if l.Expired {
			exp = time.Now().AddDate(0, -1, 0)
		}
		list = append(list, map[string]any{"id": fmt.Sprintf("licence-%d", i+1), "licenseKey": l.Key, "edition": l.Edition,
			"capacity": "1000", "usage": "0", "expirationDate": exp.UnixMilli()})
	}
	writeJSON(w, map[string]any{"solutionLicenses": list})
}

func resource(v VM, i int, malform string) map[string]any {
	ident := func(name, value string) map[string]any {
		return map[string]any{"identifierType": map[string]any{"name": name, "dataType": "STRING", "isPartOfUniqueness": name != "VMEntityName"}, "value": value}
	}
	adapter, state := v.Adapter, v.State
	if adapter == "" {
		adapter = "VMWARE"
	}
	if state == "" {
		state = "STARTED"
	}
	status := "DATA_RECEIVING"
	if state == "NOT_EXISTING" {
		status = "NO_DATA_RECEIVING"
	}
	key := map[string]any{
		"name": v.Name, "adapterKindKey": adapter, "resourceKindKey": "VirtualMachine",
		"resourceIdentifiers": []any{
			ident("VMEntityName", v.Name), ident("VMEntityObjectID", v.MoRef), ident("VMEntityVCID", v.VCenter),
			ident("VMEntityInstanceUUID", fmt.Sprintf("5003%04x-0000-4000-8000-%012x", i%0x10000, i)), ident("isPingEnabled", "true"),
		},
	}
	m := map[string]any{
		"creationTime": 1700000000000, "identifier": fmt.Sprintf("b1c2d3e4-0000-4000-8000-%012x", i),
		"resourceKey":          key,
		"resourceStatusStates": []any{map[string]any{"adapterInstanceId": "a1b2c3d4-0000-4000-8000-000000000001", "resourceStatus": status, "resourceState": state, "statusMessage": ""}},
		"resourceHealth":       "GREEN", "resourceHealthValue": 100.0, "dtEnabled": true, "badges": []any{}, "relatedResources": []any{},
		"links": []any{},
	}
	switch malform {
	case "":
	case "resourceIdentifiers":
		key[malform] = "VMEntityObjectID=" + v.MoRef
	case "value":
		key["resourceIdentifiers"] = []any{map[string]any{"identifierType": map[string]any{"name": "VMEntityObjectID"}, "value": 42}}
	case "resourceStatusStates":
		m[malform] = "STARTED"
	default:
		m[malform] = 42
	}
	return m
}

// resources writes one page of the VirtualMachine resources.
func (s *Ops) resources(w http.ResponseWriter, r *http.Request, f Faults) {
	q := r.URL.Query()
	if k := q.Get("resourceKind"); k != "" && k != "VirtualMachine" {
		writeJSON(w, map[string]any{"pageInfo": map[string]any{"totalCount": 0, "page": 0, "pageSize": DefaultPageSize}, "links": []any{}, "resourceList": []any{}})
		return
	}
	page, size := 0, DefaultPageSize
	if bad := simhttp.IntParams(q, simhttp.Int("page", 0, &page), simhttp.Int("pageSize", 1, &size)); bad != "" {
		apiError(w, http.StatusBadRequest, "Invalid "+bad+": "+q.Get(bad))
		return
	}
	if f.IgnorePage {
		page = 0
	}
	if f.FailPage > 0 && page+1 == f.FailPage {
		apiError(w, http.StatusInternalServerError, "Internal Server error, cause unknown.")
		return
	}
	total := len(s.st.VMs)
	start := min(page*size, total)
	end := min(start+size, total)
	list := make([]any, 0, end-start)
	for i := start; i < end; i++ {
		list = append(list, resource(s.st.VMs[i], i, f.MalformField))
	}
	link := func(rel string, pg int) map[string]any {
		v := r.URL.Query()
		v.Set("page", strconv.Itoa(pg))
		v.Set("pageSize", strconv.Itoa(size))
		return map[string]any{"href": BasePath + "/resources?" + v.Encode(), "rel": rel, "name": strings.ToLower(rel)}
	}
	links := []any{link("SELF", page), link("FIRST", 0)}
	if end < total {
		links = append(links, link("NEXT", page+1))
	}
	body, _ := json.Marshal(map[string]any{
		"pageInfo":     map[string]any{"totalCount": total, "page": page, "pageSize": size},
		"links":        links,
		"resourceList": list,
	})
	if f.Truncate {
		body = body[:len(body)/2]
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.Copy(w, bytes.NewReader(body))
}
