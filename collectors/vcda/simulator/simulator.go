// Package simulator simulates the parts of the VMware Cloud Director
// Availability (VCDA) REST API that the usage meter reads, as govmomi's
// simulator sits beside its client: the vcda collector's tests run against
// it, and it can serve `usagemeter demo` (Serve works outside tests).
//
// Reference followed (public): "VMware Cloud Director Availability API
// Reference" 4.1, 4.5 and 4.6 (developer.broadcom.com/xapis/vmware-cloud-director-availability-api/<version>,
// its "Cloud Director DR and Migration API Reference" and Programming Guide),
// and the PowerVCAV PowerShell module (github.com/jondwaite/PowerVCAV), which
// pages the same lists:
//
//   - Login: POST /sessions with a JSON body, one of {"type":
//     "vcdCredentials", "vcdUser", "vcdPassword"}, {"type": "localUser",
//     "localUser", "localPassword"} (the appliance's root) or {"type":
//     "ssoCredentials", "username", "password"}. The answer is
//     C4SessionDetails {"user", "roles", "authenticatedSites": [{"org",
//     "site"}]}; the session token is in the X-VCAV-Auth response header,
//     sent back in the X-VCAV-Auth request header. DELETE /sessions logs out.
//   - Versioning: every call sends Accept:
//     application/vnd.vmware.h4-v<X.Y>+json; answers carry the same content
//     type.
//   - GET /diagnostics/about: AboutInfo {"productName", "buildVersion",
//     "buildDate", "instanceId", "runtimeId"}.
//   - GET /vm-replications and GET /vapp-replications, paged with offset and
//     limit ("If omitted or higher than the server's limits, defaults to
//     100"); the answer is {"items": [...], "total": N} (as PowerVCAV's
//     Invoke-VCAVPagedQuery reads it). A VM replication: id ("C4-<uuid>"),
//     owner ("org@site"), isMigration, isPaused, isReversed, vmName,
//     dataConnectionState (POWERED_OFF for a powered-off source VM, the
//     reference's filter example), overallHealth (GREEN, YELLOW, RED),
//     source {site, org, vdcId, vdcName, vappId, vappName, vmId,
//     vimServerUuid}, destination {site, org, vdcId, vdcName,
//     recoveredVappId, recoveredVmId}. A vApp replication: id
//     ("C4VAPP-<uuid>"), owner, isMigration, source {site, org, vdcId,
//     vdcName, vappId, vappName}, destination, vmReplications [VM
//     replications].
//   - Errors are ApiError {"args", "code", "msg", "stacktrace"}: 401
//     NotAuthenticated for a wrong password or a missing, unknown or expired
//     session, 500 GeneralServerFailure.
//
// Where the reference and the project's APIS.md disagree, the reference is
// followed, and the difference is said here:
//   - APIS.md names only the localUser login "or VCD credentials"; the
//     reference's VCD login type is "vcdCredentials" with vcdUser and
//     vcdPassword (the "credentials"/vcdUsername/vcdPassword shape is that
//     of POST /sessions/extend, for remote sites). Both logins and
//     ssoCredentials are served.
//   - APIS.md says nothing of paging: the reference pages with offset/limit
//     and caps the limit at the server's limit (100 here, State.MaxLimit).
//
// The simulator's choices where the reference is silent (assumed, and named
// so the collector does not depend on more than it must):
//   - The names of the source VM's fields in a list item: the reference's
//     filters are vmId ("vm-1 for a DR2C replication,
//     4e7fa4b1-... for C2C replication") and sourceVimServerUuid; the
//     simulator puts them in source as vmId and vimServerUuid.
//   - An API version the server does not offer is answered 406 Not
//     Acceptable with code UnsupportedApiVersion and a message naming the
//     versions offered (State.Versions; default 4.5, 4.6, 4.7), whether
//     or not the call is authenticated.
//   - A replication whose source VM was deleted keeps its record with
//     source.vmId null and vmName "" (VM.Deleted).
//   - VMs of a vApp replication are not repeated in /vm-replications
//     (the collector counts each VM once either way).
package simulator

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/collectors/internal/simhttp"
)

// DefaultPageSize is the limit of a list call that gives none, and the
// largest limit served when State.MaxLimit is 0.
const DefaultPageSize = 100

// MediaPrefix and MediaSuffix frame the API version in the Accept header.
const (
	MediaPrefix = "application/vnd.vmware.h4-v"
	MediaSuffix = "+json"
)

// State is what the simulated VCDA cloud site holds.
type State struct {
	User     string `json:"user"`
	Password string `json:"password"`
	// Versions are the API versions served (default 4.5, 4.6, 4.7).
	Versions []string `json:"versions,omitempty"`
	// Site is the local site's name; Org the org of the logged-in user
	// (default "System").
	Site       string `json:"site"`
	Org        string `json:"org,omitempty"`
	InstanceID string `json:"instance_id"`
	Build      string `json:"build,omitempty"`
	// MaxLimit is the server's page limit (0: 100).
	MaxLimit int               `json:"max_limit,omitempty"`
	VMs      []VMReplication   `json:"vm_replications"`
	VApps    []VAppReplication `json:"vapp_replications"`
}

// End is a replication's source or destination.
type End struct {
	Site    string `json:"site"`
	Org     string `json:"org"`
	VdcName string `json:"vdc,omitempty"`
}

// VMReplication is a VM-level replication.
type VMReplication struct {
	ID        string `json:"id"`
	VMID      string `json:"vm_id"` // source vmId: a VCD VM uuid (C2C) or a vCenter MoRef (DR2C)
	VMName    string `json:"vm_name"`
	VimServer string `json:"vim_server_uuid,omitempty"` // source vCenter instance UUID, DR2C
	Migration bool   `json:"migration,omitempty"`
	// PowerState of the source VM: "poweredOff" shows as dataConnectionState
	// POWERED_OFF.
	PowerState string `json:"power_state,omitempty"`
	// Deleted: the source VM no longer exists (vmId null, vmName "").
	Deleted  bool   `json:"deleted,omitempty"`
	VAppID   string `json:"vapp_id,omitempty"`
	VAppName string `json:"vapp_name,omitempty"`
	Source   End    `json:"source"`
	Dest     End    `json:"destination"`
}

// VAppReplication is a vApp-level replication, with its VMs.
type VAppReplication struct {
	ID        string          `json:"id"`
	VAppID    string          `json:"vapp_id"`
	VAppName  string          `json:"vapp_name"`
	Migration bool            `json:"migration,omitempty"`
	Source    End             `json:"source"`
	Dest      End             `json:"destination"`
	VMs       []VMReplication `json:"vms"`
}

// Faults are error modes a test switches on.
type Faults struct {
	ExpireAfter   int           // a session dies after that many calls (0: never)
	RejectAll     bool          // every login and session is refused with 401
	FailPage      int           // page FailPage (1-based) of /vm-replications answers 500
	Delay         time.Duration // added before every answer
	MalformField  string        // that field of every VM replication gets a wrong JSON type
	Truncate      bool          // list bodies are cut in half
	ThrottleEvery int           // every ThrottleEvery-th call answers 503 (0: never)
	Throttle429   bool          // the throttled calls answer 429 instead
	// IgnoreOffset makes the lists answer their first page whatever the
	// offset asked for (a broken proxy or server).
	IgnoreOffset bool
}

// VCDA is a simulated VCDA cloud site. It is safe for concurrent use.
type VCDA struct {
	core     simhttp.Core[Faults]
	sessions simhttp.Sessions[struct{}]
	st       State // not changed after New
}

// New returns a simulator holding st.
func New(st State) *VCDA {
	if len(st.Versions) == 0 {
		st.Versions = []string{"4.5", "4.6", "4.7"}
	}
	if st.Org == "" {
		st.Org = "System"
	}
	if st.Build == "" {
		st.Build = "4.7.0.1234567-abcdef0123"
	}
	if st.MaxLimit <= 0 {
		st.MaxLimit = DefaultPageSize
	}
	return &VCDA{st: st}
}

// LoadState decodes a State from JSON, refusing unknown keys.
func LoadState(b []byte) (State, error) { return simhttp.LoadState[State]("vcda", b) }

// Serve serves s on a loopback TLS server with a self-signed certificate,
// and returns its URL, the SHA-256 thumbprint of its certificate and a
// function that stops it.
func (s *VCDA) Serve() (url, thumbprint string, stop func()) { return simhttp.ServeTLS(s) }

// Start is Serve for a test: the server stops when the test ends.
func (s *VCDA) Start(t simhttp.TB) (url, thumbprint string) { return simhttp.StartTLS(t, s) }

// SetFaults replaces the error modes.
func (s *VCDA) SetFaults(f Faults) { s.core.SetFaults(f) }

// ExpireSessions ends every session.
func (s *VCDA) ExpireSessions() { s.sessions.ExpireAll() }

// Logins is the number of sessions created.
func (s *VCDA) Logins() int { return s.sessions.Logins() }

// Calls is the number of requests served.
func (s *VCDA) Calls() int { return s.core.Calls() }

func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"args": []any{}, "code": code, "msg": msg,
		"stacktrace": "com.vmware.h4.api.error.exceptions." + code + "Exception: " + msg})
}

func writeJSON(w http.ResponseWriter, version string, v any) {
	w.Header().Set("Content-Type", MediaPrefix+version+MediaSuffix+";charset=UTF-8")
	_ = json.NewEncoder(w).Encode(v)
}

// version is the API version an Accept header asks for, "" if none.
func version(accept string) string {
	for _, a := range strings.Split(accept, ",") {
		a, _, _ = strings.Cut(strings.TrimSpace(a), ";")
		if v, ok := strings.CutPrefix(a, MediaPrefix); ok {
			return strings.TrimSuffix(v, MediaSuffix)
		}
	}
	return ""
}

// ServeHTTP implements http.Handler.
func (s *VCDA) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, n := s.core.Begin()
	simhttp.Wait(r, f.Delay)
	if f.ThrottleEvery > 0 && n%f.ThrottleEvery == 0 {
		w.Header().Set("Retry-After", "0")
		if f.Throttle429 {
			apiError(w, http.StatusTooManyRequests, "TooManyRequests", "Too many requests.")
			return
		}
		apiError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "The service is not available.")
		return
	}
	v := version(r.Header.Get("Accept"))
	if !slices.Contains(s.st.Versions, v) {
		apiError(w, http.StatusNotAcceptable, "UnsupportedApiVersion",
			fmt.Sprintf("API version %q is not supported; supported versions: %s", v, strings.Join(s.st.Versions, ", ")))
		return
	}
	if r.URL.Path == "/sessions" && r.Method == http.MethodPost {
		s.login(w, r, f, v)
		return
	}
	id := r.Header.Get("X-VCAV-Auth")
	if s.sessions.Use(id, f.RejectAll, f.ExpireAfter, nil) == simhttp.Gone {
		apiError(w, http.StatusUnauthorized, "NotAuthenticated", "Not authenticated.")
		return
	}
	switch {
	case r.URL.Path == "/sessions" && r.Method == http.MethodDelete:
		s.sessions.Close(id)
		w.WriteHeader(http.StatusNoContent)
	case r.Method != http.MethodGet:
		apiError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "Method not allowed.")
	case r.URL.Path == "/sessions":
		writeJSON(w, v, s.details())
	case r.URL.Path == "/diagnostics/about":
		writeJSON(w, v, map[string]any{"productName": "VMware Cloud Director Availability Cloud Service",
			"buildVersion": s.st.Build, "buildDate": 1684512489298, "instanceId": s.st.InstanceID,
			"runtimeId": "6bf29550-b1c0-4654-ab89-06aa0b044d59"})
	case r.URL.Path == "/vm-replications":
		s.list(w, r, f, v, true, len(s.st.VMs), func(i int) any { return vmRecord(&s.st.VMs[i], nil, f.MalformField) })
	case r.URL.Path == "/vapp-replications":
		s.list(w, r, f, v, false, len(s.st.VApps), func(i int) any { return vappRecord(&s.st.VApps[i], f.MalformField) })
	default:
		apiError(w, http.StatusNotFound, "NotFound", "Not found: "+r.URL.Path)
	}
}

func (s *VCDA) details() map[string]any {
	return map[string]any{"user": s.st.User, "roles": []string{"ADMINISTRATORS"},
		"authenticatedSites": []any{map[string]any{"org": s.st.Org, "site": s.st.Site}}}
}

func (s *VCDA) login(w http.ResponseWriter, r *http.Request, f Faults, v string) {
	var body map[string]any
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err := json.Unmarshal(b, &body); err != nil {
		apiError(w, http.StatusBadRequest, "BadRequest", "Malformed request body.")
		return
	}
	keys := map[string][2]string{
		"vcdCredentials": {"vcdUser", "vcdPassword"},
		"localUser":      {"localUser", "localPassword"},
		"ssoCredentials": {"username", "password"},
	}
	typ, _ := body["type"].(string)
	k, ok := keys[typ]
	if !ok {
		apiError(w, http.StatusBadRequest, "BadUserInput", fmt.Sprintf("Unsupported authentication type %q.", typ))
		return
	}
	user, _ := body[k[0]].(string)
	pass, _ := body[k[1]].(string)
	if f.RejectAll || user != s.st.User || pass != s.st.Password {
		apiError(w, http.StatusUnauthorized, "NotAuthenticated", "Authentication failed: bad user name or password.")
		return
	}
	tok := make([]byte, 24)
	_, _ = rand.Read(tok)
	id := hex.EncodeToString(tok)
	s.sessions.Open(id, struct{}{})
	w.Header().Set("X-VCAV-Auth", id)
	writeJSON(w, v, s.details())
}

func end(e End, vdcID string) map[string]any {
	return map[string]any{"site": e.Site, "org": e.Org, "vdcName": e.VdcName, "vdcId": vdcID}
}

func vmRecord(vm *VMReplication, vapp *VAppReplication, malform string) map[string]any {
	src := end(vm.Source, "f61d60d2-698a-46dc-a266-88df27644956")
	dst := end(vm.Dest, "5ee9224f-305d-46f6-865f-b605e70acef8")
	migration := vm.Migration
	if vapp != nil {
		src = end(vapp.Source, "f61d60d2-698a-46dc-a266-88df27644956")
		dst = end(vapp.Dest, "5ee9224f-305d-46f6-865f-b605e70acef8")
		migration = vapp.Migration
		src["vappId"], src["vappName"] = vapp.VAppID, vapp.VAppName
	} else if vm.VAppID != "" || vm.VAppName != "" {
		src["vappId"], src["vappName"] = vm.VAppID, vm.VAppName
	}
	var vmID any = vm.VMID
	name := vm.VMName
	if vm.Deleted {
		vmID, name = nil, ""
	}
	src["vmId"] = vmID
	if vm.VimServer != "" {
		src["vimServerUuid"] = vm.VimServer
	}
	state := "SYNCING"
	if strings.EqualFold(vm.PowerState, "poweredOff") {
		state = "POWERED_OFF"
	}
	dst["recoveredVmId"] = nil
	m := map[string]any{
		"id": vm.ID, "owner": vm.Dest.Org + "@" + vm.Dest.Site, "isMigration": migration,
		"isPaused": false, "isReversed": false, "vmName": name, "computerName": name,
		"dataConnectionState": state, "overallHealth": "GREEN", "lastUpdated": 1499929558827,
		"source": src, "destination": dst,
		"settings": map[string]any{"rpo": 15, "quiesced": false, "dataConnectionType": "ENCRYPTED_COMPRESSED"},
	}
	switch malform {
	case "":
	case "isMigration":
		m[malform] = "yes"
	case "source":
		m[malform] = "site1"
	default:
		m[malform] = 42
	}
	return m
}

func vappRecord(va *VAppReplication, malform string) map[string]any {
	vms := make([]any, len(va.VMs))
	for i := range va.VMs {
		vms[i] = vmRecord(&va.VMs[i], va, malform)
	}
	src := end(va.Source, "f61d60d2-698a-46dc-a266-88df27644956")
	src["vappId"], src["vappName"] = va.VAppID, va.VAppName
	return map[string]any{
		"id": va.ID, "owner": va.Dest.Org + "@" + va.Dest.Site, "isMigration": va.Migration,
		"source": src, "destination": end(va.Dest, "5ee9224f-305d-46f6-865f-b605e70acef8"),
		"vmReplications": vms, "overallHealth": "GREEN", "lastUpdated": 1499929558827,
	}
}

// list writes one page of a list, paged with offset and limit. vms marks
// /vm-replications, which the FailPage fault applies to.
func (s *VCDA) list(w http.ResponseWriter, r *http.Request, f Faults, v string, vms bool, total int, item func(int) any) {
	q := r.URL.Query()
	offset, limit := 0, DefaultPageSize
	if x := q.Get("offset"); x != "" {
		n, err := strconv.Atoi(x)
		if err != nil || n < 0 {
			apiError(w, http.StatusBadRequest, "BadUserInput", "Invalid offset: "+x)
			return
		}
		offset = n
	}
	if x := q.Get("limit"); x != "" {
		n, err := strconv.Atoi(x)
		if err != nil || n < 1 {
			apiError(w, http.StatusBadRequest, "BadUserInput", "Invalid limit: "+x)
			return
		}
		limit = n
	}
	if f.IgnoreOffset {
		offset = 0
	}
	if limit > s.st.MaxLimit {
		limit = DefaultPageSize // the reference: "higher than the server's limits, defaults to 100"
	}
	if vms && f.FailPage > 0 && offset/limit+1 == f.FailPage {
		apiError(w, http.StatusInternalServerError, "GeneralServerFailure", "General server failure.")
		return
	}
	e := min(offset+limit, total)
	items := make([]any, 0, max(e-offset, 0))
	for i := offset; i < e; i++ {
		items = append(items, item(i))
	}
	body, _ := json.Marshal(map[string]any{"items": items, "total": total})
	if f.Truncate {
		body = body[:len(body)/2]
	}
	w.Header().Set("Content-Type", MediaPrefix+v+MediaSuffix+";charset=UTF-8")
	_, _ = io.Copy(w, bytes.NewReader(body))
}
