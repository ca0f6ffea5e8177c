package vra8

import (
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// DefaultAPIVersion is the apiVersion sent with every IaaS call: the version
// of the reference swagger (vmware/vra-sdk-go swagger/vra-iaas.json), which
// Aria Automation 8.x releases since 8.5 serve.
const DefaultAPIVersion = "2021-07-15"

// DefaultPageSize is the $top of list calls.
const DefaultPageSize = 100

// MaxPageSize is the largest $top the collector asks for.
const MaxPageSize = 1000

var apiVersionRE = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)

// Options are the vra8-specific settings of a product (Target.Options).
type Options struct {
	// APIVersion is the IaaS apiVersion (yyyy-MM-dd); default 2021-07-15.
	APIVersion string `json:"api_version,omitempty"`
	// Domain is the directory of the user (an Active Directory or LDAP
	// domain configured in Aria Automation); "" for a local user.
	Domain string `json:"domain,omitempty"`
	// PageSize is the $top of list calls; 0 means 100.
	PageSize int `json:"page_size,omitempty"`
}

// ParseOptions decodes and validates raw (empty or null means defaults).
// Unknown keys and bad values are errors that name the option.
func ParseOptions(raw json.RawMessage) (Options, error) {
	var o Options
	if err := rest.DecodeOptions(Kind, raw, &o); err != nil {
		return Options{}, err
	}
	if o.APIVersion == "" {
		o.APIVersion = DefaultAPIVersion
	}
	if !apiVersionRE.MatchString(o.APIVersion) {
		return Options{}, fmt.Errorf("vra8 options: api_version %q: must be a date, yyyy-MM-dd (e.g. %s)", o.APIVersion, DefaultAPIVersion)
	}
	if o.PageSize < 0 || o.PageSize > MaxPageSize {
		return Options{}, fmt.Errorf("vra8 options: page_size %d: must be between 1 and %d", o.PageSize, MaxPageSize)
	}
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	return o, nil
}
