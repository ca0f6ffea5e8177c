// Package anonymize hides the provider's names in usage reports.
//
// Every name that leaves the appliance (VM, host, cluster, datacenter,
// folder, resource pool, vCenter and product host names, customer labels,
// IP addresses) goes through an [Anonymizer] first. Three modes exist:
//
//   - [ModeHashed] (the default): the name becomes the lowercase hex
//     HMAC-SHA1 of the name, keyed with a per-appliance secret of at least
//     [SecretSize] bytes ([LoadOrCreateSecret]). Without the secret a list of
//     likely names cannot be hashed to reverse the report.
//   - [ModeRedacted]: every name becomes the fixed label [Redacted].
//   - [ModeNone]: names are reported in clear.
//
// The kind of a name ("vm", "host", ...) is not mixed into the hash: the same
// string hashes to the same value whatever it names, so a host and the folder
// named after it can be matched in a report, and a hash is stable across
// reports as long as the secret is kept. Losing the secret changes every
// hash; it must be part of the appliance backup.
//
// In hashed mode the Anonymizer remembers every hash it produced
// ([Anonymizer.Map]). That reverse map is the provider's own key to its
// reports: it is stored locally and never leaves the appliance. [Reverse]
// uses it to turn a report back into clear text.
package anonymize

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"hash"
	"maps"
	"regexp"
	"strings"
	"sync"
)

// Mode selects how names are anonymised. The zero value is not valid; use
// [ParseMode] to read one from configuration.
type Mode string

const (
	// ModeHashed replaces names by their keyed HMAC-SHA1 (the default).
	ModeHashed Mode = "hashed"
	// ModeRedacted replaces every name by [Redacted].
	ModeRedacted Mode = "redacted"
	// ModeNone leaves names in clear.
	ModeNone Mode = "none"
)

// Redacted is the fixed label that replaces every non-empty name in
// [ModeRedacted].
const Redacted = "REDACTED"

// Kinds of names, as passed to [Anonymizer.Name]. They are recorded in the
// reverse map only; they never change a hash.
const (
	KindVM           = "vm"
	KindHost         = "host"
	KindCluster      = "cluster"
	KindDatacenter   = "datacenter"
	KindFolder       = "folder"
	KindResourcePool = "resource_pool"
	KindVCenter      = "vcenter"
	KindProductHost  = "product_host"
	KindOrg          = "org"
	KindCustomer     = "customer"
	KindIP           = "ip"
)

// HashLen is the length of a hashed name: 40 lowercase hex digits.
const HashLen = 2 * sha1.Size

// ParseMode reads a mode from configuration. The empty string is
// [ModeHashed], the default.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return ModeHashed, nil
	case ModeHashed, ModeRedacted, ModeNone:
		return m, nil
	default:
		return "", fmt.Errorf("unknown anonymisation mode %q (want %q, %q or %q)", s, ModeHashed, ModeRedacted, ModeNone)
	}
}

// Entry is one line of the reverse map: the clear value behind a hash and the
// kind of name it was first hashed as.
type Entry struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// Anonymizer replaces names according to its mode. It is safe for concurrent
// use by several goroutines.
type Anonymizer struct {
	mode   Mode
	secret []byte

	mu   sync.Mutex
	seen map[string]Entry // hash -> clear value, hashed mode only
}

// New returns an Anonymizer for mode. In [ModeHashed] the secret must be at
// least [SecretSize] bytes; it is copied. The other modes ignore it.
func New(mode Mode, secret []byte) (*Anonymizer, error) {
	switch mode {
	case ModeHashed:
		if len(secret) < SecretSize {
			return nil, fmt.Errorf("anonymisation secret is %d bytes, want at least %d", len(secret), SecretSize)
		}
		return &Anonymizer{mode: mode, secret: append([]byte(nil), secret...), seen: make(map[string]Entry)}, nil
	case ModeRedacted, ModeNone:
		return &Anonymizer{mode: mode}, nil
	default:
		return nil, fmt.Errorf("unknown anonymisation mode %q (want %q, %q or %q)", mode, ModeHashed, ModeRedacted, ModeNone)
	}
}

// Mode reports the Anonymizer's mode, for the report manifest.
func (a *Anonymizer) Mode() Mode { return a.mode }

// Name anonymises value, a name of the given kind (one of the Kind
// constants, or any other label for the reverse map). An empty value stays
// empty in every mode, so "no folder" remains visible as such.
//
//   - hashed: the lowercase hex HMAC-SHA1(secret, value); kind is not part of
//     the hash. The pair is added to the reverse map; when the same value is
//     hashed under several kinds, the map keeps the first kind.
//   - redacted: [Redacted].
//   - none: value unchanged.
func (a *Anonymizer) Name(kind, value string) string {
	if value == "" {
		return ""
	}
	switch a.mode {
	case ModeRedacted:
		return Redacted
	case ModeNone:
		return value
	}
	mac := hmac.New(sha1.New, a.secret)
	mac.Write([]byte(value))
	h := hex.EncodeToString(mac.Sum(nil))

	a.mu.Lock()
	if _, ok := a.seen[h]; !ok {
		a.seen[h] = Entry{Kind: kind, Value: value}
	}
	a.mu.Unlock()
	return h
}

// Hasher anonymises names as [Anonymizer.Name] does, with one HMAC reused
// for every name, and without adding them to the Anonymizer's reverse map:
// a caller hashing hundreds of thousands of names (a month's VM history)
// keeps its own record of them. It is not safe for concurrent use.
type Hasher struct {
	mode Mode
	mac  hash.Hash
	sum  []byte
	hex  []byte
}

// Hasher returns a Hasher of a's mode and secret.
func (a *Anonymizer) Hasher() *Hasher {
	h := &Hasher{mode: a.mode}
	if a.mode == ModeHashed {
		h.mac = hmac.New(sha1.New, a.secret)
		h.sum = make([]byte, 0, sha1.Size)
		h.hex = make([]byte, HashLen)
	}
	return h
}

// Name returns what [Anonymizer.Name] returns for value, without recording
// it.
func (h *Hasher) Name(value string) string {
	if value == "" {
		return ""
	}
	switch h.mode {
	case ModeRedacted:
		return Redacted
	case ModeNone:
		return value
	}
	h.mac.Reset()
	h.mac.Write([]byte(value))
	h.sum = h.mac.Sum(h.sum[:0])
	hex.Encode(h.hex, h.sum)
	return string(h.hex)
}

// Map returns a copy of the reverse map: every hash produced so far, with the
// clear value behind it. It is empty unless the mode is [ModeHashed]. The
// map is for the appliance only and must never be sent with a report.
func (a *Anonymizer) Map() map[string]Entry {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := make(map[string]Entry, len(a.seen))
	maps.Copy(m, a.seen)
	return m
}

// hexRun matches runs of hex digits; Reverse only touches runs of exactly
// HashLen digits, so longer digests (the SHA-256 sums of a manifest) and
// shorter hex words are left alone.
var hexRun = regexp.MustCompile(`[0-9A-Fa-f]+`)

// Reverse replaces every hash in text that is a key of m by its clear value,
// as for `usagemeter anonymize reverse`. A hash is a run of exactly 40 hex
// digits, matched case-insensitively; hashes not in m and hex runs of any
// other length are left as they are.
func Reverse(text string, m map[string]Entry) string {
	if len(m) == 0 {
		return text
	}
	return hexRun.ReplaceAllStringFunc(text, func(s string) string {
		if len(s) != HashLen {
			return s
		}
		if e, ok := m[strings.ToLower(s)]; ok {
			return e.Value
		}
		return s
	})
}
