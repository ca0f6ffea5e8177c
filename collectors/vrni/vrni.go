// Package vrni is the Aria Operations for Networks (vRealize Network
// Insight, vRNI) collector (product kind "vrni").
//
// Every collection it reads, over one token kept between hours (POST
// /api/ni/auth/token with the user name, password and domain, LOCAL or
// LDAP; the token sent as "Authorization: NetworkInsight <token>", created
// again when its expiry has passed or when the API refuses it):
//
//   - the licences (/settings/licensing): the edition is the highest of
//     Advanced and Enterprise among the licences in force;
//   - the vCenter data sources (/entities/vcenter-managers, then
//     POST /entities/fetch): each one's fqdn and IP address;
//   - the VMs (/entities/vms, cursor paging with size), each page's
//     entities fetched in one POST /entities/fetch (at most 1,000, the
//     API's limit): each VM's MoRef (vendor_id) and vCenter
//     (vcenter_manager).
//
// The API does not say a vCenter's instance UUID: a VM's vCenter is the
// paired vCenter when the data source's fqdn or IP is the address the
// paired vCenter was added with, else the UUID option vcenter_uuids gives
// for that fqdn or IP; a VM of any other vCenter is metered on a key made
// of its vCenter's fqdn, which joins nothing, and named in the collection
// summary as unjoined.
//
// For each monitored VM it emits, as the vrops collector does
// (collectors/internal/aria), one vm.monitored observation: quantity 1,
// unit count, ObjectKey "<vCenter instance UUID>/moref/<MoRef>", edition
// the licence edition with the billing mode (option "mode",
// collectors.AriaEdition), so the report bills each hour on its mode's
// rule: Flex add-on, the joined capped billed vRAM; standalone, the
// non-unique VM count. Dims: vm, vm_moref, vcenter_uuid, vcenter (the
// paired vCenter's host, on its VMs), vrni, mode, rules_version.
//
// An Aria Operations for Networks product must be paired with a vCenter
// (Target.Paired with its instance UUID and address): New refuses it
// otherwise. A 401 (or 403) on a call made with a kept token logs in again
// once and retries the call; a refused login is ErrLogin
// (collectors.ErrBadCredentials) and is not retried. Every call has its own
// deadline (Target.Timeout); 503 answers are waited out a few times. TLS is
// verified by the system roots or the accepted thumbprint. Close deletes
// the token.
package vrni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/internal/aria"
	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// Kind is the product kind this package registers.
const Kind = "vrni"

func init() {
	collectors.Register(collectors.Kind{
		Name:        Kind,
		DisplayName: "Aria Operations for Networks",
		PairsWith:   "vcenter",
		Options:     func() any { o, _ := ParseOptions(nil); return o },
		New:         New,
	})
}

// ErrLogin is wrapped by the error returned when the product rejects the
// user name or password.
var ErrLogin = collectors.ErrBadCredentials // not retried within the hour by the scheduler

// ErrNotPaired is returned by New for a product not paired with a vCenter.
var ErrNotPaired = errors.New("an Aria Operations for Networks instance must be paired with a vCenter (--vcenter)")

// apiPath is the API's path below the endpoint.
const apiPath = "/api/ni"

// Collector collects one Aria Operations for Networks instance. Calls are
// serialised.
type Collector struct {
	*aria.Conn
	t      collectors.Target
	opts   Options
	vcHost string // the address the paired vCenter was added with (normalAddr), to match data sources

	mu      sync.Mutex
	lastVMs int
}

// limits bound one answer: a fetch of 1,000 VM entities of a few KB each.
var limits = rest.Limits{Response: 32 << 20, Object: 1 << 20, Budget: 32 << 20}

// New builds a vrni collector for t. It validates the endpoint, the
// options and the pairing, and does not contact the product.
func New(t collectors.Target) (collectors.Collector, error) { return newCollector(t) }

func newCollector(t collectors.Target) (*Collector, error) {
	opts, err := ParseOptions(t.Options)
	if err != nil {
		return nil, err
	}
	c := &Collector{t: t, opts: opts}
	c.Conn, err = aria.Connect(&c.t, aria.Config{Kind: Kind, Product: "Aria Operations for Networks", APIPath: apiPath, Scheme: "NetworkInsight",
		Limits: limits, ErrorMessage: errorMessage, NotPaired: ErrNotPaired}, c.login)
	if err != nil {
		return nil, err
	}
	c.vcHost = normalAddr(c.VCenterName)
	return c, nil
}

func errorMessage(b []byte) string {
	var e errorBody
	if rest.DecodeJSON(b, &e) == nil && e.Message != "" {
		return e.Message
	}
	return rest.Snippet(b)
}

// login creates a token.
func (c *Collector) login(ctx context.Context) error {
	domain := map[string]string{"domain_type": "LOCAL", "value": "local"}
	if c.opts.Domain != "" {
		domain = map[string]string{"domain_type": "LDAP", "value": c.opts.Domain}
	}
	body, _ := json.Marshal(map[string]any{"username": c.t.Username, "password": c.t.Password.Reveal(), "domain": domain})
	return c.Login(ctx, "/auth/token", body, c.t.Username, ErrLogin, func(b []byte) (string, int64, error) {
		tk, err := parseToken(b)
		return tk.Token, tk.Expiry, err
	})
}

// Identify returns the API version (the API names no instance id).
func (c *Collector) Identify(ctx context.Context) (collectors.Identity, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.EnsureSession(ctx); err != nil {
		return collectors.Identity{}, err
	}
	var v struct {
		APIVersion string `json:"api_version"`
	}
	if err := c.Call(ctx, http.MethodGet, "/info/version", nil, &v); err != nil {
		return collectors.Identity{}, fmt.Errorf("vrni %s: /info/version: %w", c.Host, err)
	}
	return collectors.Identity{Version: "API " + v.APIVersion, Name: c.Host}, nil
}

// Close deletes the token.
func (c *Collector) Close(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Logout(ctx, http.MethodDelete, "/auth/token")
}
