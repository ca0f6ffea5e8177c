package srm

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// APIVersions are the SRM REST API versions the collector speaks (the
// reference's 1.0.0 and 2.0.0: /api/rest/srm/v1 and /api/rest/srm/v2).
var APIVersions = []string{"v1", "v2"}

// DefaultPageSize is the limit of list calls: SRM's own default
// (defaultResponsePageSize, 100), which every server accepts.
const DefaultPageSize = 100

// MaxPageSize is the largest limit the collector asks for.
const MaxPageSize = 1000

// Options are the srm-specific settings of a product (Target.Options).
type Options struct {
	// APIVersion is "v1" (default) or "v2".
	APIVersion string `json:"api_version,omitempty"`
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
	if o.APIVersion == "" {
		o.APIVersion = APIVersions[0]
	}
	if !slices.Contains(APIVersions, o.APIVersion) {
		return Options{}, fmt.Errorf("srm options: api_version %q: must be one of %s", o.APIVersion, strings.Join(APIVersions, ", "))
	}
	if o.PageSize < 0 || o.PageSize > MaxPageSize {
		return Options{}, fmt.Errorf("srm options: page_size %d: must be between 1 and %d", o.PageSize, MaxPageSize)
	}
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	return o, nil
}
