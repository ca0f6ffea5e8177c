package nsxv

import (
	"encoding/json"
	"fmt"

	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// DefaultPageSize is the page size of the logical switch and edge lists
// (the largest the API accepts).
const DefaultPageSize = 1024

// Options are the nsxv-specific settings of a product (Target.Options).
type Options struct {
	// PageSize is the pagesize of list calls, 1 to 1024; 0 means 1024.
	PageSize int `json:"page_size,omitempty"`
}

// ParseOptions decodes and validates raw (empty or null means defaults).
// Unknown keys and bad values are errors that name the option.
func ParseOptions(raw json.RawMessage) (Options, error) {
	var o Options
	if err := rest.DecodeOptions(Kind, raw, &o); err != nil {
		return Options{}, err
	}
	if o.PageSize < 0 || o.PageSize > DefaultPageSize {
		return Options{}, fmt.Errorf("nsxv options: page_size %d: must be between 1 and %d", o.PageSize, DefaultPageSize)
	}
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	return o, nil
}
