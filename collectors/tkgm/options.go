package tkgm

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// Metrics accepted in Options.Metric: what TKGm is billed on, as
// tanzu_metric chooses it for TKGs on a vCenter.
const (
	MetricVRAM  = "vram"
	MetricCores = "cores"
)

// DefaultPageSize is the limit of a list call: the page size kubectl asks
// for (500).
const DefaultPageSize = 500

// MaxPageSize is the largest limit the collector asks for.
const MaxPageSize = 5000

// Options are the tkgm-specific settings of a product (Target.Options).
type Options struct {
	// Metric is "vram" (default: capped billed vRAM of the cluster VMs)
	// or "cores" (physical cores of the hosts running them).
	Metric string `json:"metric,omitempty"`
	// PageSize is the limit of list calls; 0 means 500.
	PageSize int `json:"page_size,omitempty"`
	// CA is the certificate authority of the API server, PEM, or base64 of
	// PEM as a kubeconfig's certificate-authority-data holds it. "" trusts
	// the system roots; an accepted thumbprint (--accept-thumbprint) pins
	// the server's certificate instead.
	CA string `json:"ca,omitempty"`

	roots *x509.CertPool
}

// ParseOptions decodes and validates raw (empty or null means defaults).
// Unknown keys and bad values are errors that name the option.
func ParseOptions(raw json.RawMessage) (Options, error) {
	var o Options
	if err := rest.DecodeOptions(Kind, raw, &o); err != nil {
		return Options{}, err
	}
	switch o.Metric {
	case "":
		o.Metric = MetricVRAM
	case MetricVRAM, MetricCores:
	default:
		return Options{}, fmt.Errorf("tkgm options: metric %q: must be %q or %q", o.Metric, MetricVRAM, MetricCores)
	}
	if o.PageSize < 0 || o.PageSize > MaxPageSize {
		return Options{}, fmt.Errorf("tkgm options: page_size %d: must be between 1 and %d", o.PageSize, MaxPageSize)
	}
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	if ca := strings.TrimSpace(o.CA); ca != "" {
		pem := []byte(ca)
		if !strings.HasPrefix(ca, "-----BEGIN") {
			b, err := base64.StdEncoding.DecodeString(ca)
			if err != nil {
				return Options{}, fmt.Errorf("tkgm options: ca: neither PEM nor base64 of PEM: %v", err)
			}
			pem = b
		}
		o.roots = x509.NewCertPool()
		if !o.roots.AppendCertsFromPEM(pem) {
			return Options{}, fmt.Errorf("tkgm options: ca: no PEM certificate in it")
		}
	}
	return o, nil
}
