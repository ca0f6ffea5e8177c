// Package simulator simulates the parts of the VMware (Omnissa) Horizon
// Server REST API of a Connection Server that the usage meter reads, as
// govmomi's simulator sits beside its client: the horizon collector's tests
// run against it, and it can serve `usagemeter demo` (Serve works outside
// tests).
//
// Reference followed (public): the "Horizon Server API" OpenAPI document,
// version 2111 (api/openapi.yaml of the GitHub repository umich-vci/gohorizon,
// generated from the Connection Server's own /rest/swagger.json); the
// "Horizon Server REST Pagination and Filter Guide" and "API Throttling for
// Horizon REST APIs" (developer.omnissa.com/horizon-apis/horizon-server);
// and, for the licence list that the 2111 document does not have, the
// "Horizon Server API" reference of later releases (developer.broadcom.com
// /xapis/view-rest-api/2312, LicenseInfoV2; ListLicenses GET
// /config/v1/licenses in the clients generated from it):
//
//   - Base path /rest. POST /rest/login with the JSON AuthLogin {domain,
//     username, password} answers AuthTokens {access_token, refresh_token};
//     calls send "Authorization: Bearer <access_token>". POST /rest/refresh
//     with RefreshToken {refresh_token} answers AccessToken {access_token}.
//     POST /rest/logout with RefreshToken ends the refresh token. A wrong
//     password is 401 ("User is not authenticated"); an unknown or expired
//     access token is 401; an unknown refresh token at /refresh is 400.
//   - GET /rest/config/v1/environment-properties: EnvironmentInfo
//     (cluster_guid, cluster_name, local_pod_name, ...): the pod identity.
//   - GET /rest/config/v1/licenses: a JSON array of LicenseInfo
//     (license_edition, e.g. HORIZON_ENTERPRISE_CONCURRENT_USER; usage_model
//     NAMED_USER or CONCURRENT_USER; license_mode; licensed; license_key
//     redacted). State.NoLicenseAPI answers 404 instead, as releases before
//     the licence API (2111 among them) do.
//   - GET /rest/inventory/v1/desktop-pools (DesktopPoolInfo: id, name,
//     display_name, type AUTOMATED/MANUAL/RDS, source, enabled) and
//     /rest/inventory/v1/farms (FarmInfo: id, name, display_name, type,
//     enabled): JSON arrays, not paged in the reference (they take no page
//     or size).
//   - GET /rest/inventory/v1/machines (MachineInfo: id, name, dns_name,
//     desktop_pool_id, state, type MANAGED_MACHINE/UNMANAGED_MACHINE,
//     user_ids, managed_machine_data {virtual_center_id, host_name,
//     missing_in_vcenter, virtual_machine_power_state, ...}),
//     /rest/inventory/v1/rds-servers (RDSServerInfo: id, name, farm_id,
//     enabled, state, session_count) and /rest/inventory/v1/sessions
//     (SessionInfo: id, session_type DESKTOP/APPLICATION, session_state
//     CONNECTED/DISCONNECTED/PENDING, machine_id, desktop_pool_id, farm_id,
//     rds_server_id, user_id, broker_user_id, client_data {name, address,
//     type}, start_time ...): JSON arrays, paged.
//   - Paging (the guide): page and size query parameters, both or neither
//     (neither: the whole list); both > 0; size at most 1000; the optional
//     response header HAS_MORE_RECORDS says more records follow. The
//     simulator sends "HAS_MORE_RECORDS: true" when they do and no header on
//     the last page (State.NoMoreHeader: never, as older releases).
//   - Errors: {"status", "timestamp", "errors": [{"error_key",
//     "error_message"}]}. Throttling (2406 and later): 429 with
//     X-Rate-Limit-Retry-After-Seconds, status TOO_MANY_REQUESTS and
//     error_key common.api-throttle-limit.exceeded.error.
//
// Where the reference and the project's APIS.md disagree, the reference is
// followed, and the difference is said here:
//   - APIS.md names /rest/config/v1/licenses "or /rest/monitor/..." for the
//     edition: the edition is LicenseInfo.license_edition of
//     /config/v1/licenses (no monitor call gives it); the 2111 document has
//     no licence call at all.
//   - APIS.md says paging uses HAS_MORE_RECORDS "on newer versions": the
//     guide documents it as optional; desktop-pools and farms (v1) are not
//     paged at all.
//   - APIS.md lists session fields without rds_server_id: the reference has
//     it, and leaves farm_id unset for some application sessions.
//   - /logout takes the refresh token in its body (RefreshToken), not only
//     the bearer header.
//
// Personal data: the simulator fills user_id, broker_user_id, user_ids and
// client_data from the state's user and client names, as a real pod would,
// so that tests can prove the collector never keeps them.
package simulator

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/usagemeter/usagemeter/collectors/internal/simhttp"
)

// BasePath is the REST API's base path.
const BasePath = "/rest"

// MaxPageSize is the largest size the API accepts (the paging guide).
const MaxPageSize = 1000

// State is what the simulated Horizon pod holds.
type State struct {
	Domain   string `json:"domain"`
	User     string `json:"user"`
	Password string `json:"password"`
	Pod      Pod    `json:"pod"`
	// Licenses are the pod's licences (LicenseInfo).
	Licenses []License `json:"licenses"`
	// NoLicenseAPI answers 404 at /config/v1/licenses (releases before it).
	NoLicenseAPI bool `json:"no_license_api,omitempty"`
	// NoMoreHeader never sends HAS_MORE_RECORDS (older releases).
	NoMoreHeader bool          `json:"no_more_header,omitempty"`
	DesktopPools []DesktopPool `json:"desktop_pools"`
	Machines     []Machine     `json:"machines"`
	Farms        []Farm        `json:"farms"`
	RDSServers   []RDSServer   `json:"rds_servers"`
	Sessions     []Session     `json:"sessions"`
}

// Pod is the environment (EnvironmentInfo).
type Pod struct {
	ClusterGUID string `json:"cluster_guid"`
	ClusterName string `json:"cluster_name"`
	PodName     string `json:"local_pod_name"`
}

// License is a LicenseInfo.
type License struct {
	Edition    string `json:"license_edition"` // e.g. HORIZON_ENTERPRISE_CONCURRENT_USER
	UsageModel string `json:"usage_model,omitempty"`
	Mode       string `json:"license_mode,omitempty"`
	Licensed   bool   `json:"licensed"`
}

// DesktopPool is a DesktopPoolInfo.
type DesktopPool struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Type    string `json:"type"`   // AUTOMATED, MANUAL, RDS
	Source  string `json:"source"` // INSTANT_CLONE, VIRTUAL_CENTER, RDS, UNMANAGED ...; default by Type
	Enabled bool   `json:"enabled"`
}

// poolSource is a pool's source: DesktopPoolInfo.source is required and one
// of INSTANT_CLONE, LINKED_CLONE, VIRTUAL_CENTER, RDS, UNMANAGED; a pool
// given none gets its type's usual one.
func poolSource(d DesktopPool) string {
	switch {
	case d.Source != "":
		return d.Source
	case d.Type == "RDS":
		return "RDS"
	case d.Type == "MANUAL":
		return "VIRTUAL_CENTER"
	default:
		return "INSTANT_CLONE"
	}
}

// Machine is a MachineInfo.
type Machine struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	PoolID     string `json:"desktop_pool_id"`
	State      string `json:"state"`          // AVAILABLE, CONNECTED, DISCONNECTED, DELETING ...
	Type       string `json:"type,omitempty"` // MANAGED_MACHINE (default), UNMANAGED_MACHINE
	PowerState string `json:"power_state,omitempty"`
	// MissingInVCenter: the VM was deleted from vCenter but Horizon still
	// lists it in its pool.
	MissingInVCenter bool `json:"missing_in_vcenter,omitempty"`
	// Users assigned to the machine (personal data: sent as user_ids SIDs).
	Users []string `json:"users,omitempty"`
}

// Farm is a FarmInfo.
type Farm struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Type    string `json:"type,omitempty"` // AUTOMATED, MANUAL
	Enabled bool   `json:"enabled"`
}

// RDSServer is an RDSServerInfo.
type RDSServer struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	FarmID  string `json:"farm_id"`
	Enabled bool   `json:"enabled"`
}

// Session is a SessionInfo.
type Session struct {
	ID          string `json:"id"`
	Type        string `json:"type"`  // DESKTOP, APPLICATION
	State       string `json:"state"` // CONNECTED, DISCONNECTED, PENDING
	MachineID   string `json:"machine_id,omitempty"`
	PoolID      string `json:"desktop_pool_id,omitempty"`
	FarmID      string `json:"farm_id,omitempty"`
	RDSServerID string `json:"rds_server_id,omitempty"`
	// User and Client are personal data: sent as user_id (a SID) and
	// client_data.name.
	User   string `json:"user"`
	Client string `json:"client,omitempty"`
}

// Faults are error modes a test switches on.
type Faults struct {
	ExpireAfter   int           // an access token dies after that many calls (0: never)
	RejectAll     bool          // every login, refresh and token is refused with 401
	FailPage      int           // page FailPage (1-based) of the machine and session lists answers 500
	Delay         time.Duration // added before every answer
	MalformField  string        // that field of every machine and session record gets a wrong JSON type
	Truncate      bool          // machine and session list bodies are cut in half
	ThrottleEvery int           // every ThrottleEvery-th call answers 429 Too Many Requests (0: never)
	RetryAfter    int           // X-Rate-Limit-Retry-After-Seconds of a throttled answer
	IgnorePage    bool          // paged lists answer their first page whatever the page asked for
	BrokenRefresh bool          // /refresh answers 500
	// Forbidden is a path below /rest (e.g. "config/v1/licenses") that
	// answers 403, as for an account without the privilege it needs.
	Forbidden string
}

// Horizon is a simulated Connection Server. It is safe for concurrent use.
type Horizon struct {
	core      simhttp.Core[Faults]
	access    simhttp.Sessions[string]   // access token -> its refresh token
	refresh   simhttp.Sessions[struct{}] // refresh tokens; one per login
	refreshes atomic.Int64
	st        State // not changed after New
}

// New returns a simulator holding st.
func New(st State) *Horizon {
	if st.Pod.ClusterGUID == "" {
		st.Pod.ClusterGUID = "8a0c3c5e-1d2b-4f6a-9e7d-3b1c2a4d5e6f"
	}
	if st.Pod.ClusterName == "" {
		st.Pod.ClusterName = "HZ-CLUSTER-01"
	}
	if st.Pod.PodName == "" {
		st.Pod.PodName = "Cluster-HZ-CS01"
	}
	return &Horizon{st: st}
}

// LoadState decodes a State from JSON, refusing unknown keys.
func LoadState(b []byte) (State, error) { return simhttp.LoadState[State]("horizon", b) }

// Serve serves h on a loopback TLS server with a self-signed certificate,
// and returns its URL, the SHA-256 thumbprint of its certificate and a
// function that stops it.
func (h *Horizon) Serve() (url, thumbprint string, stop func()) { return simhttp.ServeTLS(h) }

// Start is Serve for a test: the server stops when the test ends.
func (h *Horizon) Start(t simhttp.TB) (url, thumbprint string) { return simhttp.StartTLS(t, h) }

// SetFaults replaces the error modes.
func (h *Horizon) SetFaults(f Faults) { h.core.SetFaults(f) }

// ExpireSessions ends every access and refresh token, as a restart that
// rotates the signing key, or tokens left unused past their lifetime.
func (h *Horizon) ExpireSessions() {
	h.access.ExpireAll()
	h.refresh.ExpireAll()
}

// ExpireAccessTokens ends every access token and keeps the refresh tokens:
// the access token's lifetime ran out, as it does every 30 minutes by
// default.
func (h *Horizon) ExpireAccessTokens() { h.access.ExpireAll() }

// Logins is the number of successful logins (POST /login).
func (h *Horizon) Logins() int { return h.refresh.Logins() }

// Refreshes is the number of access tokens issued by POST /refresh.
func (h *Horizon) Refreshes() int { return int(h.refreshes.Load()) }

// Calls is the number of requests served.
func (h *Horizon) Calls() int { return h.core.Calls() }

// respError writes the API's error body.
func respError(w http.ResponseWriter, status int, key, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"status":    strings.ToUpper(strings.ReplaceAll(http.StatusText(status), " ", "_")),
		"timestamp": time.Now().UnixMilli(),
		"errors":    []any{map[string]any{"error_key": key, "error_message": msg}},
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func token(prefix string) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return prefix + "." + hex.EncodeToString(b)
}

// ServeHTTP implements http.Handler.
func (h *Horizon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, n := h.core.Begin()
	simhttp.Wait(r, f.Delay)
	if f.ThrottleEvery > 0 && n%f.ThrottleEvery == 0 {
		w.Header().Set("X-Rate-Limit-Retry-After-Seconds", strconv.Itoa(f.RetryAfter))
		respError(w, http.StatusTooManyRequests, "common.api-throttle-limit.exceeded.error",
			"API throttling limit have been exceeded. Retry after some time.")
		return
	}
	p, ok := strings.CutPrefix(r.URL.Path, BasePath+"/")
	if !ok {
		respError(w, http.StatusNotFound, "common.not.found", "Not found: "+r.URL.Path)
		return
	}
	switch {
	case p == "login" && r.Method == http.MethodPost:
		h.login(w, r, f)
		return
	case p == "refresh" && r.Method == http.MethodPost:
		h.refreshToken(w, r, f)
		return
	case p == "logout" && r.Method == http.MethodPost:
		var rt struct {
			RefreshToken string `json:"refresh_token"`
		}
		if err := json.NewDecoder(r.Body).Decode(&rt); err != nil || rt.RefreshToken == "" {
			respError(w, http.StatusBadRequest, "common.bad.request", "refresh_token is required")
			return
		}
		h.refresh.Close(rt.RefreshToken)
		w.WriteHeader(http.StatusOK)
		return
	}
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if h.access.Use(tok, f.RejectAll, f.ExpireAfter, nil) != simhttp.Accepted {
		respError(w, http.StatusUnauthorized, "common.authentication.failed", "User is not authenticated")
		return
	}
	if r.Method != http.MethodGet {
		respError(w, http.StatusMethodNotAllowed, "common.method.not.allowed", "Method not allowed")
		return
	}
	if f.Forbidden != "" && p == f.Forbidden {
		respError(w, http.StatusForbidden, "common.access.forbidden", "Access to the resource is forbidden")
		return
	}
	h.get(w, r, f, p)
}

func (h *Horizon) login(w http.ResponseWriter, r *http.Request, f Faults) {
	var in struct {
		Domain   string `json:"domain"`
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Username == "" || in.Domain == "" || in.Password == "" {
		respError(w, http.StatusBadRequest, "common.bad.request", "domain, username and password are required")
		return
	}
	if f.RejectAll || !strings.EqualFold(in.Domain, h.st.Domain) || !strings.EqualFold(in.Username, h.st.User) || in.Password != h.st.Password {
		respError(w, http.StatusUnauthorized, "common.authentication.failed", "User is not authenticated")
		return
	}
	rt, at := token("refresh"), token("access")
	h.refresh.Open(rt, struct{}{})
	h.access.Open(at, rt)
	writeJSON(w, map[string]any{"access_token": at, "refresh_token": rt})
}

func (h *Horizon) refreshToken(w http.ResponseWriter, r *http.Request, f Faults) {
	if f.BrokenRefresh {
		respError(w, http.StatusInternalServerError, "common.internal.error", "Internal Server Error")
		return
	}
	var in struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.RefreshToken == "" {
		respError(w, http.StatusBadRequest, "common.bad.request", "refresh_token is required")
		return
	}
	if h.refresh.Use(in.RefreshToken, f.RejectAll, 0, nil) != simhttp.Accepted {
		respError(w, http.StatusBadRequest, "common.authentication.refresh.failed", "Invalid refresh token")
		return
	}
	at := token("access")
	h.access.Open(at, in.RefreshToken)
	h.refreshes.Add(1)
	writeJSON(w, map[string]any{"access_token": at})
}

func (h *Horizon) get(w http.ResponseWriter, r *http.Request, f Faults, p string) {
	st := &h.st
	switch p {
	case "config/v1/environment-properties":
		writeJSON(w, map[string]any{"cluster_guid": st.Pod.ClusterGUID, "cluster_name": st.Pod.ClusterName,
			"local_pod_name": st.Pod.PodName, "ip_mode": "IPv4", "fips_mode_enabled": false, "timezone_offset": 0})
	case "config/v1/licenses":
		if st.NoLicenseAPI {
			respError(w, http.StatusNotFound, "common.not.found", "Not found: "+r.URL.Path)
			return
		}
		out := make([]any, 0, len(st.Licenses))
		for _, l := range st.Licenses {
			out = append(out, map[string]any{"license_edition": l.Edition, "usage_model": l.UsageModel, "license_mode": l.Mode,
				"licensed": l.Licensed, "license_key": "KHJL-XXXXX-XXXXX-XXXXX-E3HNJ", "expiration_time": 1956527400000,
				"instant_clone_enabled": true, "help_desk_enabled": true, "session_collaboration_enabled": true})
		}
		writeJSON(w, out)
	case "inventory/v1/desktop-pools":
		out := make([]any, 0, len(st.DesktopPools))
		for _, d := range st.DesktopPools {
			out = append(out, map[string]any{"id": d.ID, "name": d.Name, "display_name": d.Name, "type": d.Type,
				"source": poolSource(d), "enabled": d.Enabled, "description": ""})
		}
		writeJSON(w, out)
	case "inventory/v1/farms":
		out := make([]any, 0, len(st.Farms))
		for _, fm := range st.Farms {
			typ := fm.Type
			if typ == "" {
				typ = "AUTOMATED"
			}
			out = append(out, map[string]any{"id": fm.ID, "name": fm.Name, "display_name": fm.Name, "type": typ,
				"source": "INSTANT_CLONE", "enabled": fm.Enabled, "description": ""})
		}
		writeJSON(w, out)
	case "inventory/v1/machines":
		h.list(w, r, f, true, len(st.Machines), func(i int) any { return machineRecord(st.Machines[i], f.MalformField) })
	case "inventory/v1/rds-servers":
		h.list(w, r, f, false, len(st.RDSServers), func(i int) any {
			s := st.RDSServers[i]
			return map[string]any{"id": s.ID, "name": s.Name, "dns_name": s.Name + ".corp.example", "farm_id": s.FarmID,
				"enabled": s.Enabled, "state": "AVAILABLE", "max_sessions_type": "UNLIMITED", "session_count": h.sessionsOn(s.ID)}
		})
	case "inventory/v1/sessions":
		h.list(w, r, f, true, len(st.Sessions), func(i int) any { return sessionRecord(st.Sessions[i], f.MalformField) })
	default:
		respError(w, http.StatusNotFound, "common.not.found", "Not found: "+r.URL.Path)
	}
}

func (h *Horizon) sessionsOn(server string) int {
	n := 0
	for _, s := range h.st.Sessions {
		if s.RDSServerID == server {
			n++
		}
	}
	return n
}

// SID is the Windows security identifier the simulator gives a user name.
func SID(user string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(user)))
	return fmt.Sprintf("S-1-5-21-1111111111-2222222222-3333333333-%d", 1000+binary.BigEndian.Uint32(sum[:4])%90000)
}

func machineRecord(m Machine, malform string) map[string]any {
	typ := m.Type
	if typ == "" {
		typ = "MANAGED_MACHINE"
	}
	power := m.PowerState
	if power == "" {
		power = "POWERED_ON"
	}
	users := make([]string, 0, len(m.Users))
	for _, u := range m.Users {
		users = append(users, SID(u))
	}
	rec := map[string]any{
		"id": m.ID, "name": m.Name, "dns_name": strings.ToLower(m.Name) + ".corp.example",
		"desktop_pool_id": m.PoolID, "state": m.State, "type": typ, "user_ids": users,
		"operating_system": "WINDOWS_10", "agent_version": "8.12.0", "message_security_mode": "ENHANCED",
	}
	if typ == "MANAGED_MACHINE" {
		rec["managed_machine_data"] = map[string]any{
			"virtual_center_id": "6ec6d1c1-7f2e-4a4c-9d0b-0c1d2e3f4a5b", "host_name": "esx01.corp.example",
			"path": "/DC/vm/" + m.Name, "memory_mb": 4096, "missing_in_vcenter": m.MissingInVCenter,
			"virtual_machine_power_state": power, "in_maintenance_mode": false,
		}
	}
	switch malform {
	case "":
	case "managed_machine_data":
		rec[malform] = "broken"
	case "missing_in_vcenter":
		if mmd, ok := rec["managed_machine_data"].(map[string]any); ok {
			mmd[malform] = "no"
		}
	default:
		rec[malform] = 42
	}
	return rec
}

func sessionRecord(s Session, malform string) map[string]any {
	rec := map[string]any{
		"id": s.ID, "session_type": s.Type, "session_state": s.State, "user_id": SID(s.User), "broker_user_id": SID(s.User),
		"start_time": 1764400000000, "session_protocol": "BLAST", "agent_version": "8.12.0",
		"client_data": map[string]any{"name": s.Client, "address": "192.0.2.44", "type": "WINDOWS", "version": "8.12.0"},
	}
	for k, v := range map[string]string{"machine_id": s.MachineID, "desktop_pool_id": s.PoolID, "farm_id": s.FarmID, "rds_server_id": s.RDSServerID} {
		if v != "" {
			rec[k] = v
		}
	}
	switch malform {
	case "":
	case "missing_in_vcenter", "managed_machine_data":
	default:
		rec[malform] = 42
	}
	return rec
}

// list writes one page of a paged list (the paging guide). items marks the
// machine and session lists, which the FailPage and Truncate faults apply
// to.
func (h *Horizon) list(w http.ResponseWriter, r *http.Request, f Faults, items bool, total int, item func(int) any) {
	q := r.URL.Query()
	ps, ss := q.Get("page"), q.Get("size")
	page, size := 1, total
	if ps != "" || ss != "" {
		if ps == "" || ss == "" {
			respError(w, http.StatusBadRequest, "common.pagination.invalid", "Both page and size are required for pagination.")
			return
		}
		var err1, err2 error
		page, err1 = strconv.Atoi(ps)
		size, err2 = strconv.Atoi(ss)
		if err1 != nil || err2 != nil || page < 1 || size < 1 {
			respError(w, http.StatusBadRequest, "common.pagination.invalid", "page and size must be greater than 0.")
			return
		}
		if size > MaxPageSize {
			respError(w, http.StatusBadRequest, "common.pagination.size.exceeded", fmt.Sprintf("size must not exceed %d.", MaxPageSize))
			return
		}
	}
	if f.IgnorePage {
		page = 1
	}
	if items && f.FailPage > 0 && page == f.FailPage {
		respError(w, http.StatusInternalServerError, "common.internal.error", "Internal Server Error")
		return
	}
	start := min((page-1)*size, total)
	end := min(start+size, total)
	out := make([]any, 0, end-start)
	for i := start; i < end; i++ {
		out = append(out, item(i))
	}
	body, _ := json.Marshal(out)
	if items && f.Truncate {
		body = body[:len(body)/2]
	}
	if end < total && !h.st.NoMoreHeader {
		w.Header().Set("HAS_MORE_RECORDS", "true")
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.Copy(w, bytes.NewReader(body))
}
