package collectors

import (
	"encoding/json"
	"log/slog"
)

// Secret is a string that never prints (a product's password or token, a
// database URL, an upload token): not through fmt, not as YAML or JSON,
// not in slog output. Use Reveal to get the value where it is really needed.
type Secret string

const redacted = "<secret>"

// Reveal returns the clear-text value. Call it only where the secret is used
// (a login, a key derivation), never to log or display it.
func (s Secret) Reveal() string { return string(s) }

// IsSet reports whether a value is present.
func (s Secret) IsSet() bool { return s != "" }

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer so %#v does not leak either.
func (s Secret) GoString() string { return s.String() }

// MarshalYAML implements yaml.Marshaler.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }
