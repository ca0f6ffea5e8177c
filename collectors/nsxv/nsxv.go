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
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/internal/rest"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// Kind is the product kind this package registers.
const Kind = "nsxv"

func init() { collectors.Register(Kind, New) }

// ErrLogin is wrapped by the error returned when NSX-V (or the paired
// vCenter) rejects the user name or password.
var ErrLogin = errors.New("incorrect user name or password")

// ErrNotPaired is returned by New for a product not paired with a vCenter.
var ErrNotPaired = errors.New("an NSX-V Manager must be paired with its vCenter (--vcenter)")

const maxBody = 128 << 20

// Collector collects one NSX-V Manager. Calls are serialised.
type Collector struct {
	t      collectors.Target
	opts   Options
	base   *url.URL
	host   string
	vcUUID string
	log    *slog.Logger
	client *http.Client

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
	e := strings.TrimSpace(t.Endpoint)
	if !strings.Contains(e, "://") {
		e = "https://" + e
	}
	u, err := url.Parse(e)
	if err != nil || u.Hostname() == "" {
		return nil, fmt.Errorf("nsxv endpoint %q: not a URL or host name", t.Endpoint)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("nsxv endpoint %q: scheme must be https", t.Endpoint)
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/api")
	if t.Username == "" {
		return nil, fmt.Errorf("nsxv %s: a user name is required", u.Hostname())
	}
	if t.Paired == nil || t.Paired.InstanceID == "" {
		return nil, fmt.Errorf("nsxv %s: %w", u.Hostname(), ErrNotPaired)
	}
	if t.Logger == nil {
		t.Logger = slog.New(slog.DiscardHandler)
	}
	if t.Timeout <= 0 {
		t.Timeout = 60 * time.Second
	}
	tr := &http.Transport{
		TLSClientConfig:     tlsutil.Config(u.Hostname(), t.Thumbprint, nil),
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}
	c := &Collector{
		t: t, opts: opts, base: u, host: u.Hostname(), vcUUID: t.Paired.InstanceID,
		log:    t.Logger.With("collector", Kind, "nsx", u.Hostname()),
		client: &http.Client{Transport: tr},
	}
	if c.vc, err = newVCenter(c); err != nil {
		return nil, err
	}
	return c, nil
}

// call runs f under its own deadline of Target.Timeout.
func (c *Collector) call(ctx context.Context, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.t.Timeout)
	defer cancel()
	err := f(ctx)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		if !errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		}
		err = fmt.Errorf("%w (no answer within the %s deadline)", err, c.t.Timeout)
	}
	return err
}

// httpError is a non-2xx answer.
type httpError struct {
	Status int
	Msg    string
}

func (e *httpError) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, http.StatusText(e.Status), e.Msg)
}

// get reads path (Basic auth) and decodes the XML answer into v.
func (c *Collector) get(ctx context.Context, path string, v any) error {
	var body []byte
	err := c.call(ctx, func(ctx context.Context) error {
		u := *c.base
		p, q, _ := strings.Cut(path, "?")
		u.Path += p
		u.RawQuery = q
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return err
		}
		req.SetBasicAuth(c.t.Username, c.t.Password.Reveal())
		req.Header.Set("Accept", "application/xml")
		req.Header.Set("User-Agent", "usagemeter")
		resp, err := c.client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody))
		if err != nil {
			return fmt.Errorf("reading the answer: %w", err)
		}
		if resp.StatusCode/100 != 2 {
			msg := ""
			var eb errorBody
			if rest.DecodeXML(body, &eb) == nil && eb.Details != "" {
				msg = fmt.Sprintf("%s (errorCode %d)", eb.Details, eb.Code)
			}
			he := &httpError{Status: resp.StatusCode, Msg: msg}
			if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
				return fmt.Errorf("as %s: %w (%v)", c.t.Username, ErrLogin, he)
			}
			return he
		}
		return nil
	})
	if err != nil {
		return err
	}
	return rest.DecodeXML(body, v)
}

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
