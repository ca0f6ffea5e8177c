package vra7

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// DefaultTenant is the default tenant of vRealize Automation 7.
const DefaultTenant = "vsphere.local"

// DefaultPageSize is the limit of list calls.
const DefaultPageSize = 100

// MaxPageSize is the largest limit the collector asks for.
const MaxPageSize = 1000

// Options are the vra7-specific settings of a product (Target.Options).
type Options struct {
	// Tenant is the tenant's URL name (default vsphere.local). A vRealize
	// Automation with several tenants is one product per tenant.
	Tenant string `json:"tenant,omitempty"`
	// PageSize is the limit of list calls; 0 means 100.
	PageSize int `json:"page_size,omitempty"`
}

// ParseOptions decodes and validates raw (empty or null means defaults).
// Unknown keys and bad values are errors that name the option.
func ParseOptions(raw json.RawMessage) (Options, error) {
	var o Options
	if err := rest.DecodeOptions(Kind, raw, &o); err != nil {
		return Options{}, err
	}
	o.Tenant = strings.TrimSpace(o.Tenant)
	if o.Tenant == "" {
		o.Tenant = DefaultTenant
	}
	if strings.ContainsAny(o.Tenant, "/?#% ") {
		return Options{}, fmt.Errorf("vra7 options: tenant %q: must be the tenant's URL name (e.g. %s)", o.Tenant, DefaultTenant)
	}
	if o.PageSize < 0 || o.PageSize > MaxPageSize {
		return Options{}, fmt.Errorf("vra7 options: page_size %d: must be between 1 and %d", o.PageSize, MaxPageSize)
	}
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	return o, nil
}
