package nsxt

import (
	"encoding/json"
	"fmt"

	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// Authentication modes of Options.Auth.
const (
	AuthSession = "session" // POST /api/session/create, JSESSIONID + X-XSRF-TOKEN (default)
	AuthBasic   = "basic"   // HTTP Basic on every call
)

// DefaultPageSize is the list page size asked for (NSX's largest).
const DefaultPageSize = 1000

// Options are the nsxt-specific settings of a product (Target.Options).
type Options struct {
	// Auth is "session" (default) or "basic".
	Auth string `json:"auth,omitempty"`
	// PageSize is the page_size of list calls; 0 means 1000.
	PageSize int `json:"page_size,omitempty"`
}

// ParseOptions decodes and validates raw (empty or null means defaults).
// Unknown keys and bad values are errors that name the option.
func ParseOptions(raw json.RawMessage) (Options, error) {
	var o Options
	if err := rest.DecodeOptions(Kind, raw, &o); err != nil {
		return Options{}, err
	}
	if o.Auth == "" {
		o.Auth = AuthSession
	}
	if o.Auth != AuthSession && o.Auth != AuthBasic {
		return Options{}, fmt.Errorf("nsxt options: auth %q: must be %q or %q", o.Auth, AuthSession, AuthBasic)
	}
	if o.PageSize < 0 || o.PageSize > DefaultPageSize {
		return Options{}, fmt.Errorf("nsxt options: page_size %d: must be between 1 and %d", o.PageSize, DefaultPageSize)
	}
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	return o, nil
}
