// Package simulator simulates the parts of a Tanzu Kubernetes Grid (TKGm)
// management cluster's Kubernetes API that the usage meter reads, as
// govmomi's simulator sits beside its client: the tkgm collector's tests run
// against it, and it can serve `usagemeter demo` (Serve and Fleet work
// outside tests).
//
// References followed (public): the Kubernetes API concepts ("API
// Concepts": retrieving large results sets in chunks, resource versions,
// Status objects, "Authenticating" and "Authorization" for 401 and 403) and
// the Cluster API types of cluster.x-k8s.io/v1beta1 (Cluster, Machine):
//
//   - GET /apis/cluster.x-k8s.io/v1beta1/clusters and .../machines list the
//     objects of every namespace, ordered by namespace and name (the order
//     of their storage keys). With ?limit=N a list answers at most N items
//     and, when more remain, metadata.continue (an opaque token) and
//     metadata.remainingItemCount; the next page is asked with
//     ?limit=N&continue=TOKEN, and every page of one list carries the
//     resourceVersion of the first (one consistent snapshot). A token too
//     old to be served answers 410 Gone with reason Expired (the client
//     starts the list again); a token that cannot be decoded, 400.
//   - A list is {"apiVersion", "kind": "ClusterList"|"MachineList",
//     "metadata": {"resourceVersion", "continue", "remainingItemCount"},
//     "items": [...]}; each item has apiVersion, kind and metadata (name,
//     namespace, uid, resourceVersion, creationTimestamp, labels). A
//     Machine's spec has clusterName, version, bootstrap,
//     infrastructureRef and providerID (vsphere://<BIOS UUID> on vSphere,
//     set once the VM exists); its status has phase (Pending, Provisioning,
//     Provisioned, Running, Deleting, Deleted, Failed, Unknown) and nodeRef.
//     Machines carry the cluster.x-k8s.io/cluster-name label, control-plane
//     machines also cluster.x-k8s.io/control-plane. A Cluster has
//     spec.infrastructureRef and status.phase; TKG labels its management
//     cluster's own Cluster object (namespace tkg-system)
//     cluster-role.tkg.tanzu.vmware.com/management.
//   - Errors are metav1.Status objects {"kind": "Status", "apiVersion": "v1",
//     "status": "Failure", "message", "reason", "details", "code"}: 401
//     Unauthorized for a missing, wrong or expired bearer token (on every
//     path: authentication comes before anything else); 403 Forbidden when
//     the token's service account has no RBAC rule allowing the list
//     (message `machines.cluster.x-k8s.io is forbidden: User "..." cannot
//     list resource "machines" in API group "cluster.x-k8s.io" at the
//     cluster scope`); 404 NotFound for a path no API serves (the Cluster
//     API is not installed); 500 InternalError; 429 TooManyRequests with
//     Retry-After.
//   - GET /version answers the server's version (gitVersion).
//
// The simulator's choices where the references leave room: a token is
// accepted exactly as State.Token (ServiceAccountToken makes one shaped as
// a bound service account token, a JWT with an exp claim; the simulator
// checks the claim, not the signature); every list uses one
// resourceVersion, State.ResourceVersion; the continue token encodes it
// and the last key served, as the API server's does.
package simulator

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/usagemeter/usagemeter/collectors/internal/simhttp"
)

// Group and Version of the Cluster API served.
const (
	Group   = "cluster.x-k8s.io"
	Version = "v1beta1"
	APIPath = "/apis/" + Group + "/" + Version
)

// Labels TKG and the Cluster API set.
const (
	LabelManagement   = "cluster-role.tkg.tanzu.vmware.com/management"
	LabelClusterName  = "cluster.x-k8s.io/cluster-name"
	LabelControlPlane = "cluster.x-k8s.io/control-plane"
)

// DefaultServiceAccount is the service account State.Token belongs to
// when State.ServiceAccount is empty.
const DefaultServiceAccount = "system:serviceaccount:tkg-system:usagemeter-reader"

// State is what the simulated management cluster holds.
type State struct {
	// Token is the bearer token accepted.
	Token string `json:"token"`
	// ServiceAccount is the user the token authenticates as (in 403
	// messages).
	ServiceAccount  string `json:"service_account,omitempty"`
	GitVersion      string `json:"git_version,omitempty"`      // default v1.30.2+vmware.1
	ResourceVersion string `json:"resource_version,omitempty"` // of every list, default 48213
	// Forbidden are the resources ("clusters", "machines") the service
	// account has no RBAC rule to list: they answer 403.
	Forbidden []string `json:"forbidden,omitempty"`
	// NoClusterAPI: the Cluster API is not installed (a workload cluster
	// given instead of the management cluster): its paths answer 404.
	NoClusterAPI bool      `json:"no_cluster_api,omitempty"`
	Clusters     []Cluster `json:"clusters"`
	Machines     []Machine `json:"machines"`
}

// Cluster is a Cluster API Cluster.
type Cluster struct {
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	UID        string `json:"uid,omitempty"`
	Management bool   `json:"management,omitempty"` // labelled as the TKG management cluster
	Phase      string `json:"phase,omitempty"`      // default Provisioned
	// Infrastructure is the kind of spec.infrastructureRef (default
	// VSphereCluster).
	Infrastructure string `json:"infrastructure,omitempty"`
}

// Machine is a Cluster API Machine.
type Machine struct {
	Namespace    string `json:"namespace"`
	Name         string `json:"name"`
	Cluster      string `json:"cluster"`
	UID          string `json:"uid,omitempty"`
	ProviderID   string `json:"provider_id,omitempty"` // "" until the VM exists
	ControlPlane bool   `json:"control_plane,omitempty"`
	Phase        string `json:"phase,omitempty"`   // default Running
	Version      string `json:"version,omitempty"` // default the server's
}

// Faults are error modes a test switches on.
type Faults struct {
	Delay time.Duration // added before every answer
	// FailPage: page FailPage (1-based) of every list answers 500 (of
	// FailResource only, when set).
	FailPage     int
	FailResource string
	// MalformField gives that field of every machine a wrong JSON type:
	// "providerID", "clusterName", "labels", "metadata", "items".
	MalformField string
	Truncate     bool // list bodies are cut in half
	// TokenExpiresAfter: the token is refused (401) after that many calls
	// made with it (0: never), as a bound token reaching its expiry.
	TokenExpiresAfter int
	ExpireContinue    int  // the first ExpireContinue continued pages answer 410 Gone (Expired)
	RepeatContinue    bool // every page answers the continue token it was asked with (a broken proxy)
	ThrottleEvery     int  // every ThrottleEvery-th call answers 429 with Retry-After: 1 (0: never)
	Forbid            string
	Endless           bool // list answers never end (an API server or proxy gone wrong)
	// Warning is sent in a Warning header (299) with every answer, as an
	// API server does for a deprecated API version.
	Warning string
}

// Server is a simulated management cluster API server. It is safe for
// concurrent use.
type Server struct {
	core simhttp.Core[Faults]

	mu      sync.Mutex
	st      State
	expired bool // the token was refused by an expiry
	gone    int  // continue tokens answered 410
	authed  int  // calls made with the token
}

// New returns a simulator holding st.
func New(st State) *Server {
	if st.ServiceAccount == "" {
		st.ServiceAccount = DefaultServiceAccount
	}
	if st.GitVersion == "" {
		st.GitVersion = "v1.30.2+vmware.1"
	}
	if st.ResourceVersion == "" {
		st.ResourceVersion = "48213"
	}
	st.Clusters = slices.Clone(st.Clusters)
	st.Machines = slices.Clone(st.Machines)
	slices.SortStableFunc(st.Clusters, func(a, b Cluster) int { return strings.Compare(key(a.Namespace, a.Name), key(b.Namespace, b.Name)) })
	slices.SortStableFunc(st.Machines, func(a, b Machine) int { return strings.Compare(key(a.Namespace, a.Name), key(b.Namespace, b.Name)) })
	return &Server{st: st}
}

func key(ns, name string) string { return ns + "/" + name }

// LoadState reads a state file strictly.
func LoadState(b []byte) (State, error) { return simhttp.LoadState[State]("tkgm", b) }

// Serve serves the simulator over TLS on loopback until stop is called (the
// demo); the thumbprint is the one to accept.
func (s *Server) Serve() (url, thumbprint string, stop func()) { return simhttp.ServeTLS(s) }

// Start is Serve for a test: it stops when the test ends.
func (s *Server) Start(t simhttp.TB) (url, thumbprint string) { return simhttp.StartTLS(t, s) }

// SetFaults replaces the fault switches.
func (s *Server) SetFaults(f Faults) { s.core.SetFaults(f) }

// Calls is the number of requests served.
func (s *Server) Calls() int { return s.core.Calls() }

// SetToken replaces the accepted token (an admin created a new one) and
// forgets an expiry.
func (s *Server) SetToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Token, s.expired, s.authed = token, false, 0
}

func (s *Server) state() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// ServiceAccountToken returns a token shaped as a bound service account
// token: a JWT whose claims name sa and expire at exp. It is not signed by
// any key the simulator checks.
func ServiceAccountToken(sa string, exp time.Time) string {
	enc := base64.RawURLEncoding
	head, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": "sim"})
	claims, _ := json.Marshal(map[string]any{"iss": "https://kubernetes.default.svc.cluster.local", "sub": sa,
		"aud": []string{"https://kubernetes.default.svc.cluster.local"}, "iat": exp.Add(-24 * time.Hour).Unix(), "exp": exp.Unix()})
	return enc.EncodeToString(head) + "." + enc.EncodeToString(claims) + "." + enc.EncodeToString([]byte("simulated-signature"))
}

// tokenExpiry is the exp claim of a JWT-shaped token, zero when it has none.
func tokenExpiry(tok string) time.Time {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(b, &c) != nil || c.Exp == 0 {
		return time.Time{}
	}
	return time.Unix(c.Exp, 0)
}

// status writes a metav1.Status.
func status(w http.ResponseWriter, code int, reason, msg string, details map[string]any) {
	st := map[string]any{"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{},
		"status": "Failure", "message": msg, "reason": reason, "code": code}
	if details != nil {
		st["details"] = details
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(st)
}

// authenticate checks the bearer token; false when it wrote a 401.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, f Faults) bool {
	s.mu.Lock()
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	good := ok && tok != "" && tok == s.st.Token && !s.expired
	if good {
		if exp := tokenExpiry(tok); !exp.IsZero() && time.Now().After(exp) {
			good = false
		}
	}
	if good && f.TokenExpiresAfter > 0 && s.authed >= f.TokenExpiresAfter {
		s.expired, good = true, false
	}
	if good {
		s.authed++
	}
	s.mu.Unlock()
	if !good {
		status(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized", nil)
	}
	return good
}

// ServeHTTP answers one API request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, n := s.core.Begin()
	simhttp.Wait(r, f.Delay)
	if !s.authenticate(w, r, f) {
		return
	}
	if f.Warning != "" {
		w.Header().Add("Warning", `299 - "`+f.Warning+`"`)
	}
	if f.ThrottleEvery > 0 && n%f.ThrottleEvery == 0 {
		w.Header().Set("Retry-After", "1")
		status(w, http.StatusTooManyRequests, "TooManyRequests", "Too many requests, please try again later.", map[string]any{"retryAfterSeconds": 1})
		return
	}
	if r.Method != http.MethodGet {
		status(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "the server does not allow this method on the requested resource", nil)
		return
	}
	st := s.state()
	switch p := strings.TrimSuffix(r.URL.Path, "/"); p {
	case "/version":
		v := strings.TrimPrefix(st.GitVersion, "v")
		major, rest, _ := strings.Cut(v, ".")
		minor, _, _ := strings.Cut(rest, ".")
		writeJSON(w, map[string]any{"major": major, "minor": minor, "gitVersion": st.GitVersion, "platform": "linux/amd64"})
		return
	case APIPath + "/clusters", APIPath + "/machines":
		if st.NoClusterAPI {
			break
		}
		res := p[len(APIPath)+1:]
		if res == f.Forbid || slices.Contains(st.Forbidden, res) {
			status(w, http.StatusForbidden, "Forbidden", fmt.Sprintf(
				"%s.%s is forbidden: User %q cannot list resource %q in API group %q at the cluster scope", res, Group, st.ServiceAccount, res, Group),
				map[string]any{"group": Group, "kind": res})
			return
		}
		if res == "clusters" {
			s.list(w, r, f, st, res, "ClusterList", len(st.Clusters),
				func(i int) string { return key(st.Clusters[i].Namespace, st.Clusters[i].Name) },
				func(i int) any { return clusterObject(st.Clusters[i], st.ResourceVersion) })
		} else {
			s.list(w, r, f, st, res, "MachineList", len(st.Machines),
				func(i int) string { return key(st.Machines[i].Namespace, st.Machines[i].Name) },
				func(i int) any { return machineObject(st.Machines[i], st, f.MalformField) })
		}
		return
	}
	status(w, http.StatusNotFound, "NotFound", "the server could not find the requested resource", nil)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// continueToken is what a continue token encodes (as the API server's:
// the list's resource version and the last key served).
type continueToken struct {
	V     string `json:"v"`
	RV    int64  `json:"rv"`
	Start string `json:"start"`
}

// list writes one page of a list, paged with limit and continue.
// keyOf(i) is the storage key of item i (items are sorted by it), item(i)
// the object.
func (s *Server) list(w http.ResponseWriter, r *http.Request, f Faults, st State, res, kind string, total int, keyOf func(int) string, item func(int) any) {
	q := r.URL.Query()
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			status(w, http.StatusBadRequest, "BadRequest", "limit must be a non-negative integer", nil)
			return
		}
		limit = n
	}
	start, page := 0, 1
	cont := q.Get("continue")
	if cont != "" {
		b, err := base64.RawURLEncoding.DecodeString(cont)
		var tok continueToken
		if err == nil {
			err = json.Unmarshal(b, &tok)
		}
		if err != nil || tok.V != "meta.k8s.io/v1" {
			status(w, http.StatusBadRequest, "BadRequest", "continue key is not valid: "+fmt.Sprint(err), nil)
			return
		}
		s.mu.Lock()
		gone := s.gone < f.ExpireContinue
		if gone {
			s.gone++
		}
		s.mu.Unlock()
		if gone {
			status(w, http.StatusGone, "Expired", "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.", nil)
			return
		}
		last := strings.TrimSuffix(tok.Start, "\x00")
		start = sort.Search(total, func(i int) bool { return keyOf(i) > last })
		if limit > 0 {
			page = start/limit + 1
		}
	}
	if f.FailPage > 0 && page == f.FailPage && (f.FailResource == "" || f.FailResource == res) {
		status(w, http.StatusInternalServerError, "InternalError", "Internal error occurred: etcdserver: request timed out", nil)
		return
	}
	end := total
	if limit > 0 {
		end = min(start+limit, total)
	}
	items := make([]any, 0, max(end-start, 0))
	lastKey := ""
	for i := start; i < end; i++ {
		items = append(items, item(i))
		lastKey = keyOf(i)
	}
	meta := map[string]any{"resourceVersion": st.ResourceVersion}
	if end < total {
		rv, _ := strconv.ParseInt(st.ResourceVersion, 10, 64)
		b, _ := json.Marshal(continueToken{V: "meta.k8s.io/v1", RV: rv, Start: lastKey + "\x00"})
		meta["continue"] = base64.RawURLEncoding.EncodeToString(b)
		meta["remainingItemCount"] = total - end
		if f.RepeatContinue && cont != "" {
			meta["continue"] = cont
		}
	}
	if f.Endless && len(items) > 0 {
		item, _ := json.Marshal(items[0])
		simhttp.Endless(w, r, "application/json", []byte(`{"apiVersion":"`+Group+"/"+Version+`","kind":"`+kind+`","metadata":{},"items":[`), item, []byte(","))
		return
	}
	var itemsJSON any = items
	if f.MalformField == "items" {
		itemsJSON = map[string]any{"0": items}
	}
	body, _ := json.Marshal(map[string]any{"apiVersion": Group + "/" + Version, "kind": kind, "metadata": meta, "items": itemsJSON})
	if f.Truncate {
		body = body[:len(body)/2]
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.Copy(w, bytes.NewReader(body))
}

func uid(u, kind, ns, name string) string {
	if u != "" {
		return u
	}
	// A stable made-up UID (the real ones are random UUIDs).
	h := uint32(2166136261)
	for _, c := range []byte(kind + "/" + ns + "/" + name) {
		h = (h ^ uint32(c)) * 16777619
	}
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", h, h&0xffff, h&0xfff, (h>>12)&0xfff, uint64(h)*0x9e3779b1&0xffffffffffff)
}

var created = "2026-01-12T09:30:00Z"

func clusterObject(c Cluster, rv string) map[string]any {
	labels := map[string]any{}
	if c.Management {
		labels[LabelManagement] = ""
	}
	infra := c.Infrastructure
	if infra == "" {
		infra = "VSphereCluster"
	}
	phase := c.Phase
	if phase == "" {
		phase = "Provisioned"
	}
	return map[string]any{
		"apiVersion": Group + "/" + Version, "kind": "Cluster",
		"metadata": map[string]any{"name": c.Name, "namespace": c.Namespace, "uid": uid(c.UID, "Cluster", c.Namespace, c.Name),
			"resourceVersion": rv, "creationTimestamp": created, "labels": labels},
		"spec": map[string]any{
			"controlPlaneRef":   map[string]any{"apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "KubeadmControlPlane", "name": c.Name + "-control-plane", "namespace": c.Namespace},
			"infrastructureRef": map[string]any{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": infra, "name": c.Name, "namespace": c.Namespace},
		},
		"status": map[string]any{"phase": phase, "controlPlaneReady": true, "infrastructureReady": true},
	}
}

func machineObject(m Machine, st State, malform string) map[string]any {
	labels := map[string]any{LabelClusterName: m.Cluster}
	if m.ControlPlane {
		labels[LabelControlPlane] = ""
	}
	version := m.Version
	if version == "" {
		version = st.GitVersion
	}
	phase := m.Phase
	if phase == "" {
		phase = "Running"
	}
	spec := map[string]any{
		"clusterName": m.Cluster, "version": version,
		"bootstrap":         map[string]any{"dataSecretName": m.Name},
		"infrastructureRef": map[string]any{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "VSphereMachine", "name": m.Name, "namespace": m.Namespace},
	}
	if m.ProviderID != "" {
		spec["providerID"] = m.ProviderID
	}
	meta := map[string]any{"name": m.Name, "namespace": m.Namespace, "uid": uid(m.UID, "Machine", m.Namespace, m.Name),
		"resourceVersion": st.ResourceVersion, "creationTimestamp": created, "labels": labels}
	status := map[string]any{"phase": phase, "bootstrapReady": true, "infrastructureReady": m.ProviderID != ""}
	if m.ProviderID != "" {
		status["nodeRef"] = map[string]any{"apiVersion": "v1", "kind": "Node", "name": m.Name}
	}
	obj := map[string]any{"apiVersion": Group + "/" + Version, "kind": "Machine", "metadata": meta, "spec": spec, "status": status}
	switch malform {
	case "providerID":
		spec["providerID"] = 4242
	case "clusterName":
		spec["clusterName"] = []any{m.Cluster}
	case "labels":
		meta["labels"] = "cluster.x-k8s.io/cluster-name=" + m.Cluster
	case "metadata":
		obj["metadata"] = m.Name
	}
	return obj
}

// Fleet is a management cluster state with one TKG management cluster
// ("tkg-mgmt", namespace tkg-system) and one workload cluster per entry of
// workload ("workload-01", ... in namespace default), each with one machine
// per BIOS UUID given (the vSphere BIOS UUIDs, config.uuid, of the VMs the
// demo created in its vCenter): the first machine of each cluster is its
// control plane, the others are workers. token is the bearer token
// accepted.
func Fleet(token string, mgmt []string, workload ...[]string) State {
	st := State{Token: token}
	add := func(ns, cluster string, mgmt bool, uuids []string) {
		st.Clusters = append(st.Clusters, Cluster{Namespace: ns, Name: cluster, Management: mgmt})
		for i, u := range uuids {
			m := Machine{Namespace: ns, Cluster: cluster, ProviderID: "vsphere://" + u, ControlPlane: i == 0}
			if m.ControlPlane {
				m.Name = fmt.Sprintf("%s-control-plane-%d", cluster, i)
			} else {
				m.Name = fmt.Sprintf("%s-md-0-%d", cluster, i)
			}
			st.Machines = append(st.Machines, m)
		}
	}
	add("tkg-system", "tkg-mgmt", true, mgmt)
	for i, uuids := range workload {
		add("default", fmt.Sprintf("workload-%02d", i+1), false, uuids)
	}
	return st
}
