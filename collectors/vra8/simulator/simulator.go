// Package simulator simulates the parts of the VMware Aria Automation 8.x
// (vRealize Automation 8) API that the usage meter reads, as govmomi's
// simulator sits beside its client: the vra8 collector's tests run against
// it, and it can serve `usagemeter demo` (Serve and NewDemo work outside
// tests).
//
// Reference followed (public): the IaaS API swagger of vmware/vra-sdk-go
// (swagger/vra-iaas.json, "VMware Cloud Assembly IaaS API", version
// 2021-07-15) and the on-premises login flow of the Aria Automation 8 API
// programming guide:
//
//   - Login, step 1: POST /csp/gateway/am/api/login?access_token with
//     {"username", "password"} (and "domain" for a directory user) answers
//     {"refresh_token": ...} (with access_token, id_token, token_type,
//     expires_in); a wrong user name or password is 401.
//   - Login, step 2: POST /iaas/api/login with CspLoginSpecification
//     {"refreshToken"} answers AuthResponse {"tokenType": "Bearer",
//     "token"}; later calls send "Authorization: Bearer <token>". An unknown
//     or expired refresh token is 400 here, as the reference lists (400
//     Invalid Request, 403 Forbidden); an expired or unknown bearer token on
//     a later call is 401.
//   - GET /iaas/api/machines: MachineResult {"content": [Machine],
//     "numberOfElements", "totalElements"}; Machine has id, name,
//     externalId, externalRegionId, externalZoneId, powerState (ON, OFF,
//     GUEST_OFF, UNKNOWN, SUSPEND), cloudAccountIds, projectId,
//     deploymentId, customProperties (strings), _links.
//   - GET /iaas/api/cloud-accounts: CloudAccountResult of CloudAccount: id,
//     name, cloudAccountType (vsphere, aws, azure, gcp, nsxv, nsxt, vmc,
//     vcf, ...), cloudAccountProperties, customProperties, _links.
//   - Paging: the OData-like $top and $skip query parameters (the swagger's
//     description of every list); totalElements "in some cases may not be
//     populated". apiVersion is a query parameter (yyyy-MM-dd); an unknown
//     one is 400 here.
//   - Errors are ServiceErrorResponse {"message", "statusCode",
//     "errorCode", "messageId", "details"}.
//
// The simulator's choices where the reference is silent: a vSphere
// machine's customProperties carry the vCenter's instance UUID as "vcUuid"
// and the VM's MoRef as "__moref" ("VirtualMachine:vm-42"), as Aria
// Automation's extensibility payloads of vSphere machines show; its
// externalId is the VM's instance UUID. A vSphere cloud account's
// customProperties carry "vcUuid" too (State: CloudAccount.VCenterUUID), a
// fallback for machines without it. A public cloud machine's externalId is
// its id in that cloud (i-..., an Azure resource id, a GCE instance id).
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

// API paths.
const (
	CSPLoginPath      = "/csp/gateway/am/api/login"
	IaaSLoginPath     = "/iaas/api/login"
	MachinesPath      = "/iaas/api/machines"
	CloudAccountsPath = "/iaas/api/cloud-accounts"
	AboutPath         = "/iaas/api/about"
)

// DefaultAPIVersions are the apiVersion values served when State.APIVersions
// is empty.
var DefaultAPIVersions = []string{"2021-07-15", "2019-01-15"}

// DefaultTop is the page size of a list call without $top (the reference
// does not say it; 20 as the Cloud Assembly lists).
const DefaultTop = 20

// State is what the simulated Aria Automation holds.
type State struct {
	User     string `json:"user"`
	Password string `json:"password"`
	// Domain, when set, must be sent with the login (a directory user).
	Domain        string         `json:"domain,omitempty"`
	APIVersions   []string       `json:"api_versions,omitempty"`
	CloudAccounts []CloudAccount `json:"cloud_accounts"`
	Machines      []Machine      `json:"machines"`
	// AuthFailure400 answers a wrong password at the CSP login with 400
	// instead of 401 (releases differ; the reference does not say).
	AuthFailure400 bool `json:"auth_failure_400,omitempty"`
	// MaxTop, when set, caps the $top of list calls (a server's own
	// maximum page size).
	MaxTop int `json:"max_top,omitempty"`
	// OmitTotal leaves totalElements out of list answers (the reference:
	// "in some cases the field may not be populated").
	OmitTotal bool `json:"omit_total,omitempty"`
}

// CloudAccount is a cloud account (an endpoint: a vCenter, an AWS account,
// an Azure subscription, a GCP project).
type CloudAccount struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"` // cloudAccountType: vsphere, aws, azure, gcp, vmc, ...
	// VCenterUUID is a vSphere account's vCenter instance UUID (customProperties.vcUuid).
	VCenterUUID string `json:"vcenter_uuid,omitempty"`
	HostName    string `json:"host_name,omitempty"`
	// Hidden accounts are named by machines but not listed (deleted, or
	// not visible to the metering user).
	Hidden bool `json:"hidden,omitempty"`
}

// Machine is a machine managed by Aria Automation.
type Machine struct {
	ID            string   `json:"id"`
	Name          string   `json:"name"`
	CloudAccounts []string `json:"cloud_accounts"` // cloudAccountIds
	ExternalID    string   `json:"external_id,omitempty"`
	Region        string   `json:"region,omitempty"`
	PowerState    string   `json:"power_state,omitempty"` // default ON
	// VCenterUUID and MoRef are a vSphere machine's customProperties vcUuid
	// and __moref ("VirtualMachine:" + MoRef).
	VCenterUUID string `json:"vcenter_uuid,omitempty"`
	MoRef       string `json:"moref,omitempty"`
	Project     string `json:"project,omitempty"`
}

// Faults are error modes a test switches on.
type Faults struct {
	ExpireAfter   int           // a bearer token dies after that many calls (0: never)
	RejectAll     bool          // every login and token is refused
	FailPage      int           // page FailPage (1-based) of the machine list answers 500
	Delay         time.Duration // added before every answer
	MalformField  string        // that field of every machine record gets a wrong JSON type
	Truncate      bool          // machine list bodies are cut in half
	ThrottleEvery int           // every ThrottleEvery-th call answers 503 (0: never)
	IgnoreSkip    bool          // the machine list answers its first page whatever $skip says
}

// VRA is a simulated Aria Automation 8. It is safe for concurrent use.
type VRA struct {
	core    simhttp.Core[Faults]
	tokens  simhttp.Sessions[struct{}] // bearer tokens
	refresh simhttp.Sessions[struct{}] // refresh tokens
	st      State                      // not changed after New
}

// New returns a simulator holding st.
func New(st State) *VRA {
	if len(st.APIVersions) == 0 {
		st.APIVersions = DefaultAPIVersions
	}
	return &VRA{st: st}
}

// VMRef is a vCenter VM that a demo's Aria Automation manages.
type VMRef struct {
	VCenterUUID string // the vCenter's instance UUID
	MoRef       string // the VM's MoRef value, e.g. vm-42
	Name        string // "" names it after its MoRef
}

// NewDemo returns a simulator for the demo: user and password, one vSphere
// cloud account per vCenter of vms with a machine for each VM of vms, and
// perCloud machines in each of an AWS, an Azure and a GCP cloud account.
func NewDemo(user, password string, vms []VMRef, perCloud int) *VRA {
	return New(NewDemoState(user, password, vms, perCloud))
}

// NewDemoState is the State NewDemo serves.
func NewDemoState(user, password string, vms []VMRef, perCloud int) State {
	st := State{User: user, Password: password}
	accounts := map[string]string{}
	for i, v := range vms {
		acct, ok := accounts[v.VCenterUUID]
		if !ok {
			acct = fmt.Sprintf("vsphere-%d", len(accounts)+1)
			accounts[v.VCenterUUID] = acct
			st.CloudAccounts = append(st.CloudAccounts, CloudAccount{ID: acct, Name: "vCenter " + strconv.Itoa(len(accounts)),
				Type: "vsphere", VCenterUUID: v.VCenterUUID, HostName: fmt.Sprintf("vc%02d.demo.example", len(accounts))})
		}
		name := v.Name
		if name == "" {
			name = v.MoRef
		}
		st.Machines = append(st.Machines, Machine{ID: fmt.Sprintf("machine-vs-%05d", i), Name: name, CloudAccounts: []string{acct},
			VCenterUUID: v.VCenterUUID, MoRef: v.MoRef, Region: "Datacenter:datacenter-2", Project: "demo"})
	}
	for _, c := range []struct{ typ, name, region string }{
		{"aws", "AWS production", "eu-west-1"}, {"azure", "Azure subscription", "westeurope"}, {"gcp", "GCP project", "europe-west1"},
	} {
		st.CloudAccounts = append(st.CloudAccounts, CloudAccount{ID: c.typ + "-1", Name: c.name, Type: c.typ})
		for i := range perCloud {
			st.Machines = append(st.Machines, Machine{ID: fmt.Sprintf("machine-%s-%05d", c.typ, i), Name: fmt.Sprintf("%s-vm-%03d", c.typ, i),
				CloudAccounts: []string{c.typ + "-1"}, ExternalID: fmt.Sprintf("%s-instance-%05d", c.typ, i), Region: c.region, Project: "demo"})
		}
	}
	return st
}

// LoadState decodes a State from JSON, refusing unknown keys.
func LoadState(b []byte) (State, error) { return simhttp.LoadState[State]("vra8", b) }

// Serve serves s on a loopback TLS server with a self-signed certificate,
// and returns its URL, the SHA-256 thumbprint of its certificate and a
// function that stops it.
func (s *VRA) Serve() (url, thumbprint string, stop func()) { return simhttp.ServeTLS(s) }

// Start is Serve for a test: the server stops when the test ends.
func (s *VRA) Start(t simhttp.TB) (url, thumbprint string) { return simhttp.StartTLS(t, s) }

// SetFaults replaces the error modes.
func (s *VRA) SetFaults(f Faults) { s.core.SetFaults(f) }

// ExpireSessions ends every bearer token (refresh tokens live on).
func (s *VRA) ExpireSessions() { s.tokens.ExpireAll() }

// ExpireRefreshTokens ends every refresh token.
func (s *VRA) ExpireRefreshTokens() { s.refresh.ExpireAll() }

// Logins is the number of bearer tokens issued.
func (s *VRA) Logins() int { return s.tokens.Logins() }

// Calls is the number of requests served.
func (s *VRA) Calls() int { return s.core.Calls() }

func respError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"message": msg, "statusCode": status, "errorCode": status * 10,
		"messageId": "", "details": []any{}, "documentKind": "com:vmware:xenon:common:ServiceErrorResponse"})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func token() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ServeHTTP implements http.Handler.
func (s *VRA) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, n := s.core.Begin()
	simhttp.Wait(r, f.Delay)
	if f.ThrottleEvery > 0 && n%f.ThrottleEvery == 0 {
		w.Header().Set("Retry-After", "0")
		respError(w, http.StatusServiceUnavailable, "Service is temporarily unavailable.")
		return
	}
	if r.URL.Path == CSPLoginPath && r.Method == http.MethodPost {
		s.cspLogin(w, r, f)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/iaas/api/") {
		respError(w, http.StatusNotFound, "Not found: "+r.URL.Path)
		return
	}
	if v := r.URL.Query().Get("apiVersion"); v != "" && !slices.Contains(s.st.APIVersions, v) {
		respError(w, http.StatusBadRequest, fmt.Sprintf("Invalid apiVersion %s. Supported versions: %s", v, strings.Join(s.st.APIVersions, ", ")))
		return
	}
	if r.URL.Path == IaaSLoginPath && r.Method == http.MethodPost {
		s.iaasLogin(w, r, f)
		return
	}
	bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if s.tokens.Use(bearer, f.RejectAll, f.ExpireAfter, nil) == simhttp.Gone {
		respError(w, http.StatusUnauthorized, "Unauthorized: the token is invalid or expired.")
		return
	}
	if r.Method != http.MethodGet {
		respError(w, http.StatusMethodNotAllowed, "Method not allowed")
		return
	}
	switch r.URL.Path {
	case AboutPath:
		writeJSON(w, map[string]any{"latestApiVersion": s.st.APIVersions[0], "supportedApis": []any{}})
	case MachinesPath:
		s.list(w, r, f, true, len(s.st.Machines), func(i int) any { return s.machine(&s.st.Machines[i], f.MalformField) })
	case CloudAccountsPath:
		var shown []*CloudAccount
		for i := range s.st.CloudAccounts {
			if !s.st.CloudAccounts[i].Hidden {
				shown = append(shown, &s.st.CloudAccounts[i])
			}
		}
		s.list(w, r, f, false, len(shown), func(i int) any { return cloudAccount(shown[i]) })
	default:
		respError(w, http.StatusNotFound, "Service not found: "+r.URL.Path)
	}
}

func (s *VRA) cspLogin(w http.ResponseWriter, r *http.Request, f Faults) {
	if _, ok := r.URL.Query()["access_token"]; !ok {
		respError(w, http.StatusBadRequest, "The access_token query parameter is required.")
		return
	}
	var body struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Domain   string `json:"domain"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		respError(w, http.StatusBadRequest, "Invalid request body.")
		return
	}
	if f.RejectAll || body.Username != s.st.User || body.Password != s.st.Password || body.Domain != s.st.Domain {
		if s.st.AuthFailure400 {
			respError(w, http.StatusBadRequest, "Invalid username or password.")
			return
		}
		respError(w, http.StatusUnauthorized, "Invalid username or password.")
		return
	}
	rt := token()
	s.refresh.Open(rt, struct{}{})
	writeJSON(w, map[string]any{"refresh_token": rt, "access_token": token(), "id_token": token(),
		"token_type": "bearer", "expires_in": 1800, "scope": "openid"})
}

func (s *VRA) iaasLogin(w http.ResponseWriter, r *http.Request, f Faults) {
	var body struct {
		RefreshToken string `json:"refreshToken"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.RefreshToken == "" {
		respError(w, http.StatusBadRequest, "Invalid Request - bad data: refreshToken is required.")
		return
	}
	if s.refresh.Use(body.RefreshToken, f.RejectAll, 0, nil) == simhttp.Gone {
		respError(w, http.StatusBadRequest, "Invalid Request - bad data: the refresh token is invalid or expired.")
		return
	}
	t := token()
	s.tokens.Open(t, struct{}{})
	writeJSON(w, map[string]any{"tokenType": "Bearer", "token": t})
}

func (s *VRA) machine(m *Machine, malform string) map[string]any {
	ps := m.PowerState
	if ps == "" {
		ps = "ON"
	}
	props := map[string]any{}
	if m.VCenterUUID != "" {
		props["vcUuid"] = m.VCenterUUID
	}
	if m.MoRef != "" {
		props["__moref"] = "VirtualMachine:" + m.MoRef
		props["__computeType"] = "VirtualMachine"
	}
	ext := m.ExternalID
	if ext == "" && m.MoRef != "" {
		ext = fakeUUID(m.ID) // the VM's instance UUID
	}
	accts := m.CloudAccounts
	if accts == nil {
		accts = []string{}
	}
	rec := map[string]any{
		"id": m.ID, "name": m.Name, "externalId": ext, "externalRegionId": m.Region, "externalZoneId": "",
		"powerState": ps, "cloudAccountIds": accts, "projectId": m.Project, "deploymentId": "",
		"provisioningStatus": "READY", "customProperties": props, "createdAt": "2026-01-05", "updatedAt": "2026-11-01",
		"orgId": "42413b31-1716-477e-9a88-9dc1c3cb1cdf", "owner": "admin",
		"_links": map[string]any{"self": map[string]any{"href": MachinesPath + "/" + m.ID}},
	}
	switch malform {
	case "":
	case "cloudAccountIds":
		rec[malform] = "not-a-list"
	case "customProperties":
		rec[malform] = map[string]any{"vcUuid": 42}
	default:
		rec[malform] = 42
	}
	return rec
}

// fakeUUID is a made-up, deterministic VM instance UUID for id.
func fakeUUID(id string) string {
	var h uint64 = 14695981039346656037 // FNV-1a
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	x := fmt.Sprintf("%016x%016x", h, h^0x9e3779b97f4a7c15)
	return "50" + x[2:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

func cloudAccount(c *CloudAccount) map[string]any {
	props := map[string]any{}
	custom := map[string]any{"isExternal": "false"}
	if c.HostName != "" {
		props["hostName"] = c.HostName
	}
	if c.VCenterUUID != "" {
		custom["vcUuid"] = c.VCenterUUID
	}
	return map[string]any{
		"id": c.ID, "name": c.Name, "cloudAccountType": c.Type, "cloudAccountProperties": props,
		"customProperties": custom, "healthy": true, "inMaintenanceMode": false, "enabledRegions": []any{},
		"_links": map[string]any{"self": map[string]any{"href": CloudAccountsPath + "/" + c.ID}},
	}
}

// list writes one page of a list, paged with $top and $skip. machines marks
// the machine list, which the FailPage, Truncate and IgnoreSkip faults apply
// to.
func (s *VRA) list(w http.ResponseWriter, r *http.Request, f Faults, machines bool, total int, item func(int) any) {
	q := r.URL.Query()
	skip, top := 0, DefaultTop
	if bad := simhttp.IntParams(q, simhttp.Int("$skip", 0, &skip), simhttp.Int("$top", 1, &top)); bad != "" {
		respError(w, http.StatusBadRequest, "Invalid "+bad+": "+q.Get(bad))
		return
	}
	if s.st.MaxTop > 0 {
		top = min(top, s.st.MaxTop)
	}
	if machines && f.IgnoreSkip {
		skip = 0
	}
	if machines && f.FailPage > 0 && skip/top+1 == f.FailPage {
		respError(w, http.StatusInternalServerError, "Internal Server Error: unexpected failure while listing machines.")
		return
	}
	end := min(skip+top, total)
	items := make([]any, 0, max(end-skip, 0))
	for i := skip; i < end; i++ {
		items = append(items, item(i))
	}
	page := map[string]any{"content": items, "numberOfElements": len(items)}
	if !s.st.OmitTotal {
		page["totalElements"] = total
	}
	body, _ := json.Marshal(page)
	if machines && f.Truncate {
		body = body[:len(body)/2]
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.Copy(w, bytes.NewReader(body))
}
