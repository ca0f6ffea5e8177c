// Package horizondaas is the Horizon DaaS collector (product kind
// "horizon-daas"): the service provider side of the first generation
// Horizon DaaS Platform, read every 6 hours (collectors.Kind.Every; DESIGN.md
// "Horizon DaaS runs every 6 hours").
//
// Every collection it reads, over one session kept between collections
// (POST /dt-rest/v100/system/authenticate/credentials with an XML
// DtCredentials; the answer's Authorization header is sent on every later
// call, its x-dt-csrf-header on every call that is not a GET):
//
//   - the organizations (/security/manager/organizations), keeping the
//     enabled tenants (not the service provider's own organization);
//   - each tenant's quotas (/security/organization/{id}/quotas): the licence
//     edition of its concurrent connection quota is the tenant's edition;
//   - each tenant's sessions (/session/manager/sessions?orgId=&start=&limit=),
//     paged to the end.
//
// For each enabled tenant it emits, per METERING.md, one connections
// observation: quantity the tenant's concurrent connections (sessions whose
// state is CONNECTED, each session id once), unit count, the tenant's
// edition, ObjectKey "tenant/<organization id>" (never its name). Dims:
// tenant (the name, hashed in reports), daas (the service provider host),
// rules_version. The report takes the monthly maximum per edition of the
// hourly totals (report/rules.go): with 6-hourly samples the hours in
// between have no span and total 0, which a maximum ignores.
//
// No personal data is read into the observations: the session's user
// elements are not even decoded (parse.go); a session is counted, never
// stored, logged or reported.
//
// Rules (rules.go, the *assumed* parts in one place): a disconnected session
// is no connection; a connected session without a desktop counts; a session
// listed twice (across pages) counts once; a disabled tenant is not read
// (its users cannot connect) and emits nothing; a tenant without a
// connection quota edition emits with an empty edition, and the collection
// logs it.
//
// A 401 on a call made with a kept session logs in again once and retries
// that call (a 403, a permission the account lacks, fails the collection
// naming the call, without a new login); a refused login is ErrLogin (collectors.ErrBadCredentials)
// and is not retried. Every call has its own deadline (Target.Timeout); 503
// and 429 answers are waited out a few times. TLS is verified by the system
// roots or the accepted thumbprint.
package horizondaas

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// Kind is the product kind this package registers.
const Kind = "horizon-daas"

// Every is the kind's collection cadence (DESIGN.md, METERING.md).
const Every = 6 * time.Hour

func init() {
	collectors.Register(collectors.Kind{
		Name:        Kind,
		DisplayName: "Horizon DaaS",
		Options:     func() any { o, _ := ParseOptions(nil); return o },
		New:         New,
		Every:       Every,
	})
}

// ErrLogin is wrapped by the error returned when DaaS rejects the user name
// or password.
var ErrLogin = collectors.ErrBadCredentials // not retried within the hour by the scheduler

// ErrNoDomain is wrapped by the login error of a user name without a domain
// and no domain option: the DaaS login needs one.
var ErrNoDomain = errors.New(`the DaaS login needs a domain: write the user name DOMAIN\user or user@domain, or set the option domain`)

// basePath is the API path below the endpoint; the version follows it.
const basePath = "/dt-rest/"

// maxThrottled is how many 503 (or 429) answers one call waits out.
const maxThrottled = 5

// Collector collects one Horizon DaaS service provider. Calls are
// serialised.
type Collector struct {
	t    collectors.Target
	opts Options
	rc   *rest.Client
	host string
	api  string // basePath + version
	log  *slog.Logger
	sess rest.Session

	mu   sync.Mutex
	auth string // Authorization of the session, "" when logged out
	csrf string // x-dt-csrf-header of the session
}

// limits bound one answer: a page of at most 1,000 sessions of a few
// hundred bytes each is well under them.
var limits = rest.Limits{Response: 32 << 20, Object: 1 << 20, Budget: 24 << 20}

// New builds a horizon-daas collector for t. It validates the endpoint and
// the options, and does not contact DaaS.
func New(t collectors.Target) (collectors.Collector, error) { return newCollector(t) }

func newCollector(t collectors.Target) (*Collector, error) {
	opts, err := ParseOptions(t.Options)
	if err != nil {
		return nil, err
	}
	c := &Collector{t: t, opts: opts, api: basePath + opts.APIVersion}
	if c.rc, err = rest.NewClient(Kind, &c.t, c.api); err != nil {
		return nil, err
	}
	c.host = c.rc.Host()
	c.rc.Header = http.Header{"Accept": {"application/xml"}}
	c.rc.ErrorMessage = errorMessage
	c.rc.Limits = limits
	c.log = c.t.Logger
	c.rc.ThrottleLogged(maxThrottled, c.log, "DaaS is busy, waiting")
	c.sess = rest.Session{
		Active: func() bool { return c.auth != "" },
		Login:  c.login,
		Forget: func() { c.auth, c.csrf = "", "" },
		// 401 is the platform's answer to an unknown or expired session; a
		// 403 is a permission the account lacks, which a new login would
		// not give (the call's error names the path).
		Refused:  func(err error) bool { return rest.StatusIs(err, http.StatusUnauthorized) },
		Renewing: func() { c.log.Info("DaaS session expired, logging in again") },
	}
	return c, nil
}

// login opens a session: POST /system/authenticate/credentials with a
// DtCredentials document; the session is the answer's Authorization and
// x-dt-csrf-header headers.
func (c *Collector) login(ctx context.Context) error {
	user, domain := credentials(c.t.Username, c.opts.Domain)
	if domain == "" {
		return fmt.Errorf("logging in as %s: %w", c.t.Username, ErrNoDomain)
	}
	body, err := xml.Marshal(credentialsDoc{Type: "CREDENTIALS", Username: user, Password: c.t.Password.Reveal(), Domain: domain})
	if err != nil {
		return fmt.Errorf("logging in: %w", err)
	}
	hdr := http.Header{"Content-Type": {"application/xml"}}
	_, resp, err := c.rc.Do(ctx, http.MethodPost, c.api+"/system/authenticate/credentials", body, hdr)
	var he *rest.HTTPError
	switch {
	case errors.As(err, &he) && he.AuthFailed():
		return fmt.Errorf("logging in as %s: %w (%s)", c.t.Username, ErrLogin, he.Msg)
	case errors.As(err, &he) && he.Status == http.StatusNotFound:
		return c.versionError(ctx, err)
	case err != nil:
		return fmt.Errorf("logging in: %w", err)
	}
	auth, csrf := resp.Header.Get("Authorization"), resp.Header.Get("x-dt-csrf-header")
	if auth == "" {
		return errors.New("logging in: the answer has no Authorization header")
	}
	c.auth, c.csrf = auth, csrf
	c.log.Debug("session created")
	return nil
}

// platform is the answer of GET /dt-rest/system/platform (no session).
type platform struct {
	XMLName  xml.Name `xml:"DtPlatform"`
	Versions []struct {
		ID     string `xml:"id,attr"`
		Latest bool   `xml:"latest,attr"`
	} `xml:"DtVersion"`
}

// versionError says that the configured API version is not offered, and
// which versions the platform lists (GET /dt-rest/system/platform).
func (c *Collector) versionError(ctx context.Context, err error) error {
	have := "unknown (" + basePath + "system/platform did not answer)"
	var p platform
	if perr := c.rc.DoXML(ctx, http.MethodGet, basePath+"system/platform", nil, nil, &p); perr == nil {
		var ids []string
		for _, v := range p.Versions {
			ids = append(ids, v.ID)
		}
		have = strings.Join(ids, ", ")
		if have == "" {
			have = "none"
		}
	}
	return fmt.Errorf("logging in: the DaaS REST API %s is not offered at %s (%w); versions offered: %s (option api_version)",
		c.opts.APIVersion, c.api, err, have)
}

// get reads an authenticated path below the API base into v, as it
// arrives. With a kept session, a 401/403 logs in again once and retries.
func (c *Collector) get(ctx context.Context, path string, v any) error {
	_, err := rest.WithSession(ctx, &c.sess, func() (struct{}, error) {
		return struct{}{}, c.rc.DoXML(ctx, http.MethodGet, c.api+path, nil, http.Header{"Authorization": {c.auth}}, v)
	})
	return err
}

// Identify returns the service provider organization's name, and no
// instance id: the organization ids are numbers every platform gives out
// from 1000 on (the service provider's own is 1000 everywhere, as the
// reference's samples show), so two platforms would look like one product.
// Identify still logs in and reads the organizations, so that `product
// add` proves the credentials and the permissions.
func (c *Collector) Identify(ctx context.Context) (collectors.Identity, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.rc.EnsureSession(ctx, &c.sess); err != nil {
		return collectors.Identity{}, err
	}
	var l orgList
	if err := c.get(ctx, "/security/manager/organizations", &l); err != nil {
		return collectors.Identity{}, fmt.Errorf("%s %s: /security/manager/organizations: %w", Kind, c.host, err)
	}
	for _, o := range l.Orgs {
		if tenant, _ := metered(&o); !tenant {
			return collectors.Identity{Name: o.Name}, nil
		}
	}
	return collectors.Identity{Name: c.host}, nil
}

// Close ends the session (DELETE /system/authenticate, with the CSRF
// header every non-GET call carries).
func (c *Collector) Close(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.auth == "" {
		return nil
	}
	hdr := http.Header{"Authorization": {c.auth}, "x-dt-csrf-header": {c.csrf}}
	c.auth, c.csrf = "", ""
	return c.rc.Logout(ctx, http.MethodDelete, c.api+"/system/authenticate", hdr, http.StatusNotFound, http.StatusMethodNotAllowed)
}
