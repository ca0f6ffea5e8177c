package nsxv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
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
	if t := bytes.TrimSpace(raw); len(t) != 0 && !bytes.Equal(t, []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(t))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return Options{}, fmt.Errorf("nsxv options: option %s: expected a %s, got a JSON %s", te.Field, te.Type, te.Value)
			}
			if msg, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
				return Options{}, fmt.Errorf("nsxv options: unknown option %s (known: page_size)", msg)
			}
			return Options{}, fmt.Errorf("nsxv options: %w", err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return Options{}, errors.New("nsxv options: trailing data after the JSON object")
		}
	}
	if o.PageSize < 0 || o.PageSize > DefaultPageSize {
		return Options{}, fmt.Errorf("nsxv options: page_size %d: must be between 1 and %d", o.PageSize, DefaultPageSize)
	}
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	return o, nil
}
