package vcd

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// DefaultPageSize is the query page size asked for: VCD's default largest
// page (restapi.queryservice.maxPageSize); a VCD configured lower clamps it.
const DefaultPageSize = 128

// MinAPIVersion is the oldest API version the collector speaks: the provider
// login through /cloudapi needs 33.0 (VCD 10.0).
const MinAPIVersion = "33.0"

// Options are the vcd-specific settings of a product (Target.Options).
type Options struct {
	// APIVersion pins the API version, e.g. "38.0". "" picks the highest
	// version the VCD offers that is not deprecated and at least 33.0.
	APIVersion string `json:"api_version,omitempty"`
	// PageSize is the query page size; 0 means 128.
	PageSize int `json:"page_size,omitempty"`
}

// ParseOptions decodes and validates raw (empty or null means defaults).
// Unknown keys and bad values are errors that name the option.
func ParseOptions(raw json.RawMessage) (Options, error) {
	var o Options
	if err := rest.DecodeOptions(Kind, raw, &o); err != nil {
		return Options{}, err
	}
	o.APIVersion = strings.TrimSpace(o.APIVersion)
	if o.APIVersion != "" {
		v, err := strconv.ParseFloat(o.APIVersion, 64)
		if err != nil || strings.Count(o.APIVersion, ".") != 1 {
			return Options{}, fmt.Errorf("vcd options: api_version %q: must look like \"38.0\"", o.APIVersion)
		}
		if v < 33 {
			return Options{}, fmt.Errorf("vcd options: api_version %q: must be at least %s (provider login through /cloudapi)", o.APIVersion, MinAPIVersion)
		}
	}
	if o.PageSize < 0 {
		return Options{}, fmt.Errorf("vcd options: page_size %d: must be positive", o.PageSize)
	}
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	return o, nil
}
