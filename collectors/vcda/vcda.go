// Package vcda is the VMware Cloud Director Availability collector
// (product kind "vcda"), for a VCDA cloud site in front of a Cloud
// Director.
//
// Every collection it reads, over one session kept between hours (POST
// /sessions with a JSON login, by default {"type": "vcdCredentials",
// "vcdUser", "vcdPassword"}; the token comes back in the X-VCAV-Auth header
// and is sent in it; every call asks for Accept:
// application/vnd.vmware.h4-v<api_version>+json), each list paged to the
// end with offset/limit ({"items": [...], "total": N}):
//
//   - GET /vm-replications: the VM replications, incoming and outgoing;
//   - GET /vapp-replications: the vApp replications, each with its VMs'
//     replications (vmReplications).
//
// Per METERING.md each replication (protection or migration, powered-off
// VMs included) is metered: one observation per replicated VM per hour,
// quantity 1, unit count, metric vm.protected (isMigration false) or
// vm.migrated (isMigration true); the report counts the unique VMs of the
// month of each. ObjectKey (rules.go, *assumed*): "<source vCenter instance
// UUID>/moref/<vmId>" when the replication comes from an on-premises
// vCenter (source.vimServerUuid set: the vCenter identity METERING.md asks
// to join on), else "<source site>/vm/<vmId>" (the Cloud Director VM id,
// qualified by the VCDA site name; VCDA does not give the Cloud Director
// site urn the vcd collector keys its VMs by, so the two keys do not join).
// Dims: vm, vm_id, vapp, org (the tenant: destination org of an incoming
// replication, source org otherwise), source_site, destination_site,
// source_org, destination_org, direction (incoming, outgoing, other: seen
// from the local site), vcenter_uuid (DR2C only), vcda (host),
// rules_version.
//
// Rules: a VM replicated twice (two replications, a VM of a vApp
// replication also listed alone, a record repeated across pages) counts
// once per metric; the same VM protected and migrated counts once in each.
// Every VM of a vApp replication counts. A record without a source VM id
// (its VM no longer exists) is skipped and counted in a warning.
//
// A 401 (or 403) on a call made with a kept session logs in again once and
// retries that call; a refused login is ErrLogin
// (collectors.ErrBadCredentials) and is not retried. An API version the
// server does not offer (406) is an error naming the versions it does
// offer, found by probing the known ones. Every call has its own deadline
// (Target.Timeout); 503 and 429 answers are waited out a few times. TLS is
// verified by the system roots or the accepted thumbprint.
package vcda

import (
	"context"
	"encoding/json"
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
const Kind = "vcda"

func init() {
	collectors.Register(collectors.Kind{
		Name:        Kind,
		DisplayName: "Cloud Director Availability",
		Options:     func() any { o, _ := ParseOptions(nil); return o },
		New:         New,
	})
}

// ErrLogin is wrapped by the error returned when VCDA rejects the user name
// or password.
var ErrLogin = collectors.ErrBadCredentials // not retried within the hour by the scheduler

// maxThrottled is how many 503 (or 429) answers one call waits out.
const maxThrottled = 5

// authHeader carries the session token both ways.
const authHeader = "X-VCAV-Auth"

// Collector collects one VCDA cloud site. Calls are serialised.
type Collector struct {
	t    collectors.Target
	opts Options
	rc   *rest.Client
	host string
	log  *slog.Logger
	sess rest.Session

	mu        sync.Mutex
	token     string // X-VCAV-Auth, "" when logged out
	localSite string // from the session, when the options name none
	last      int    // replications read last hour (capacity hint)
}

// New builds a vcda collector for t. It validates the endpoint and the
// options, and does not contact VCDA.
func New(t collectors.Target) (collectors.Collector, error) { return newCollector(t) }

// limits bound one answer: a page of replications (the server's own limit
// is a few hundred records of about a kilobyte) is well under them.
var limits = rest.Limits{Response: 32 << 20, Object: 1 << 20, Budget: 24 << 20}

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
	c.rc.Header = http.Header{"Accept": {mediaType(opts.APIVersion)}}
	c.rc.ErrorMessage = errorMessage
	c.rc.Limits = limits
	c.log = c.t.Logger // collectors.New adds the kind and host
	c.rc.ThrottleLogged(maxThrottled, c.log, "VCDA is busy, waiting")
	c.sess = rest.Session{
		Active:   func() bool { return c.token != "" },
		Login:    c.login,
		Forget:   func() { c.token = "" },
		Refused:  func(err error) bool { return rest.StatusIs(err, http.StatusUnauthorized, http.StatusForbidden) },
		Renewing: func() { c.log.Info("VCDA session expired, logging in again") },
	}
	return c, nil
}

func mediaType(version string) string { return "application/vnd.vmware.h4-v" + version + "+json" }

// site is the local site name: the option, else the session's.
func (c *Collector) site() string {
	if c.opts.Site != "" {
		return c.opts.Site
	}
	return c.localSite
}

// loginBody is the POST /sessions body for the configured login type.
func (c *Collector) loginBody() []byte {
	user, pass := c.t.Username, c.t.Password.Reveal()
	var m map[string]string
	switch c.opts.Auth {
	case AuthLocal:
		m = map[string]string{"type": "localUser", "localUser": user, "localPassword": pass}
	case AuthSSO:
		m = map[string]string{"type": "ssoCredentials", "username": user, "password": pass}
	default:
		m = map[string]string{"type": "vcdCredentials", "vcdUser": user, "vcdPassword": pass}
	}
	b, _ := json.Marshal(m)
	return b
}

// login opens a session: POST /sessions, the token in X-VCAV-Auth.
func (c *Collector) login(ctx context.Context) error {
	hdr := http.Header{"Content-Type": {"application/json"}}
	body, resp, err := c.rc.Do(ctx, http.MethodPost, "/sessions", c.loginBody(), hdr)
	var he *rest.HTTPError
	switch {
	case errors.As(err, &he) && he.AuthFailed():
		return fmt.Errorf("logging in as %s: %w (%s)", c.t.Username, ErrLogin, he.Msg)
	case errors.As(err, &he) && (he.Status == http.StatusNotAcceptable || he.Status == http.StatusUnsupportedMediaType):
		return c.versionError(ctx, err)
	case err != nil:
		return fmt.Errorf("logging in: %w", err)
	}
	tok := resp.Header.Get(authHeader)
	if tok == "" {
		return fmt.Errorf("logging in: the answer has no %s header", authHeader)
	}
	site, err := parseSession(body)
	if err != nil {
		return fmt.Errorf("logging in: %w", err)
	}
	c.token, c.localSite = tok, site
	c.log.Debug("session created", "site", site)
	return nil
}

// versionError says that the configured API version is not offered, and
// which of the known versions are: a GET /sessions without a token is 401
// where a version is offered, 406 where it is not.
func (c *Collector) versionError(ctx context.Context, err error) error {
	var offered []string
	for _, v := range APIVersions {
		if v == c.opts.APIVersion {
			continue
		}
		_, _, perr := c.rc.Do(ctx, http.MethodGet, "/sessions", nil, http.Header{"Accept": {mediaType(v)}})
		if perr == nil || rest.StatusIs(perr, http.StatusUnauthorized, http.StatusForbidden) {
			offered = append(offered, v)
		}
	}
	have := "none of " + strings.Join(APIVersions, ", ")
	if len(offered) > 0 {
		have = strings.Join(offered, ", ")
	}
	return fmt.Errorf("logging in: the VCDA API version %s is not offered (%w); versions offered: %s (option api_version)",
		c.opts.APIVersion, err, have)
}

// get reads an authenticated path. With a kept session, a 401/403 logs in
// again once and retries.
// The answer is decoded into v as it arrives, within the client's Limits.
func (c *Collector) get(ctx context.Context, path string, v any) error {
	_, err := rest.WithSession(ctx, &c.sess, func() (struct{}, error) {
		return struct{}{}, c.rc.DoJSON(ctx, http.MethodGet, path, nil, http.Header{authHeader: {c.token}}, v)
	})
	return err
}

// listAll pages through a VCDA list with offset/limit, calling add for
// every item. It stops at an empty page or when offset reaches the total;
// it advances by the items received, as the server may serve fewer than
// asked (its own limit). A page that starts with the record the previous
// page started with is an error: a server or proxy that ignores offset
// would otherwise be read total/limit times over.
func listAll[T any](ctx context.Context, c *Collector, path string, id func(*T) string, add func(*T)) error {
	offset, prevFirst := 0, ""
	for pg := 1; ; pg++ {
		p := new(page[T])
		if err := c.get(ctx, fmt.Sprintf("%s?offset=%d&limit=%d", path, offset, c.opts.PageSize), p); err != nil {
			return c.rc.PageError(path, pg, err)
		}
		if err := p.check(); err != nil {
			return c.rc.PageError(path, pg, err)
		}
		if len(p.Items) > 0 {
			first := id(&p.Items[0])
			if pg > 1 && first != "" && first == prevFirst {
				return c.rc.PageError(path, pg, fmt.Errorf("the answer for offset %d starts with %s again, as the page before: the server ignores offset", offset, first))
			}
			prevFirst = first
		}
		for i := range p.Items {
			add(&p.Items[i])
		}
		offset += len(p.Items)
		if len(p.Items) == 0 || offset >= p.Total {
			return nil
		}
	}
}

// Identify returns the VCDA cloud service's instance id, name and build
// (GET /diagnostics/about).
func (c *Collector) Identify(ctx context.Context) (collectors.Identity, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.rc.EnsureSession(ctx, &c.sess); err != nil {
		return collectors.Identity{}, err
	}
	var a about
	if err := c.get(ctx, "/diagnostics/about", &a); err != nil {
		return collectors.Identity{}, fmt.Errorf("vcda %s: /diagnostics/about: %w", c.host, err)
	}
	name := c.site()
	if name == "" {
		name = c.host
	}
	return collectors.Identity{InstanceID: a.InstanceID, Version: a.BuildVersion, Build: a.BuildVersion, Name: name}, nil
}

// Close ends the session.
func (c *Collector) Close(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == "" {
		return nil
	}
	hdr := http.Header{authHeader: {c.token}}
	c.token = ""
	return c.rc.Logout(ctx, http.MethodDelete, "/sessions", hdr)
}
