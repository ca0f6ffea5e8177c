// Package vrops is the Aria Operations (vRealize Operations, vROps) collector
// (product kind "vrops").
//
// Every collection it reads, over one token kept between hours (POST
// /suite-api/api/auth/token/acquire with the user name, password and
// authentication source; the token sent as "Authorization: OpsToken
// <token>", acquired again when its validity has passed or when the suite
// API refuses it):
//
//   - the solution licences (/deployment/licenses): the edition is the
//     highest of Standard, Advanced and Enterprise among the licences that
//     have not expired (METERING.md: highest wins);
//   - the VirtualMachine resources of the vSphere adapter
//     (/resources?resourceKind=VirtualMachine&adapterKind=VMWARE), paged to
//     the end with page/pageSize. Each VM's vCenter (VMEntityVCID, the
//     vCenter's instance UUID) and MoRef (VMEntityObjectID) are in its
//     resourceKey.resourceIdentifiers.
//
// For each VM under monitoring it emits, per METERING.md, one vm.monitored
// observation: quantity 1, unit count, ObjectKey "<vCenter instance
// UUID>/moref/<MoRef>" (as the srm collector keys its VMs), which the
// report joins hour by hour to the vCenter's vm.vram of the same VM. The
// edition is the licence edition with the billing mode (option "mode",
// collectors.AriaEdition: "Advanced (Flex add-on)"), so the report bills
// each hour on the rule of its mode: add-on, the capped billed vRAM of the
// joined VMs (report.JoinedVRAM); standalone, the non-unique VM count. Dims:
// vm, vm_moref, vcenter_uuid, vcenter (the paired vCenter's host, for its
// VMs), vrops, mode, rules_version.
//
// A VM of a vCenter other than the paired one is metered on its own key all
// the same: it joins if that vCenter is registered too, and bills no vRAM
// in add-on mode otherwise. The collection names those vCenters in its log
// summary ("unjoined"). Rules (rules.go, the *assumed* parts in one place):
// a VM counts whatever its power state, except a resource that vROps keeps
// after the VM left its vCenter (resourceState NOT_EXISTING or REMOVING);
// a VM listed twice counts once; a resource without a MoRef or vCenter is
// skipped and counted in the log, never guessed.
//
// An Aria Operations product must be paired with a vCenter (Target.Paired
// with its instance UUID): New refuses it otherwise.
//
// A 401 (or 403) on a call made with a kept token acquires a new one once
// and retries that call; a refused login is ErrLogin
// (collectors.ErrBadCredentials) and is not retried. Every call has its own
// deadline (Target.Timeout); 503 answers are waited out a few times. TLS is
// verified by the system roots or the accepted thumbprint. Close releases
// the token.
package vrops

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
const Kind = "vrops"

func init() {
	collectors.Register(collectors.Kind{
		Name:        Kind,
		DisplayName: "Aria Operations",
		PairsWith:   "vcenter",
		Options:     func() any { o, _ := ParseOptions(nil); return o },
		New:         New,
	})
}

// ErrLogin is wrapped by the error returned when Aria Operations rejects
// the user name or password.
var ErrLogin = collectors.ErrBadCredentials // not retried within the hour by the scheduler

// ErrNotPaired is returned by New for a product not paired with a vCenter.
var ErrNotPaired = errors.New("an Aria Operations instance must be paired with a vCenter (--vcenter)")

// apiPath is the suite API's path below the endpoint.
const apiPath = "/suite-api/api"

// Collector collects one Aria Operations instance. Calls are serialised.
type Collector struct {
	*aria.Conn
	t    collectors.Target
	opts Options

	mu      sync.Mutex
	lastVMs int
}

// limits bound one answer: a page of at most 5,000 resources of about 2 KB
// each is 10 MB.
var limits = rest.Limits{Response: 24 << 20, Object: 1 << 20, Budget: 24 << 20}

// New builds a vrops collector for t. It validates the endpoint, the
// options and the pairing, and does not contact Aria Operations.
func New(t collectors.Target) (collectors.Collector, error) { return newCollector(t) }

func newCollector(t collectors.Target) (*Collector, error) {
	opts, err := ParseOptions(t.Options)
	if err != nil {
		return nil, err
	}
	c := &Collector{t: t, opts: opts}
	c.Conn, err = aria.Connect(&c.t, aria.Config{Kind: Kind, Product: "Aria Operations", APIPath: apiPath, Scheme: "OpsToken",
		Limits: limits, ErrorMessage: errorMessage, NotPaired: ErrNotPaired}, c.login)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func errorMessage(b []byte) string {
	var e errorBody
	if rest.DecodeJSON(b, &e) == nil && e.Message != "" {
		return e.Message
	}
	return rest.Snippet(b)
}

// login acquires a token.
func (c *Collector) login(ctx context.Context) error {
	body, _ := json.Marshal(map[string]string{"username": c.t.Username, "password": c.t.Password.Reveal(), "authSource": c.opts.AuthSource})
	return c.Login(ctx, "/auth/token/acquire", body, c.t.Username, ErrLogin, func(b []byte) (string, int64, error) {
		tk, err := parseToken(b)
		return tk.Token, tk.Validity, err
	})
}

// get reads an authenticated path below the API, decoding the answer into
// v as it arrives.
func (c *Collector) get(ctx context.Context, path string, v any) error {
	return c.Call(ctx, http.MethodGet, path, nil, v)
}

// Identify returns the release and build of the instance (the suite API
// names no instance id: InstanceID stays "").
func (c *Collector) Identify(ctx context.Context) (collectors.Identity, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.EnsureSession(ctx); err != nil {
		return collectors.Identity{}, err
	}
	var v version
	if err := c.get(ctx, "/versions/current", &v); err != nil {
		return collectors.Identity{}, fmt.Errorf("vrops %s: /versions/current: %w", c.Host, err)
	}
	return collectors.Identity{Version: v.ReleaseName, Build: v.BuildNumber, Name: c.Host}, nil
}

// Close releases the token.
func (c *Collector) Close(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Logout(ctx, http.MethodPost, "/auth/token/release")
}
