// Package simulator simulates the parts of the Horizon DaaS Platform REST
// API (service provider, first generation) that the usage meter reads, as
// govmomi's simulator sits beside its client: the horizondaas collector's
// tests run against it, and it can serve `usagemeter demo` (Serve works
// outside tests).
//
// Reference followed (public): "Introduction to the Horizon DaaS REST API"
// (VMware, 2020; developer.omnissa.com/horizon-apis/horizon-daas/horizondaas-api.pdf,
// linked from developer.omnissa.com/horizon/apis/horizon-daas; an earlier
// edition is "Horizon DaaS Platform 7.0 REST API", 2017), chapter "Getting
// Started", and the public DaaS REST API samples (Postman collections,
// "Horizon Cloud Service and Horizon DaaS Platform REST API Samples", and
// scripts that call the same paths). What is taken from it:
//
//   - The API lives below https://<host>/dt-rest. GET /dt-rest/system/platform
//     (no login) answers a DtPlatform with one DtVersion per version
//     (id="v100", latest="true"), whose DtLinks name the top-level managers
//     (DtSecurityManager /security/manager, DtSessionManager
//     /session/manager, DtQuotaManager /quota/manager, DtReportingManager
//     /reporting/manager, ...) and the login step DtCredentials with its
//     action /system/authenticate/credentials.
//   - Login: POST /dt-rest/v100/system/authenticate/credentials with the
//     XML body <DtCredentials type="CREDENTIALS"><username/><password/>
//     <domain/></DtCredentials> (Content-Type application/xml). The answer's
//     HTTP headers Authorization and x-dt-csrf-header are the session: the
//     Authorization pair goes on every later request, the x-dt-csrf-header
//     pair also on every request that is not a GET.
//   - The platform answers XML. A list is <List type="DtX"> of DtX
//     elements; a report is a DtXReport with an xCount and an xTotalCount
//     element and its records (the reference's DtUserMappingReport:
//     userMappingReportCount, userMappingReportTotalCount, UserMapping).
//   - Organizations (the service provider's own and its tenants):
//     GET /security/manager/organizations (public samples); a tenant's
//     quotas: GET /security/organization/{id}/quotas (public samples).
//
// Assumed, because no public source found shows them (kept here, in one
// place, so they can change when a real answer is recorded):
//
//   - The DtOrganization element: attribute id (1000 the service provider,
//     1001... the tenants, as in the samples), elements name, orgType
//     (SERVICE_PROVIDER or TENANT) and enabled (true/false).
//   - The DtQuota element: type (CONCURRENT_CONNECTIONS for the connection
//     quota), licenseEdition (STANDARD, ADVANCED, ENTERPRISE, APPS_STANDARD,
//     APPS_ADVANCED: the Horizon editions), limit. The tenant's licence
//     edition is that of its CONCURRENT_CONNECTIONS quota.
//   - Sessions: GET /session/manager/sessions?orgId=&start=&limit= under the
//     reference's DtSessionManager, answered as a DtSessionReport
//     (sessionCount, sessionTotalCount, DtSession records) in the style of
//     the reference's reports, paged with start (0-based) and limit
//     (default 100). A DtSession has attribute id and elements poolId,
//     vmName (empty for an application session or a desktop not yet
//     assigned), protocol, state (CONNECTED or DISCONNECTED), startDate and
//     the user's userName, userDomain and userGuid (personal data: the
//     simulator serves them so that tests can prove they are not stored).
//   - Errors: 401 with a DtError (code, message) for a wrong password and
//     for an unknown or expired Authorization; 404 for an unknown version
//     or organization; 500 for a server fault; 503 or 429 when busy, with
//     Retry-After. Logout: DELETE /system/authenticate with both headers.
package simulator

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/collectors/internal/simhttp"
)

// BasePath is the API's path below which the version comes.
const BasePath = "/dt-rest/"

// DefaultPageSize is the limit of a session list call that gives none.
const DefaultPageSize = 100

// State is what the simulated service provider holds.
type State struct {
	User     string `json:"user"`
	Password string `json:"password"`
	Domain   string `json:"domain"`
	// Versions are the REST API versions served (default v100).
	Versions []string `json:"versions,omitempty"`
	// Provider is the service provider's own organization (default id
	// 1000, name "Service Provider").
	Provider Org      `json:"provider,omitempty"`
	Tenants  []Tenant `json:"tenants"`
}

// Org is an organization's identity.
type Org struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Tenant is a tenant organization with its quota and sessions.
type Tenant struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Disabled bool   `json:"disabled,omitempty"`
	// Edition is the licence edition of its concurrent connection quota
	// (STANDARD, ADVANCED, ENTERPRISE, ...); "" means no such quota.
	Edition  string    `json:"edition,omitempty"`
	Quota    int       `json:"quota,omitempty"` // the quota's limit
	Sessions []Session `json:"sessions"`
}

// Session is a user session on a tenant desktop or application.
type Session struct {
	ID       string `json:"id"`
	Pool     string `json:"pool,omitempty"`
	VM       string `json:"vm,omitempty"`    // "" for a session without a desktop
	State    string `json:"state,omitempty"` // default CONNECTED
	Protocol string `json:"protocol,omitempty"`
	User     string `json:"user,omitempty"` // personal data, served as userName
}

// Faults are error modes a test switches on.
type Faults struct {
	ExpireAfter int           // a session dies after that many calls (0: never)
	RejectAll   bool          // every login and session is refused with 401
	FailPage    int           // page FailPage (1-based) of every session list answers 500
	Delay       time.Duration // added before every answer
	// MalformField gives that element a value of the wrong kind:
	// "sessionTotalCount" (not a number), "sessionCount" (negative),
	// "enabled" (of every tenant; not a boolean), "limit" (of every quota;
	// not a number).
	MalformField  string
	Truncate      bool // session list bodies are cut in half
	ThrottleEvery int  // every ThrottleEvery-th call answers 503 (0: never)
	Throttle429   bool // the throttled calls answer 429 instead
	IgnoreStart   bool // the session lists answer their first page whatever start asks
	NoCSRF        bool // the login answer has no x-dt-csrf-header
	// Forbid is a path (below the version) that answers 403, as for an
	// account without the permission to view it.
	Forbid string
}

type sess struct{ csrf string }

// DaaS is a simulated Horizon DaaS service provider. It is safe for
// concurrent use.
type DaaS struct {
	core     simhttp.Core[Faults]
	sessions simhttp.Sessions[sess]
	st       State // not changed after New
}

// New returns a simulator holding st.
func New(st State) *DaaS {
	if len(st.Versions) == 0 {
		st.Versions = []string{"v100"}
	}
	if st.Provider.ID == "" {
		st.Provider.ID = "1000"
	}
	if st.Provider.Name == "" {
		st.Provider.Name = "Service Provider"
	}
	return &DaaS{st: st}
}

// LoadState decodes a State from JSON, refusing unknown keys.
func LoadState(b []byte) (State, error) { return simhttp.LoadState[State]("horizon-daas", b) }

// Serve serves d on a loopback TLS server with a self-signed certificate,
// and returns its URL, the SHA-256 thumbprint of its certificate and a
// function that stops it.
func (d *DaaS) Serve() (url, thumbprint string, stop func()) { return simhttp.ServeTLS(d) }

// Start is Serve for a test: the server stops when the test ends.
func (d *DaaS) Start(t simhttp.TB) (url, thumbprint string) { return simhttp.StartTLS(t, d) }

// SetFaults replaces the error modes.
func (d *DaaS) SetFaults(f Faults) { d.core.SetFaults(f) }

// ExpireSessions ends every session.
func (d *DaaS) ExpireSessions() { d.sessions.ExpireAll() }

// Logins is the number of sessions created.
func (d *DaaS) Logins() int { return d.sessions.Logins() }

// Calls is the number of requests served.
func (d *DaaS) Calls() int { return d.core.Calls() }

func writeXML(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = io.Copy(w, bytes.NewReader(body))
}

func respError(w http.ResponseWriter, status int, code, msg string) {
	var b bytes.Buffer
	b.WriteString(xml.Header + "<DtError><code>")
	_ = xml.EscapeText(&b, []byte(code))
	b.WriteString("</code><message>")
	_ = xml.EscapeText(&b, []byte(msg))
	b.WriteString("</message></DtError>")
	writeXML(w, status, b.Bytes())
}

func token() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ServeHTTP implements http.Handler.
func (d *DaaS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, n := d.core.Begin()
	simhttp.Wait(r, f.Delay)
	if f.ThrottleEvery > 0 && n%f.ThrottleEvery == 0 {
		w.Header().Set("Retry-After", "0")
		if f.Throttle429 {
			respError(w, http.StatusTooManyRequests, "TOO_MANY_REQUESTS", "Too many requests, try again later.")
			return
		}
		respError(w, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "The server is busy, try again later.")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, BasePath)
	if !ok {
		respError(w, http.StatusNotFound, "NOT_FOUND", "Not found: "+r.URL.Path)
		return
	}
	if rest == "system/platform" && r.Method == http.MethodGet {
		d.platform(w)
		return
	}
	version, p, _ := strings.Cut(rest, "/")
	p = "/" + p
	if !slices.Contains(d.st.Versions, version) {
		respError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("Unknown REST API version %q", version))
		return
	}
	if p == "/system/authenticate/credentials" && r.Method == http.MethodPost {
		d.login(w, r, f)
		return
	}
	auth := r.Header.Get("Authorization")
	if d.sessions.Use(auth, f.RejectAll, f.ExpireAfter, func(s sess) bool {
		return r.Method == http.MethodGet || (s.csrf != "" && r.Header.Get("x-dt-csrf-header") == s.csrf)
	}) != simhttp.Accepted {
		respError(w, http.StatusUnauthorized, "NOT_AUTHENTICATED", "The request is not authenticated.")
		return
	}
	if p == "/system/authenticate" && r.Method == http.MethodDelete {
		d.sessions.Close(auth)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if f.Forbid != "" && strings.HasPrefix(p, f.Forbid) {
		respError(w, http.StatusForbidden, "ACCESS_DENIED", "The user does not have the permission to perform this operation.")
		return
	}
	if r.Method != http.MethodGet {
		respError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "Method not allowed")
		return
	}
	d.get(w, r, f, p)
}

func (d *DaaS) platform(w http.ResponseWriter) {
	var b bytes.Buffer
	b.WriteString(xml.Header + "<DtPlatform>")
	for i, v := range d.st.Versions {
		fmt.Fprintf(&b, `<DtVersion latest="%t" id="%s">`, i == len(d.st.Versions)-1, v)
		for _, l := range [][2]string{{"/security/manager", "DtSecurityManager"}, {"/session/manager", "DtSessionManager"}, {"/quota/manager", "DtQuotaManager"}, {"/reporting/manager", "DtReportingManager"}} {
			fmt.Fprintf(&b, `<DtLink href="%s" method="GET" name="%s" rel="top"/>`, l[0], l[1])
		}
		b.WriteString(`<DtCredentials type="CREDENTIALS"><DtLink href="/system/authenticate/credentials" method="POST" name="Submit" rel="action"/></DtCredentials></DtVersion>`)
	}
	b.WriteString("</DtPlatform>")
	writeXML(w, http.StatusOK, b.Bytes())
}

type credentials struct {
	Username string `xml:"username"`
	Password string `xml:"password"`
	Domain   string `xml:"domain"`
}

func (d *DaaS) login(w http.ResponseWriter, r *http.Request, f Faults) {
	var c credentials
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err := xml.Unmarshal(body, &c); err != nil {
		respError(w, http.StatusBadRequest, "BAD_REQUEST", "Malformed DtCredentials.")
		return
	}
	if f.RejectAll || c.Username != d.st.User || c.Password != d.st.Password || !strings.EqualFold(c.Domain, d.st.Domain) {
		respError(w, http.StatusUnauthorized, "AUTHENTICATION_FAILED", "Authentication failed: invalid user name, password or domain.")
		return
	}
	auth, csrf := "Bearer "+token(), token()
	if f.NoCSRF {
		csrf = ""
	}
	d.sessions.Open(auth, sess{csrf: csrf})
	w.Header().Set("Authorization", auth)
	if csrf != "" {
		w.Header().Set("x-dt-csrf-header", csrf)
	}
	w.WriteHeader(http.StatusOK)
}

func (d *DaaS) findTenant(id string) *Tenant {
	for i := range d.st.Tenants {
		if d.st.Tenants[i].ID == id {
			return &d.st.Tenants[i]
		}
	}
	return nil
}

func el(b *bytes.Buffer, name, v string) {
	b.WriteString("<" + name + ">")
	_ = xml.EscapeText(b, []byte(v))
	b.WriteString("</" + name + ">")
}

func (d *DaaS) get(w http.ResponseWriter, r *http.Request, f Faults, p string) {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	var b bytes.Buffer
	b.WriteString(xml.Header)
	switch {
	case p == "/security/manager/organizations":
		b.WriteString(`<List type="DtOrganization">`)
		org := func(id, name, typ string, enabled bool) {
			fmt.Fprintf(&b, `<DtOrganization id="%s"><DtLink href="/security/organization/%s" method="GET" name="DtOrganization" rel="self"/>`, id, id)
			el(&b, "name", name)
			el(&b, "orgType", typ)
			if f.MalformField == "enabled" && typ == "TENANT" {
				el(&b, "enabled", "perhaps")
			} else {
				el(&b, "enabled", strconv.FormatBool(enabled))
			}
			b.WriteString("</DtOrganization>")
		}
		org(d.st.Provider.ID, d.st.Provider.Name, "SERVICE_PROVIDER", true)
		for _, t := range d.st.Tenants {
			org(t.ID, t.Name, "TENANT", !t.Disabled)
		}
		b.WriteString("</List>")
	case len(parts) == 4 && parts[0] == "security" && parts[1] == "organization" && parts[3] == "quotas":
		t := d.findTenant(parts[2])
		if t == nil {
			respError(w, http.StatusNotFound, "NOT_FOUND", "Organization "+parts[2]+" not found.")
			return
		}
		b.WriteString(`<List type="DtQuota">`)
		b.WriteString("<DtQuota><type>DESKTOPS</type><limit>0</limit></DtQuota>")
		if t.Edition != "" {
			b.WriteString("<DtQuota>")
			el(&b, "type", "CONCURRENT_CONNECTIONS")
			el(&b, "licenseEdition", t.Edition)
			if f.MalformField == "limit" {
				el(&b, "limit", "unlimited")
			} else {
				el(&b, "limit", strconv.Itoa(t.Quota))
			}
			b.WriteString("</DtQuota>")
		}
		b.WriteString("</List>")
	case p == "/session/manager/sessions":
		d.sessionList(w, r, f)
		return
	default:
		respError(w, http.StatusNotFound, "NOT_FOUND", "Not found: "+r.URL.Path)
		return
	}
	writeXML(w, http.StatusOK, b.Bytes())
}

func (d *DaaS) sessionList(w http.ResponseWriter, r *http.Request, f Faults) {
	q := r.URL.Query()
	t := d.findTenant(q.Get("orgId"))
	if t == nil {
		respError(w, http.StatusNotFound, "NOT_FOUND", "Organization "+q.Get("orgId")+" not found.")
		return
	}
	start, limit := 0, DefaultPageSize
	if bad := simhttp.IntParams(q, simhttp.Int("start", 0, &start), simhttp.Int("limit", 1, &limit)); bad != "" {
		respError(w, http.StatusBadRequest, "BAD_REQUEST", "Invalid "+bad+": "+q.Get(bad))
		return
	}
	if f.IgnoreStart {
		start = 0
	}
	if f.FailPage > 0 && start/limit+1 == f.FailPage {
		respError(w, http.StatusInternalServerError, "INTERNAL_ERROR", "An internal error occurred.")
		return
	}
	total := len(t.Sessions)
	end := min(start+limit, total)
	var b bytes.Buffer
	b.WriteString(xml.Header + "<DtSessionReport>")
	if f.MalformField == "sessionCount" {
		el(&b, "sessionCount", "-1")
	} else {
		el(&b, "sessionCount", strconv.Itoa(max(end-start, 0)))
	}
	if f.MalformField == "sessionTotalCount" {
		el(&b, "sessionTotalCount", "many")
	} else {
		el(&b, "sessionTotalCount", strconv.Itoa(total))
	}
	for i := start; i < end; i++ {
		s := t.Sessions[i]
		state := s.State
		if state == "" {
			state = "CONNECTED"
		}
		proto := s.Protocol
		if proto == "" {
			proto = "BLAST"
		}
		fmt.Fprintf(&b, `<DtSession id="%s">`, s.ID)
		for _, kv := range [][2]string{{"poolId", s.Pool}, {"vmName", s.VM}, {"protocol", proto}, {"state", state},
			{"startDate", "2026-11-22T02:41:07.000Z"}, {"userName", s.User}, {"userDomain", d.st.Domain}, {"userGuid", guid(s.User)}} {
			el(&b, kv[0], kv[1])
		}
		b.WriteString("</DtSession>")
	}
	b.WriteString("</DtSessionReport>")
	body := b.Bytes()
	if f.Truncate {
		body = body[:len(body)/2]
	}
	writeXML(w, http.StatusOK, body)
}

// guid is a stable stand-in for a user's directory guid.
func guid(user string) string {
	if user == "" {
		return ""
	}
	var h uint64 = 14695981039346656037
	for i := 0; i < len(user); i++ {
		h ^= uint64(user[i])
		h *= 1099511628211
	}
	return fmt.Sprintf("%016x%016x", h, h^0x5bd1e995)
}
