// Package simulator simulates the parts of the vRealize Automation 7
// (Aria Automation 7) REST API that the usage meter reads, as govmomi's
// simulator sits beside its client: the vra7 collector's tests run against
// it, and it can serve `usagemeter demo` (Serve works outside tests).
//
// Reference followed (public): the vRealize Automation 7 Programming Guide
// and REST API reference (docs.vmware.com, com.vmware.vra.programming.doc,
// 7.0 to 7.6):
//
//   - Login: POST /identity/api/tokens with {"username", "password",
//     "tenant"} answers {"expires", "id", "tenant"}; later calls send
//     "Authorization: Bearer <id>". Invalid credentials are 401 (the
//     guide's status codes: 400 when the POST fails validation, 401 when
//     the user cannot be authenticated). A token expires (24 hours by
//     default); a call with an expired or unknown token is 401. DELETE
//     /identity/api/tokens/{id} logs out. GET /identity/api/tenants/{tenant}
//     describes the tenant (id, urlName, name).
//   - GET /catalog-service/api/consumer/resources: the catalog resources
//     the user may see, each a ConsumerResource with id, name, status,
//     resourceTypeRef {id, label} (Infrastructure.Virtual, "Virtual
//     Machine", for an IaaS virtual machine), organization {tenantRef,
//     subtenantRef, subtenantLabel (the business group)}, and with
//     withExtendedData=true its resourceData {"entries": [{"key", "value":
//     {"type", "value"}}]}: for a machine MachineName, MachineInterfaceType
//     (vSphere, ...), MachineStatus, EXTERNAL_REFERENCE_ID (the VM's MoRef,
//     vm-989), VirtualMachine.Admin.UUID (the VM's UUID) and
//     endpointExternalReferenceId (the vCenter endpoint's instance UUID), as
//     the guide's resource examples show. $filter (OData) narrows the list:
//     resourceType/id eq 'Infrastructure.Virtual'.
//   - Paging: page (1-based) and limit; an answer is {"links", "content",
//     "metadata": {"size", "totalElements", "totalPages", "number",
//     "offset"}}; limit defaults to 20.
//   - Errors are {"errors": [{"code", "message", "systemMessage"}]}.
//
// The simulator's choices where the reference is silent: every resource
// of State is visible to the user (a business group manager of every
// group, or a tenant administrator with the consumer view of all of them);
// only the $filter above is understood (any other $filter is ignored, as a
// lenient server would); State.AuthFailure400 answers a wrong password
// with 400 and error 90135 "Authentication failed", as some 7.x releases
// do, instead of 401.
package simulator

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/usagemeter/usagemeter/collectors/internal/simhttp"
)

// API paths.
const (
	TokensPath    = "/identity/api/tokens"
	TenantsPath   = "/identity/api/tenants/"
	ResourcesPath = "/catalog-service/api/consumer/resources"
)

// VirtualMachine is the resource type of an IaaS virtual machine.
const VirtualMachine = "Infrastructure.Virtual"

// DefaultLimit is the page size of a list call without limit.
const DefaultLimit = 20

// State is what the simulated vRealize Automation 7 holds.
type State struct {
	User     string `json:"user"`
	Password string `json:"password"`
	Tenant   string `json:"tenant"` // the tenant's URL name, e.g. vsphere.local
	// AuthFailure400 answers a wrong password with 400 (error 90135)
	// instead of 401.
	AuthFailure400 bool       `json:"auth_failure_400,omitempty"`
	Resources      []Resource `json:"resources"`
}

// Resource is a catalog resource.
type Resource struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Type is the resource type id (default Infrastructure.Virtual).
	Type string `json:"type,omitempty"`
	// Interface is MachineInterfaceType (default vSphere).
	Interface string `json:"interface,omitempty"`
	Status    string `json:"status,omitempty"`       // default ACTIVE
	Power     string `json:"power,omitempty"`        // MachineStatus, default On
	VCenter   string `json:"vcenter_uuid,omitempty"` // endpointExternalReferenceId
	MoRef     string `json:"moref,omitempty"`        // EXTERNAL_REFERENCE_ID
	Group     string `json:"business_group,omitempty"`
}

// Faults are error modes a test switches on.
type Faults struct {
	ExpireAfter   int           // a token dies after that many calls (0: never)
	RejectAll     bool          // every login and token is refused with 401
	FailPage      int           // page FailPage of the resource list answers 500
	Delay         time.Duration // added before every answer
	MalformField  string        // that field of every resource gets a wrong JSON type
	Truncate      bool          // resource list bodies are cut in half
	ThrottleEvery int           // every ThrottleEvery-th call answers 503 (0: never)
	IgnorePage    bool          // the resource list answers page 1 whatever page is asked
}

// VRA is a simulated vRealize Automation 7. It is safe for concurrent use.
type VRA struct {
	core   simhttp.Core[Faults]
	tokens simhttp.Sessions[struct{}]
	st     State // not changed after New

	// encoded are the resources with their extended data, encoded once
	// (the state does not change): the answer of a large catalog costs
	// the simulator little, so that benchmarks measure the collector.
	once    sync.Once
	encoded []json.RawMessage
}

// New returns a simulator holding st.
func New(st State) *VRA {
	if st.Tenant == "" {
		st.Tenant = "vsphere.local"
	}
	return &VRA{st: st}
}

// LoadState decodes a State from JSON, refusing unknown keys.
func LoadState(b []byte) (State, error) { return simhttp.LoadState[State]("vra7", b) }

// Serve serves s on a loopback TLS server with a self-signed certificate,
// and returns its URL, the SHA-256 thumbprint of its certificate and a
// function that stops it.
func (s *VRA) Serve() (url, thumbprint string, stop func()) { return simhttp.ServeTLS(s) }

// Start is Serve for a test: the server stops when the test ends.
func (s *VRA) Start(t simhttp.TB) (url, thumbprint string) { return simhttp.StartTLS(t, s) }

// SetFaults replaces the error modes.
func (s *VRA) SetFaults(f Faults) { s.core.SetFaults(f) }

// ExpireSessions ends every token.
func (s *VRA) ExpireSessions() { s.tokens.ExpireAll() }

// Logins is the number of tokens issued.
func (s *VRA) Logins() int { return s.tokens.Logins() }

// Calls is the number of requests served.
func (s *VRA) Calls() int { return s.core.Calls() }

func respError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []any{map[string]any{"code": code, "source": nil, "message": msg,
		"systemMessage": msg, "moreInfoUrl": nil}}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// ServeHTTP implements http.Handler.
func (s *VRA) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, n := s.core.Begin()
	simhttp.Wait(r, f.Delay)
	if f.ThrottleEvery > 0 && n%f.ThrottleEvery == 0 {
		w.Header().Set("Retry-After", "0")
		respError(w, http.StatusServiceUnavailable, 503, "Service Unavailable")
		return
	}
	if r.URL.Path == TokensPath && r.Method == http.MethodPost {
		s.login(w, r, f)
		return
	}
	bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if s.tokens.Use(bearer, f.RejectAll, f.ExpireAfter, nil) == simhttp.Gone {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, "<!DOCTYPE html><html><head><title>Error report</title></head><body><h1>HTTP Status 401 - Authentication required</h1></body></html>")
		return
	}
	switch {
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, TokensPath+"/"):
		s.tokens.Close(strings.TrimPrefix(r.URL.Path, TokensPath+"/"))
		w.WriteHeader(http.StatusNoContent)
	case r.Method != http.MethodGet:
		respError(w, http.StatusMethodNotAllowed, 405, "Method not allowed")
	case r.URL.Path == TenantsPath+s.st.Tenant:
		writeJSON(w, map[string]any{"@type": "Tenant", "id": s.st.Tenant, "urlName": s.st.Tenant, "name": s.st.Tenant, "description": ""})
	case r.URL.Path == ResourcesPath:
		s.resources(w, r, f)
	default:
		respError(w, http.StatusNotFound, 404, "Not found: "+r.URL.Path)
	}
}

func (s *VRA) login(w http.ResponseWriter, r *http.Request, f Faults) {
	var body struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Tenant   string `json:"tenant"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Username == "" {
		respError(w, http.StatusBadRequest, 10101, "Invalid request body.")
		return
	}
	if f.RejectAll || body.Username != s.st.User || body.Password != s.st.Password || body.Tenant != s.st.Tenant {
		if s.st.AuthFailure400 {
			respError(w, http.StatusBadRequest, 90135, "Authentication failed")
			return
		}
		respError(w, http.StatusUnauthorized, 90135, "Authentication failed")
		return
	}
	b := make([]byte, 48)
	_, _ = rand.Read(b)
	id := base64.StdEncoding.EncodeToString(b)
	s.tokens.Open(id, struct{}{})
	writeJSON(w, map[string]any{"expires": time.Now().Add(24 * time.Hour).UTC().Format("2006-01-02T15:04:05.000Z"), "id": id, "tenant": s.st.Tenant})
}

func entry(key, typ string, v any) map[string]any {
	return map[string]any{"key": key, "value": map[string]any{"type": typ, "value": v}}
}

func (s *VRA) resource(res *Resource, extended bool, malform string) map[string]any {
	typ, label := res.Type, "Virtual Machine"
	if typ == "" {
		typ = VirtualMachine
	} else if typ != VirtualMachine {
		label = typ
	}
	status := res.Status
	if status == "" {
		status = "ACTIVE"
	}
	m := map[string]any{
		"@type": "ConsumerResource", "id": res.ID, "iconId": "Infrastructure.CatalogItem.Machine.Virtual.vSphere",
		"resourceTypeRef": map[string]any{"id": typ, "label": label}, "name": res.Name, "description": "",
		"status": status, "requestId": "666d77e3-7642-492d-aad1-82b8edd30e56",
		"providerBinding": map[string]any{"bindingId": res.ID, "providerRef": map[string]any{"id": "2fbaabc5", "label": "Infrastructure Service"}},
		"owners":          []any{map[string]any{"tenantName": s.st.Tenant, "ref": "owner@" + s.st.Tenant, "type": "USER", "value": "Owner"}},
		"organization": map[string]any{"tenantRef": s.st.Tenant, "tenantLabel": s.st.Tenant,
			"subtenantRef": "53619006-56bb-4788-9723-9eab79752cc1", "subtenantLabel": res.Group},
		"dateCreated": "2026-04-20T12:22:51.322Z", "lastUpdated": "2026-11-01T12:23:03.303Z", "hasLease": true,
		"lease": map[string]any{"start": "2026-04-20T12:17:32.164Z"}, "hasCosts": false, "childResources": []any{}, "operations": []any{},
	}
	if extended && (typ == VirtualMachine) {
		iface, power := res.Interface, res.Power
		if iface == "" {
			iface = "vSphere"
		}
		if power == "" {
			power = "On"
		}
		entries := []any{
			entry("MachineName", "string", res.Name),
			entry("MachineInterfaceType", "string", iface),
			entry("MachineStatus", "string", power),
			entry("MachineCPU", "integer", 2),
			entry("MachineMemory", "integer", 4096),
			entry("MachineGroupName", "string", res.Group),
			entry("IS_COMPONENT_MACHINE", "boolean", false),
			entry("NETWORK_LIST", "multiple", map[string]any{"items": []any{map[string]any{"type": "complex", "componentTypeId": "com.vmware.csp.component.iaas.proxy.provider",
				"classId": "dynamicops.api.model.NetworkViewModel", "values": map[string]any{"entries": []any{entry("NETWORK_NAME", "string", "VM Network")}}}}}),
		}
		if res.MoRef != "" {
			entries = append(entries, entry("EXTERNAL_REFERENCE_ID", "string", res.MoRef),
				entry("VirtualMachine.Admin.UUID", "string", "502e"+fmt.Sprintf("%04x", len(res.ID))+"-6f0d-0b1e-f90f-a769fd406620"))
		}
		if res.VCenter != "" {
			entries = append(entries, entry("endpointExternalReferenceId", "string", res.VCenter))
		}
		m["resourceData"] = map[string]any{"entries": entries}
	}
	switch malform {
	case "":
	case "resourceData":
		m[malform] = map[string]any{"entries": "none"}
	case "resourceTypeRef":
		m[malform] = "Infrastructure.Virtual"
	default:
		m[malform] = 42
	}
	return m
}

func (s *VRA) resources(w http.ResponseWriter, r *http.Request, f Faults) {
	q := r.URL.Query()
	page, limit := 1, DefaultLimit
	if bad := simhttp.IntParams(q, simhttp.Int("page", 1, &page), simhttp.Int("limit", 1, &limit)); bad != "" {
		respError(w, http.StatusBadRequest, 10101, "Invalid "+bad+": "+q.Get(bad))
		return
	}
	onlyVMs := strings.ReplaceAll(q.Get("$filter"), " ", "") == "resourceType/ideq'"+VirtualMachine+"'"
	type listed struct {
		r     *Resource
		index int
	}
	list := make([]listed, 0, len(s.st.Resources))
	for i := range s.st.Resources {
		res := &s.st.Resources[i]
		if !onlyVMs || res.Type == "" || res.Type == VirtualMachine {
			list = append(list, listed{res, i})
		}
	}
	if f.IgnorePage {
		page = 1
	}
	if f.FailPage > 0 && page == f.FailPage {
		respError(w, http.StatusInternalServerError, 10000, "An internal error has occurred: java.lang.NullPointerException")
		return
	}
	total := len(list)
	pages := (total + limit - 1) / limit
	offset := (page - 1) * limit
	end := min(offset+limit, total)
	extended := q.Get("withExtendedData") == "true"
	if extended && f.MalformField == "" {
		s.once.Do(func() {
			s.encoded = make([]json.RawMessage, len(s.st.Resources))
			for i := range s.st.Resources {
				s.encoded[i], _ = json.Marshal(s.resource(&s.st.Resources[i], true, ""))
			}
		})
	}
	var buf bytes.Buffer
	if extended && f.MalformField == "" {
		n := 0
		for i := offset; i < end; i++ {
			n += len(s.encoded[list[i].index]) + 1
		}
		buf.Grow(n + 256)
	}
	buf.WriteString(`{"links":[],"content":[`)
	for i := offset; i < end; i++ {
		if i > offset {
			buf.WriteByte(',')
		}
		if extended && f.MalformField == "" {
			buf.Write(s.encoded[list[i].index])
			continue
		}
		b, _ := json.Marshal(s.resource(list[i].r, extended, f.MalformField))
		buf.Write(b)
	}
	meta, _ := json.Marshal(map[string]any{"size": limit, "totalElements": total, "totalPages": pages, "number": page, "offset": offset})
	fmt.Fprintf(&buf, `],"metadata":%s}`, meta)
	body := buf.Bytes()
	if f.Truncate {
		body = body[:len(body)/2]
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.Copy(w, bytes.NewReader(body))
}
