package vcda

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// APIVersions are the VCDA API versions the collector knows, oldest first
// (application/vnd.vmware.h4-v<X.Y>+json). When the configured one is not
// offered, these are probed to name those that are.
var APIVersions = []string{"4.0", "4.1", "4.2", "4.3", "4.4", "4.5", "4.6", "4.7"}

// DefaultAPIVersion is the version asked for when none is configured: the
// reference the collector was written from (4.5; 4.6 and 4.7 read the same
// fields).
const DefaultAPIVersion = "4.5"

// Login types (the reference's POST /sessions "type").
const (
	AuthVCD   = "vcd"   // {"type":"vcdCredentials","vcdUser","vcdPassword"}: a Cloud Director user, user@System
	AuthLocal = "local" // {"type":"localUser","localUser","localPassword"}: the appliance's root
	AuthSSO   = "sso"   // {"type":"ssoCredentials","username","password"}: a vCenter SSO user
)

// DefaultPageSize is the limit of list calls: VCDA's own default and
// largest limit ("If omitted or higher than the server's limits, defaults to
// 100").
const DefaultPageSize = 100

// MaxPageSize is the largest limit the collector asks for.
const MaxPageSize = 1000

// Options are the vcda-specific settings of a product (Target.Options).
type Options struct {
	// APIVersion is the h4 API version, e.g. "4.5" (default).
	APIVersion string `json:"api_version,omitempty"`
	// Auth is the login type: "vcd" (default), "local" or "sso".
	Auth string `json:"auth,omitempty"`
	// PageSize is the limit of list calls; 0 means 100.
	PageSize int `json:"page_size,omitempty"`
	// Site is the local site's name, used to tell incoming from outgoing
	// replications; "" means the site the session authenticated with.
	Site string `json:"site,omitempty"`
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
	if !slices.Contains(APIVersions, o.APIVersion) {
		return Options{}, fmt.Errorf("vcda options: api_version %q: must be one of %s", o.APIVersion, strings.Join(APIVersions, ", "))
	}
	if o.Auth == "" {
		o.Auth = AuthVCD
	}
	if o.Auth != AuthVCD && o.Auth != AuthLocal && o.Auth != AuthSSO {
		return Options{}, fmt.Errorf("vcda options: auth %q: must be one of %s, %s, %s", o.Auth, AuthVCD, AuthLocal, AuthSSO)
	}
	if o.PageSize < 0 || o.PageSize > MaxPageSize {
		return Options{}, fmt.Errorf("vcda options: page_size %d: must be between 1 and %d", o.PageSize, MaxPageSize)
	}
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	o.Site = strings.TrimSpace(o.Site)
	return o, nil
}
