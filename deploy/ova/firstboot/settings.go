package firstboot

import (
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/crypto/ssh"

	"github.com/usagemeter/usagemeter/deploy/ova"
)

// Settings are the deploy-time properties, checked.
type Settings struct {
	Hostname string
	// Address is the static address with prefix; invalid means DHCP.
	Address netip.Prefix
	Gateway netip.Addr
	DNS     []netip.Addr
	// NTP are the time servers (names or addresses); empty means the Debian pool.
	NTP []string
	// Proxy is the HTTP proxy URL for the internet (report upload, apt); nil
	// means none. Its password, if any, is never printed.
	Proxy *url.URL

	AdminPassword string   // never printed
	AdminSSHKeys  []string // authorized_keys lines, checked

	SMTPHost     string
	SMTPPort     int
	SMTPTLS      string
	SMTPUsername string
	SMTPPassword string // never printed
	SMTPFrom     string

	AlertTo      []string
	ReportTo     []string
	RecipientKey string // armored, reflowed
	Timezone     string

	// Contract and Program register the appliance; no contract means unregistered.
	Contract string
	Program  string

	// Syslog is the remote syslog server the journal is forwarded to; its
	// Host is empty when logs stay on the appliance.
	Syslog SyslogTarget
}

// SyslogTarget is a remote syslog server.
type SyslogTarget struct {
	Protocol string // udp | tcp
	Host     string // name or address (IPv6 without brackets)
	Port     int
}

// DHCP reports whether the network is configured by DHCP.
func (s *Settings) DHCP() bool { return !s.Address.IsValid() }

// Problem is a property that could not be used as given. Its text names the
// property and never holds a secret.
type Problem struct {
	Key string
	Msg string
}

func (p Problem) String() string { return p.Key + ": " + p.Msg }

func defaultOf(key string) string {
	for _, p := range ova.Properties {
		if p.Key == key {
			return p.Default
		}
	}
	return ""
}

// Parse turns the OVF properties into Settings. A property that is missing
// takes its OVF default; one that is invalid is reported as a Problem and
// replaced by the safe choice (DHCP for the network).
func Parse(props map[string]string) (Settings, []Problem) {
	var probs []Problem
	bad := func(key, format string, a ...any) {
		probs = append(probs, Problem{key, fmt.Sprintf(format, a...)})
	}
	get := func(key string) string {
		v, ok := props[key]
		if !ok {
			v = defaultOf(key)
		}
		return strings.TrimSpace(v)
	}
	var s Settings

	s.Hostname = strings.ToLower(strings.TrimSuffix(get(ova.KeyHostname), "."))
	if s.Hostname == "" {
		s.Hostname = defaultOf(ova.KeyHostname)
	} else if !validHostname(s.Hostname) {
		bad(ova.KeyHostname, "%q is not a valid host name (letters, digits and hyphens, dot-separated labels of at most 63); using %q", s.Hostname, defaultOf(ova.KeyHostname))
		s.Hostname = defaultOf(ova.KeyHostname)
	}

	if ip := get(ova.KeyIP); ip != "" {
		p, err := netip.ParsePrefix(ip)
		switch {
		case err != nil:
			bad(ova.KeyIP, "%q is not an address with prefix length such as 192.0.2.10/24; falling back to DHCP", ip)
		case p.Addr().IsUnspecified() || p.Addr().IsMulticast() || p.Addr().IsLoopback() || (p.Addr().Is4() && p.Bits() > 31):
			bad(ova.KeyIP, "%q cannot be a host address; falling back to DHCP", ip)
		default:
			s.Address = p
		}
	}
	if gw := get(ova.KeyGateway); gw != "" {
		a, err := netip.ParseAddr(gw)
		switch {
		case err != nil:
			bad(ova.KeyGateway, "%q is not an IP address", gw)
			if !s.DHCP() {
				bad(ova.KeyIP, "falling back to DHCP because the gateway is invalid")
				s.Address = netip.Prefix{}
			}
		case !s.DHCP() && a.Is4() != s.Address.Addr().Is4():
			bad(ova.KeyGateway, "%s is not of the same IP version as %s; falling back to DHCP", a, s.Address)
			s.Address = netip.Prefix{}
		case !s.DHCP() && a.Is4() && !s.Address.Masked().Contains(a):
			bad(ova.KeyGateway, "%s is not in the network %s; falling back to DHCP", a, s.Address.Masked())
			s.Address = netip.Prefix{}
		case !s.DHCP():
			s.Gateway = a
		}
	}
	for _, d := range splitList(get(ova.KeyDNS)) {
		a, err := netip.ParseAddr(d)
		if err != nil {
			bad(ova.KeyDNS, "%q is not an IP address; ignored", d)
			continue
		}
		s.DNS = append(s.DNS, a)
	}
	for _, n := range splitList(get(ova.KeyNTP)) {
		if !validHost(n) {
			bad(ova.KeyNTP, "%q is not a host name or IP address; ignored", n)
			continue
		}
		s.NTP = append(s.NTP, strings.ToLower(n))
	}
	if len(s.NTP) == 0 && get(ova.KeyNTP) != "" {
		bad(ova.KeyNTP, "no usable server: using the Debian pool")
	}
	if p := get(ova.KeyProxy); p != "" {
		u, err := parseProxy(p)
		if err != nil {
			bad(ova.KeyProxy, "%v; no proxy is used", err)
		} else {
			s.Proxy = u
		}
	}

	s.AdminPassword = props[ova.KeyAdminPassword]
	if s.AdminPassword == "" {
		bad(ova.KeyAdminPassword, "not set: the admin account stays locked, so nobody can log in on the console or over SSH; redeploy with the Administrator password set")
	} else if len(s.AdminPassword) < 8 {
		bad(ova.KeyAdminPassword, "shorter than 8 characters: not applied, the admin account stays locked")
		s.AdminPassword = ""
	} else if strings.ContainsAny(s.AdminPassword, "\n\r") {
		bad(ova.KeyAdminPassword, "contains a line break: not applied, the admin account stays locked")
		s.AdminPassword = ""
	}

	for i, line := range strings.Split(strings.ReplaceAll(props[ova.KeyAdminSSHKey], "\r", ""), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, err := authorizedKey(line)
		if err != nil {
			bad(ova.KeyAdminSSHKey, "line %d: %v; ignored", i+1, err)
			continue
		}
		s.AdminSSHKeys = append(s.AdminSSHKeys, k)
	}

	s.SMTPHost = get(ova.KeySMTPHost)
	if s.SMTPHost == "" {
		bad(ova.KeySMTPHost, "not set: usagemeter cannot send alerts or reports and will not start until smtp.host is set in /etc/usagemeter/config.yaml")
	}
	port := get(ova.KeySMTPPort)
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		bad(ova.KeySMTPPort, "%q is not a port number; using %s", port, defaultOf(ova.KeySMTPPort))
		s.SMTPPort, _ = strconv.Atoi(defaultOf(ova.KeySMTPPort))
	} else {
		s.SMTPPort = n
	}
	s.SMTPTLS = strings.ToLower(get(ova.KeySMTPTLS))
	switch s.SMTPTLS {
	case "starttls", "tls", "none":
	default:
		bad(ova.KeySMTPTLS, "%q is not starttls, tls or none; using starttls", s.SMTPTLS)
		s.SMTPTLS = "starttls"
	}
	s.SMTPUsername = get(ova.KeySMTPUsername)
	s.SMTPPassword = props[ova.KeySMTPPassword]
	if s.SMTPUsername != "" && s.SMTPPassword == "" {
		bad(ova.KeySMTPPassword, "not set although smtp.username is")
	}
	if s.SMTPUsername != "" && s.SMTPTLS == "none" {
		bad(ova.KeySMTPTLS, "is none but a user name is set: the password would cross the network in clear; using starttls")
		s.SMTPTLS = "starttls"
	}
	s.SMTPFrom = get(ova.KeySMTPFrom)
	if s.SMTPFrom == "" {
		s.SMTPFrom = "usagemeter@" + s.Hostname
	} else if _, err := mail.ParseAddress(s.SMTPFrom); err != nil {
		bad(ova.KeySMTPFrom, "%q is not an e-mail address; using usagemeter@%s", s.SMTPFrom, s.Hostname)
		s.SMTPFrom = "usagemeter@" + s.Hostname
	}

	s.AlertTo = addresses(ova.KeyAlertTo, get(ova.KeyAlertTo), bad)
	if len(s.AlertTo) == 0 {
		bad(ova.KeyAlertTo, "no valid recipient: usagemeter will not start until alerts.to is set in /etc/usagemeter/config.yaml")
	}
	s.ReportTo = addresses(ova.KeyReportTo, get(ova.KeyReportTo), bad)
	if k := get(ova.KeyRecipientKey); k != "" {
		armored, err := ReflowArmor(k)
		if err != nil {
			bad(ova.KeyRecipientKey, "%v", err)
		} else {
			s.RecipientKey = armored
		}
	}
	if len(s.ReportTo) > 0 && s.RecipientKey == "" {
		bad(ova.KeyRecipientKey, "report recipients are set but there is no usable public key: reports are only sent encrypted, so none will be sent")
		s.ReportTo = nil
	}

	s.Timezone = get(ova.KeyTimezone)
	if s.Timezone == "" {
		s.Timezone = "UTC"
	} else if _, err := time.LoadLocation(s.Timezone); err != nil {
		bad(ova.KeyTimezone, "%q is not a known time zone (use an IANA name such as Europe/Berlin); using UTC", s.Timezone)
		s.Timezone = "UTC"
	}

	s.Contract = get(ova.KeyContract)
	s.Program = get(ova.KeyProgram)
	switch {
	case s.Contract == "":
		s.Program = ""
	case len(s.Contract) > 128 || strings.IndexFunc(s.Contract, unicode.IsControl) >= 0:
		bad(ova.KeyContract, "not a contract id (printable, at most 128 characters): the appliance stays unregistered; run usagemeter register")
		s.Contract, s.Program = "", ""
	case s.Program != "rental" && s.Program != "sovereign-cloud":
		bad(ova.KeyProgram, "%q is not rental or sovereign-cloud: the appliance stays unregistered; run usagemeter register", s.Program)
		s.Contract, s.Program = "", ""
	}

	if v := get(ova.KeySyslog); v != "" {
		t, err := parseSyslog(v)
		if err != nil {
			bad(ova.KeySyslog, "%v; logs are not forwarded", err)
		} else {
			s.Syslog = t
		}
	}
	return s, probs
}

// validHost reports whether h is an IP address or a host name.
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return validHostname(strings.ToLower(strings.TrimSuffix(h, ".")))
}

// parseProxy checks an HTTP proxy URL: http or https, a host, an optional
// port, no path. Its errors never show a password.
func parseProxy(v string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		// url.Parse's error repeats the input, password and all.
		return nil, fmt.Errorf("not a URL such as http://proxy.example.com:3128")
	}
	show := u.Redacted()
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%q: the scheme must be http or https", show)
	case !validHost(u.Hostname()):
		return nil, fmt.Errorf("%q: %q is not a host name or IP address", show, u.Hostname())
	case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("%q: a proxy URL has no path or query", show)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%q: %q is not a port number", show, p)
		}
	}
	u.Path = ""
	return u, nil
}

// parseSyslog reads host, host:port, [v6]:port, udp://host[:port] or
// tcp://host[:port].
func parseSyslog(v string) (SyslogTarget, error) {
	t := SyslogTarget{Protocol: "udp", Port: 514}
	if proto, rest, ok := strings.Cut(v, "://"); ok {
		t.Protocol = strings.ToLower(proto)
		v = rest
		if t.Protocol != "udp" && t.Protocol != "tcp" {
			return t, fmt.Errorf("%q: the protocol must be udp or tcp", proto)
		}
	}
	host := v
	if h, p, err := net.SplitHostPort(v); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return t, fmt.Errorf("%q is not a port number", p)
		}
		host, t.Port = h, n
	}
	host = strings.Trim(host, "[]")
	if !validHost(host) {
		return t, fmt.Errorf("%q is not a host name or IP address (host, host:port, udp://host:port or tcp://host:port)", host)
	}
	t.Host = host
	return t, nil
}

// authorizedKey checks one OpenSSH public key line and returns it as
// authorized_keys holds it (key type, key, comment; no options).
func authorizedKey(line string) (string, error) {
	k, comment, options, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return "", fmt.Errorf("not an OpenSSH public key such as ssh-ed25519 AAAA... user@host")
	}
	if len(options) > 0 {
		return "", fmt.Errorf("key options (%s) are not accepted", strings.Join(options, ","))
	}
	out := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
	if comment = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, comment); comment != "" {
		out += " " + comment
	}
	return out, nil
}

func splitList(v string) []string {
	f := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\t' || r == '\n' })
	return f
}

func addresses(key, v string, bad func(string, string, ...any)) []string {
	var out []string
	for _, a := range splitList(v) {
		if _, err := mail.ParseAddress(a); err != nil {
			bad(key, "%q is not an e-mail address; ignored", a)
			continue
		}
		out = append(out, a)
	}
	return out
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

const (
	armorBegin = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
	armorEnd   = "-----END PGP PUBLIC KEY BLOCK-----"
)

// ReflowArmor returns an armored public key block as gpg writes it. A key
// pasted into a one-line property field arrives with its line breaks turned
// into spaces (or lost); the base64 body is rebuilt from its words. Armor
// headers ("Comment: ...") cannot be told from the body once flattened and
// are dropped: they carry no key material.
func ReflowArmor(v string) (string, error) {
	v = strings.TrimSpace(v)
	i, j := strings.Index(v, armorBegin), strings.Index(v, armorEnd)
	if i < 0 || j < i {
		return "", fmt.Errorf("not an ASCII-armored public key block (%s ... %s)", armorBegin, armorEnd)
	}
	body := v[i+len(armorBegin) : j]
	if strings.Contains(body, "\n") {
		// Line breaks survived: keep the block as it is.
		return strings.ReplaceAll(v[i:j+len(armorEnd)], "\r\n", "\n") + "\n", nil
	}
	words := strings.Fields(body)
	var data, crc []string
	for k := 0; k < len(words); k++ {
		w := words[k]
		switch {
		case strings.HasSuffix(w, ":"):
			// an armor header: skip its value up to the next base64-looking word
			for k+1 < len(words) && len(words[k+1]) < 16 && !strings.HasPrefix(words[k+1], "=") {
				k++
			}
		case strings.HasPrefix(w, "=") && len(w) == 5:
			crc = append(crc, w)
		default:
			data = append(data, w)
		}
	}
	joined := strings.Join(data, "")
	if joined == "" {
		return "", fmt.Errorf("the public key block is empty")
	}
	var b strings.Builder
	b.WriteString(armorBegin + "\n\n")
	for len(joined) > 64 {
		b.WriteString(joined[:64] + "\n")
		joined = joined[64:]
	}
	b.WriteString(joined + "\n")
	for _, c := range crc {
		b.WriteString(c + "\n")
	}
	b.WriteString(armorEnd + "\n")
	return b.String(), nil
}
