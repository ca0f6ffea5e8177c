package firstboot

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/usagemeter/usagemeter/deploy/ova"
)

// Paths on the appliance.
const (
	ConfigPath         = "/etc/usagemeter/config.yaml"
	RecipientKeyPath   = "/etc/usagemeter/recipient.asc"
	TLSDir             = "/etc/usagemeter/tls"
	DataDir            = "/var/lib/usagemeter"
	MarkerPath         = "/var/lib/usagemeter/.firstboot-done"
	NetworkPath        = "/etc/systemd/network/10-usagemeter.network"
	ChronySourcesPath  = "/etc/chrony/sources.d/usagemeter.sources"
	AptProxyPath       = "/etc/apt/apt.conf.d/80usagemeter-proxy"
	SyslogForwardPath  = "/etc/rsyslog.d/90-usagemeter-forward.conf"
	AdminHome          = "/home/admin"
	AuthorizedKeysPath = AdminHome + "/.ssh/authorized_keys"
	// UsagemeterBin is the appliance binary (first boot registers with it).
	UsagemeterBin = "/usr/bin/usagemeter"
	// DatabaseURL is the local PostgreSQL over its socket, peer authentication
	// as the usagemeter OS user.
	DatabaseURL = "postgres://usagemeter@/usagemeter?host=/var/run/postgresql"
	// WebMinPasswordLength is the web console's shortest password
	// (internal/web/auth.MinPasswordLength; a test keeps them equal).
	WebMinPasswordLength = 12
	// HTTPPort is where usagemeter serves the web console, the API,
	// /healthz and /metrics over HTTPS.
	HTTPPort = 443
)

// ConfigYAML renders /etc/usagemeter/config.yaml. recipientKey is the path of
// the recipient key file, used when s has a key; tlsDir, when set, holds
// the appliance's certificate (cert.pem, key.pem) the web console and API
// are served with.
func ConfigYAML(s Settings, recipientKey, tlsDir string) ([]byte, error) {
	type smtp struct {
		Host     string `yaml:"host"`
		Port     int    `yaml:"port"`
		TLS      string `yaml:"tls"`
		Auth     string `yaml:"auth"`
		Username string `yaml:"username,omitempty"`
		Password string `yaml:"password,omitempty"`
		From     string `yaml:"from"`
	}
	type report struct {
		To            []string `yaml:"to,omitempty"`
		RecipientKeys []string `yaml:"recipient_keys,omitempty"`
		Timezone      string   `yaml:"timezone"`
		UploadProxy   string   `yaml:"upload_proxy,omitempty"`
	}
	c := struct {
		DataDir  string            `yaml:"data_dir"`
		Database map[string]string `yaml:"database"`
		HTTP     map[string]string `yaml:"http"`
		SMTP     smtp              `yaml:"smtp"`
		Alerts   map[string]any    `yaml:"alerts"`
		Report   report            `yaml:"report"`
	}{
		DataDir:  DataDir,
		Database: map[string]string{"url": DatabaseURL},
		HTTP:     map[string]string{"listen": fmt.Sprintf(":%d", HTTPPort)},
		SMTP: smtp{Host: s.SMTPHost, Port: s.SMTPPort, TLS: s.SMTPTLS, Auth: "none",
			Username: s.SMTPUsername, Password: s.SMTPPassword, From: s.SMTPFrom},
		Alerts: map[string]any{"to": nonNil(s.AlertTo)},
		Report: report{To: s.ReportTo, Timezone: s.Timezone},
	}
	if s.SMTPUsername != "" {
		c.SMTP.Auth = "plain"
	}
	if s.RecipientKey != "" {
		c.Report.RecipientKeys = []string{recipientKey}
	}
	if tlsDir != "" {
		c.HTTP["tls_cert"], c.HTTP["tls_key"] = tlsDir+"/cert.pem", tlsDir+"/key.pem"
	}
	if s.Proxy != nil {
		c.Report.UploadProxy = s.Proxy.String()
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		return nil, err
	}
	head := "# Written by usagemeter first boot from the OVF properties.\n" +
		"# Edit and check with: usagemeter config check --config " + ConfigPath + "\n"
	return append([]byte(head), b...), nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// NetworkUnit renders the systemd-networkd .network file for every Ethernet
// interface: DHCP, or the static address, gateway and DNS servers.
func NetworkUnit(s Settings) string {
	var b strings.Builder
	b.WriteString("# Written by usagemeter first boot from the OVF properties.\n")
	b.WriteString("[Match]\nType=ether\nName=!veth*\n\n[Network]\n")
	if s.DHCP() {
		b.WriteString("DHCP=yes\n")
	} else {
		fmt.Fprintf(&b, "Address=%s\n", s.Address)
		if s.Gateway.IsValid() {
			fmt.Fprintf(&b, "Gateway=%s\n", s.Gateway)
		}
		b.WriteString("IPv6AcceptRA=no\n")
	}
	for _, d := range s.DNS {
		fmt.Fprintf(&b, "DNS=%s\n", d)
	}
	if s.DHCP() {
		// The host name is ours, not the DHCP server's; DNS from DHCP unless given.
		b.WriteString("\n[DHCPv4]\nUseHostname=no\n")
		if len(s.DNS) > 0 {
			b.WriteString("UseDNS=no\n")
		}
	}
	return b.String()
}

// ChronySources renders chrony's sources from net.ntp: the servers given, or
// the Debian pool.
func ChronySources(s Settings) string {
	var b strings.Builder
	b.WriteString("# Written by usagemeter first boot from the OVF property " + ova.KeyNTP + ".\n")
	if len(s.NTP) == 0 {
		b.WriteString("pool 2.debian.pool.ntp.org iburst\n")
	}
	for _, n := range s.NTP {
		fmt.Fprintf(&b, "server %s iburst\n", n)
	}
	return b.String()
}

// AptProxy renders apt's proxy configuration ("" without a proxy). It may
// hold the proxy's password: written 0600.
func AptProxy(s Settings) string {
	if s.Proxy == nil {
		return ""
	}
	u := s.Proxy.String()
	return "// Written by usagemeter first boot from the OVF property " + ova.KeyProxy + ".\n" +
		fmt.Sprintf("Acquire::http::Proxy %q;\nAcquire::https::Proxy %q;\n", u, u)
}

// SyslogForward renders the rsyslog rule that forwards the journal (read by
// imjournal, see rootfs/etc/rsyslog.conf) to the remote server ("" without
// one). A queue in memory keeps the appliance going while the server is away.
func SyslogForward(s Settings) string {
	t := s.Syslog
	if t.Host == "" {
		return ""
	}
	return "# Written by usagemeter first boot from the OVF property " + ova.KeySyslog + ".\n" +
		fmt.Sprintf("*.* action(type=\"omfwd\" target=%q port=\"%d\" protocol=%q\n", t.Host, t.Port, t.Protocol) +
		"       queue.type=\"LinkedList\" queue.size=\"10000\" action.resumeRetryCount=\"-1\")\n"
}

// AuthorizedKeys renders the admin's authorized_keys ("" without keys).
func AuthorizedKeys(s Settings) string {
	if len(s.AdminSSHKeys) == 0 {
		return ""
	}
	return "# Written by usagemeter first boot from the OVF property " + ova.KeyAdminSSHKey + ".\n" +
		strings.Join(s.AdminSSHKeys, "\n") + "\n"
}

// Hosts renders /etc/hosts.
func Hosts(s Settings) string {
	short, _, _ := strings.Cut(s.Hostname, ".")
	names := s.Hostname
	if short != s.Hostname {
		names += " " + short
	}
	addr := "127.0.1.1"
	if !s.DHCP() {
		addr = s.Address.Addr().String()
	}
	return fmt.Sprintf("127.0.0.1\tlocalhost\n%s\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n", addr, names)
}

// SelfSignedCert makes the appliance's TLS certificate: ECDSA P-256, valid
// for ten years, for the host name and the static address (if any).
func SelfSignedCert(s Settings, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	short, _, _ := strings.Cut(s.Hostname, ".")
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: s.Hostname, Organization: []string{"usagemeter appliance"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dedupe(s.Hostname, short, "localhost"),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if !s.DHCP() {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(s.Address.Addr().AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), nil
}

func dedupe(v ...string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range v {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
