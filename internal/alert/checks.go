package alert

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"time"

	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// Thresholds of the daily endpoint checks.
const (
	CertificateWarning = 30 * 24 * time.Hour // warn this long before a product certificate expires
	MaxClockSkew       = 5 * time.Minute     // of a product's clock against ours
)

// CheckEndpoint is the daily check of one product: its certificate's expiry
// and its clock (the HTTP Date header) against the appliance's. It raises or
// resolves the certificate_expiring and clock_skew alerts, and returns the
// certificate's expiry (zero when the product did not answer).
func (e *Engine) CheckEndpoint(ctx context.Context, p store.Product) (time.Time, error) {
	var notAfter time.Time
	err := e.checkEndpoint(ctx, p, &notAfter)
	return notAfter, err
}

func (e *Engine) checkEndpoint(ctx context.Context, p store.Product, notAfter *time.Time) error {
	now := e.now()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	info, err := tlsutil.Probe(ctx, p.Endpoint)
	if err != nil {
		return err // unreachable: the hourly collection alerts on that
	}
	*notAfter = info.NotAfter
	left := info.NotAfter.Sub(now)
	if left < CertificateWarning {
		what := fmt.Sprintf("The certificate of %s (subject %s, SHA-256 %s) expires on %s, in %d days.", productName(p), info.Subject, info.Thumbprint, info.NotAfter.Format(time.RFC1123), int(left.Hours()/24))
		if left <= 0 {
			what = fmt.Sprintf("The certificate of %s (subject %s) expired on %s.", productName(p), info.Subject, info.NotAfter.Format(time.RFC1123))
		}
		if err := e.Raise(ctx, KindCertificateExpiry, p.ID, fmt.Sprintf("certificate of %s expires %s", p.Endpoint, info.NotAfter.Format("2006-01-02")), what,
			fmt.Sprintf("Renew the certificate of %s. If the appliance trusts it by thumbprint, accept the new one afterwards with usagemeter product set-thumbprint %d NEW-THUMBPRINT.", p.Endpoint, p.ID), ""); err != nil {
			return err
		}
	} else if err := e.Resolve(ctx, KindCertificateExpiry, p.ID, "certificate of "+p.Endpoint+" renewed", "The certificate of "+productName(p)+" is now valid until "+info.NotAfter.Format(time.RFC1123)+"."); err != nil {
		return err
	}

	host, _, _ := splitHost(p.Endpoint)
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfigFor(host, p.Thumbprint)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, p.Endpoint, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil // no Date to compare
	}
	resp.Body.Close()
	theirs, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return nil
	}
	skew := time.Until(theirs)
	if skew < 0 {
		skew = -skew
	}
	if skew > MaxClockSkew {
		return e.Raise(ctx, KindClockSkew, p.ID, fmt.Sprintf("clock of %s differs by %s", p.Endpoint, skew.Round(time.Second)),
			fmt.Sprintf("%s reports the time %s while the appliance's clock says %s: a difference of %s. Collection hours are stamped with the appliance's clock; a product far off in time may refuse logins (tokens, Kerberos) or report usage in the wrong hour.", productName(p), theirs.UTC().Format(time.RFC3339), time.Now().UTC().Format(time.RFC3339), skew.Round(time.Second)),
			"Check NTP on the product and on the appliance (chronyc tracking).", "")
	}
	return e.Resolve(ctx, KindClockSkew, p.ID, "clock of "+p.Endpoint+" in sync", "The clock of "+productName(p)+" agrees with the appliance's again.")
}

func splitHost(endpoint string) (string, string, error) {
	hp, err := tlsutil.HostPort(endpoint)
	if err != nil {
		return "", "", err
	}
	for i := len(hp) - 1; i >= 0; i-- {
		if hp[i] == ':' {
			h := hp[:i]
			if len(h) > 1 && h[0] == '[' {
				h = h[1 : len(h)-1]
			}
			return h, hp[i+1:], nil
		}
	}
	return hp, "", nil
}

func tlsConfigFor(host, thumbprint string) *tls.Config { return tlsutil.Config(host, thumbprint, nil) }
