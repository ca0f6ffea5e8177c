// Package tlsutil verifies product certificates the way the appliance trusts
// them: by the system roots, or, failing that, only by the SHA-256 thumbprint
// an admin accepted. It also describes a certificate for `product test`.
package tlsutil

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// ErrUntrusted is returned when a certificate is neither trusted by the system
// nor pinned by an accepted thumbprint.
var ErrUntrusted = errors.New("certificate not trusted")

// ErrChanged is returned when a product presents a certificate whose
// thumbprint differs from the one the admin accepted.
var ErrChanged = errors.New("certificate changed")

// CertError carries the thumbprint seen so that the admin can be told exactly
// what changed.
type CertError struct {
	Err      error  // ErrUntrusted or ErrChanged
	Seen     string // thumbprint presented
	Accepted string // thumbprint accepted, "" if none
	Host     string
}

func (e *CertError) Error() string {
	if errors.Is(e.Err, ErrChanged) {
		return fmt.Sprintf("%s: certificate changed: presented SHA-256 thumbprint %s, accepted %s; check the product and accept the new thumbprint if it is expected", e.Host, e.Seen, e.Accepted)
	}
	return fmt.Sprintf("%s: certificate not trusted by the system (SHA-256 thumbprint %s); accept it with --accept-thumbprint after checking it", e.Host, e.Seen)
}

func (e *CertError) Unwrap() error { return e.Err }

// Thumbprint returns the SHA-256 fingerprint of a DER certificate as upper-case
// hex pairs separated by colons (the form vSphere shows).
func Thumbprint(der []byte) string {
	sum := sha256.Sum256(der)
	var b strings.Builder
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// Normalize canonicalises a thumbprint typed by an admin (any case, with or
// without colons).
func Normalize(t string) string {
	t = strings.ToUpper(strings.NewReplacer(":", "", " ", "", "-", "").Replace(strings.TrimSpace(t)))
	if len(t)%2 != 0 {
		return t
	}
	var b strings.Builder
	for i := 0; i < len(t); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(t[i : i+2])
	}
	return b.String()
}

// Config returns a tls.Config for host that accepts a certificate chain the
// system trusts, or else only a leaf whose thumbprint equals accepted.
// roots may be nil for the system pool.
func Config(host string, accepted string, roots *x509.CertPool) *tls.Config {
	accepted = Normalize(accepted)
	return &tls.Config{
		ServerName:         host,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // verification is done below, with the same rules plus pinning
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return &CertError{Err: ErrUntrusted, Host: host}
			}
			leaf := cs.PeerCertificates[0]
			seen := Thumbprint(leaf.Raw)
			if accepted != "" {
				if seen == accepted {
					return nil
				}
				return &CertError{Err: ErrChanged, Seen: seen, Accepted: accepted, Host: host}
			}
			opts := x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: x509.NewCertPool()}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			if _, err := leaf.Verify(opts); err != nil {
				return &CertError{Err: ErrUntrusted, Seen: seen, Host: host}
			}
			return nil
		},
	}
}

// CertInfo describes a presented certificate.
type CertInfo struct {
	Subject    string
	Issuer     string
	NotBefore  time.Time
	NotAfter   time.Time
	Thumbprint string
	DNSNames   []string
}

// Probe connects to endpoint (a URL or host:port) and returns its leaf
// certificate without trusting it, for `product test` to show.
func Probe(ctx context.Context, endpoint string) (CertInfo, error) {
	hostport, err := HostPort(endpoint)
	if err != nil {
		return CertInfo{}, err
	}
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}}
	conn, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return CertInfo{}, fmt.Errorf("connecting to %s: %w", hostport, err)
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return CertInfo{}, fmt.Errorf("%s presented no certificate", hostport)
	}
	return Describe(certs[0]), nil
}

// Describe summarises a certificate.
func Describe(c *x509.Certificate) CertInfo {
	return CertInfo{
		Subject:    c.Subject.String(),
		Issuer:     c.Issuer.String(),
		NotBefore:  c.NotBefore,
		NotAfter:   c.NotAfter,
		Thumbprint: Thumbprint(c.Raw),
		DNSNames:   c.DNSNames,
	}
}

// HostPort extracts host:port from a URL or host[:port], defaulting to 443.
func HostPort(endpoint string) (string, error) {
	if !strings.Contains(endpoint, "://") {
		endpoint = "https://" + endpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("endpoint %q: not a URL or host name", endpoint)
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "443"), nil
	}
	return u.Host, nil
}
