package aria

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// maxThrottled is how many 503 (or 429) answers one call waits out.
const maxThrottled = 5

// Config is what differs between the Aria products' connections.
type Config struct {
	Kind    string // product kind, first word of errors
	Product string // display name, in log lines
	APIPath string // the API's path below the endpoint, e.g. /api/ni
	Scheme  string // the Authorization scheme of the token, e.g. NetworkInsight
	Limits  rest.Limits
	// ErrorMessage extracts the message of an error answer's body.
	ErrorMessage func(body []byte) string
	// NotPaired is the error of a product not paired with a vCenter.
	NotPaired error
}

// Conn is an Aria product's connection: its REST client, the paired
// vCenter, and the token with its session. Calls through it are not
// safe for concurrent use (each collector serialises its own).
type Conn struct {
	cfg  Config
	RC   *rest.Client
	Host string // the product's host name
	Log  *slog.Logger
	Tok  Token
	Sess rest.Session
	// The paired vCenter: its instance UUID (lower case) and the host
	// name it was added with (as given; "" if it does not parse).
	VCenterUUID, VCenterName string
}

// Connect validates t (endpoint, user, pairing) and returns a connection
// whose session logs in with login. It contacts nothing. t must outlive
// the connection (the collector's own Target).
func Connect(t *collectors.Target, cfg Config, login func(context.Context) error) (*Conn, error) {
	rc, err := rest.NewClient(cfg.Kind, t, cfg.APIPath)
	if err != nil {
		return nil, err
	}
	c := &Conn{cfg: cfg, RC: rc, Host: rc.Host(), Log: t.Logger} // collectors.New adds the kind and host to the logger
	if t.Paired == nil || t.Paired.InstanceID == "" {
		return nil, fmt.Errorf("%s %s: %w", cfg.Kind, c.Host, cfg.NotPaired)
	}
	c.VCenterUUID = strings.ToLower(strings.TrimSpace(t.Paired.InstanceID))
	if u, err := rest.ParseEndpoint("vcenter", t.Paired.Endpoint, ""); err == nil {
		c.VCenterName = u.Hostname()
	}
	rc.Header = http.Header{"Accept": {"application/json"}}
	rc.ErrorMessage = cfg.ErrorMessage
	rc.Limits = cfg.Limits
	rc.ThrottleLogged(maxThrottled, c.Log, cfg.Product+" is busy, waiting")
	c.Sess = c.Tok.Session(cfg.Product, c.Log, login)
	return c, nil
}

// Login posts body (the credentials, JSON) to path below the API and keeps
// the token parse reads from the answer (its value and expiry, epoch ms).
// An answer that refuses the credentials is errLogin, naming user.
func (c *Conn) Login(ctx context.Context, path string, body []byte, user string, errLogin error, parse func([]byte) (string, int64, error)) error {
	b, _, err := c.RC.Do(ctx, http.MethodPost, c.cfg.APIPath+path, body, http.Header{"Content-Type": {"application/json"}})
	var he *rest.HTTPError
	switch {
	case errors.As(err, &he) && he.AuthFailed():
		return fmt.Errorf("logging in as %s: %w (%s)", user, errLogin, he.Msg)
	case err != nil:
		return fmt.Errorf("logging in: %w", err)
	}
	tok, exp, err := parse(b)
	if err != nil {
		return fmt.Errorf("logging in: %w", err)
	}
	c.Tok.Set(tok, exp)
	c.Log.Debug("token created", "expires", c.Tok.Expires)
	return nil
}

// EnsureSession logs in when no token is held, so that a refused login
// reads as one.
func (c *Conn) EnsureSession(ctx context.Context) error {
	return c.RC.EnsureSession(ctx, &c.Sess)
}

func (c *Conn) auth() http.Header {
	return http.Header{"Authorization": {c.cfg.Scheme + " " + c.Tok.Value}}
}

// Call sends an authenticated request to path below the API (body, if
// any, JSON) and decodes the answer into v as it arrives. With a kept
// token, a 401/403 logs in again once and retries.
func (c *Conn) Call(ctx context.Context, method, path string, body []byte, v any) error {
	_, err := rest.WithSession(ctx, &c.Sess, func() (struct{}, error) {
		hdr := c.auth()
		if body != nil {
			hdr.Set("Content-Type", "application/json")
		}
		return struct{}{}, c.RC.DoJSON(ctx, method, c.cfg.APIPath+path, body, hdr, v)
	})
	return err
}

// Logout ends the token held, if any, with method on path below the API
// (what ends it on this product); a token the product refuses is gone
// already.
func (c *Conn) Logout(ctx context.Context, method, path string) error {
	if c.Tok.Value == "" {
		return nil
	}
	hdr := c.auth()
	c.Tok.Value = ""
	return c.RC.Logout(ctx, method, c.cfg.APIPath+path, hdr)
}
