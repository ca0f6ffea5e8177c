// Package vsphere is the vSphere SOAP plumbing the collectors that talk to a
// vCenter share (the vcenter collector, and NSX-V for its paired vCenter):
// endpoint normalisation, a TLS dial verified by tlsutil alone (system roots
// or the accepted thumbprint), login with InvalidLogin classified as bad
// credentials, and the session faults that call for a new login.
package vsphere

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// SDKURL turns "host", "host:port" or "https://host[:port][/sdk]" into the
// SOAP endpoint URL, without user information.
func SDKURL(endpoint string) (*url.URL, error) {
	e := strings.TrimSpace(endpoint)
	if !strings.Contains(e, "://") {
		e = "https://" + e
	}
	u, err := url.Parse(e)
	if err != nil || u.Hostname() == "" {
		return nil, fmt.Errorf("endpoint %q: not a URL or host name", endpoint)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("endpoint %q: scheme must be https", endpoint)
	}
	u.User = nil
	if u.Path == "" || u.Path == "/" {
		u.Path = vim25.Path
	}
	return u, nil
}

// Call runs one remote call under its own deadline; collectors pass theirs.
type Call func(ctx context.Context, f func(ctx context.Context) error) error

// Connect opens a SOAP client to u. TLS is verified by tlsutil alone: govmomi's
// own dialer, which dials without the context and has its own thumbprint
// rules, is replaced. On error nothing stays open.
func Connect(ctx context.Context, u *url.URL, thumbprint string, dialer *net.Dialer, call Call) (*vim25.Client, error) {
	sc := soap.NewClient(u, false)
	sc.UserAgent = "usagemeter"
	tr := sc.DefaultTransport()
	cfg := tlsutil.Config(u.Hostname(), thumbprint, nil)
	tr.TLSClientConfig = cfg
	tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := tls.Dialer{NetDialer: dialer, Config: cfg}
		return d.DialContext(ctx, network, addr)
	}
	var vc *vim25.Client
	err := call(ctx, func(ctx context.Context) error {
		var err error
		vc, err = vim25.NewClient(ctx, sc)
		return err
	})
	if err != nil {
		sc.CloseIdleConnections()
		return nil, err
	}
	return vc, nil
}

// Login opens a session on vc: one attempt, no retry. A refused user name or
// password is collectors.ErrBadCredentials (never retried within the hour).
func Login(ctx context.Context, vc *vim25.Client, user, password string, call Call) error {
	err := call(ctx, func(ctx context.Context) error {
		return session.NewManager(vc).Login(ctx, url.UserPassword(user, password))
	})
	if err != nil && fault.Is(err, &types.InvalidLogin{}) {
		return collectors.ErrBadCredentials
	}
	return err
}

// IsNotAuthenticated says the session is gone on the server (expired, or
// the vCenter restarted): log in again.
func IsNotAuthenticated(err error) bool {
	return fault.Is(err, &types.NotAuthenticated{})
}

// Logout ends vc's session.
func Logout(ctx context.Context, vc *vim25.Client, call Call) error {
	return call(ctx, func(ctx context.Context) error { return session.NewManager(vc).Logout(ctx) })
}
