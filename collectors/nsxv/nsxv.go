// Package nsxv is the NSX for vSphere (NSX-V) collector (product kind
// "nsxv").
//
// Every collection it reads from the NSX-V Manager's XML API (HTTP Basic on
// every call; NSX-V has no API session) the logical switches
// (/api/2.0/vdn/virtualwires, paged), the edges (/api/4.0/edges, paged, and
// each edge's vNICs or interfaces and enabled features), the distributed
// firewall configuration (/api/4.0/firewall/globalroot-0/config: layer-3 and
// service-insertion redirect sections), the effective VM members of the
// security groups rules apply to, and the licence capacity usage.
//
// NSX-V names VMs and logical switches by vCenter MoRef and has no call that
// lists the VMs on a logical switch, so the collector also reads the paired
// vCenter (Target.Paired, a read-only session kept between hours, paged
// property-collector retrieves of every host's parent and every VM's name,
// config.instanceUuid, config.template, runtime.powerState, runtime.host and
// networks): a VM is on a logical switch when one of its networks is the
// switch's backing dvportgroup, a rule applied to a host or cluster reaches
// the VMs running there, and a MoRef maps to its instance UUID. Nothing is guessed: a VM the vCenter
// does not know is skipped and counted.
//
// For each VM (not a template) reached by at least one NSX feature it emits,
// per METERING.md, one nsx.vm observation: quantity 1, unit count, Edition
// the highest edition among the features reaching it (editions.go), ObjectKey
// "<paired vCenter instanceUuid>/vm/<VM instanceUuid>", the vCenter
// collector's vm.vram key, from which the report takes the capped billed
// vRAM. For the Enterprise edition the report also counts the VMs
// (non-unique VM count) from these observations.
//
// Wrong credentials (403 or 401) are ErrLogin, not retried. Every call has
// its own deadline (Target.Timeout). TLS to NSX and to the vCenter is
// verified by the system roots or the accepted thumbprints.
//
// Pairing: required; an NSX-V Manager is registered with exactly one vCenter,
// and a vCenter with at most one NSX-V Manager, so Identify returns the
// instance id "nsxv:<vCenter instanceUuid>": a second nsxv product on the
// same vCenter is a duplicate.
package nsxv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// Kind is the product kind this package registers.
const Kind = "nsxv"

func init() {
	collectors.Register(collectors.Kind{
		Name:        Kind,
		DisplayName: "NSX-V",
		PairsWith:   "vcenter",
		Options:     func() any { o, _ := ParseOptions(nil); return o },
		New:         New,
	})
}

// ErrLogin is wrapped by the error returned when NSX-V (or the paired
// vCenter) rejects the user name or password.
var ErrLogin = collectors.ErrBadCredentials // not retried within the hour by the scheduler

// ErrNotPaired is returned by New for a product not paired with a vCenter.
var ErrNotPaired = errors.New("an NSX-V Manager must be paired with its vCenter (--vcenter)")

// Collector collects one NSX-V Manager. Calls are serialised.
type Collector struct {
	t      collectors.Target
	opts   Options
	rc     *rest.Client
	host   string
	vcUUID string
	log    *slog.Logger

	mu sync.Mutex
	vc *vcenter
}

// New builds an nsxv collector for t. It validates the endpoint, the options
// and the pairing, and does not contact NSX-V or the vCenter.
func New(t collectors.Target) (collectors.Collector, error) { return newCollector(t) }

func newCollector(t collectors.Target) (*Collector, error) {
	opts, err := ParseOptions(t.Options)
	if err != nil {
		return nil, err
	}
	c := &Collector{t: t, opts: opts}
	if c.rc, err = rest.NewClient(Kind, &c.t, "/api"); err != nil {
		return nil, err
	}
	c.host = c.rc.Host()
	if t.Paired == nil || t.Paired.InstanceID == "" {
		return nil, fmt.Errorf("nsxv %s: %w", c.host, ErrNotPaired)
	}
	c.vcUUID = t.Paired.InstanceID
	c.rc.Header = http.Header{"Accept": {"application/xml"}}
	c.rc.Limits = limits
	c.rc.ErrorMessage = errorMessage
	c.log = c.t.Logger // collectors.New adds the kind and host
	if c.vc, err = newVCenter(c); err != nil {
		return nil, err
	}
	return c, nil
}

// call runs f under its own deadline of Target.Timeout.
func (c *Collector) call(ctx context.Context, f func(ctx context.Context) error) error {
	return rest.Call(ctx, c.t.Timeout, f)
}

// errorMessage extracts the message of an NSX-V error document, if any.
func errorMessage(body []byte) string {
	var eb errorBody
	if rest.DecodeXML(body, &eb) == nil && eb.Details != "" {
		return fmt.Sprintf("%s (errorCode %d)", eb.Details, eb.Code)
	}
	return ""
}

// get reads path (Basic auth) and decodes the XML answer into v as it
// arrives.
func (c *Collector) get(ctx context.Context, path string, v any) error {
	err := c.rc.DoXML(ctx, http.MethodGet, path, nil, http.Header{"Authorization": {rest.Basic(c.t.Username, c.t.Password.Reveal())}}, v)
	var he *rest.HTTPError
	if errors.As(err, &he) && he.AuthFailed() {
		return fmt.Errorf("as %s: %w (%v)", c.t.Username, ErrLogin, he)
	}
	return err
}

// limits are what one NSX-V answer may cost: a page of at most 1024
// logical switches or edges (under 1 KiB each) or, unpaged, the whole
// distributed firewall configuration (a large one, tens of thousands of
// rules, is tens of MiB); decoded, the XML keeps less than its text.
var limits = rest.Limits{Response: 64 << 20, Object: 1 << 20, Budget: 48 << 20}

// Identify returns "nsxv:<paired vCenter instanceUuid>" (see the package
// comment), the NSX-V version and the manager's host name.
func (c *Collector) Identify(ctx context.Context) (collectors.Identity, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var gi globalInfo
	if err := c.get(ctx, "/api/1.0/appliance-management/global/info", &gi); err != nil {
		return collectors.Identity{}, fmt.Errorf("nsxv %s: global info: %w", c.host, err)
	}
	var ss systemSummary
	if err := c.get(ctx, "/api/1.0/appliance-management/summary/system", &ss); err != nil {
		return collectors.Identity{}, fmt.Errorf("nsxv %s: system summary: %w", c.host, err)
	}
	v := gi.Version
	return collectors.Identity{
		InstanceID: "nsxv:" + c.vcUUID,
		Version:    v.Major + "." + v.Minor + "." + v.Patch,
		Build:      v.Build,
		Name:       ss.HostName,
	}, nil
}

// Close ends the vCenter session (NSX-V holds none).
func (c *Collector) Close(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.vc.logout(ctx)
	return nil
}
