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
// Requests and answers as govcd (go-vcloud-director v2.26.1) sends and reads
// them, checked by fidelity_test.go:
//   - the token is taken from "Authorization: Bearer <token>", the scheme in
//     any case (govcd sends "bearer"; RFC 9110 section 11.1), or from the
//     X-VMWARE-VCLOUD-ACCESS-TOKEN request header;
//   - /api answers in the media type of the Accept header's first versioned
//     media range (govcd sends "application/*+xml;version=X" and a second
//     Accept line): XML (the default) or JSON, with that version in the
//     Content-Type; the Error documents of /api likewise (XML
//     <Error xmlns="http://www.vmware.com/vcloud/v1.5" minorErrorCode
//     message majorErrorCode/>), claiming the version asked for, or the
//     newest offered when that one is not;
//   - GET /api/org (OrgList), GET /cloudapi/1.0.0/sessions/current
//     (CurrentSessionInfo, JSON);
//   - filter= on /api/query: FIQL terms "attr==value" and "attr!=value" (with
//     "*" wildcards), joined by ";" (and) and "," (or), a ";" unescaped in
//     the raw query as govcd sends it; a filter on an attribute the record
//     type lacks is refused with 400 BAD_REQUEST. The other FIQL operators
//     (=lt=, =gt=, ...) and parentheses are refused too: not simulated.
//
// Behaviour that is the simulator's choice, close to a real VCD 10.x: a bad or expired
// token gives 401 with an Error; the largest pageSize is 128 (VCD's
// default restapi.queryservice.maxPageSize) and larger values are clamped; a
// page past the last is 400 Bad Request.
package simulator

import (
	"bytes"
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
	sessions simhttp.Sessions[string] // session ids by token

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
	simhttp.Wait(r, f.Delay)
	switch {
	case r.URL.Path == "/api/versions" && r.Method == http.MethodGet:
		s.versions(w)
	case r.URL.Path == "/cloudapi/1.0.0/sessions/provider" && r.Method == http.MethodPost:
		s.login(w, r)
	case r.URL.Path == "/cloudapi/1.0.0/sessions" && r.Method == http.MethodPost:
		cloudAPIError(w, http.StatusUnauthorized, "UNAUTHORIZED", "This user cannot log in through the tenant endpoint; use /cloudapi/1.0.0/sessions/provider")
	case r.URL.Path == "/cloudapi/1.0.0/sessions/current" && r.Method == http.MethodGet:
		if c, ok := s.auth(w, r, f, false); ok {
			s.sessionInfo(w, r, c)
		}
	case r.URL.Path == "/cloudapi/1.0.0/sessions/current" && r.Method == http.MethodDelete:
		if _, ok := s.auth(w, r, f, false); ok {
			s.sessions.Close(token(r))
			w.WriteHeader(http.StatusNoContent)
		}
	case (r.URL.Path == "/api/org" || r.URL.Path == "/api/org/") && r.Method == http.MethodGet:
		if c, ok := s.auth(w, r, f, true); ok {
			s.orgList(w, c)
		}
	case r.URL.Path == "/api/query" && r.Method == http.MethodGet:
		if c, ok := s.auth(w, r, f, true); ok {
			s.query(w, r, c, f)
		}
	default:
		s.legacyError(w, r, http.StatusNotFound, "RESOURCE_NOT_FOUND", "No resource for "+r.Method+" "+r.URL.Path)
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

// call is what a request negotiated: the API version of its Accept header,
// whether that media type is JSON (XML otherwise, the /api default), and,
// once authenticated, its session id.
type call struct {
	version string
	json    bool
	session string
}

// negotiate reads the Accept header (all of its lines: govcd sends two): the
// first media range with a version= parameter gives the version and the
// format.
func negotiate(r *http.Request) call {
	var c call
	first := true
	for _, line := range r.Header.Values("Accept") {
		for _, part := range strings.Split(line, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			isJSON := strings.HasSuffix(mt, "+json") || strings.HasSuffix(mt, "/json")
			if first {
				c.json, first = isJSON, false
			}
			if v := params["version"]; v != "" {
				return call{version: v, json: isJSON}
			}
		}
	}
	return c
}

func (s *Server) offered(v string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.st.Versions, v)
}

// answerVersion is the version an answer to r claims: the one asked for
// when it is offered, else the newest offered.
func (s *Server) answerVersion(r *http.Request) string {
	if v := negotiate(r).version; s.offered(v) {
		return v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Versions[len(s.st.Versions)-1]
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
	v := negotiate(r).version
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
	sid := "urn:vcloud:session:" + NewID()
	s.sessions.Open(tok, sid)
	w.Header().Set("X-VMWARE-VCLOUD-ACCESS-TOKEN", tok)
	w.Header().Set("X-VMWARE-VCLOUD-TOKEN-TYPE", "Bearer")
	w.Header().Set("Content-Type", "application/json;version="+v)
	_ = json.NewEncoder(w).Encode(s.sessionDoc(sid, r.Host))
}

// sessionDoc is the session of the provider user (types/v56
// CurrentSessionInfo, with the site of the login answer).
func (s *Server) sessionDoc(sid, host string) map[string]any {
	s.mu.Lock()
	st := s.st
	s.mu.Unlock()
	system := map[string]string{"name": "System", "id": "urn:vcloud:org:a93c9db9-7471-3192-8d09-a8f7eeda85f9"}
	return map[string]any{
		"id":                        sid,
		"site":                      map[string]string{"name": st.SiteName, "id": st.SiteID},
		"user":                      map[string]string{"name": st.User, "id": "urn:vcloud:user:00000000-0000-0000-0000-000000000001"},
		"org":                       system,
		"operatingOrg":              system,
		"location":                  strings.TrimPrefix(st.SiteID, "urn:vcloud:site:") + "@" + host,
		"roles":                     []string{"System Administrator"},
		"roleRefs":                  []map[string]string{{"name": "System Administrator", "id": "urn:vcloud:role:00000000-0000-0000-0000-000000000002"}},
		"sessionIdleTimeoutMinutes": 30,
	}
}

// sessionInfo answers GET /cloudapi/1.0.0/sessions/current.
func (s *Server) sessionInfo(w http.ResponseWriter, r *http.Request, c call) {
	w.Header().Set("Content-Type", "application/json;version="+c.version)
	_ = json.NewEncoder(w).Encode(s.sessionDoc(c.session, r.Host))
}

// token is the access token of r: "Authorization: Bearer <token>", the
// scheme in any case (RFC 9110 section 11.1; govcd sends "bearer"), or else
// the X-VMWARE-VCLOUD-ACCESS-TOKEN header.
func token(r *http.Request) string {
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(tok)
	}
	return r.Header.Get("X-Vmware-Vcloud-Access-Token")
}

// auth checks the access token and the version asked for.
func (s *Server) auth(w http.ResponseWriter, r *http.Request, f Faults, legacy bool) (call, bool) {
	c := negotiate(r)
	if s.sessions.Use(token(r), f.RejectTokens, f.ExpireAfter, func(sid string) bool { c.session = sid; return true }) != simhttp.Accepted {
		if legacy {
			s.legacyError(w, r, http.StatusUnauthorized, "UNAUTHORIZED", "This operation is denied.")
		} else {
			cloudAPIError(w, http.StatusUnauthorized, "UNAUTHORIZED", "Access token is not valid")
		}
		return c, false
	}
	if c.version == "" || !s.offered(c.version) {
		if legacy {
			s.legacyError(w, r, http.StatusNotAcceptable, "NOT_ACCEPTABLE", s.notAcceptable())
		} else {
			cloudAPIError(w, http.StatusNotAcceptable, "NOT_ACCEPTABLE", s.notAcceptable())
		}
		return c, false
	}
	return c, true
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

// vcloudNS is the namespace of the /api documents.
const vcloudNS = "http://www.vmware.com/vcloud/v1.5"

// legacyError writes the Error document of the /api endpoints in the media
// type r asked for (XML unless JSON was asked for) and the version it asked
// for (the newest offered when that one is not).
func (s *Server) legacyError(w http.ResponseWriter, r *http.Request, status int, minor, msg string) {
	c, v := negotiate(r), s.answerVersion(r)
	if c.json {
		w.Header().Set("Content-Type", "application/vnd.vmware.vcloud.error+json;version="+v)
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"otherAttributes": map[string]any{}, "majorErrorCode": status, "minorErrorCode": minor,
			"message": msg, "vendorSpecificErrorCode": nil, "stackTrace": nil,
		})
		return
	}
	w.Header().Set("Content-Type", "application/vnd.vmware.vcloud.error+xml;version="+v)
	w.WriteHeader(status)
	var b bytes.Buffer
	b.WriteString(xml.Header + `<Error xmlns="` + vcloudNS + `"`)
	writeXMLAttrs(&b, []attr{{"minorErrorCode", minor}, {"message", msg}, {"majorErrorCode", status}})
	b.WriteString("/>\n")
	_, _ = w.Write(b.Bytes())
}

// orgList answers GET /api/org: the organisations, as OrgList.
func (s *Server) orgList(w http.ResponseWriter, c call) {
	s.mu.Lock()
	orgs, base := s.st.Orgs, s.url
	s.mu.Unlock()
	const listType, orgType = "application/vnd.vmware.vcloud.orgList", "application/vnd.vmware.vcloud.org"
	if c.json {
		list := make([]map[string]any, 0, len(orgs))
		for _, o := range orgs {
			list = append(list, map[string]any{"otherAttributes": map[string]any{}, "href": base + "/api/org/" + o.ID, "type": orgType + "+json", "name": o.Name})
		}
		w.Header().Set("Content-Type", listType+"+json;version="+c.version)
		_ = json.NewEncoder(w).Encode(map[string]any{"otherAttributes": map[string]any{}, "href": base + "/api/org/", "type": listType + "+json", "link": []Link{}, "org": list})
		return
	}
	var b bytes.Buffer
	b.WriteString(xml.Header + `<OrgList xmlns="` + vcloudNS + `"`)
	writeXMLAttrs(&b, []attr{{"href", base + "/api/org/"}, {"type", listType + "+xml"}})
	b.WriteString(">")
	for _, o := range orgs {
		b.WriteString("<Org")
		writeXMLAttrs(&b, []attr{{"href", base + "/api/org/" + o.ID}, {"type", orgType + "+xml"}, {"name", o.Name}})
		b.WriteString("/>")
	}
	b.WriteString("</OrgList>\n")
	w.Header().Set("Content-Type", listType+"+xml;version="+c.version)
	_, _ = w.Write(b.Bytes())
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

// attr is one attribute of a query record (an XML attribute, a JSON field).
type attr struct {
	name string
	val  any
}

// record is one query record: its XML element, its JSON _type and its
// attributes, in the schema's order.
type record struct {
	elem, typ string
	attrs     []attr
}

func writeXMLAttrs(b *bytes.Buffer, attrs []attr) {
	for _, a := range attrs {
		b.WriteString(" " + a.name + `="`)
		_ = xml.EscapeText(b, []byte(fmt.Sprint(a.val)))
		b.WriteString(`"`)
	}
}

func (rc record) xml() []byte {
	var b bytes.Buffer
	b.WriteString("<" + rc.elem)
	writeXMLAttrs(&b, rc.attrs)
	b.WriteString("/>")
	return b.Bytes()
}

func (rc record) json() []byte {
	var b bytes.Buffer
	t, _ := json.Marshal(rc.typ)
	b.WriteString(`{"_type":`)
	b.Write(t)
	for _, a := range rc.attrs {
		k, _ := json.Marshal(a.name)
		v, _ := json.Marshal(a.val)
		b.WriteString(",")
		b.Write(k)
		b.WriteString(":")
		b.Write(v)
	}
	b.WriteString("}")
	return b.Bytes()
}

// value is the attribute's value as a filter compares it.
func (rc record) value(name string) (string, bool) {
	for _, a := range rc.attrs {
		if a.name == name {
			return fmt.Sprint(a.val), true
		}
	}
	return "", false
}

// vmRecord is the adminVM record (QueryResultAdminVMRecordType) of vm.
func vmRecord(base string, vm VM, d VDC, vc VCenter) record {
	kind := "vApp"
	if vm.Template {
		kind = "vAppTemplate"
	}
	return record{elem: "AdminVMRecord", typ: "QueryResultAdminVMRecordType", attrs: []attr{
		{"href", base + "/api/vApp/vm-" + vm.ID}, {"name", vm.Name},
		{"containerName", vm.VApp}, {"container", base + "/api/" + kind + "/" + kind + "-" + vm.VApp},
		{"status", vm.Status}, {"vdc", base + "/api/vdc/" + d.ID}, {"vdcName", d.Name}, {"hostName", vm.HostName},
		{"isVAppTemplate", vm.Template}, {"isDeleted", vm.Deleted}, {"guestOs", vm.GuestOS},
		{"numberOfCpus", vm.CPUs}, {"memoryMB", vm.MemoryMB}, {"isDeployed", vm.Status == "POWERED_ON"},
		{"isVdcEnabled", true}, {"datastoreName", vm.Datastore},
		{"vc", base + "/api/admin/extension/vimServer/" + vc.ID}, {"vcName", vc.Name},
		{"moref", vm.Moref}, {"org", base + "/api/org/" + d.Org},
	}}
}

func (s *Server) query(w http.ResponseWriter, r *http.Request, c call, f Faults) {
	q := queryValues(r.URL.RawQuery)
	typ := q.Get("type")
	if q.Get("format") != "" && q.Get("format") != "records" {
		s.legacyError(w, r, http.StatusBadRequest, "BAD_REQUEST", "format "+q.Get("format")+" is not simulated")
		return
	}
	page, pageSize := 1, DefaultPageSize
	if bad := simhttp.IntParams(q, simhttp.Int("page", 1, &page), simhttp.Int("pageSize", 1, &pageSize)); bad != "" {
		s.legacyError(w, r, http.StatusBadRequest, "BAD_REQUEST", "Bad request: "+bad+" "+q.Get(bad))
		return
	}
	pageSize = min(pageSize, MaxPageSize)
	flt, err := parseFilter(q.Get("filter"))
	if err != nil {
		s.legacyError(w, r, http.StatusBadRequest, "BAD_REQUEST", "Bad request: "+err.Error())
		return
	}
	s.mu.Lock()
	st := s.st
	base := s.url
	s.mu.Unlock()

	// n is the number of records; rec builds record i (only the page's
	// records are built, unless a filter must see them all).
	var n int
	var rec func(i int) record
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
		rec = func(i int) record {
			vm := st.VMs[i]
			d := vdcs[vm.VDC]
			return vmRecord(base, vm, d, vcs[d.VCenter])
		}
	case "organization":
		n = len(st.Orgs)
		rec = func(i int) record {
			o := st.Orgs[i]
			return record{elem: "OrgRecord", typ: "QueryResultOrgRecordType", attrs: []attr{{"href", base + "/api/org/" + o.ID},
				{"name", o.Name}, {"displayName", o.Name}, {"isEnabled", true}, {"isReadOnly", false}}}
		}
	case "adminOrgVdc":
		n = len(st.VDCs)
		rec = func(i int) record {
			d := st.VDCs[i]
			return record{elem: "AdminVdcRecord", typ: "QueryResultAdminVdcRecordType", attrs: []attr{{"href", base + "/api/vdc/" + d.ID},
				{"name", d.Name}, {"org", base + "/api/org/" + d.Org}, {"orgName", orgs[d.Org]},
				{"vc", base + "/api/admin/extension/vimServer/" + d.VCenter}, {"vcName", vcs[d.VCenter].Name},
				{"isEnabled", true}}}
		}
	case "virtualCenter":
		n = len(st.VCenters)
		rec = func(i int) record {
			v := st.VCenters[i]
			return record{elem: "VirtualCenterRecord", typ: "QueryResultVirtualCenterRecordType", attrs: []attr{
				{"href", base + "/api/admin/extension/vimServer/" + v.ID},
				{"name", v.Name}, {"url", v.URL}, {"uuid", v.UUID}, {"vcVersion", "8.0.3"}, {"isEnabled", true},
				{"isSupported", true}, {"isBusy", false}, {"listenerState", "CONNECTED"}}}
		}
	default:
		s.legacyError(w, r, http.StatusBadRequest, "BAD_REQUEST", fmt.Sprintf("Bad request: query type %q is not simulated", typ))
		return
	}
	// idx are the records that pass the filter.
	idx := make([]int, 0, n)
	for i := range n {
		if flt != nil {
			ok, err := flt.match(rec(i))
			if err != nil {
				s.legacyError(w, r, http.StatusBadRequest, "BAD_REQUEST", "Bad request: "+err.Error())
				return
			}
			if !ok {
				continue
			}
		}
		idx = append(idx, i)
	}
	if typ == "adminVM" && f.FailPage == page {
		s.legacyError(w, r, http.StatusInternalServerError, "INTERNAL_SERVER_ERROR", "[ 6f3c2b1a-0d4e ] An internal server error occurred.")
		return
	}
	total := len(idx)
	last := max(1, (total+pageSize-1)/pageSize)
	if page > last {
		s.legacyError(w, r, http.StatusBadRequest, "BAD_REQUEST", fmt.Sprintf("Bad request: page %d is out of range (1 to %d)", page, last))
		return
	}
	suffix := "+xml"
	if c.json {
		suffix = "+json"
	}
	mt := "application/vnd.vmware.vcloud.query.records" + suffix
	w.Header().Set("Content-Type", mt+";version="+c.version)
	if f.Endless {
		s.endless(w, r, c, typ, pageSize, total)
		return
	}
	lo, hi := (page-1)*pageSize, min(page*pageSize, total)
	pageURL := func(p int) string {
		v := url.Values{"type": {typ}, "format": {"records"}, "page": {strconv.Itoa(p)}, "pageSize": {strconv.Itoa(pageSize)}}
		if fl := q.Get("filter"); fl != "" {
			v.Set("filter", fl)
		}
		return base + "/api/query?" + v.Encode()
	}
	links := []Link{{Rel: "alternate", Href: strings.Replace(pageURL(page), "format=records", "format=references", 1), Type: "application/vnd.vmware.vcloud.query.references" + suffix}}
	if page < last {
		links = append(links, Link{Rel: "nextPage", Href: pageURL(page + 1), Type: mt}, Link{Rel: "lastPage", Href: pageURL(last), Type: mt})
	}
	if page > 1 {
		links = append(links, Link{Rel: "previousPage", Href: pageURL(page - 1), Type: mt}, Link{Rel: "firstPage", Href: pageURL(1), Type: mt})
	}
	records := make([]record, 0, hi-lo)
	for _, i := range idx[lo:hi] {
		rc := rec(i)
		if typ == "adminVM" && f.MalformField != "" {
			rc.attrs = malform(rc.attrs, f.MalformField)
		}
		records = append(records, rc)
	}
	var body []byte
	if c.json {
		res := QueryResultRecords{OtherAttributes: map[string]any{}, Link: links, Href: pageURL(page), Type: mt, Name: typ,
			Page: page, PageSize: pageSize, Total: total, Record: make([]json.RawMessage, 0, len(records))}
		for _, rc := range records {
			res.Record = append(res.Record, rc.json())
		}
		body, _ = json.Marshal(res)
	} else {
		var b bytes.Buffer
		b.WriteString(recordsHead(pageURL(page), mt, typ, page, pageSize, total))
		for _, l := range links {
			b.WriteString("<Link")
			writeXMLAttrs(&b, []attr{{"rel", l.Rel}, {"href", l.Href}, {"type", l.Type}})
			b.WriteString("/>")
		}
		for _, rc := range records {
			b.Write(rc.xml())
		}
		b.WriteString("</QueryResultRecords>\n")
		body = b.Bytes()
	}
	if f.Truncate {
		body = body[:len(body)/2]
	}
	_, _ = w.Write(body)
}

// recordsHead opens the XML QueryResultRecords document.
func recordsHead(href, mt, typ string, page, pageSize, total int) string {
	var b bytes.Buffer
	b.WriteString(xml.Header + `<QueryResultRecords xmlns="` + vcloudNS + `"`)
	writeXMLAttrs(&b, []attr{{"href", href}, {"type", mt}, {"name", typ}, {"page", page}, {"pageSize", pageSize}, {"total", total}})
	b.WriteString(">")
	return b.String()
}

// endless answers a records page of typ that never ends: its records are
// one realistic adminVM record, over and over.
func (s *Server) endless(w http.ResponseWriter, r *http.Request, c call, typ string, pageSize, total int) {
	s.mu.Lock()
	base := s.url
	s.mu.Unlock()
	rc := vmRecord(base,
		VM{ID: "3f1c2b7e-9a4d-4e0b-8c21-6d5f0a9e7b13", Name: "web-frontend-01", VApp: "web-tier", Status: "POWERED_ON",
			HostName: "esx-07.example.net", GuestOS: "Ubuntu Linux (64-bit)", CPUs: 4, MemoryMB: 8192, Datastore: "vsanDatastore", Moref: "vm-1042"},
		VDC{ID: "0b9e1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d", Name: "acme-prod-vdc", Org: "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"},
		VCenter{ID: "6a7b8c9d-0e1f-4a2b-9c3d-4e5f6a7b8c9d", Name: "vc-01"})
	ct := w.Header().Get("Content-Type")
	if c.json {
		head := fmt.Sprintf(`{"otherAttributes":{},"href":%q,"type":%q,"name":%q,"page":1,"pageSize":%d,"total":%d,"link":[],"record":[`,
			base+"/api/query?type="+typ, "application/vnd.vmware.vcloud.query.records+json", typ, pageSize, total)
		simhttp.Endless(w, r, ct, []byte(head), rc.json(), []byte(","))
		return
	}
	head := recordsHead(base+"/api/query?type="+typ, "application/vnd.vmware.vcloud.query.records+xml", typ, 1, pageSize, total)
	simhttp.Endless(w, r, ct, []byte(head), rc.xml(), nil)
}

// malform gives field a value of the wrong type.
func malform(attrs []attr, field string) []attr {
	out := slices.Clone(attrs)
	for i, a := range out {
		if a.name != field {
			continue
		}
		switch a.val.(type) {
		case string:
			out[i].val = 42
		case int:
			out[i].val = "many"
		case bool:
			out[i].val = "perhaps"
		default:
			out[i].val = []int{1}
		}
		return out
	}
	return append(out, attr{field, []int{1}})
}

// queryValues parses a raw query as VCD does: pairs split on "&" only, so
// that the ";" (and) of a filter needs no escaping; Go's url.ParseQuery
// drops a pair holding a ";".
func queryValues(raw string) url.Values {
	v := url.Values{}
	for _, pair := range strings.Split(raw, "&") {
		if pair == "" {
			continue
		}
		k, val, _ := strings.Cut(pair, "=")
		if u, err := url.QueryUnescape(k); err == nil {
			k = u
		}
		if u, err := url.QueryUnescape(val); err == nil {
			val = u
		}
		v.Add(k, val)
	}
	return v
}

// filter is a query filter (FIQL, as the VCD query service takes it): terms
// joined by ";" (and) of alternatives joined by "," (or), each
// "attribute==value" or "attribute!=value", where "*" in the value matches
// any run of characters. Other FIQL operators and parentheses are refused:
// the simulator does not simulate them.
type filter [][]cond

type cond struct {
	attr, op, val string
}

func parseFilter(s string) (filter, error) {
	if s == "" {
		return nil, nil
	}
	var f filter
	for _, and := range strings.Split(s, ";") {
		if and == "" {
			continue // govcd's QueryVmList can start a filter with ";"
		}
		var or []cond
		for _, term := range strings.Split(and, ",") {
			op := "=="
			a, v, ok := strings.Cut(term, "==")
			if !ok {
				op = "!="
				a, v, ok = strings.Cut(term, "!=")
			}
			if !ok || a == "" || strings.ContainsAny(a, "()=") {
				return nil, fmt.Errorf("filter term %q is not attribute==value or attribute!=value", term)
			}
			or = append(or, cond{attr: a, op: op, val: v})
		}
		f = append(f, or)
	}
	return f, nil
}

// match says whether rc passes f; an attribute rc's type does not have is
// an error (VCD refuses such a filter with 400).
func (f filter) match(rc record) (bool, error) {
	for _, or := range f {
		hit := false
		for _, c := range or {
			v, ok := rc.value(c.attr)
			if !ok {
				return false, fmt.Errorf("%q is not a property of %s", c.attr, rc.typ)
			}
			if glob(c.val, v) == (c.op == "==") {
				hit = true
			}
		}
		if !hit {
			return false, nil
		}
	}
	return true, nil
}

// glob matches s against pattern, where "*" matches any run of characters.
func glob(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return s == pattern
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
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
