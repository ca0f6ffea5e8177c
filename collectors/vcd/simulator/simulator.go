// Package vcd simulates the parts of the VMware Cloud Director API that the
// usage meter reads: API version discovery, provider login and the typed
// query service in records format.
//
// References followed (public):
//   - vmware/go-vcloud-director govcd/api_vcd.go (vcdCloudApiAuthorize):
//     POST /cloudapi/1.0.0/sessions/provider with Basic "user@System" and
//     "Accept: application/*;version=X"; the token comes back in the
//     X-VMWARE-VCLOUD-ACCESS-TOKEN header and is sent as
//     "Authorization: Bearer <token>" afterwards. Only System users may use
//     the /provider endpoint.
//   - govcd/api_vcd_versions.go: GET /api/versions, no authentication, an XML
//     SupportedVersions document of VersionInfo{Version, LoginUrl,
//     deprecated attribute}.
//   - types/v56/types.go CurrentSessionInfo (session JSON: id, user, org,
//     location, roles, sessionIdleTimeoutMinutes) and the query record types
//     QueryResultVirtualCenterRecordType (name, url, uuid, vcVersion),
//     QueryResultVMRecordType; the adminVM record attributes (name, container,
//     containerName, status, vdc, hostName, isVAppTemplate, isDeleted, guestOs,
//     numberOfCpus, memoryMB, networkName, isDeployed, vc, moref, org,
//     datastoreName, ...) are those of QueryResultAdminVMRecordType in the
//     vCloud API schema (as generated in sjohnston/VCD-REST
//     QueryResultAdminVMRecordType.pm).
//   - Query paging: page (1-based), pageSize, total, and link rel="nextPage" /
//     "previousPage" / "firstPage" / "lastPage"; JSON with
//     "Accept: application/*+json;version=X", where attribute names are the
//     record's XML attribute names and each record carries "_type".
//
// Where APIS.md and the references differ, the references win:
//   - the adminVM record's "org" and "vdc" are hrefs, not names; the names come
//     from the "organization" and "adminOrgVdc" queries. APIS.md lists
//     "vdcName" on VM records: the v1.5 adminVM schema has no such attribute,
//     so the simulator sends vdc names only on adminOrgVdc records (and, as VCD
//     10 does, a vdcName on adminVM records, which clients must not rely on).
//   - the vCenter's own instance UUID is the "uuid" of the virtualCenter
//     record, not anything on the VM record.
//
// A version the server does not offer is refused with 406 Not Acceptable and
// the message "The request has invalid accept header: Invalid API version
// requested. Supported API versions are: [38.0, 37.2, ..., 36.0 [D]] ([D]
// indicates deprecated versions)", as recorded in vmware/go-vcloud-director
// issue #477 and vmware-archive/pyvcloud issue #736.
//
// Behaviour that is the simulator's choice, close to a real VCD 10.x: a bad or expired
// token gives 401 with a JSON Error; the largest pageSize is 128 (VCD's
// default restapi.queryservice.maxPageSize) and larger values are clamped; a
// page past the last is 400 Bad Request.
package simulator

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/usagemeter/usagemeter/collectors/internal/simhttp"
)

// MaxPageSize is the largest page the query service returns.
const MaxPageSize = 128

// DefaultPageSize is the page size when the client gives none.
const DefaultPageSize = 25

// State is what the simulated Cloud Director holds. Tests build it (or load
// it from JSON) and hand it to New.
type State struct {
	Versions   []string  `json:"versions"`             // API versions offered; default 36.0 to 39.0
	Deprecated []string  `json:"deprecated,omitempty"` // those of Versions marked deprecated
	User       string    `json:"user"`                 // provider user, logged in as User@System
	Password   string    `json:"password"`             //
	SiteID     string    `json:"site_id"`              // urn:vcloud:site:<uuid>
	SiteName   string    `json:"site_name"`            //
	Orgs       []Org     `json:"orgs"`                 //
	VDCs       []VDC     `json:"vdcs"`                 //
	VCenters   []VCenter `json:"vcenters"`             //
	VMs        []VM      `json:"vms"`                  //
	Product    string    `json:"product,omitempty"`    // product version, e.g. 10.6.0
}

// Org is an organisation.
type Org struct {
	ID   string `json:"id"` // uuid
	Name string `json:"name"`
}

// VDC is an organisation VDC.
type VDC struct {
	ID      string `json:"id"` // uuid
	Name    string `json:"name"`
	Org     string `json:"org"`     // Org.ID
	VCenter string `json:"vcenter"` // VCenter.ID
}

// VCenter is a vCenter Server attached to Cloud Director (a vimServer).
type VCenter struct {
	ID   string `json:"id"`   // VCD's id of the vimServer
	Name string `json:"name"` // name given in VCD
	UUID string `json:"uuid"` // the vCenter's instanceUuid
	URL  string `json:"url"`
}

// VM is a virtual machine in a vApp or vApp template.
type VM struct {
	ID        string `json:"id"` // uuid
	Name      string `json:"name"`
	VApp      string `json:"vapp"`
	VDC       string `json:"vdc"` // VDC.ID; the org and vCenter follow from it
	Moref     string `json:"moref"`
	MemoryMB  int    `json:"memory_mb"`
	CPUs      int    `json:"cpus"`
	Status    string `json:"status"` // POWERED_ON, POWERED_OFF, SUSPENDED, ...
	HostName  string `json:"host_name"`
	Template  bool   `json:"template"`
	Deleted   bool   `json:"deleted"`
	GuestOS   string `json:"guest_os,omitempty"`
	Datastore string `json:"datastore,omitempty"`
}

// Faults are error modes a test switches on.
type Faults struct {
	// ExpireAfter makes each session token expire after that many
	// authenticated calls (0: never): the next call gets 401.
	ExpireAfter int
	// FailPage makes adminVM query page FailPage answer 500 (0: none).
	FailPage int
	// Delay is added before every answer.
	Delay time.Duration
	// MalformField replaces that attribute of every adminVM record with a
	// value of the wrong JSON type ("" for none).
	MalformField string
	// Truncate cuts every query body in half.
	Truncate bool
	// Endless makes every query answer a page whose records never end.
	Endless bool
	// RejectTokens refuses every token with 401, fresh ones included (a
	// proxy that drops the Authorization header).
	RejectTokens bool
}

// Server is a simulated Cloud Director. It is safe for concurrent use.
type Server struct {
	core     simhttp.Core[Faults]
	sessions simhttp.Sessions[struct{}] // by token

	mu  sync.Mutex
	st  State
	url string // base URL the server is reached at, for hrefs
}

// New returns a simulator holding st.
func New(st State) *Server {
	if len(st.Versions) == 0 {
		st.Versions = []string{"36.0", "37.0", "38.0", "38.1", "39.0"}
	}
	if st.SiteID == "" {
		st.SiteID = "urn:vcloud:site:5f1f2d1e-0c6b-4b8e-9a3e-6d2f6b1c9a01"
	}
	if st.Product == "" {
		st.Product = "10.6.0"
	}
	return &Server{st: st}
}

// Start serves s on a TLS test server and returns its URL and certificate
// thumbprint.
func (s *Server) Start(t simhttp.TB) (url, thumbprint string) {
	t.Helper()
	u, tp, stop := s.Serve()
	t.Cleanup(stop)
	return u, tp
}

// Serve is Start outside a test: it returns a function that stops the server.
func (s *Server) Serve() (url, thumbprint string, stop func()) {
	u, tp, stop := simhttp.ServeTLS(s)
	s.mu.Lock()
	s.url = u
	s.mu.Unlock()
	return u, tp, stop
}

// SetFaults replaces the error modes.
func (s *Server) SetFaults(f Faults) { s.core.SetFaults(f) }

// SetState replaces the state (sessions survive).
func (s *Server) SetState(st State) {
	n := New(st)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st = n.st
}

// Logins is the number of successful logins so far.
func (s *Server) Logins() int { return s.sessions.Logins() }

// Calls is the number of requests served so far.
func (s *Server) Calls() int { return s.core.Calls() }

// ExpireSessions invalidates every token, as a VCD restart or idle timeout
// would.
func (s *Server) ExpireSessions() { s.sessions.ExpireAll() }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, _ := s.core.Begin()
	s.mu.Lock()
	if s.url == "" {
		s.url = "https://" + r.Host
	}
	s.mu.Unlock()
	if !simhttp.Wait(r, f.Delay) {
		return
	}
	switch {
	case r.URL.Path == "/api/versions" && r.Method == http.MethodGet:
		s.versions(w)
	case r.URL.Path == "/cloudapi/1.0.0/sessions/provider" && r.Method == http.MethodPost:
		s.login(w, r)
	case r.URL.Path == "/cloudapi/1.0.0/sessions" && r.Method == http.MethodPost:
		cloudAPIError(w, http.StatusUnauthorized, "UNAUTHORIZED", "This user cannot log in through the tenant endpoint; use /cloudapi/1.0.0/sessions/provider")
	case r.URL.Path == "/cloudapi/1.0.0/sessions/current" && r.Method == http.MethodDelete:
		if _, ok := s.auth(w, r, f, false); ok {
			s.sessions.Close(bearer(r))
			w.WriteHeader(http.StatusNoContent)
		}
	case r.URL.Path == "/api/query" && r.Method == http.MethodGet:
		if v, ok := s.auth(w, r, f, true); ok {
			s.query(w, r, v, f)
		}
	default:
		legacyError(w, http.StatusNotFound, "RESOURCE_NOT_FOUND", "No resource for "+r.Method+" "+r.URL.Path)
	}
}

// SupportedVersions is the /api/versions document.
type SupportedVersions struct {
	XMLName      xml.Name      `xml:"http://www.vmware.com/vcloud/versions SupportedVersions"`
	VersionInfos []VersionInfo `xml:"VersionInfo"`
}

// VersionInfo is one offered API version.
type VersionInfo struct {
	Deprecated bool   `xml:"deprecated,attr"`
	Version    string `xml:"Version"`
	LoginURL   string `xml:"LoginUrl"`
}

func (s *Server) versions(w http.ResponseWriter) {
	s.mu.Lock()
	doc := SupportedVersions{}
	for _, v := range s.st.Versions {
		doc.VersionInfos = append(doc.VersionInfos, VersionInfo{Version: v, LoginURL: s.url + "/api/sessions", Deprecated: slices.Contains(s.st.Deprecated, v)})
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/xml;version=1.0")
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(doc)
}

// acceptVersion returns the version= parameter of the Accept header and
// whether the media type asks for JSON.
func acceptVersion(r *http.Request) (version string, isJSON bool) {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if v := params["version"]; v != "" {
			return v, strings.HasSuffix(mt, "+json") || strings.HasSuffix(mt, "/json")
		}
	}
	return "", false
}

func (s *Server) offered(v string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.st.Versions, v)
}

// notAcceptable is VCD's answer to a version it does not offer.
func (s *Server) notAcceptable() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]string, 0, len(s.st.Versions))
	for i := len(s.st.Versions) - 1; i >= 0; i-- {
		v := s.st.Versions[i]
		if slices.Contains(s.st.Deprecated, v) {
			v += " [D]"
		}
		list = append(list, v)
	}
	return "The request has invalid accept header: Invalid API version requested. Supported API versions are: [" +
		strings.Join(list, ", ") + "] ([D] indicates deprecated versions)"
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	v, _ := acceptVersion(r)
	if v == "" || !s.offered(v) {
		cloudAPIError(w, http.StatusNotAcceptable, "NOT_ACCEPTABLE", s.notAcceptable())
		return
	}
	user, pass, ok := r.BasicAuth()
	s.mu.Lock()
	st := s.st
	s.mu.Unlock()
	name, org, _ := strings.Cut(user, "@")
	if !ok || !strings.EqualFold(org, "System") || name != st.User || pass != st.Password {
		w.Header().Set("WWW-Authenticate", `Basic realm="VMware Cloud Director"`)
		cloudAPIError(w, http.StatusUnauthorized, "UNAUTHORIZED", "Invalid credentials")
		return
	}
	tok := newToken()
	s.sessions.Open(tok, struct{}{})
	w.Header().Set("X-VMWARE-VCLOUD-ACCESS-TOKEN", tok)
	w.Header().Set("X-VMWARE-VCLOUD-TOKEN-TYPE", "Bearer")
	w.Header().Set("Content-Type", "application/json;version="+v)
	siteUUID := strings.TrimPrefix(st.SiteID, "urn:vcloud:site:")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id":                        "urn:vcloud:session:" + newToken()[:32],
		"site":                      map[string]string{"name": st.SiteName, "id": st.SiteID},
		"user":                      map[string]string{"name": name, "id": "urn:vcloud:user:00000000-0000-0000-0000-000000000001"},
		"org":                       map[string]string{"name": "System", "id": "urn:vcloud:org:a93c9db9-7471-3192-8d09-a8f7eeda85f9"},
		"operatingOrg":              map[string]string{"name": "System", "id": "urn:vcloud:org:a93c9db9-7471-3192-8d09-a8f7eeda85f9"},
		"location":                  siteUUID + "@" + r.Host,
		"roles":                     []string{"System Administrator"},
		"roleRefs":                  []map[string]string{{"name": "System Administrator", "id": "urn:vcloud:role:00000000-0000-0000-0000-000000000002"}},
		"sessionIdleTimeoutMinutes": 30,
	})
}

func bearer(r *http.Request) string {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return tok
}

// auth checks the bearer token and, for the legacy /api, the version.
func (s *Server) auth(w http.ResponseWriter, r *http.Request, f Faults, legacy bool) (string, bool) {
	if s.sessions.Use(bearer(r), f.RejectTokens, f.ExpireAfter, nil) != simhttp.Accepted {
		if legacy {
			legacyError(w, http.StatusUnauthorized, "UNAUTHORIZED", "This operation is denied.")
		} else {
			cloudAPIError(w, http.StatusUnauthorized, "UNAUTHORIZED", "Access token is not valid")
		}
		return "", false
	}
	v, _ := acceptVersion(r)
	if v == "" || !s.offered(v) {
		legacyError(w, http.StatusNotAcceptable, "NOT_ACCEPTABLE", s.notAcceptable())
		return "", false
	}
	return v, true
}

func newToken() string {
	b := make([]byte, 48)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// cloudAPIError writes an error of the /cloudapi endpoints.
func cloudAPIError(w http.ResponseWriter, status int, minor, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"minorErrorCode": minor, "message": msg, "stackTrace": nil})
}

// legacyError writes the Error document of the /api endpoints, in JSON.
func legacyError(w http.ResponseWriter, status int, minor, msg string) {
	w.Header().Set("Content-Type", "application/vnd.vmware.vcloud.error+json;version=39.0")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"otherAttributes": map[string]any{}, "majorErrorCode": status, "minorErrorCode": minor,
		"message": msg, "vendorSpecificErrorCode": nil, "stackTrace": nil,
	})
}

// Link is a query result link.
type Link struct {
	Rel  string `json:"rel"`
	Href string `json:"href"`
	Type string `json:"type"`
}

// QueryResultRecords is the JSON envelope of a records query.
type QueryResultRecords struct {
	OtherAttributes map[string]any    `json:"otherAttributes"`
	Link            []Link            `json:"link"`
	Href            string            `json:"href"`
	Type            string            `json:"type"`
	Name            string            `json:"name"`
	Page            int               `json:"page"`
	PageSize        int               `json:"pageSize"`
	Total           int               `json:"total"`
	Record          []json.RawMessage `json:"record"`
}

// adminVMRecord is QueryResultAdminVMRecordType in JSON.
type adminVMRecord struct {
	Type           string `json:"_type"`
	Href           string `json:"href"`
	Name           string `json:"name"`
	ContainerName  string `json:"containerName"`
	Container      string `json:"container"`
	Status         string `json:"status"`
	Vdc            string `json:"vdc"`
	VdcName        string `json:"vdcName"`
	HostName       string `json:"hostName"`
	IsVAppTemplate bool   `json:"isVAppTemplate"`
	IsDeleted      bool   `json:"isDeleted"`
	GuestOs        string `json:"guestOs"`
	NumberOfCpus   int    `json:"numberOfCpus"`
	MemoryMB       int    `json:"memoryMB"`
	IsDeployed     bool   `json:"isDeployed"`
	IsVdcEnabled   bool   `json:"isVdcEnabled"`
	DatastoreName  string `json:"datastoreName"`
	Vc             string `json:"vc"`
	VcName         string `json:"vcName"`
	Moref          string `json:"moref"`
	Org            string `json:"org"`
}

func (s *Server) query(w http.ResponseWriter, r *http.Request, version string, f Faults) {
	q := r.URL.Query()
	typ := q.Get("type")
	if q.Get("format") != "" && q.Get("format") != "records" {
		legacyError(w, http.StatusBadRequest, "BAD_REQUEST", "format "+q.Get("format")+" is not simulated")
		return
	}
	page, pageSize := 1, DefaultPageSize
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			legacyError(w, http.StatusBadRequest, "BAD_REQUEST", "Bad request: page "+v)
			return
		}
		page = n
	}
	if v := q.Get("pageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			legacyError(w, http.StatusBadRequest, "BAD_REQUEST", "Bad request: pageSize "+v)
			return
		}
		pageSize = min(n, MaxPageSize)
	}
	s.mu.Lock()
	st := s.st
	base := s.url
	s.mu.Unlock()

	// n is the number of records; rec builds record i (only the page's
	// records are built).
	var n int
	var rec func(i int) any
	orgs := map[string]string{}
	for _, o := range st.Orgs {
		orgs[o.ID] = o.Name
	}
	vdcs := map[string]VDC{}
	for _, d := range st.VDCs {
		vdcs[d.ID] = d
	}
	vcs := map[string]VCenter{}
	for _, v := range st.VCenters {
		vcs[v.ID] = v
	}
	switch typ {
	case "adminVM":
		n = len(st.VMs)
		rec = func(i int) any {
			vm := st.VMs[i]
			d := vdcs[vm.VDC]
			vc := vcs[d.VCenter]
			kind := "vApp"
			if vm.Template {
				kind = "vAppTemplate"
			}
			return adminVMRecord{
				Type: "QueryResultAdminVMRecordType", Href: base + "/api/vApp/vm-" + vm.ID, Name: vm.Name,
				ContainerName: vm.VApp, Container: base + "/api/" + kind + "/" + kind + "-" + vm.VApp,
				Status: vm.Status, Vdc: base + "/api/vdc/" + d.ID, VdcName: d.Name, HostName: vm.HostName,
				IsVAppTemplate: vm.Template, IsDeleted: vm.Deleted, GuestOs: vm.GuestOS,
				NumberOfCpus: vm.CPUs, MemoryMB: vm.MemoryMB, IsDeployed: vm.Status == "POWERED_ON",
				IsVdcEnabled: true, DatastoreName: vm.Datastore,
				Vc: base + "/api/admin/extension/vimServer/" + vc.ID, VcName: vc.Name,
				Moref: vm.Moref, Org: base + "/api/org/" + d.Org,
			}
		}
	case "organization":
		n = len(st.Orgs)
		rec = func(i int) any {
			o := st.Orgs[i]
			return map[string]any{"_type": "QueryResultOrgRecordType", "href": base + "/api/org/" + o.ID,
				"name": o.Name, "displayName": o.Name, "isEnabled": true, "isReadOnly": false}
		}
	case "adminOrgVdc":
		n = len(st.VDCs)
		rec = func(i int) any {
			d := st.VDCs[i]
			return map[string]any{"_type": "QueryResultAdminVdcRecordType", "href": base + "/api/vdc/" + d.ID,
				"name": d.Name, "org": base + "/api/org/" + d.Org, "orgName": orgs[d.Org],
				"vc": base + "/api/admin/extension/vimServer/" + d.VCenter, "vcName": vcs[d.VCenter].Name,
				"isEnabled": true}
		}
	case "virtualCenter":
		n = len(st.VCenters)
		rec = func(i int) any {
			v := st.VCenters[i]
			return map[string]any{"_type": "QueryResultVirtualCenterRecordType", "href": base + "/api/admin/extension/vimServer/" + v.ID,
				"name": v.Name, "url": v.URL, "uuid": v.UUID, "vcVersion": "8.0.3", "isEnabled": true,
				"isSupported": true, "isBusy": false, "listenerState": "CONNECTED"}
		}
	default:
		legacyError(w, http.StatusBadRequest, "BAD_REQUEST", fmt.Sprintf("Bad request: query type %q is not simulated", typ))
		return
	}
	if typ == "adminVM" && f.FailPage == page {
		legacyError(w, http.StatusInternalServerError, "INTERNAL_SERVER_ERROR", "[ 6f3c2b1a-0d4e ] An internal server error occurred.")
		return
	}
	total := n
	last := max(1, (total+pageSize-1)/pageSize)
	if page > last {
		legacyError(w, http.StatusBadRequest, "BAD_REQUEST", fmt.Sprintf("Bad request: page %d is out of range (1 to %d)", page, last))
		return
	}
	if f.Endless {
		s.endless(w, r, typ, version, pageSize, total)
		return
	}
	lo, hi := (page-1)*pageSize, min(page*pageSize, total)
	pageURL := func(p int) string {
		v := url.Values{"type": {typ}, "format": {"records"}, "page": {strconv.Itoa(p)}, "pageSize": {strconv.Itoa(pageSize)}}
		return base + "/api/query?" + v.Encode()
	}
	mt := "application/vnd.vmware.vcloud.query.records+json"
	res := QueryResultRecords{OtherAttributes: map[string]any{}, Href: pageURL(page), Type: mt, Name: typ,
		Page: page, PageSize: pageSize, Total: total, Record: make([]json.RawMessage, 0, hi-lo)}
	res.Link = append(res.Link, Link{Rel: "alternate", Href: strings.Replace(pageURL(page), "format=records", "format=references", 1), Type: "application/vnd.vmware.vcloud.query.references+json"})
	if page < last {
		res.Link = append(res.Link, Link{Rel: "nextPage", Href: pageURL(page + 1), Type: mt}, Link{Rel: "lastPage", Href: pageURL(last), Type: mt})
	}
	if page > 1 {
		res.Link = append(res.Link, Link{Rel: "previousPage", Href: pageURL(page - 1), Type: mt}, Link{Rel: "firstPage", Href: pageURL(1), Type: mt})
	}
	for i := lo; i < hi; i++ {
		b, _ := json.Marshal(rec(i))
		if typ == "adminVM" && f.MalformField != "" {
			b = malform(b, f.MalformField)
		}
		res.Record = append(res.Record, b)
	}
	body, _ := json.Marshal(res)
	if f.Truncate {
		body = body[:len(body)/2]
	}
	w.Header().Set("Content-Type", mt+";version="+version)
	_, _ = w.Write(body)
}

// endless answers a records page of typ that never ends: its records are
// one realistic adminVM record, over and over.
func (s *Server) endless(w http.ResponseWriter, r *http.Request, typ, version string, pageSize, total int) {
	s.mu.Lock()
	base := s.url
	s.mu.Unlock()
	mt := "application/vnd.vmware.vcloud.query.records+json"
	head := fmt.Sprintf(`{"otherAttributes":{},"href":%q,"type":%q,"name":%q,"page":1,"pageSize":%d,"total":%d,"link":[],"record":[`,
		base+"/api/query?type="+typ, mt, typ, pageSize, total)
	rec, _ := json.Marshal(adminVMRecord{
		Type: "QueryResultAdminVMRecordType", Href: base + "/api/vApp/vm-3f1c2b7e-9a4d-4e0b-8c21-6d5f0a9e7b13", Name: "web-frontend-01",
		ContainerName: "web-tier", Container: base + "/api/vApp/vapp-web-tier", Status: "POWERED_ON",
		Vdc: base + "/api/vdc/0b9e1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d", VdcName: "acme-prod-vdc", HostName: "esx-07.example.net",
		GuestOs: "Ubuntu Linux (64-bit)", NumberOfCpus: 4, MemoryMB: 8192, IsDeployed: true, IsVdcEnabled: true,
		DatastoreName: "vsanDatastore", Vc: base + "/api/admin/extension/vimServer/6a7b8c9d-0e1f-4a2b-9c3d-4e5f6a7b8c9d",
		VcName: "vc-01", Moref: "vm-1042", Org: base + "/api/org/1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
	})
	simhttp.Endless(w, r, mt+";version="+version, []byte(head), rec, []byte(","))
}

// malform gives field a value of the wrong JSON type.
func malform(rec []byte, field string) []byte {
	var m map[string]any
	if json.Unmarshal(rec, &m) != nil {
		return rec
	}
	switch m[field].(type) {
	case string:
		m[field] = 42
	case float64:
		m[field] = "many"
	case bool:
		m[field] = "perhaps"
	default:
		m[field] = []int{1}
	}
	b, _ := json.Marshal(m)
	return b
}

// LoadState decodes a State from JSON, refusing unknown keys.
func LoadState(b []byte) (State, error) { return simhttp.LoadState[State]("vcd", b) }

// NewID returns a random UUID-shaped id, for generated states.
func NewID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
