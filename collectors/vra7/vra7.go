// Package vra7 is the Aria Automation 7.x (vRealize Automation 7)
// collector (product kind "vra7").
//
// Every collection it reads, with one bearer token kept between hours, the
// tenant's catalog resources of type virtual machine (GET
// /catalog-service/api/consumer/resources?withExtendedData=true&$filter=
// resourceType/id eq 'Infrastructure.Virtual'), paged to the end with
// page/limit (metadata.totalPages). For each managed vSphere VM it emits,
// per METERING.md, one vm.managed observation: quantity 1, unit count,
// ObjectKey "<vCenter instanceUuid>/moref/<VM MoRef>" (the vCenter identity
// srm and vra8 key on: resourceData endpointExternalReferenceId and
// EXTERNAL_REFERENCE_ID). A machine without both is counted on
// "<vRA host>/machine/<resource id>" with dim vcenter_join "unjoined", and
// named in the collection's summary log; so is one whose vCenter is not
// registered on this appliance (Target.VCenters, read at each collection),
// keyed on its identity all the same. Dims: vm, business_group, tenant,
// power_state, vcenter_uuid, vm_moref, vcenter_join, vra, rules_version.
// The rules (which resources count) are in rules.go.
//
// Login: POST /identity/api/tokens with {"username", "password",
// "tenant"} (Options.Tenant) gives the token (its "id"), sent as
// "Authorization: Bearer <id>". A refused call (401/403: the token expired
// after its 24 hours, or the service restarted) logs in again once and
// retries; a refused login (401, or 400 with error 90135 "Authentication
// failed") is ErrLogin (collectors.ErrBadCredentials) and is not retried.
// Close deletes the token. Every call has its own deadline
// (Target.Timeout); 503 and 429 answers are waited out a few times. TLS is
// verified by the system roots or the accepted thumbprint.
package vra7

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// Kind is the product kind this package registers.
const Kind = "vra7"

func init() {
	collectors.Register(collectors.Kind{
		Name:        Kind,
		DisplayName: "Aria Automation 7",
		Options:     func() any { o, _ := ParseOptions(nil); return o },
		New:         New,
	})
}

// ErrLogin is wrapped by the error returned when vRealize Automation
// rejects the user name or password.
var ErrLogin = collectors.ErrBadCredentials // not retried within the hour by the scheduler

// API paths.
const (
	tokensPath    = "/identity/api/tokens"
	tenantsPath   = "/identity/api/tenants/"
	resourcesPath = "/catalog-service/api/consumer/resources"
	vmFilter      = "resourceType/id eq 'Infrastructure.Virtual'"
)

// maxThrottled is how many 503 (or 429) answers one call waits out.
const maxThrottled = 5

// Collector collects one tenant of a vRealize Automation 7. Calls are
// serialised.
type Collector struct {
	t    collectors.Target
	opts Options
	rc   *rest.Client
	host string
	log  *slog.Logger
	sess rest.Session

	mu    sync.Mutex
	token string // "" when logged out
	last  Summary
}

// limits bound one answer: a page of at most 1,000 machines of a few KB
// each (resource data, links) is well under them.
var limits = rest.Limits{Response: 64 << 20, Object: 1 << 20, Budget: 48 << 20}

// New builds a vra7 collector for t. It validates the endpoint and the
// options, and does not contact vRealize Automation.
func New(t collectors.Target) (collectors.Collector, error) { return newCollector(t) }

func newCollector(t collectors.Target) (*Collector, error) {
	opts, err := ParseOptions(t.Options)
	if err != nil {
		return nil, err
	}
	c := &Collector{t: t, opts: opts}
	if c.rc, err = rest.NewClient(Kind, &c.t, ""); err != nil {
		return nil, err
	}
	c.host = c.rc.Host()
	c.rc.Header = http.Header{"Accept": {"application/json"}}
	c.rc.ErrorMessage = errorMessage
	c.rc.Limits = limits
	c.log = c.t.Logger
	c.rc.ThrottleLogged(maxThrottled, c.log, "vRealize Automation is busy, waiting")
	c.sess = rest.Session{
		Active:   func() bool { return c.token != "" },
		Login:    c.login,
		Forget:   func() { c.token = "" },
		Refused:  func(err error) bool { return rest.StatusIs(err, http.StatusUnauthorized, http.StatusForbidden) },
		Renewing: func() { c.log.Info("vRealize Automation token expired, logging in again") },
	}
	return c, nil
}

// login asks the identity service for a token.
func (c *Collector) login(ctx context.Context) error {
	body, _ := json.Marshal(map[string]string{"username": c.t.Username, "password": c.t.Password.Reveal(), "tenant": c.opts.Tenant})
	b, _, err := c.rc.Do(ctx, http.MethodPost, tokensPath, body, http.Header{"Content-Type": {"application/json"}})
	var he *rest.HTTPError
	switch {
	case errors.As(err, &he) && (he.AuthFailed() || he.Status == http.StatusBadRequest && strings.HasSuffix(he.Msg, "(error "+strconv.Itoa(codeAuthFailed)+")")):
		return fmt.Errorf("logging in as %s to tenant %s: %w (%s)", c.t.Username, c.opts.Tenant, ErrLogin, he.Msg)
	case err != nil:
		return fmt.Errorf("logging in to tenant %s: %w", c.opts.Tenant, err)
	}
	if c.token, err = parseToken(b); err != nil {
		return fmt.Errorf("logging in: %w", err)
	}
	c.log.Debug("logged in", "tenant", c.opts.Tenant)
	return nil
}

// get reads an authenticated path (with its query). A refused token is
// renewed once and the call made again.
func (c *Collector) get(ctx context.Context, path string, v any) error {
	_, err := rest.WithSession(ctx, &c.sess, func() (struct{}, error) {
		return struct{}{}, c.rc.DoJSON(ctx, http.MethodGet, path, nil, http.Header{"Authorization": {"Bearer " + c.token}}, v)
	})
	return err
}

// listMachines pages through the virtual machine resources, calling add for
// each. It stops at the last page (metadata.totalPages) or an empty one; a
// page whose metadata.number is not the one asked for is an error (one
// without a number ends at totalPages all the same).
func (c *Collector) listMachines(ctx context.Context, add func(*resource)) error {
	q := url.Values{"withExtendedData": {"true"}, "$filter": {vmFilter}}
	for n := 1; ; n++ {
		q.Set("page", strconv.Itoa(n))
		q.Set("limit", strconv.Itoa(c.opts.PageSize))
		p := new(page)
		if err := c.get(ctx, resourcesPath+"?"+q.Encode(), p); err != nil {
			return c.rc.PageError(resourcesPath, n, err)
		}
		if err := p.check(); err != nil {
			return c.rc.PageError(resourcesPath, n, err)
		}
		if p.Metadata.Number != 0 && p.Metadata.Number != n && len(p.Content) > 0 {
			// A server or proxy that ignores page would page forever.
			return c.rc.PageError(resourcesPath, n, fmt.Errorf("the answer is page %d, asked for %d", p.Metadata.Number, n))
		}
		for i := range p.Content {
			add(&p.Content[i])
		}
		if len(p.Content) == 0 || n >= p.Metadata.TotalPages {
			return nil
		}
	}
}

// Identify logs in and reads the tenant (GET /identity/api/tenants/{id}).
// vRealize Automation does not say an instance id there: the identity is
// the host name and tenant.
func (c *Collector) Identify(ctx context.Context) (collectors.Identity, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.rc.EnsureSession(ctx, &c.sess); err != nil {
		return collectors.Identity{}, err
	}
	var tn struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if err := c.get(ctx, tenantsPath+url.PathEscape(c.opts.Tenant), &tn); err != nil {
		return collectors.Identity{}, fmt.Errorf("vra7 %s: tenant %s: %w", c.host, c.opts.Tenant, err)
	}
	return collectors.Identity{Name: c.host + "/" + tn.ID}, nil
}

// Close deletes the token.
func (c *Collector) Close(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == "" {
		return nil
	}
	tok := c.token
	c.token = ""
	return c.rc.Logout(ctx, http.MethodDelete, tokensPath+"/"+url.PathEscape(tok), http.Header{"Authorization": {"Bearer " + tok}})
}
