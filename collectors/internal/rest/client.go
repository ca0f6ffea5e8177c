package rest

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
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// DefaultTimeout is the per-call deadline when Target.Timeout is not set.
const DefaultTimeout = collectors.DefaultTimeout

// maxErrorBody bounds what is read of a non-2xx answer (for its message).
const maxErrorBody = 64 << 10

// drainBody is how much of an answer is read past its decoded value, so
// that the connection can be reused (a product sends a newline, maybe).
const drainBody = 4 << 10

// Client sends one collector's calls to its product: every call under its
// own deadline (Target.Timeout, read at each call), TLS verified by the
// system roots or the accepted thumbprint, the answer decoded as it
// arrives within Limits, a non-2xx answer returned as an *HTTPError.
type Client struct {
	Kind   string             // product kind, first word of messages
	Base   *url.URL           // paths are appended to its path
	HTTP   *http.Client       //
	Target *collectors.Target // the collector's target (Timeout)
	// Limits bound what one answer may cost (fields left 0:
	// DefaultLimits). Set them to what the product could send for one page.
	Limits Limits
	// Header is sent on every call; the call's own headers win.
	Header http.Header
	// ErrorMessage extracts the message of a non-2xx answer's body (nil:
	// Snippet).
	ErrorMessage func(body []byte) string
	// Throttle is how many 429 Too Many Requests or 503 Service
	// Unavailable answers one call waits out (an API rate limit, a node
	// starting; 0: none), each for Retry-After seconds, else 200 ms times
	// the try. Throttled, if set, is told of each wait (to log it).
	Throttle  int
	Throttled func(status int, wait time.Duration)
}

// NewClient validates t (the endpoint, which must be https, and the user
// name), fills in its defaults (Target.SetDefaults) and
// returns a client for it. trim is a path suffix the endpoint may carry that
// is not part of the base URL (e.g. "/api"). t must outlive the client: the
// collector's own Target, whose Timeout tests may change.
func NewClient(kind string, t *collectors.Target, trim string) (*Client, error) {
	base, err := ParseEndpoint(kind, t.Endpoint, trim)
	if err != nil {
		return nil, err
	}
	if t.Username == "" {
		return nil, fmt.Errorf("%s %s: a user name is required", kind, base.Hostname())
	}
	t.SetDefaults()
	return &Client{Kind: kind, Base: base, HTTP: NewHTTPClient(base.Hostname(), t.Thumbprint), Target: t}, nil
}

// ParseEndpoint turns "host", "host:port" or "https://host[:port][/path]"
// into a base URL: https only, without user, query or fragment, the path
// without a trailing "/" nor the suffix trim.
func ParseEndpoint(kind, endpoint, trim string) (*url.URL, error) {
	e := strings.TrimSpace(endpoint)
	if !strings.Contains(e, "://") {
		e = "https://" + e
	}
	u, err := url.Parse(e)
	if err != nil || u.Hostname() == "" {
		return nil, fmt.Errorf("%s endpoint %q: not a URL or host name", kind, endpoint)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("%s endpoint %q: scheme must be https", kind, endpoint)
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	u.Path = strings.TrimSuffix(u.Path, "/")
	if trim != "" {
		u.Path = strings.TrimSuffix(u.Path, trim)
	}
	return u, nil
}

// NewHTTPClient is an HTTP client to host that trusts the system roots or
// the accepted thumbprint (tlsutil.Config); a refused certificate is a
// *tlsutil.CertError.
func NewHTTPClient(host, thumbprint string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     tlsutil.Config(host, thumbprint, nil),
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}}
}

// ThrottleLogged makes each call wait out up to n refusals for load (see
// Throttle), each wait logged at debug level to log as msg with the status
// and the wait.
func (c *Client) ThrottleLogged(n int, log *slog.Logger, msg string) {
	c.Throttle = n
	c.Throttled = func(status int, wait time.Duration) {
		log.Debug(msg, "status", status, "wait", wait)
	}
}

// Host is the product's host name.
func (c *Client) Host() string { return c.Base.Hostname() }

// Basic is the value of an Authorization header for HTTP Basic.
func Basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// HTTPError is a non-2xx answer.
type HTTPError struct {
	Status int
	Msg    string // the product's message, "" if none
}

func (e *HTTPError) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, http.StatusText(e.Status), e.Msg)
}

// AuthFailed reports whether the answer refuses the credentials or session
// (401 or 403).
func (e *HTTPError) AuthFailed() bool {
	return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
}

// Do sends one request, each try under its own deadline, waiting out up to
// Throttle refusals for load. path may carry a query. It returns the body of
// a 2xx answer, read whole and so at most Limits.Object (logins, small
// documents; lists go through DoJSON or DoXML), and the response (its body
// closed; for the headers and cookies); a non-2xx answer is an *HTTPError,
// returned with the response.
func (c *Client) Do(ctx context.Context, method, path string, body []byte, hdr http.Header) ([]byte, *http.Response, error) {
	var b []byte
	resp, err := c.send(ctx, method, path, body, hdr, true, func(m *meter) error {
		var err error
		b, err = io.ReadAll(m)
		return err
	})
	if err != nil {
		return nil, resp, err
	}
	return b, resp, nil
}

// DoJSON sends one request as Do does and decodes a 2xx answer into v as
// it arrives (see decodeJSON: v's list fields element by element), within
// Limits: an answer past one is a *LimitError naming the product kind, the
// call and the limit. Other errors are those of Do and of DecodeJSON.
func (c *Client) DoJSON(ctx context.Context, method, path string, body []byte, hdr http.Header, v any) error {
	_, err := c.send(ctx, method, path, body, hdr, false, func(m *meter) error { return decodeJSON(m, v) })
	return err
}

// DoXML is DoJSON for an XML answer (see DecodeXML).
func (c *Client) DoXML(ctx context.Context, method, path string, body []byte, hdr http.Header, v any) error {
	_, err := c.send(ctx, method, path, body, hdr, false, func(m *meter) error { return decodeXML(m, v) })
	return err
}

// send runs the tries of one call; read consumes a 2xx answer, read whole
// (within Limits.Object) when whole.
func (c *Client) send(ctx context.Context, method, path string, body []byte, hdr http.Header, whole bool, read func(*meter) error) (*http.Response, error) {
	for try := 1; ; try++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		resp, err := c.do(ctx, method, path, rd, hdr, whole, read)
		var he *HTTPError
		if try > c.Throttle || !errors.As(err, &he) || (he.Status != http.StatusTooManyRequests && he.Status != http.StatusServiceUnavailable) {
			return resp, err
		}
		wait := time.Duration(try) * 200 * time.Millisecond
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			wait = time.Duration(s) * time.Second
		}
		if c.Throttled != nil {
			c.Throttled(he.Status, wait)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// do is one try of send.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, hdr http.Header, whole bool, read func(*meter) error) (*http.Response, error) {
	timeout := c.Target.Timeout
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u := *c.Base
	p, q, _ := strings.Cut(path, "?")
	u.Path += p
	u.RawQuery = q
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	for k, v := range c.Header {
		req.Header[k] = v
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "usagemeter")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, Deadline(ctx, timeout, err)
	}
	// Closing a body not read to its end drops the connection, which is
	// what an answer stopped at a limit needs.
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if err != nil || ctx.Err() != nil {
			// A message cut short by the deadline is not the product's.
			return nil, Deadline(ctx, timeout, fmt.Errorf("reading the answer: %w", errors.Join(err, ctx.Err())))
		}
		msg := c.ErrorMessage
		if msg == nil {
			msg = Snippet
		}
		return resp, &HTTPError{Status: resp.StatusCode, Msg: msg(b)}
	}
	lim := c.Limits.orDefault()
	if whole {
		lim.Response = min(lim.Response, lim.Object)
	}
	call := method + " " + path
	m := newMeter(resp.Body, lim, func(which string, limit int64) error {
		return &LimitError{Kind: c.Kind, Call: call, Which: which, Limit: limit}
	})
	if err := read(m); err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, err
		}
		if ctx.Err() != nil {
			// The deadline passed while the answer came in: a body cut
			// short by it is not the product's answer, so say deadline,
			// not "malformed".
			return nil, Deadline(ctx, timeout, err)
		}
		return nil, err
	}
	if ctx.Err() != nil {
		// An answer read as the deadline passed is not taken for the
		// product's: net/http hands over an answer that races its
		// cancel, e.g. the empty "200 OK" of a server that returned
		// when this client gave up.
		return nil, Deadline(ctx, timeout, fmt.Errorf("reading the answer: %w", ctx.Err()))
	}
	// Read to the end (a trailing newline), so the connection is reused.
	_, _ = io.CopyN(io.Discard, resp.Body, drainBody)
	return resp, nil
}

// Call runs f under its own deadline of timeout, for calls that do not go
// through Do (e.g. a SOAP client), and says so when the deadline expired.
func Call(ctx context.Context, timeout time.Duration, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return Deadline(ctx, timeout, f(ctx))
}

// Deadline says what happened when ctx, a call's own context of timeout,
// expired: err is then a context.DeadlineExceeded that reads "(no answer
// within the <timeout> deadline)"; when ctx was cancelled, err wraps
// context.Canceled. Other errors, and nil, are returned as
// they are; an error already said so is not said twice.
func Deadline(ctx context.Context, timeout time.Duration, err error) error {
	if err == nil {
		return nil
	}
	var de *deadlineError
	if errors.As(err, &de) {
		return err
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	// Cancelled (the daemon stops): a body cut short by it may decode as
	// truncated, which is not the product's fault either.
	if errors.Is(ctx.Err(), context.Canceled) && !errors.Is(err, context.Canceled) {
		err = fmt.Errorf("%w: %w", context.Canceled, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &deadlineError{err: err, timeout: timeout}
	}
	return err
}

type deadlineError struct {
	err     error
	timeout time.Duration
}

func (e *deadlineError) Error() string {
	return fmt.Sprintf("%v (no answer within the %s deadline)", e.err, e.timeout)
}

func (e *deadlineError) Unwrap() error { return e.err }

// PageError is an error reading one page of a paged list; it reads
// "<kind> <host>: <list> page <n>: <error>".
type PageError struct {
	Kind, Host string
	List       string // what is listed: a path, a query type, "edges"
	Page       int    // 1-based
	Err        error
}

func (e *PageError) Error() string {
	return fmt.Sprintf("%s %s: %s page %d: %v", e.Kind, e.Host, e.List, e.Page, e.Err)
}

func (e *PageError) Unwrap() error { return e.Err }

// PageError is a *PageError of this client's product.
func (c *Client) PageError(list string, page int, err error) error {
	return &PageError{Kind: c.Kind, Host: c.Host(), List: list, Page: page, Err: err}
}
