package anonymize

import (
	"net/netip"
	"regexp"
	"strings"
)

// ipCandidate matches runs that may be IP addresses: dotted quads, and runs
// of hex digits, colons and dots with at least two colons (IPv6, including
// IPv4-mapped forms). Candidates are validated with netip.ParseAddr and must
// not be glued to a letter, digit or underscore on either side, so version
// strings ("1.2.3.4.5"), C++ names ("std::map") and words are not taken for
// addresses. An IPv6 address with a port must be bracketed ("[::1]:443"),
// as in URLs.
var ipCandidate = regexp.MustCompile(`[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f.]*:[0-9A-Fa-f.:]*:[0-9A-Fa-f.:]*`)

// FindIPs returns the IPv4 and IPv6 addresses that appear in text, in order
// of appearance, as they are written there (e.g. a folder named
// "backup-10.1.2.3" yields "10.1.2.3"; "[fe80::1]:443" yields "fe80::1").
func FindIPs(text string) []string {
	var ips []string
	for _, loc := range findIPs(text) {
		ips = append(ips, text[loc[0]:loc[1]])
	}
	return ips
}

// ContainsIP reports whether text contains an IPv4 or IPv6 address.
func ContainsIP(text string) bool { return len(findIPs(text)) > 0 }

// ScrubIPs returns text with every IP address in it anonymised as
// a.Name(KindIP, address), the address taken as written. Use it for free
// text (error messages, descriptions) that may carry addresses; names are
// anonymised whole with [Anonymizer.Name].
func (a *Anonymizer) ScrubIPs(text string) string {
	locs := findIPs(text)
	if len(locs) == 0 {
		return text
	}
	var b strings.Builder
	last := 0
	for _, loc := range locs {
		b.WriteString(text[last:loc[0]])
		b.WriteString(a.Name(KindIP, text[loc[0]:loc[1]]))
		last = loc[1]
	}
	b.WriteString(text[last:])
	return b.String()
}

func findIPs(text string) [][2]int {
	var out [][2]int
	for _, loc := range ipCandidate.FindAllStringIndex(text, -1) {
		start, end := loc[0], loc[1]
		// Trailing punctuation of a sentence or a port separator.
		for end > start && (text[end-1] == '.' || text[end-1] == ':') {
			if ip, err := netip.ParseAddr(text[start:end]); err == nil && ip.IsValid() {
				break // "::" or "fe80::" end in a colon legitimately
			}
			end--
		}
		if _, err := netip.ParseAddr(text[start:end]); err != nil {
			continue
		}
		if glued(text, start, end) {
			continue
		}
		out = append(out, [2]int{start, end})
	}
	return out
}

// glued reports whether text[start:end] touches a word character, or
// continues a dotted number ("1.2.3.4.5"), on either side.
func glued(text string, start, end int) bool {
	word := func(c byte) bool {
		return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
	}
	if start > 0 {
		c := text[start-1]
		if word(c) || (c == '.' || c == ':') && start > 1 && word(text[start-2]) {
			return true
		}
	}
	if end < len(text) {
		c := text[end]
		if word(c) || c == '.' && end+1 < len(text) && word(text[end+1]) {
			return true
		}
	}
	return false
}
