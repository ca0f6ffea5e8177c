// Package srm is the Site Recovery Manager collector (product kind "srm").
//
// Every collection it reads, over one session kept between hours (POST
// /api/rest/srm/v1/session with HTTP Basic, the session id sent as the
// x-dr-session header), each list paged to the end with offset/limit:
//
//   - the pairings (/pairings), keeping those whose local vCenter is the
//     paired vCenter (local_vc_server.id is its instance UUID);
//   - each such pairing's protection groups
//     (/pairings/{id}/protection-management/groups), keeping those whose
//     protected_vc_guid is the paired vCenter: a group protecting the remote
//     site's VMs is metered by that site's SRM;
//   - each kept group's VMs (.../groups/{group_id}/vms).
//
// For each protected VM it emits, per METERING.md, one vm.protected
// observation: quantity 1, unit count, ObjectKey
// "<paired vCenter instanceUuid>/moref/<VM MoRef>", the vCenter identity
// METERING.md asks SRM records to join on. The reference's
// ProtectionGroupVmInfo carries the VM's id (its MoRef) and no instance
// UUID, so the "<vCenter>/vm/<instanceUuid>" key of the vCenter and NSX
// collectors cannot be built without a second source; it is not guessed.
// Dims: vm, protection_group, replication_type (ABR, HBR, VVOL, VSAN: the
// group's), srm, vm_moref, rules_version.
//
// Rules (rules.go, the *assumed* parts in one place): a powered-off
// protected VM counts (SRM does not say a protected VM's power state, and
// protection is billed, not running); a VM listed in two groups, or twice
// across pages, counts once; a VM whose status is MISSING_UNPROTECTED_VM
// (deleted from the inventory while in a group) and a record without an id
// are skipped and counted in the log, never guessed. A pairing or group
// removed between the list that named it and its own list (404) is skipped:
// it protects nothing any more.
//
// An SRM product must be paired with its vCenter (Target.Paired with the
// vCenter's instance UUID): New refuses it otherwise.
//
// A 401 (or 403) on a call made with a kept session logs in again once and
// retries that call; a refused login is ErrLogin (collectors.ErrBadCredentials)
// and is not retried. Every call has its own deadline (Target.Timeout); 503
// answers are waited out a few times. TLS is verified by the system roots or
// the accepted thumbprint.
package srm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// Kind is the product kind this package registers.
const Kind = "srm"

func init() {
	collectors.Register(collectors.Kind{
		Name:        Kind,
		DisplayName: "Site Recovery Manager",
		PairsWith:   "vcenter",
		Options:     func() any { o, _ := ParseOptions(nil); return o },
		New:         New,
	})
}

// ErrLogin is wrapped by the error returned when SRM rejects the user name
// or password.
var ErrLogin = collectors.ErrBadCredentials // not retried within the hour by the scheduler

// ErrNotPaired is returned by New for a product not paired with a vCenter.
var ErrNotPaired = errors.New("an SRM server must be paired with its vCenter (--vcenter)")

// basePath is the API path below the endpoint; the version follows it.
const basePath = "/api/rest/srm/"

// maxThrottled is how many 503 (or 429) answers one call waits out.
const maxThrottled = 5

// Collector collects one SRM server. Calls are serialised.
type Collector struct {
	t      collectors.Target
	opts   Options
	rc     *rest.Client
	host   string
	vcUUID string
	api    string // basePath + version
	log    *slog.Logger
	sess   rest.Session

	mu      sync.Mutex
	session string // x-dr-session, "" when logged out
	lastVMs int
}

// limits bound one answer: a page of at most 1,000 VMs of a few hundred
// bytes each is well under them.
var limits = rest.Limits{Response: 32 << 20, Object: 1 << 20, Budget: 24 << 20}

// New builds an srm collector for t. It validates the endpoint, the options
// and the pairing, and does not contact SRM.
func New(t collectors.Target) (collectors.Collector, error) { return newCollector(t) }

func newCollector(t collectors.Target) (*Collector, error) {
	opts, err := ParseOptions(t.Options)
	if err != nil {
		return nil, err
	}
	c := &Collector{t: t, opts: opts, api: basePath + opts.APIVersion}
	if c.rc, err = rest.NewClient(Kind, &c.t, c.api); err != nil {
		return nil, err
	}
	c.host = c.rc.Host()
	if t.Paired == nil || t.Paired.InstanceID == "" {
		return nil, fmt.Errorf("srm %s: %w", c.host, ErrNotPaired)
	}
	c.vcUUID = t.Paired.InstanceID
	c.rc.Header = http.Header{"Accept": {"application/json"}}
	c.rc.ErrorMessage = errorMessage
	c.rc.Limits = limits
	c.log = c.t.Logger // collectors.New adds the kind and host
	c.rc.ThrottleLogged(maxThrottled, c.log, "SRM is busy, waiting")
	c.sess = rest.Session{
		Active:   func() bool { return c.session != "" },
		Login:    c.login,
		Forget:   func() { c.session = "" },
		Refused:  func(err error) bool { return rest.StatusIs(err, http.StatusUnauthorized, http.StatusForbidden) },
		Renewing: func() { c.log.Info("SRM session expired, logging in again") },
	}
	return c, nil
}

func errorMessage(b []byte) string {
	var e errorBody
	if rest.DecodeJSON(b, &e) == nil && e.Message != "" {
		if e.ErrorCode != "" {
			return fmt.Sprintf("%s (%s)", e.Message, e.ErrorCode)
		}
		return e.Message
	}
	return rest.Snippet(b)
}

// login opens a session: POST /session with Basic.
func (c *Collector) login(ctx context.Context) error {
	hdr := http.Header{"Authorization": {rest.Basic(c.t.Username, c.t.Password.Reveal())}}
	body, _, err := c.rc.Do(ctx, http.MethodPost, c.api+"/session", nil, hdr)
	var he *rest.HTTPError
	switch {
	case errors.As(err, &he) && he.AuthFailed():
		return fmt.Errorf("logging in as %s: %w (%s)", c.t.Username, ErrLogin, he.Msg)
	case errors.As(err, &he) && he.Status == http.StatusNotFound:
		return c.versionError(ctx, err)
	case err != nil:
		return fmt.Errorf("logging in: %w", err)
	}
	id, err := parseSession(body)
	if err != nil {
		return fmt.Errorf("logging in: %w", err)
	}
	c.session = id
	c.log.Debug("session created")
	return nil
}

// versionError says that the configured API version is not offered, and
// which of the known versions are (a GET /session without a session is 401
// where a version exists, 404 where it does not).
func (c *Collector) versionError(ctx context.Context, err error) error {
	var offered []string
	for _, v := range APIVersions {
		if v == c.opts.APIVersion {
			continue
		}
		_, _, perr := c.rc.Do(ctx, http.MethodGet, basePath+v+"/session", nil, nil)
		if perr == nil || rest.StatusIs(perr, http.StatusUnauthorized, http.StatusForbidden) {
			offered = append(offered, v)
		}
	}
	have := "none of " + strings.Join(APIVersions, ", ")
	if len(offered) > 0 {
		have = strings.Join(offered, ", ")
	}
	return fmt.Errorf("logging in: the SRM REST API %s is not offered at %s (%w); versions offered: %s (option api_version)",
		c.opts.APIVersion, c.api, err, have)
}

// get reads an authenticated path below the API base. With a kept session,
// a 401/403 logs in again once and retries.
// The answer is decoded into v as it arrives, within the client's Limits.
func (c *Collector) get(ctx context.Context, path string, v any) error {
	_, err := rest.WithSession(ctx, &c.sess, func() (struct{}, error) {
		return struct{}{}, c.rc.DoJSON(ctx, http.MethodGet, c.api+path, nil, http.Header{"x-dr-session": {c.session}}, v)
	})
	return err
}

// listAll pages through an SRM list with offset/limit, calling add for
// every item. It stops at the last page: no next link, or offset past the
// total.
func listAll[T any](ctx context.Context, c *Collector, path string, add func(*T)) error {
	offset := 0
	for page := 1; ; page++ {
		p := new(listPage[T])
		if err := c.get(ctx, fmt.Sprintf("%s?offset=%d&limit=%d", path, offset, c.opts.PageSize), p); err != nil {
			return c.rc.PageError(path, page, err)
		}
		if err := p.check(); err != nil {
			return c.rc.PageError(path, page, err)
		}
		if p.Meta.Offset != offset && (p.Meta.Offset != 0 || p.Meta.Total != 0) {
			// A server that ignores offset would page forever.
			return c.rc.PageError(path, page, fmt.Errorf("the answer is for offset %d, asked for %d", p.Meta.Offset, offset))
		}
		for i := range p.List {
			add(&p.List[i])
		}
		offset += len(p.List)
		if len(p.List) == 0 || p.Meta.Links.Next == nil || (p.Meta.Total > 0 && offset >= p.Meta.Total) {
			return nil
		}
	}
}

// Identify returns the local SRM server's id and name, from its first
// pairing (an SRM server that is not paired yet does not say its id).
func (c *Collector) Identify(ctx context.Context) (collectors.Identity, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.rc.EnsureSession(ctx, &c.sess); err != nil {
		return collectors.Identity{}, err
	}
	p := new(listPage[pairing])
	if err := c.get(ctx, "/pairings?offset=0&limit=1", p); err != nil {
		return collectors.Identity{}, fmt.Errorf("srm %s: /pairings: %w", c.host, err)
	}
	if err := p.check(); err != nil {
		return collectors.Identity{}, fmt.Errorf("srm %s: /pairings: %w", c.host, err)
	}
	if len(p.List) == 0 {
		return collectors.Identity{Name: c.host}, nil
	}
	return collectors.Identity{InstanceID: p.List[0].LocalSRM.ID, Name: p.List[0].LocalSRM.Name}, nil
}

// Close ends the session.
func (c *Collector) Close(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.session == "" {
		return nil
	}
	hdr := http.Header{"x-dr-session": {c.session}}
	c.session = ""
	return c.rc.Logout(ctx, http.MethodDelete, c.api+"/session", hdr)
}
