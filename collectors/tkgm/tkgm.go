// Package tkgm is the Tanzu Kubernetes Grid multi-cloud collector (product
// kind "tkgm", "Tanzu Kubernetes Grid").
//
// Every collection it reads, from the TKG management cluster's Kubernetes
// API (k8s.io/client-go's dynamic client, a bearer token of a read-only
// service account, TLS verified by the system roots, the CA of option "ca",
// or only the accepted thumbprint), two Cluster API lists across all
// namespaces, each paged to the end with limit/continue:
//
//   - clusters.cluster.x-k8s.io (v1beta1): the management cluster (labelled
//     cluster-role.tkg.tanzu.vmware.com/management) and the workload
//     clusters it manages;
//   - machines.cluster.x-k8s.io (v1beta1): their machines, each with
//     spec.providerID "vsphere://<BIOS UUID>" once its VM exists.
//
// Then it reads the paired vCenter's VMs and hosts (the vcenter collector's
// own inventory read, vcenter.Collector.Paired, over a session kept between
// hours) and joins each machine to the VM whose BIOS UUID (config.uuid) its
// provider ID names. Per METERING.md, with the metric chosen by option
// "metric" (as tanzu_metric chooses it for TKGs):
//
//   - "vram" (default): one tanzu.vram observation per powered-on VM of a
//     management or workload cluster machine, its capped billed vRAM as the
//     vcenter collector bills it, keyed as its vm.vram
//     ("<vCenter instanceUuid>/vm/<instanceUuid>");
//   - "cores": one tanzu.cores observation per host running at least one
//     of them, its physical cores, keyed as host.cores.
//
// Edition "Standard" (METERING.md: Advanced is reported as Standard). The
// rules (rules.go) and what is skipped: a machine without a provider ID
// (being provisioned, or failed before its VM existed) and one on another
// infrastructure (not vsphere://) are counted in the collection's summary
// (Summary, logged); a machine whose VM the vCenter does not know is named
// as unjoined in a warning; none of them bills.
//
// A refused token (401: wrong, revoked, expired) is ErrToken, which is
// collectors.ErrAuth: not retried within the hour; when the token is a
// bound service account token its expiry is said. A 403 names the RBAC
// rule the service account lacks. Every call has its own deadline
// (Target.Timeout).
package tkgm

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/dynamic"
	kuberest "k8s.io/client-go/rest"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/internal/rest"
	"github.com/usagemeter/usagemeter/collectors/vcenter"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// Kind is the product kind this package registers.
const Kind = "tkgm"

func init() {
	collectors.Register(collectors.Kind{
		Name:        Kind,
		DisplayName: "Tanzu Kubernetes Grid",
		PairsWith:   "vcenter",
		Options:     func() any { o, _ := ParseOptions(nil); return o },
		New:         New,
	})
}

var (
	_ collectors.Collector  = (*Collector)(nil)
	_ collectors.Identifier = (*Collector)(nil)
	_ collectors.Closer     = (*Collector)(nil)
)

// ErrToken is wrapped by the error returned when the management cluster
// refuses the bearer token (401). It is collectors.ErrAuth and
// collectors.ErrBadCredentials: the scheduler does not retry it within the
// hour.
var ErrToken error = tokenRefused{}

type tokenRefused struct{}

func (tokenRefused) Error() string { return "the bearer token was refused" }
func (tokenRefused) Is(target error) bool {
	return target == collectors.ErrAuth || target == collectors.ErrBadCredentials
}

// ErrNotPaired is returned by New for a product not paired with a vCenter.
var ErrNotPaired = errors.New("a TKG management cluster must be paired with the vCenter its clusters run on (--vcenter)")

// lookup is the paired vCenter's VMs by BIOS UUID (*vcenter.Inventory).
type lookup interface {
	InstanceUUID() string
	VM(biosUUID string) (vcenter.BilledVM, bool)
}

// Collector collects one TKG management cluster. Calls are serialised.
type Collector struct {
	t    collectors.Target
	opts Options
	base *url.URL
	host string
	log  *slog.Logger
	http *http.Client // with the bearer token
	// warned logs the API server's warnings, each once a collection.
	warned *warnings
	dyn    *dynamic.DynamicClient
	vc     *vcenter.Collector
	// vms reads the paired vCenter (vc.Paired; tests and the benchmark
	// replace it).
	vms func(ctx context.Context) (lookup, error)

	mu   sync.Mutex
	last Summary
}

// New builds a tkgm collector for t. It validates the endpoint, the options
// and the pairing, and does not contact the cluster or the vCenter.
func New(t collectors.Target) (collectors.Collector, error) { return newCollector(t) }

func newCollector(t collectors.Target) (*Collector, error) {
	opts, err := ParseOptions(t.Options)
	if err != nil {
		return nil, err
	}
	base, err := rest.ParseEndpoint(Kind, t.Endpoint, "")
	if err != nil {
		return nil, err
	}
	if t.Password.Reveal() == "" {
		return nil, fmt.Errorf("tkgm %s: the bearer token of the service account is required (as the password)", base.Hostname())
	}
	t.SetDefaults()
	c := &Collector{t: t, opts: opts, base: base, host: base.Hostname(), log: t.Logger}
	c.warned = &warnings{log: c.log}
	if t.Paired == nil || t.Paired.InstanceID == "" {
		return nil, fmt.Errorf("tkgm %s: %w", c.host, ErrNotPaired)
	}
	if err := c.newClients(); err != nil {
		return nil, err
	}
	if strings.TrimSpace(t.Paired.Endpoint) != "" {
		p := *t.Paired
		p.Kind = vcenter.Kind
		if p.Timeout <= 0 {
			p.Timeout = t.Timeout
		}
		if p.Logger == nil {
			p.Logger = t.Logger.With("paired_vcenter", p.Endpoint)
		}
		vc, err := vcenter.New(p)
		if err != nil {
			return nil, fmt.Errorf("tkgm %s: paired vCenter: %w", c.host, err)
		}
		c.vc = vc.(*vcenter.Collector)
		c.vms = func(ctx context.Context) (lookup, error) {
			inv, err := c.vc.Paired(ctx)
			if err != nil {
				return nil, err
			}
			if !strings.EqualFold(inv.InstanceUUID(), t.Paired.InstanceID) {
				return nil, fmt.Errorf("the paired vCenter %s is now instance %s, not %s as recorded: pair the TKG product again",
					p.Endpoint, inv.InstanceUUID(), t.Paired.InstanceID)
			}
			if n := inv.DuplicateBIOS(); n > 0 {
				c.log.Warn("VMs of the paired vCenter share a BIOS UUID with another VM: machines join the one that bills", "vms", n)
			}
			return inv, nil
		}
	} else {
		c.vms = func(context.Context) (lookup, error) {
			return nil, errors.New("the paired vCenter has no endpoint")
		}
	}
	return c, nil
}

// newClients builds the HTTP client (TLS by tlsutil: system roots, option
// ca, or the accepted thumbprint alone; the bearer token added by
// client-go) and the dynamic client over it. client-go's own rate limiter
// is off: the collector makes a few calls an hour, each under its deadline.
func (c *Collector) newClients() error {
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsutil.Config(c.host, c.t.Thumbprint, c.opts.roots),
		TLSHandshakeTimeout: 30 * time.Second,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}
	tr.TLSClientConfig.NextProtos = []string{"h2", "http/1.1"}
	tr.ForceAttemptHTTP2 = true
	cfg := &kuberest.Config{
		Host:        c.base.String(),
		BearerToken: c.t.Password.Reveal(),
		Transport:   limitAnswers{tr},
		UserAgent:   "usagemeter",
		QPS:         -1,
		// The API server's warnings (a deprecated API version) go to the
		// collector's log, not to client-go's klog on stderr.
		WarningHandler: c.warned,
	}
	hc, err := kuberest.HTTPClientFor(cfg)
	if err != nil {
		return fmt.Errorf("tkgm %s: %w", c.host, err)
	}
	dyn, err := dynamic.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return fmt.Errorf("tkgm %s: %w", c.host, err)
	}
	c.http, c.dyn = hc, dyn
	return nil
}

// maxAnswer bounds one answer's body: client-go reads a body whole before
// it decodes it, and a page of 5,000 machines is about 10 MB.
var maxAnswer int64 = 128 << 20

// limitAnswers refuses answers longer than maxAnswer (an API server or
// proxy gone wrong could send one without end).
type limitAnswers struct{ rt http.RoundTripper }

func (l limitAnswers) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.rt.RoundTrip(r)
	if err == nil {
		resp.Body = &limitedBody{ReadCloser: resp.Body, left: maxAnswer}
	}
	return resp, err
}

type limitedBody struct {
	io.ReadCloser
	left int64
}

// ErrTooLarge is wrapped by the error of an answer over the size limit.
var ErrTooLarge = errors.New("answer too large")

func (b *limitedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, fmt.Errorf("%w: more than %d MiB", ErrTooLarge, maxAnswer>>20)
	}
	return n, err
}

// warnings logs the API server's Warning headers, each text once until
// reset (every page of a list carries the same).
type warnings struct {
	log  *slog.Logger
	mu   sync.Mutex
	seen map[string]bool
}

func (w *warnings) HandleWarningHeader(code int, agent, text string) {
	if code != 299 || text == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen[text] {
		return
	}
	if w.seen == nil {
		w.seen = map[string]bool{}
	}
	w.seen[text] = true
	w.log.Warn("the Kubernetes API warns", "warning", text)
}

func (w *warnings) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = nil
}

// call runs f under its own deadline of Target.Timeout.
func (c *Collector) call(ctx context.Context, f func(ctx context.Context) error) error {
	return rest.Call(ctx, c.t.Timeout, f)
}

// Identify returns the management cluster's identity: the UID and name of
// its own Cluster object (labelled as the TKG management cluster), and the
// Kubernetes version (/version).
func (c *Collector) Identify(ctx context.Context) (collectors.Identity, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var id collectors.Identity
	err := c.call(ctx, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.JoinPath("/version").String(), nil)
		if err != nil {
			return err
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return err
		}
		if resp.StatusCode == http.StatusUnauthorized {
			return c.tokenError()
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/version: HTTP %d", resp.StatusCode)
		}
		var v struct {
			GitVersion string `json:"gitVersion"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("/version: %w", err)
		}
		id.Version = v.GitVersion
		return nil
	})
	if err != nil {
		return collectors.Identity{}, fmt.Errorf("tkgm %s: %w", c.host, err)
	}
	clusters, err := listAll(ctx, c, resClusters, parseCluster)
	if err != nil {
		return collectors.Identity{}, err
	}
	id.Name = c.host
	for _, cl := range clusters {
		if cl.management {
			id.InstanceID, id.Name = cl.uid, cl.key()
			break
		}
	}
	return id, nil
}

// Close ends the paired vCenter session. The Kubernetes API has none.
func (c *Collector) Close(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.http.CloseIdleConnections()
	if c.vc != nil {
		return c.vc.Close(ctx)
	}
	return nil
}

// tokenError is ErrToken, with the token's expiry when it is a bound
// service account token (a JWT with an exp claim; read, not verified).
func (c *Collector) tokenError() error {
	who := "the service account's bearer token"
	if c.t.Username != "" {
		who = "the bearer token of " + c.t.Username
	}
	exp := tokenExpiry(c.t.Password.Reveal())
	switch {
	case !exp.IsZero() && time.Now().After(exp):
		return fmt.Errorf("%w: %s expired at %s: create a new token for the service account (kubectl create token) and update the product", ErrToken, who, exp.UTC().Format(time.RFC3339))
	case !exp.IsZero():
		return fmt.Errorf("%w: %s (valid until %s) is revoked, or its service account was deleted: create a new token and update the product", ErrToken, who, exp.UTC().Format(time.RFC3339))
	}
	return fmt.Errorf("%w: %s is wrong, revoked, or its service account or secret was deleted: create a new token and update the product", ErrToken, who)
}

// tokenExpiry is the exp claim of a JWT, zero when tok is not one or has
// none. The signature is not checked: the API server does that; the claim
// only makes the message clearer.
func tokenExpiry(tok string) time.Time {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || len(parts[1]) > 8192 {
		return time.Time{}
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(b, &claims) != nil {
		return time.Time{}
	}
	n, err := claims.Exp.Int64()
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.Unix(n, 0)
}
