// Package vra8 is the Aria Automation 8.x (vRealize Automation 8) collector
// (product kind "vra8").
//
// Every collection it reads, with one bearer token kept between hours, two
// IaaS lists paged to the end with $top/$skip (apiVersion on every call):
//
//   - the cloud accounts (GET /iaas/api/cloud-accounts): each one's id,
//     name, cloudAccountType (vsphere, aws, azure, gcp, vmc, ...) and, for
//     vSphere, its vCenter's instance UUID (customProperties.vcUuid);
//   - the machines (GET /iaas/api/machines): id, name, externalId,
//     externalRegionId, powerState, cloudAccountIds, customProperties.
//
// For each managed machine it emits, per METERING.md, one vm.managed
// observation: quantity 1, unit count, Edition the machine's cloud as the
// report names it (vSphere, AWS, Azure, GCP, or the cloud account type of
// any other cloud, e.g. vmc), so that the monthly report's non-unique VM
// count has one line per cloud. ObjectKey:
//
//   - a vSphere machine: "<vCenter instanceUuid>/moref/<VM MoRef>", the
//     vCenter identity srm and the other collectors join on: the vCenter
//     from the machine's customProperties.vcUuid (else its vSphere cloud
//     account's), the MoRef from customProperties.__moref
//     ("VirtualMachine:vm-42"). A vSphere machine without both is counted
//     on "<Aria Automation host>/machine/<machine id>" with dim
//     vcenter_join "unjoined", and named in the collection's summary log;
//     so is one whose vCenter is not registered on this appliance
//     (Target.VCenters, read at each collection), keyed on its identity
//     all the same;
//   - a public cloud machine: "<cloud type>/<externalId>" (its id in that
//     cloud: the same instance seen through two cloud accounts counts
//     once); without an externalId, "<host>/machine/<machine id>".
//
// Dims: vm, cloud (the cloud account type), cloud_account, region,
// power_state, vcenter (a vSphere machine's vCenter host name, its cloud
// account's hostName: the vcenter collector's dim, which customer rules
// bound to a vCenter match), vcenter_uuid, vm_moref, vm_instance_uuid (a vSphere
// machine's externalId, the VM's instance UUID: with vcenter_uuid, the
// vCenter collector's "<vCenter>/vm/<instanceUuid>" key, for a later join),
// vcenter_join, vra, rules_version.
// The rules (every listed machine counts whatever its power state; a
// machine listed twice counts once; a cloud account of an unknown type is
// counted under its type name and named in the summary log) are in
// rules.go.
//
// Login (two steps, the reference's on-premises flow): POST
// /csp/gateway/am/api/login?access_token with the user name and password
// (and Options.Domain) gives a refresh token; POST /iaas/api/login with it
// gives the bearer token. When a call is refused (401/403, the token
// expired after its 8 hours or the service restarted) the collector
// exchanges the refresh token it holds again, and logs in from the start
// only when that is refused too. A refused password (401, 403, or 400:
// the login body is always well formed) is ErrLogin
// (collectors.ErrBadCredentials) and is not retried. Every call has its own
// deadline (Target.Timeout); 503 and 429 answers are waited out a few
// times. TLS is verified by the system roots or the accepted thumbprint.
package vra8

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// Kind is the product kind this package registers.
const Kind = "vra8"

func init() {
	collectors.Register(collectors.Kind{
		Name:        Kind,
		DisplayName: "Aria Automation",
		Options:     func() any { o, _ := ParseOptions(nil); return o },
		New:         New,
	})
}

// ErrLogin is wrapped by the error returned when Aria Automation rejects
// the user name or password.
var ErrLogin = collectors.ErrBadCredentials // not retried within the hour by the scheduler

// API paths.
const (
	cspLoginPath      = "/csp/gateway/am/api/login?access_token"
	iaasLoginPath     = "/iaas/api/login"
	machinesPath      = "/iaas/api/machines"
	cloudAccountsPath = "/iaas/api/cloud-accounts"
	aboutPath         = "/iaas/api/about"
)

// maxThrottled is how many 503 (or 429) answers one call waits out.
const maxThrottled = 5

// Collector collects one Aria Automation 8 instance. Calls are serialised.
type Collector struct {
	t    collectors.Target
	opts Options
	rc   *rest.Client
	host string
	log  *slog.Logger
	sess rest.Session

	mu      sync.Mutex
	refresh string // refresh token, "" when none
	token   string // bearer token, "" when logged out
	last    Summary
}

// limits bound one answer: a page of at most 1,000 machines of a few KB
// each (custom properties, links) is well under them.
var limits = rest.Limits{Response: 64 << 20, Object: 1 << 20, Budget: 48 << 20}

// New builds a vra8 collector for t. It validates the endpoint and the
// options, and does not contact Aria Automation.
func New(t collectors.Target) (collectors.Collector, error) { return newCollector(t) }

func newCollector(t collectors.Target) (*Collector, error) {
	opts, err := ParseOptions(t.Options)
	if err != nil {
		return nil, err
	}
	c := &Collector{t: t, opts: opts}
	if c.rc, err = rest.NewClient(Kind, &c.t, "/iaas/api"); err != nil {
		return nil, err
	}
	c.host = c.rc.Host()
	c.rc.Header = http.Header{"Accept": {"application/json"}}
	c.rc.ErrorMessage = errorMessage
	c.rc.Limits = limits
	c.log = c.t.Logger
	c.rc.ThrottleLogged(maxThrottled, c.log, "Aria Automation is busy, waiting")
	c.sess = rest.Session{
		Active:   func() bool { return c.token != "" },
		Login:    c.login,
		Forget:   func() { c.token = "" },
		Refused:  func(err error) bool { return rest.StatusIs(err, http.StatusUnauthorized, http.StatusForbidden) },
		Renewing: func() { c.log.Info("Aria Automation token expired, logging in again") },
	}
	return c, nil
}

var jsonHeader = http.Header{"Content-Type": {"application/json"}}

// login gets a bearer token: from the refresh token held, else from a new
// one (the CSP login with the password).
func (c *Collector) login(ctx context.Context) error {
	if c.refresh != "" {
		err := c.exchange(ctx)
		if err == nil {
			return nil
		}
		if !rest.StatusIs(err, http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden) {
			return fmt.Errorf("logging in: %w", err)
		}
		c.log.Debug("refresh token refused, logging in with the password")
		c.refresh = ""
	}
	body, _ := json.Marshal(struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Domain   string `json:"domain,omitempty"`
	}{c.t.Username, c.t.Password.Reveal(), c.opts.Domain})
	b, _, err := c.rc.Do(ctx, http.MethodPost, cspLoginPath, body, jsonHeader)
	var he *rest.HTTPError
	switch {
	case errors.As(err, &he) && (he.AuthFailed() || he.Status == http.StatusBadRequest):
		// The body is always well formed: a 400 refuses the credentials
		// too (as some releases answer them), and must not be retried.
		return fmt.Errorf("logging in as %s: %w (%s)", c.t.Username, ErrLogin, he.Msg)
	case err != nil:
		return fmt.Errorf("logging in: %w", err)
	}
	if c.refresh, err = parseRefreshToken(b); err != nil {
		return fmt.Errorf("logging in: %w", err)
	}
	if err := c.exchange(ctx); err != nil {
		c.refresh = ""
		return fmt.Errorf("logging in: exchanging the refresh token: %w", err)
	}
	c.log.Debug("logged in")
	return nil
}

// exchange trades the refresh token held for a bearer token.
func (c *Collector) exchange(ctx context.Context) error {
	body, _ := json.Marshal(map[string]string{"refreshToken": c.refresh})
	b, _, err := c.rc.Do(ctx, http.MethodPost, iaasLoginPath+"?apiVersion="+url.QueryEscape(c.opts.APIVersion), body, jsonHeader)
	if err != nil {
		return err
	}
	tok, err := parseAuth(b)
	if err != nil {
		return err
	}
	c.token = tok
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

// listAll pages through an IaaS list with $top/$skip, calling add for every
// item; id names an item (to notice a server that ignores $skip). It stops
// at an empty page, or when totalElements are read. A short page is not the
// end: a server may cap $top below what was asked (and totalElements may be
// missing), so without a total it costs one more call to see the end.
func listAll[T any](ctx context.Context, c *Collector, path string, id func(*T) string, add func(*T)) error {
	skip, top := 0, c.opts.PageSize
	var prev []string
	for n := 1; ; n++ {
		p := new(page[T])
		q := fmt.Sprintf("%s?apiVersion=%s&$top=%d&$skip=%d", path, url.QueryEscape(c.opts.APIVersion), top, skip)
		if err := c.get(ctx, q, p); err != nil {
			return c.rc.PageError(path, n, err)
		}
		if err := p.check(); err != nil {
			return c.rc.PageError(path, n, err)
		}
		ids := make([]string, len(p.Content))
		for i := range p.Content {
			ids[i] = id(&p.Content[i])
		}
		if n > 1 && len(ids) > 0 && slices.Equal(ids, prev) {
			// A server or proxy that ignores $skip would page forever.
			return c.rc.PageError(path, n, fmt.Errorf("the answer repeats page %d ($skip=%d ignored?)", n-1, skip))
		}
		prev = ids
		for i := range p.Content {
			add(&p.Content[i])
		}
		skip += len(p.Content)
		if len(p.Content) == 0 || (p.TotalElements != nil && skip >= *p.TotalElements) {
			return nil
		}
	}
}

// Identify logs in and reads the IaaS API's latest version (GET
// /iaas/api/about). Aria Automation does not say an instance id there: the
// identity is the host name.
func (c *Collector) Identify(ctx context.Context) (collectors.Identity, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.rc.EnsureSession(ctx, &c.sess); err != nil {
		return collectors.Identity{}, err
	}
	var about struct {
		Latest string `json:"latestApiVersion"`
	}
	if err := c.get(ctx, aboutPath, &about); err != nil {
		return collectors.Identity{}, fmt.Errorf("vra8 %s: %s: %w", c.host, aboutPath, err)
	}
	return collectors.Identity{Name: c.host, Version: about.Latest}, nil
}
