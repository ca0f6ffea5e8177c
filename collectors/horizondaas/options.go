package horizondaas

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// APIVersions are the DaaS REST API versions the collector speaks: v100,
// the one version the reference's DtPlatform lists (/dt-rest/v100).
var APIVersions = []string{"v100"}

// DefaultPageSize is the limit of the session list calls.
const DefaultPageSize = 100

// MaxPageSize is the largest limit the collector asks for.
const MaxPageSize = 1000

// Options are the horizon-daas settings of a product (Target.Options).
type Options struct {
	// Domain is the service provider's login domain (the reference's
	// DtCredentials domain). Empty: taken from the user name, written
	// DOMAIN\user or user@domain.
	Domain string `json:"domain,omitempty"`
	// APIVersion is "v100" (default).
	APIVersion string `json:"api_version,omitempty"`
	// PageSize is the limit of session list calls; 0 means 100.
	PageSize int `json:"page_size,omitempty"`
}

// ParseOptions decodes and validates raw (empty or null means defaults).
// Unknown keys and bad values are errors that name the option.
func ParseOptions(raw json.RawMessage) (Options, error) {
	var o Options
	if err := rest.DecodeOptions(Kind, raw, &o); err != nil {
		return Options{}, err
	}
	o.Domain = strings.TrimSpace(o.Domain)
	if o.APIVersion == "" {
		o.APIVersion = APIVersions[0]
	}
	if !slices.Contains(APIVersions, o.APIVersion) {
		return Options{}, fmt.Errorf("%s options: api_version %q: must be one of %s", Kind, o.APIVersion, strings.Join(APIVersions, ", "))
	}
	if o.PageSize < 0 || o.PageSize > MaxPageSize {
		return Options{}, fmt.Errorf("%s options: page_size %d: must be between 1 and %d", Kind, o.PageSize, MaxPageSize)
	}
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	return o, nil
}

// credentials splits the login user name into user and domain: DOMAIN\user,
// user@domain, or the user name as it is with the domain option. "" domain
// when neither gives one.
func credentials(username, domain string) (user, dom string) {
	if d, u, ok := strings.Cut(username, `\`); ok {
		return u, d
	}
	if domain != "" {
		return username, domain
	}
	if i := strings.LastIndexByte(username, '@'); i > 0 {
		return username[:i], username[i+1:]
	}
	return username, ""
}
