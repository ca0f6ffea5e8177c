// Package nsxt is the NSX-T (NSX Data Center) collector (product kind
// "nsxt").
//
// Every collection it reads, over one session kept between hours (or HTTP
// Basic, Options.Auth), paged to the end with cursor/page_size:
//
//   - the fabric VMs (/api/v1/fabric/virtual-machines) and their VIFs
//     (/api/v1/fabric/vifs);
//   - the Policy segments and each segment's ports: a VM whose VIF's
//     lport_attachment_id is a segment port's attachment id is on that
//     segment (switching), routed when the segment has a connectivity_path;
//     a VIF without an attachment is on a plain vSphere port group;
//   - the Tier-1 gateways (tier0_path) and the VPN services (search API), so a
//     VM on a segment behind a gateway with a VPN service is reached by VPN;
//   - the distributed firewall's security policies and rules and the
//     distributed IDS/IPS policies and rules, with the VM members of the
//     groups they apply to;
//   - the load balancer pools (member_group);
//   - the licences.
//
// For each regular VM (not an Edge or service VM) reached by at least one
// feature it emits, per METERING.md, one nsx.vm observation: quantity 1,
// unit count, Edition the highest edition among the features reaching it
// (editions.go, the *assumed* map in one place), ObjectKey
// "<paired vCenter instanceUuid>/vm/<VM instanceUuid>" (the instanceUuid
// entry of compute_ids), the key of the vCenter collector's vm.vram, so the
// report takes the capped billed vRAM, which needs the reservation and power
// state NSX does not know, from the vCenter. A VM without an instanceUuid in
// compute_ids is skipped and counted, never guessed.
//
// An NSX product must be paired with its vCenter (Target.Paired with the
// vCenter's instance UUID): New refuses it otherwise. An NSX Manager with
// several compute managers keys all VMs to the paired vCenter (known gap).
//
// A 401 (or 403) on a call made with a kept session logs in again once and
// retries that call; a refused login is ErrLogin and is not retried. Every
// call has its own deadline (Target.Timeout). TLS is verified by the system
// roots or the accepted thumbprint; a *tlsutil.CertError is reachable with
// errors.As.
package nsxt

import (
	"context"
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
const Kind = "nsxt"

func init() {
	collectors.Register(collectors.Kind{
		Name:        Kind,
		DisplayName: "NSX-T",
		PairsWith:   "vcenter",
		Options:     func() any { o, _ := ParseOptions(nil); return o },
		New:         New,
	})
}

// ErrLogin is wrapped by the error returned when NSX rejects the user name
// or password.
var ErrLogin = collectors.ErrBadCredentials // not retried within the hour by the scheduler

// ErrNotPaired is returned by New for a product not paired with a vCenter.
var ErrNotPaired = errors.New("an NSX Manager must be paired with its vCenter (--vcenter)")

// Collector collects one NSX Manager. Calls are serialised.
type Collector struct {
	t      collectors.Target
	opts   Options
	rc     *rest.Client
	host   string
	vcUUID string
	log    *slog.Logger
	sess   rest.Session // over cookie and xsrf (session auth)

	mu      sync.Mutex
	cookie  string // JSESSIONID, "" when logged out (session auth)
	xsrf    string
	lastVMs int
}

// New builds an nsxt collector for t. It validates the endpoint, the options
// and the pairing, and does not contact NSX.
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
	if t.Paired == nil || t.Paired.InstanceID == "" {
		return nil, fmt.Errorf("nsxt %s: %w", c.host, ErrNotPaired)
	}
	c.vcUUID = t.Paired.InstanceID
	c.rc.Header = http.Header{"Accept": {"application/json"}}
	c.rc.Limits = limits
	c.rc.ErrorMessage = errorMessage
	c.log = c.t.Logger // collectors.New adds the kind and host
	c.rc.ThrottleLogged(maxThrottled, c.log, "NSX is throttling, waiting")
	c.sess = rest.Session{
		Active:   func() bool { return c.cookie != "" },
		Login:    c.login,
		Forget:   func() { c.cookie, c.xsrf = "", "" },
		Refused:  func(err error) bool { return rest.StatusIs(err, http.StatusUnauthorized, http.StatusForbidden) },
		Renewing: func() { c.log.Info("NSX session expired, logging in again") },
	}
	return c, nil
}

func errorMessage(b []byte) string {
	var e nsxErrorBody
	if rest.DecodeJSON(b, &e) == nil && e.ErrorMessage != "" {
		return fmt.Sprintf("%s (error_code %d)", e.ErrorMessage, e.ErrorCode)
	}
	return rest.Snippet(b)
}

// limits are what one NSX answer may cost: a list page of at most 1000
// objects (a fabric VM or a port is 1 to 3 KiB, a rule with many groups
// more; 16 KiB allowed each) and, for the budget, somewhat less than that
// decoded: 8 products at once must fit the appliance.
var limits = rest.Limits{Response: 32 << 20, Object: 1 << 20, Budget: 24 << 20}

// maxThrottled is how many 429/503 answers one call waits out: NSX's API
// rate limit, or a manager node starting.
const maxThrottled = 5

// login creates a session (session auth).
func (c *Collector) login(ctx context.Context) error {
	form := url.Values{"j_username": {c.t.Username}, "j_password": {c.t.Password.Reveal()}}
	_, resp, err := c.rc.Do(ctx, http.MethodPost, "/api/session/create", []byte(form.Encode()),
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	var he *rest.HTTPError
	if errors.As(err, &he) && he.AuthFailed() {
		return fmt.Errorf("logging in as %s: %w (%s)", c.t.Username, ErrLogin, he.Msg)
	}
	if err != nil {
		return fmt.Errorf("logging in: %w", err)
	}
	var cookie string
	for _, ck := range resp.Cookies() {
		if ck.Name == "JSESSIONID" {
			cookie = ck.Value
		}
	}
	xsrf := resp.Header.Get("X-XSRF-TOKEN")
	if cookie == "" || xsrf == "" {
		return errors.New("logging in: the answer carries no JSESSIONID cookie or X-XSRF-TOKEN header")
	}
	c.cookie, c.xsrf = cookie, xsrf
	c.log.Debug("session created")
	return nil
}

// get reads an authenticated path and decodes the JSON answer into v as it
// arrives. With a kept session, a 401/403 logs in again once and retries.
func (c *Collector) get(ctx context.Context, path string, v any) error {
	if c.opts.Auth == AuthBasic {
		hdr := http.Header{"Authorization": {rest.Basic(c.t.Username, c.t.Password.Reveal())}}
		err := c.rc.DoJSON(ctx, http.MethodGet, path, nil, hdr, v)
		var he *rest.HTTPError
		if errors.As(err, &he) && he.AuthFailed() {
			return fmt.Errorf("%w (%v)", ErrLogin, he)
		}
		return err
	}
	_, err := rest.WithSession(ctx, &c.sess, func() (struct{}, error) {
		hdr := http.Header{"Cookie": {"JSESSIONID=" + c.cookie}, "X-XSRF-TOKEN": {c.xsrf}}
		return struct{}{}, c.rc.DoJSON(ctx, http.MethodGet, path, nil, hdr, v)
	})
	return err
}

// listAll pages through an NSX list, calling add for every result.
func listAll[T any](ctx context.Context, c *Collector, path string, add func(*T)) error {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	cursor := ""
	for page := 1; ; page++ {
		q := path + sep + "page_size=" + strconv.Itoa(c.opts.PageSize)
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		p := new(listResult[T])
		if err := c.get(ctx, q, p); err != nil {
			return c.rc.PageError(path, page, err)
		}
		if err := p.check(); err != nil {
			return c.rc.PageError(path, page, err)
		}
		for i := range p.Results {
			add(&p.Results[i])
		}
		if p.Cursor == "" || len(p.Results) == 0 {
			return nil
		}
		if p.Cursor == cursor {
			return c.rc.PageError(path, page, errors.New("the cursor does not advance"))
		}
		cursor = p.Cursor
	}
}

// getOne reads a single object.
func getOne[T any](ctx context.Context, c *Collector, path string) (T, error) {
	var v T
	if err := c.get(ctx, path, &v); err != nil {
		return v, fmt.Errorf("nsxt %s: %s: %w", c.host, path, err)
	}
	return v, nil
}

// ensureSession logs in first, so that a refused login reads as one.
func (c *Collector) ensureSession(ctx context.Context) error {
	if c.opts.Auth == AuthSession && c.cookie == "" {
		if err := c.login(ctx); err != nil {
			return fmt.Errorf("nsxt %s: %w", c.host, err)
		}
	}
	return nil
}

// Identify returns the NSX Manager cluster id, product version and host name.
func (c *Collector) Identify(ctx context.Context) (collectors.Identity, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ensureSession(ctx); err != nil {
		return collectors.Identity{}, err
	}
	cl, err := getOne[clusterInfo](ctx, c, "/api/v1/cluster")
	if err != nil {
		return collectors.Identity{}, err
	}
	if cl.ClusterID == "" {
		return collectors.Identity{}, fmt.Errorf("nsxt %s: /api/v1/cluster: field cluster_id is empty", c.host)
	}
	n, err := getOne[nodeInfo](ctx, c, "/api/v1/node")
	if err != nil {
		return collectors.Identity{}, err
	}
	return collectors.Identity{InstanceID: cl.ClusterID, Version: n.ProductVersion, Name: n.Hostname}, nil
}

// Close ends the session.
func (c *Collector) Close(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cookie == "" {
		return nil
	}
	hdr := http.Header{"Cookie": {"JSESSIONID=" + c.cookie}, "X-XSRF-TOKEN": {c.xsrf}}
	c.cookie, c.xsrf = "", ""
	return c.rc.Logout(ctx, http.MethodPost, "/api/session/destroy", hdr)
}
