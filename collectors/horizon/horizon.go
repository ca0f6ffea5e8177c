// Package horizon is the Horizon collector (product kind "horizon"): it
// reads a Horizon pod through one of its Connection Servers' REST API
// (the "Horizon Server API", base path /rest).
//
// Every collection it reads, with one login kept between hours (POST
// /rest/login with {domain, username, password} → an access token sent as
// "Authorization: Bearer" and a refresh token), the paged lists paged to
// the end with page/size (size 1000, the API's maximum: the Connection
// Server throttles per minute and every page counts):
//
//   - /config/v1/environment-properties: the pod's cluster_guid, the
//     identity its observations are keyed under (read once);
//   - /config/v1/licenses: the licence edition (license_edition; releases
//     without the call answer 404: the edition option, else none);
//   - /inventory/v1/desktop-pools and /inventory/v1/farms (not paged);
//   - /inventory/v1/machines, /inventory/v1/rds-servers and
//     /inventory/v1/sessions (paged).
//
// It emits, per METERING.md (Horizon: the monthly maximum of desktop VMs
// under management for VDI and of sessions under management for RDSH, per
// licence edition):
//
//   - one horizon.desktop observation per desktop VM under management:
//     quantity 1, ObjectKey "<cluster_guid>/machine/<machine id>";
//   - one horizon.session observation per RDS farm with sessions: quantity
//     the number of its sessions that hour, ObjectKey
//     "<cluster_guid>/farm/<farm id>". A count per farm, not one
//     observation per session: the hourly total the monthly maximum takes
//     is the same sum, while no session identity (not even a hash, which
//     would still follow one user's session from hour to hour) is ever
//     stored, and a farm's count makes one span per change instead of one
//     per session.
//
// Session user names and ids, session ids and client names are personal
// data: the records are decoded without those fields (parse.go); a session
// id lives in memory during one collection only, to count a session listed
// twice once; nothing of them is logged.
//
// Rules (rules.go, the *assumed* parts in one place) decide which machines
// and sessions count and the edition of each licence.
//
// An expired access token (401) is renewed with the refresh token (POST
// /rest/refresh) before a new login; a refused login is ErrLogin
// (collectors.ErrBadCredentials) and is not retried. Every call has its
// own deadline (Target.Timeout); 429 (the API's throttling, with
// X-Rate-Limit-Retry-After-Seconds) and 503 answers are waited out a few
// times per call. TLS is verified by the system roots or the accepted
// thumbprint.
package horizon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// Kind is the product kind this package registers.
const Kind = "horizon"

func init() {
	collectors.Register(collectors.Kind{
		Name:        Kind,
		DisplayName: "Horizon",
		Options:     func() any { o, _ := ParseOptions(nil); return o },
		New:         New,
	})
}

// ErrLogin is wrapped by the error returned when the Connection Server
// rejects the domain, user name or password.
var ErrLogin = collectors.ErrBadCredentials // not retried within the hour by the scheduler

// basePath is the API's base path below the endpoint.
const basePath = "/rest"

// maxThrottled is how many 429 (or 503) answers one call waits out, and
// maxThrottleWait the longest single wait (the limits are per minute).
const (
	maxThrottled    = 5
	maxThrottleWait = 65 * time.Second
)

// Collector collects one Horizon pod. Calls are serialised.
type Collector struct {
	t      collectors.Target
	opts   Options
	rc     *rest.Client
	host   string
	domain string
	user   string
	log    *slog.Logger
	sess   rest.Session

	mu      sync.Mutex
	access  string // bearer token, "" when none
	refresh string // refresh token, "" when none
	pod     *environment
	noLic   bool // the server has no licence API (logged once)
	last    struct{ machines, sessions int }
}

// New builds a horizon collector for t. It validates the endpoint, the user
// name and the options, and does not contact the Connection Server.
func New(t collectors.Target) (collectors.Collector, error) { return newCollector(t) }

func newCollector(t collectors.Target) (*Collector, error) {
	opts, err := ParseOptions(t.Options)
	if err != nil {
		return nil, err
	}
	c := &Collector{t: t, opts: opts}
	if c.rc, err = rest.NewClient(Kind, &c.t, basePath); err != nil {
		return nil, err
	}
	c.host = c.rc.Host()
	if c.domain, c.user, err = splitUser(t.Username, opts.Domain); err != nil {
		return nil, fmt.Errorf("horizon %s: %w", c.host, err)
	}
	c.rc.Header = http.Header{"Accept": {"application/json"}}
	c.rc.ErrorMessage = errorMessage
	// Horizon's answers are read whole (the throttling waits need the
	// answer's headers), so one object is one page: up to 1,000 machine
	// records of a few kilobytes.
	c.rc.Limits = rest.Limits{Response: 32 << 20, Object: 16 << 20, Budget: 32 << 20}
	c.log = c.t.Logger // collectors.New adds the kind and host
	c.sess = rest.Session{
		Active:   func() bool { return c.access != "" },
		Login:    c.renew,
		Forget:   func() { c.access = "" },
		Refused:  func(err error) bool { return rest.StatusIs(err, http.StatusUnauthorized) },
		Renewing: func() { c.log.Info("Horizon access token expired, renewing it") },
	}
	return c, nil
}

// do sends one call, waiting out the API's throttling: a 429 (or 503)
// answer is retried after X-Rate-Limit-Retry-After-Seconds (or
// Retry-After), up to maxThrottled times.
func (c *Collector) do(ctx context.Context, method, path string, body []byte, hdr http.Header) ([]byte, *http.Response, error) {
	for try := 1; ; try++ {
		b, resp, err := c.rc.Do(ctx, method, path, body, hdr)
		if try > maxThrottled || !rest.StatusIs(err, http.StatusTooManyRequests, http.StatusServiceUnavailable) {
			return b, resp, err
		}
		wait := throttleWait(resp, try)
		c.log.Debug("Horizon is throttling, waiting", "status", resp.StatusCode, "wait", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

// throttleWait is how long to wait before try+1 of a throttled call.
func throttleWait(resp *http.Response, try int) time.Duration {
	wait := time.Duration(try) * time.Second
	if resp != nil {
		for _, h := range []string{"X-Rate-Limit-Retry-After-Seconds", "Retry-After"} {
			if s, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get(h))); err == nil && s >= 0 {
				wait = time.Duration(s) * time.Second
				break
			}
		}
	}
	return min(wait, maxThrottleWait)
}

var jsonHeader = http.Header{"Content-Type": {"application/json"}}

// renew gets an access token: from the refresh token when one is held,
// else by logging in.
func (c *Collector) renew(ctx context.Context) error {
	if c.refresh != "" {
		body, _ := json.Marshal(map[string]string{"refresh_token": c.refresh})
		b, _, err := c.do(ctx, http.MethodPost, basePath+"/refresh", body, jsonHeader)
		if err == nil {
			var t tokens
			if t, err = parseTokens(b, false); err == nil {
				c.access = t.Access
				c.log.Debug("access token refreshed")
				return nil
			}
		}
		if errors.Is(err, context.Canceled) {
			return err
		}
		c.log.Info("Horizon refused the refresh token, logging in again", "error", err)
		c.refresh = ""
	}
	return c.login(ctx)
}

// login opens a session: POST /login.
func (c *Collector) login(ctx context.Context) error {
	if why := loginName(c.domain, c.user); why != "" {
		return fmt.Errorf("logging in as %s: %w (%s)", c.user, ErrLogin, why)
	}
	body, _ := json.Marshal(map[string]string{"domain": c.domain, "username": c.user, "password": c.t.Password.Reveal()})
	b, _, err := c.do(ctx, http.MethodPost, basePath+"/login", body, jsonHeader)
	var he *rest.HTTPError
	switch {
	case errors.As(err, &he) && (he.AuthFailed() || he.Status == http.StatusBadRequest):
		return fmt.Errorf("logging in as %s\\%s: %w (%s)", c.domain, c.user, ErrLogin, he.Msg)
	case err != nil:
		return fmt.Errorf("logging in: %w", err)
	}
	t, err := parseTokens(b, true)
	if err != nil {
		return fmt.Errorf("logging in: %w", err)
	}
	c.access, c.refresh = t.Access, t.Refresh
	c.log.Debug("logged in")
	return nil
}

// answer is a list call's body and headers.
type answer struct {
	body []byte
	hdr  http.Header
}

// get reads an authenticated path below the base. An expired access token
// is renewed once (refresh, else login) and the call retried.
func (c *Collector) get(ctx context.Context, path string) (answer, error) {
	return rest.WithSession(ctx, &c.sess, func() (answer, error) {
		b, resp, err := c.do(ctx, http.MethodGet, basePath+path, nil, http.Header{"Authorization": {"Bearer " + c.access}})
		if err != nil {
			return answer{}, err
		}
		return answer{body: b, hdr: resp.Header}, nil
	})
}

// list reads a list that is not paged (desktop pools, farms).
func list[T any](ctx context.Context, c *Collector, path string) ([]T, error) {
	a, err := c.get(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("horizon %s: %s: %w", c.host, path, err)
	}
	l, err := parseList[T](a.body)
	if err != nil {
		return nil, fmt.Errorf("horizon %s: %s: %w", c.host, path, err)
	}
	return l, nil
}

// listAll pages through a paged list with page and size, calling add for
// every item. It goes on while HAS_MORE_RECORDS says true or, on servers
// that do not send it, while pages come back full; a page that starts with
// the previous page's first record means the server ignores page: an error,
// not an endless loop.
func listAll[T any](ctx context.Context, c *Collector, path string, id func(*T) string, add func(*T)) error {
	size := c.opts.PageSize
	var prevFirst string
	for page := 1; ; page++ {
		a, err := c.get(ctx, fmt.Sprintf("%s?page=%d&size=%d", path, page, size))
		if err != nil {
			return c.rc.PageError(path, page, err)
		}
		l, err := parseList[T](a.body)
		if err != nil {
			return c.rc.PageError(path, page, err)
		}
		if len(l) == 0 {
			return nil
		}
		first := id(&l[0])
		if page > 1 && first != "" && first == prevFirst {
			return c.rc.PageError(path, page, fmt.Errorf("the answer repeats page %d (does the server ignore the page parameter?)", page-1))
		}
		prevFirst = first
		for i := range l {
			add(&l[i])
		}
		if more := strings.TrimSpace(a.hdr.Get("HAS_MORE_RECORDS")); more != "" {
			if !strings.EqualFold(more, "true") {
				return nil
			}
		} else if len(l) < size {
			return nil
		}
	}
}

// environment reads the pod's identity once. A pod whose cluster_guid is
// not the one recorded at `product add` (Target.InstanceID) is an error:
// the endpoint now leads to another pod.
func (c *Collector) environment(ctx context.Context) (*environment, error) {
	if c.pod != nil {
		return c.pod, nil
	}
	a, err := c.get(ctx, "/config/v1/environment-properties")
	if err != nil {
		return nil, fmt.Errorf("horizon %s: reading the pod's identity: %w", c.host, err)
	}
	e, err := parseEnvironment(a.body)
	if err != nil {
		return nil, fmt.Errorf("horizon %s: reading the pod's identity: %w", c.host, err)
	}
	if c.t.InstanceID != "" && !strings.EqualFold(c.t.InstanceID, e.ClusterGUID) {
		return nil, fmt.Errorf("horizon %s: the Connection Server belongs to the pod %s (%s), not to the pod %s recorded for this product",
			c.host, e.ClusterGUID, e.ClusterName, c.t.InstanceID)
	}
	c.pod = &e
	return c.pod, nil
}

// Identify returns the pod's cluster GUID and name.
func (c *Collector) Identify(ctx context.Context) (collectors.Identity, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.rc.EnsureSession(ctx, &c.sess); err != nil {
		return collectors.Identity{}, err
	}
	e, err := c.environment(ctx)
	if err != nil {
		return collectors.Identity{}, err
	}
	return collectors.Identity{InstanceID: e.ClusterGUID, Name: e.ClusterName}, nil
}

// Close logs out (POST /logout with the refresh token).
func (c *Collector) Close(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refresh == "" {
		c.access = ""
		return nil
	}
	body, _ := json.Marshal(map[string]string{"refresh_token": c.refresh})
	hdr := http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + c.access}}
	c.access, c.refresh = "", ""
	_, _, err := c.do(ctx, http.MethodPost, basePath+"/logout", body, hdr)
	if err != nil && !rest.StatusIs(err, http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden) {
		return fmt.Errorf("horizon %s: logging out: %w", c.host, err)
	}
	return nil
}
