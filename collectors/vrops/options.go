package vrops

import (
	"encoding/json"
	"fmt"

	"github.com/usagemeter/usagemeter/collectors/internal/aria"
	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// DefaultPageSize is the pageSize of the resource list: the suite API's own
// default (1,000).
const DefaultPageSize = 1000

// MaxPageSize is the largest pageSize the collector asks for.
const MaxPageSize = 5000

// Options are the vrops-specific settings of a product (Target.Options).
type Options struct {
	// Mode is how the product is billed: "addon" (default, the Flex
	// add-on: capped billed vRAM of the monitored VMs) or "standalone"
	// (the non-unique count of monitored VMs). Chosen when the product is
	// added; a change applies from the hour it is collected with.
	Mode string `json:"mode,omitempty"`
	// AuthSource is the authentication source of the user (an LDAP or
	// vIDM source name); "" means the local users.
	AuthSource string `json:"auth_source,omitempty"`
	// PageSize is the pageSize of the resource list; 0 means 1000.
	PageSize int `json:"page_size,omitempty"`
}

// ParseOptions decodes and validates raw (empty or null means defaults).
// Unknown keys and bad values are errors that name the option.
func ParseOptions(raw json.RawMessage) (Options, error) {
	var o Options
	if err := rest.DecodeOptions(Kind, raw, &o); err != nil {
		return Options{}, err
	}
	var err error
	if o.Mode, err = aria.ParseMode(Kind, o.Mode); err != nil {
		return Options{}, err
	}
	if o.PageSize < 0 || o.PageSize > MaxPageSize {
		return Options{}, fmt.Errorf("vrops options: page_size %d: must be between 1 and %d", o.PageSize, MaxPageSize)
	}
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	return o, nil
}
