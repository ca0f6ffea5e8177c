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
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/internal/rest"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// Kind is the product kind this package registers.
const Kind = "nsxt"

func init() { collectors.Register(Kind, New) }

// ErrLogin is wrapped by the error returned when NSX rejects the user name
// or password.
var ErrLogin = errors.New("incorrect user name or password")

// ErrNotPaired is returned by New for a product not paired with a vCenter.
var ErrNotPaired = errors.New("an NSX Manager must be paired with its vCenter (--vcenter)")

const maxBody = 128 << 20

// Collector collects one NSX Manager. Calls are serialised.
type Collector struct {
	t      collectors.Target
	opts   Options
	base   *url.URL
	host   string
	vcUUID string
	log    *slog.Logger
	client *http.Client

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
	e := strings.TrimSpace(t.Endpoint)
	if !strings.Contains(e, "://") {
		e = "https://" + e
	}
	u, err := url.Parse(e)
	if err != nil || u.Hostname() == "" {
		return nil, fmt.Errorf("nsxt endpoint %q: not a URL or host name", t.Endpoint)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("nsxt endpoint %q: scheme must be https", t.Endpoint)
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	u.Path = strings.TrimSuffix(u.Path, "/")
	if t.Username == "" {
		return nil, fmt.Errorf("nsxt %s: a user name is required", u.Hostname())
	}
	if t.Paired == nil || t.Paired.InstanceID == "" {
		return nil, fmt.Errorf("nsxt %s: %w", u.Hostname(), ErrNotPaired)
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
	return &Collector{
		t: t, opts: opts, base: u, host: u.Hostname(), vcUUID: t.Paired.InstanceID,
		log:    t.Logger.With("collector", Kind, "nsx", u.Hostname()),
		client: &http.Client{Transport: tr},
	}, nil
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

func (e *httpError) authFailed() bool {
	return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
}

// maxThrottled is how many 429/503 answers one call waits out.
const maxThrottled = 5

// do sends one request under its own deadline, waiting out NSX's API rate
// limit (429, or 503 while a manager node starts) a few times.
func (c *Collector) do(ctx context.Context, method, path string, body io.Reader, hdr http.Header) ([]byte, *http.Response, error) {
	var form []byte
	if body != nil {
		form, _ = io.ReadAll(body)
	}
	for try := 1; ; try++ {
		var rd io.Reader
		if form != nil {
			rd = bytes.NewReader(form)
		}
		b, resp, err := c.doOnce(ctx, method, path, rd, hdr)
		var he *httpError
		if !errors.As(err, &he) || (he.Status != http.StatusTooManyRequests && he.Status != http.StatusServiceUnavailable) || try > maxThrottled {
			return b, resp, err
		}
		wait := time.Duration(try) * 200 * time.Millisecond
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			wait = time.Duration(s) * time.Second
		}
		c.log.Debug("NSX is throttling, waiting", "status", he.Status, "wait", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

// doOnce sends one request under its own deadline.
func (c *Collector) doOnce(ctx context.Context, method, path string, body io.Reader, hdr http.Header) ([]byte, *http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.t.Timeout)
	defer cancel()
	u := *c.base
	p, q, _ := strings.Cut(path, "?")
	u.Path += p
	u.RawQuery = q
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "usagemeter")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, nil, c.deadline(ctx, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, nil, c.deadline(ctx, fmt.Errorf("reading the answer: %w", err))
	}
	if resp.StatusCode/100 != 2 {
		return nil, resp, &httpError{Status: resp.StatusCode, Msg: errorMessage(b)}
	}
	return b, resp, nil
}

func (c *Collector) deadline(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (no answer within the %s deadline)", err, c.t.Timeout)
	}
	return err
}

func errorMessage(b []byte) string {
	var e nsxErrorBody
	if rest.DecodeJSON(b, &e) == nil && e.ErrorMessage != "" {
		return fmt.Sprintf("%s (error_code %d)", e.ErrorMessage, e.ErrorCode)
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// login creates a session (session auth).
func (c *Collector) login(ctx context.Context) error {
	form := url.Values{"j_username": {c.t.Username}, "j_password": {c.t.Password.Reveal()}}
	_, resp, err := c.do(ctx, http.MethodPost, "/api/session/create", strings.NewReader(form.Encode()),
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	var he *httpError
	if errors.As(err, &he) && he.authFailed() {
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

// get reads an authenticated path. With a kept session, a 401/403 logs in
// again once and retries.
func (c *Collector) get(ctx context.Context, path string) ([]byte, error) {
	if c.opts.Auth == AuthBasic {
		hdr := http.Header{"Authorization": {"Basic " + basic(c.t.Username, c.t.Password.Reveal())}}
		b, _, err := c.do(ctx, http.MethodGet, path, nil, hdr)
		var he *httpError
		if errors.As(err, &he) && he.authFailed() {
			return nil, fmt.Errorf("%w (%v)", ErrLogin, he)
		}
		return b, err
	}
	for attempt := 0; ; attempt++ {
		if c.cookie == "" {
			if err := c.login(ctx); err != nil {
				return nil, err
			}
			attempt = 1
		}
		hdr := http.Header{"Cookie": {"JSESSIONID=" + c.cookie}, "X-XSRF-TOKEN": {c.xsrf}}
		b, _, err := c.do(ctx, http.MethodGet, path, nil, hdr)
		var he *httpError
		if errors.As(err, &he) && he.authFailed() {
			c.cookie, c.xsrf = "", ""
			if attempt == 0 {
				c.log.Info("NSX session expired, logging in again")
				continue
			}
			return nil, fmt.Errorf("session refused right after logging in: %w", err)
		}
		return b, err
	}
}

func basic(u, p string) string { return base64.StdEncoding.EncodeToString([]byte(u + ":" + p)) }

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
		body, err := c.get(ctx, q)
		if err != nil {
			return fmt.Errorf("nsxt %s: %s page %d: %w", c.host, path, page, err)
		}
		p, err := parseList[T](body)
		if err != nil {
			return fmt.Errorf("nsxt %s: %s page %d: %w", c.host, path, page, err)
		}
		for i := range p.Results {
			add(&p.Results[i])
		}
		if p.Cursor == "" || len(p.Results) == 0 {
			return nil
		}
		if p.Cursor == cursor {
			return fmt.Errorf("nsxt %s: %s page %d: the cursor does not advance", c.host, path, page)
		}
		cursor = p.Cursor
	}
}

// getOne reads a single object.
func getOne[T any](ctx context.Context, c *Collector, path string) (T, error) {
	var v T
	body, err := c.get(ctx, path)
	if err != nil {
		return v, fmt.Errorf("nsxt %s: %s: %w", c.host, path, err)
	}
	if err := rest.DecodeJSON(body, &v); err != nil {
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
	_, _, err := c.do(ctx, http.MethodPost, "/api/session/destroy", nil, hdr)
	var he *httpError
	if err != nil && !(errors.As(err, &he) && he.authFailed()) {
		return fmt.Errorf("nsxt %s: logging out: %w", c.host, err)
	}
	return nil
}
