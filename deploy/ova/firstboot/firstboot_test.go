package firstboot_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/usagemeter/usagemeter/deploy/ova"
	"github.com/usagemeter/usagemeter/deploy/ova/firstboot"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/web/auth"
	"github.com/usagemeter/usagemeter/report"
)

const (
	adminPassword = "Adm1n-s3cret-%&<"
	smtpPassword  = "smtp-s3cret-\"quoted\" 'x'"
	proxyPassword = "pr0xy-s3cret"
	proxyURL      = "http://meter:" + proxyPassword + "@proxy.example.com:3128"
)

// sshKey is a fresh OpenSSH public key line.
func sshKey(t *testing.T, comment string) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " " + comment
}

// envXML renders an OVF environment document the way vSphere writes it.
func envXML(props map[string]string) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<Environment
     xmlns="http://schemas.dmtf.org/ovf/environment/1"
     xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
     xmlns:oe="http://schemas.dmtf.org/ovf/environment/1"
     xmlns:ve="http://www.vmware.com/schema/ovfenv"
     oe:id=""
     ve:vCenterId="vm-42">
   <PlatformSection>
      <Kind>VMware ESXi</Kind>
      <Version>8.0.2</Version>
      <Vendor>VMware, Inc.</Vendor>
      <Locale>en</Locale>
   </PlatformSection>
   <PropertySection>
`)
	for k, v := range props {
		b.WriteString(`         <Property oe:key="`)
		xmlAttr(&b, k)
		b.WriteString(`" oe:value="`)
		xmlAttr(&b, v)
		b.WriteString("\"/>\n")
	}
	b.WriteString(`   </PropertySection>
   <ve:EthernetAdapterSection>
      <ve:Adapter ve:mac="00:50:56:aa:bb:cc" ve:network="VM Network" ve:unitNumber="7"/>
   </ve:EthernetAdapterSection>
</Environment>
`)
	return b.Bytes()
}

func xmlAttr(b *bytes.Buffer, s string) {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "\n", "&#xA;")
	b.WriteString(r.Replace(s))
}

func publicKey(t *testing.T) string {
	t.Helper()
	e, err := report.GenerateKey("Aggregator", "usage@aggregator.example", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := report.ExportPublic(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func goodProps(t *testing.T) map[string]string {
	return map[string]string{
		ova.KeyHostname:      "Meter01.example.com",
		ova.KeyIP:            "192.0.2.10/24",
		ova.KeyGateway:       "192.0.2.1",
		ova.KeyDNS:           "192.0.2.53, 2001:db8::53",
		ova.KeyAdminPassword: adminPassword,
		ova.KeySMTPHost:      "smtp.example.com",
		ova.KeySMTPPort:      "465",
		ova.KeySMTPTLS:       "tls",
		ova.KeySMTPUsername:  "meter",
		ova.KeySMTPPassword:  smtpPassword,
		ova.KeySMTPFrom:      "",
		ova.KeyAlertTo:       "ops@example.com, noc@example.com",
		ova.KeyReportTo:      "usage@aggregator.example",
		// pasted into a one-line field: line breaks became spaces
		ova.KeyRecipientKey: strings.Join(strings.Fields(publicKey(t)), " "),
		ova.KeyTimezone:     "Europe/Berlin",
		ova.KeyNTP:          "ntp1.example.com, 192.0.2.123",
		ova.KeyProxy:        proxyURL,
		ova.KeyAdminSSHKey:  sshKey(t, "ops@laptop") + "\r\n\n" + sshKey(t, "backup@jump"),
		ova.KeyContract:     "CTR-2026-0042",
		ova.KeyProgram:      "sovereign-cloud",
		ova.KeySyslog:       "tcp://syslog.example.com:6514",
	}
}

func TestParseEnv(t *testing.T) {
	props, err := firstboot.ParseEnv(envXML(map[string]string{"net.ip": "192.0.2.10/24", "smtp.password": `a"b<c&d`}))
	if err != nil {
		t.Fatal(err)
	}
	if props["net.ip"] != "192.0.2.10/24" || props["smtp.password"] != `a"b<c&d` || len(props) != 2 {
		t.Fatalf("props = %v", props)
	}
}

func TestParseEnvErrors(t *testing.T) {
	for name, doc := range map[string]string{
		"not XML":          "this is not xml",
		"wrong root":       `<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"/>`,
		"property w/o key": `<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1" xmlns:oe="http://schemas.dmtf.org/ovf/environment/1"><PropertySection><Property oe:value="x"/></PropertySection></Environment>`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := firstboot.ParseEnv([]byte(doc)); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestParseSettings(t *testing.T) {
	s, probs := firstboot.Parse(goodProps(t))
	if len(probs) != 0 {
		t.Fatalf("problems with good properties: %v", probs)
	}
	if s.DHCP() || s.Address.String() != "192.0.2.10/24" || s.Gateway.String() != "192.0.2.1" || len(s.DNS) != 2 {
		t.Errorf("network = %+v", s)
	}
	if s.Hostname != "meter01.example.com" || s.SMTPFrom != "usagemeter@meter01.example.com" || s.SMTPPort != 465 {
		t.Errorf("settings = %+v", s)
	}
	if strings.Join(s.NTP, ",") != "ntp1.example.com,192.0.2.123" || s.Proxy == nil || s.Proxy.String() != proxyURL {
		t.Errorf("ntp %v proxy %v", s.NTP, s.Proxy)
	}
	if len(s.AdminSSHKeys) != 2 || !strings.HasSuffix(s.AdminSSHKeys[0], " ops@laptop") || !strings.HasPrefix(s.AdminSSHKeys[1], "ssh-ed25519 AAAA") {
		t.Errorf("ssh keys = %q", s.AdminSSHKeys)
	}
	if s.Contract != "CTR-2026-0042" || s.Program != "sovereign-cloud" {
		t.Errorf("registration = %q %q", s.Contract, s.Program)
	}
	if s.Syslog != (firstboot.SyslogTarget{Protocol: "tcp", Host: "syslog.example.com", Port: 6514}) {
		t.Errorf("syslog = %+v", s.Syslog)
	}
}

// TestSyslogTargets: the forms log.syslog takes.
func TestSyslogTargets(t *testing.T) {
	for in, want := range map[string]firstboot.SyslogTarget{
		"logs.example.com":           {"udp", "logs.example.com", 514},
		"192.0.2.7:1514":             {"udp", "192.0.2.7", 1514},
		"udp://192.0.2.7":            {"udp", "192.0.2.7", 514},
		"TCP://logs.example.com:601": {"tcp", "logs.example.com", 601},
		"2001:db8::7":                {"udp", "2001:db8::7", 514},
		"tcp://[2001:db8::7]:601":    {"tcp", "2001:db8::7", 601},
	} {
		props := goodProps(t)
		props[ova.KeySyslog] = in
		s, probs := firstboot.Parse(props)
		if len(probs) != 0 || s.Syslog != want {
			t.Errorf("%q: got %+v, problems %v; want %+v", in, s.Syslog, probs, want)
		}
	}
}

// TestBadProperties is the table of bad input: each case names the property
// that the console message must name, and what is used instead.
func TestBadProperties(t *testing.T) {
	cases := []struct {
		name    string
		set     map[string]string
		problem string // key the problem names
		check   func(*testing.T, firstboot.Settings)
	}{
		{"invalid IP falls back to DHCP", map[string]string{ova.KeyIP: "192.0.2.300/24"}, ova.KeyIP,
			func(t *testing.T, s firstboot.Settings) { mustDHCP(t, s) }},
		{"IP without prefix falls back to DHCP", map[string]string{ova.KeyIP: "192.0.2.10"}, ova.KeyIP,
			func(t *testing.T, s firstboot.Settings) { mustDHCP(t, s) }},
		{"network address /32 is fine but 0.0.0.0 is not", map[string]string{ova.KeyIP: "0.0.0.0/0"}, ova.KeyIP,
			func(t *testing.T, s firstboot.Settings) { mustDHCP(t, s) }},
		{"gateway not an address", map[string]string{ova.KeyGateway: "gw.example.com"}, ova.KeyGateway,
			func(t *testing.T, s firstboot.Settings) { mustDHCP(t, s) }},
		{"gateway outside the network", map[string]string{ova.KeyGateway: "198.51.100.1"}, ova.KeyGateway,
			func(t *testing.T, s firstboot.Settings) { mustDHCP(t, s) }},
		{"bad DNS entry is dropped", map[string]string{ova.KeyDNS: "192.0.2.53,dns.example"}, ova.KeyDNS,
			func(t *testing.T, s firstboot.Settings) {
				if len(s.DNS) != 1 || s.DHCP() {
					t.Errorf("DNS = %v, DHCP = %v", s.DNS, s.DHCP())
				}
			}},
		{"bad host name", map[string]string{ova.KeyHostname: "meter_01!"}, ova.KeyHostname,
			func(t *testing.T, s firstboot.Settings) {
				if s.Hostname != "usagemeter" {
					t.Errorf("hostname = %q", s.Hostname)
				}
			}},
		{"short admin password", map[string]string{ova.KeyAdminPassword: "short"}, ova.KeyAdminPassword,
			func(t *testing.T, s firstboot.Settings) {
				if s.AdminPassword != "" {
					t.Error("short password kept")
				}
			}},
		{"no admin password", map[string]string{ova.KeyAdminPassword: ""}, ova.KeyAdminPassword, nil},
		{"bad port", map[string]string{ova.KeySMTPPort: "70000"}, ova.KeySMTPPort,
			func(t *testing.T, s firstboot.Settings) {
				if s.SMTPPort != 587 {
					t.Errorf("port = %d", s.SMTPPort)
				}
			}},
		{"bad TLS mode", map[string]string{ova.KeySMTPTLS: "ssl"}, ova.KeySMTPTLS, nil},
		{"auth without TLS", map[string]string{ova.KeySMTPTLS: "none"}, ova.KeySMTPTLS,
			func(t *testing.T, s firstboot.Settings) {
				if s.SMTPTLS != "starttls" {
					t.Errorf("tls = %q", s.SMTPTLS)
				}
			}},
		{"no SMTP host", map[string]string{ova.KeySMTPHost: ""}, ova.KeySMTPHost, nil},
		{"bad alert address", map[string]string{ova.KeyAlertTo: "ops@example.com, not-an-address"}, ova.KeyAlertTo,
			func(t *testing.T, s firstboot.Settings) {
				if len(s.AlertTo) != 1 {
					t.Errorf("alert to = %v", s.AlertTo)
				}
			}},
		{"not a key", map[string]string{ova.KeyRecipientKey: "ssh-ed25519 AAAA"}, ova.KeyRecipientKey,
			func(t *testing.T, s firstboot.Settings) {
				if len(s.ReportTo) != 0 {
					t.Error("report recipients kept without a key")
				}
			}},
		{"bad NTP entry is dropped", map[string]string{ova.KeyNTP: "ntp_1!, 192.0.2.123"}, ova.KeyNTP,
			func(t *testing.T, s firstboot.Settings) {
				if strings.Join(s.NTP, ",") != "192.0.2.123" {
					t.Errorf("ntp = %v", s.NTP)
				}
				if src := firstboot.ChronySources(s); strings.Contains(src, "ntp_1") || strings.Contains(src, "pool ") {
					t.Errorf("chrony sources:\n%s", src)
				}
			}},
		{"no usable NTP server means the pool", map[string]string{ova.KeyNTP: "-bad-"}, ova.KeyNTP,
			func(t *testing.T, s firstboot.Settings) {
				if src := firstboot.ChronySources(s); !strings.Contains(src, "pool 2.debian.pool.ntp.org iburst\n") {
					t.Errorf("chrony sources:\n%s", src)
				}
			}},
		{"proxy with another scheme", map[string]string{ova.KeyProxy: "socks5://meter:" + proxyPassword + "@proxy.example.com:1080"}, ova.KeyProxy,
			func(t *testing.T, s firstboot.Settings) {
				if s.Proxy != nil || firstboot.AptProxy(s) != "" {
					t.Errorf("proxy kept: %v", s.Proxy)
				}
			}},
		{"proxy with a path", map[string]string{ova.KeyProxy: "http://meter:" + proxyPassword + "@proxy.example.com:3128/x"}, ova.KeyProxy, nil},
		{"proxy with a bad port", map[string]string{ova.KeyProxy: "http://meter:" + proxyPassword + "@proxy.example.com:99999"}, ova.KeyProxy, nil},
		{"proxy not a URL", map[string]string{ova.KeyProxy: "meter:" + proxyPassword + "@proxy:3128"}, ova.KeyProxy, nil},
		{"not an SSH key", map[string]string{ova.KeyAdminSSHKey: "ssh-ed25519 AAAAnotbase64"}, ova.KeyAdminSSHKey,
			func(t *testing.T, s firstboot.Settings) {
				if len(s.AdminSSHKeys) != 0 || firstboot.AuthorizedKeys(s) != "" {
					t.Errorf("keys = %v", s.AdminSSHKeys)
				}
			}},
		{"SSH key with options", map[string]string{ova.KeyAdminSSHKey: `command="/bin/sh" ` + sshKey(t, "x")}, ova.KeyAdminSSHKey, nil},
		{"the good SSH key of two is kept", map[string]string{ova.KeyAdminSSHKey: "garbage\n" + sshKey(t, "ok")}, ova.KeyAdminSSHKey,
			func(t *testing.T, s firstboot.Settings) {
				if len(s.AdminSSHKeys) != 1 || !strings.HasSuffix(s.AdminSSHKeys[0], " ok") {
					t.Errorf("keys = %v", s.AdminSSHKeys)
				}
			}},
		{"unknown programme leaves the appliance unregistered", map[string]string{ova.KeyProgram: "sovereign"}, ova.KeyProgram,
			func(t *testing.T, s firstboot.Settings) {
				if s.Contract != "" || s.Program != "" {
					t.Errorf("registration kept: %q %q", s.Contract, s.Program)
				}
			}},
		{"contract with a control character", map[string]string{ova.KeyContract: "CTR\x07"}, ova.KeyContract,
			func(t *testing.T, s firstboot.Settings) {
				if s.Contract != "" {
					t.Errorf("contract kept: %q", s.Contract)
				}
			}},
		{"syslog over another protocol", map[string]string{ova.KeySyslog: "relp://logs.example.com"}, ova.KeySyslog,
			func(t *testing.T, s firstboot.Settings) {
				if s.Syslog.Host != "" || firstboot.SyslogForward(s) != "" {
					t.Errorf("syslog kept: %+v", s.Syslog)
				}
			}},
		{"syslog with a bad port", map[string]string{ova.KeySyslog: "logs.example.com:0"}, ova.KeySyslog, nil},
		{"syslog host not a name", map[string]string{ova.KeySyslog: "logs example com"}, ova.KeySyslog, nil},
		{"bad time zone", map[string]string{ova.KeyTimezone: "Mars/Olympus"}, ova.KeyTimezone,
			func(t *testing.T, s firstboot.Settings) {
				if s.Timezone != "UTC" {
					t.Errorf("timezone = %q", s.Timezone)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			props := goodProps(t)
			for k, v := range c.set {
				props[k] = v
			}
			s, probs := firstboot.Parse(props)
			found := false
			for _, p := range probs {
				if p.Key == c.problem {
					found = true
				}
				if strings.Contains(p.String(), adminPassword) || strings.Contains(p.String(), smtpPassword) || strings.Contains(p.Msg, `"short"`) ||
					strings.Contains(p.String(), proxyPassword) {
					t.Errorf("problem text holds a secret: %s", p)
				}
			}
			if !found {
				t.Errorf("no problem names %s; got %v", c.problem, probs)
			}
			if c.check != nil {
				c.check(t, s)
			}
		})
	}
}

func mustDHCP(t *testing.T, s firstboot.Settings) {
	t.Helper()
	if !s.DHCP() {
		t.Errorf("want DHCP, got static %s", s.Address)
	}
	if unit := firstboot.NetworkUnit(s); !strings.Contains(unit, "DHCP=yes") || strings.Contains(unit, "Address=") {
		t.Errorf("network unit is not DHCP:\n%s", unit)
	}
}

func TestReflowArmor(t *testing.T) {
	key := publicKey(t)
	withHeader := strings.Replace(key, "-----BEGIN PGP PUBLIC KEY BLOCK-----\n", "-----BEGIN PGP PUBLIC KEY BLOCK-----\nComment: pasted key\n", 1)
	dir := t.TempDir()
	for name, in := range map[string]string{
		"as exported":    key,
		"spaces":         strings.Join(strings.Fields(key), " "),
		"header, spaces": strings.Join(strings.Fields(withHeader), " "),
		"CRLF":           strings.ReplaceAll(key, "\n", "\r\n"),
	} {
		t.Run(name, func(t *testing.T) {
			out, err := firstboot.ReflowArmor(in)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".asc")
			if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := report.ReadRecipients(p); err != nil {
				t.Fatalf("reflowed key unusable: %v\n%s", err, out)
			}
		})
	}
}

// recorder is a System that records instead of acting.
type recorder struct {
	mu     sync.Mutex
	calls  []string
	stdins []string
	chowns []string
	// failing: a command line starting with it fails.
	failing string
}

func (r *recorder) Run(_ context.Context, stdin []byte, name string, args ...string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := strings.Join(append([]string{name}, args...), " ")
	r.calls = append(r.calls, c)
	r.stdins = append(r.stdins, string(stdin))
	if r.failing != "" && strings.HasPrefix(c, r.failing) {
		return errors.New(name + ": exit status 1")
	}
	return nil
}

func (r *recorder) Chown(path, user, group string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.chowns = append(r.chowns, path+" "+user+":"+group)
	return nil
}

func (r *recorder) ran(prefix string) (int, string) {
	for i, c := range r.calls {
		if strings.HasPrefix(c, prefix) {
			return i, r.stdins[i]
		}
	}
	return -1, ""
}

func runFirstboot(t *testing.T, root string, props map[string]string, force bool) (*recorder, string, error) {
	t.Helper()
	return runFirstbootWith(t, &recorder{}, root, props, force)
}

func runFirstbootWith(t *testing.T, rec *recorder, root string, props map[string]string, force bool) (*recorder, string, error) {
	t.Helper()
	envPath := filepath.Join(t.TempDir(), "ovf-env.xml")
	if props != nil {
		if err := os.WriteFile(envPath, envXML(props), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var console bytes.Buffer
	err := firstboot.Run(context.Background(), firstboot.Options{
		Root: root, Sources: []firstboot.Source{firstboot.FileSource(envPath)}, Force: force, Console: &console,
	}, rec)
	return rec, console.String(), err
}

// readConfig reads the written config and parses it as the daemon would,
// with the recipient key path moved under the test root.
func readConfig(t *testing.T, root string) (*config.Config, []byte) {
	t.Helper()
	p := filepath.Join(root, firstboot.ConfigPath)
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %v, want 0600", firstboot.ConfigPath, st.Mode().Perm())
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	moved := bytes.ReplaceAll(b, []byte(firstboot.RecipientKeyPath), []byte(filepath.Join(root, firstboot.RecipientKeyPath)))
	moved = bytes.ReplaceAll(moved, []byte(firstboot.TLSDir), []byte(filepath.Join(root, firstboot.TLSDir)))
	cfg, err := config.Parse(moved, "")
	if err != nil {
		t.Fatalf("written config does not pass config.Parse: %v\n%s", err, b)
	}
	return cfg, b
}

func TestRun(t *testing.T) {
	root := t.TempDir()
	rec, console, err := runFirstboot(t, root, goodProps(t), false)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, console)
	}
	t.Log(console)

	cfg, raw := readConfig(t, root)
	if cfg.SMTP.Password.Reveal() != smtpPassword || cfg.SMTP.Username != "meter" || cfg.SMTP.Auth != "plain" ||
		cfg.SMTP.TLS != "tls" || cfg.SMTP.Port != 465 || cfg.SMTP.Host != "smtp.example.com" {
		t.Errorf("smtp = %+v", cfg.SMTP)
	}
	if !cfg.HTTP.TLSOn() || cfg.HTTP.TLSCert != filepath.Join(root, firstboot.TLSDir, "cert.pem") || cfg.HTTP.TLSKey != filepath.Join(root, firstboot.TLSDir, "key.pem") {
		t.Errorf("the web console is not served with the first-boot certificate: %+v", cfg.HTTP)
	}
	if cfg.Database.URL.Reveal() != firstboot.DatabaseURL || cfg.DataDir != "/var/lib/usagemeter" || cfg.HTTP.Listen != ":443" {
		t.Errorf("database/data_dir/http = %q %q %q", cfg.Database.URL.Reveal(), cfg.DataDir, cfg.HTTP.Listen)
	}
	if strings.Join(cfg.Alerts.To, ",") != "ops@example.com,noc@example.com" || strings.Join(cfg.Report.To, ",") != "usage@aggregator.example" ||
		cfg.Report.Timezone != "Europe/Berlin" || len(cfg.Report.RecipientKeys) != 1 {
		t.Errorf("alerts/report = %+v %+v", cfg.Alerts, cfg.Report)
	}
	if !bytes.Contains(raw, []byte(firstboot.RecipientKeyPath)) {
		t.Errorf("config does not point at %s", firstboot.RecipientKeyPath)
	}

	net, _ := os.ReadFile(filepath.Join(root, firstboot.NetworkPath))
	for _, want := range []string{"Address=192.0.2.10/24", "Gateway=192.0.2.1", "DNS=192.0.2.53", "DNS=2001:db8::53"} {
		if !strings.Contains(string(net), want+"\n") {
			t.Errorf("network file lacks %s:\n%s", want, net)
		}
	}
	if h, _ := os.ReadFile(filepath.Join(root, "/etc/hostname")); string(h) != "meter01.example.com\n" {
		t.Errorf("/etc/hostname = %q", h)
	}
	if h, _ := os.ReadFile(filepath.Join(root, "/etc/hosts")); !strings.Contains(string(h), "192.0.2.10\tmeter01.example.com meter01\n") {
		t.Errorf("/etc/hosts = %q", h)
	}

	// The admin password went to chpasswd's stdin, nowhere else.
	if i, stdin := rec.ran("chpasswd"); i < 0 || stdin != "admin:"+adminPassword+"\n" {
		t.Errorf("chpasswd not run with the password on stdin (calls %v)", rec.calls)
	}
	if i, stdin := rec.ran("runuser -u postgres -- psql"); i < 0 || !strings.Contains(stdin, "CREATE DATABASE usagemeter OWNER usagemeter") {
		t.Errorf("database not created (calls %v)", rec.calls)
	}
	// The web console's admin: the same password, on the command's stdin,
	// after the database exists.
	db, _ := rec.ran("runuser -u postgres -- psql")
	if i, stdin := rec.ran("runuser -u usagemeter -- /usr/bin/usagemeter admin set-password admin --password-stdin --config " + firstboot.ConfigPath); i < db || stdin != adminPassword+"\n" ||
		!strings.Contains(console, "web console: account admin created") {
		t.Errorf("web console admin not created with the password on stdin (calls %v)\n%s", rec.calls, console)
	}
	if i, _ := rec.ran("systemctl restart systemd-networkd"); i < 0 {
		t.Errorf("network not applied (calls %v)", rec.calls)
	}
	for _, c := range rec.calls {
		if strings.Contains(c, adminPassword) || strings.Contains(c, smtpPassword) {
			t.Errorf("a secret is on a command line: %s", c)
		}
	}
	if len(rec.chowns) == 0 || !strings.Contains(strings.Join(rec.chowns, "\n"), firstboot.ConfigPath+" usagemeter:usagemeter") {
		t.Errorf("config not given to usagemeter: %v", rec.chowns)
	}
	noSecretOutsideConfig(t, root, console)

	// Time, proxy, syslog, SSH keys, registration.
	if b, _ := os.ReadFile(filepath.Join(root, firstboot.ChronySourcesPath)); !strings.Contains(string(b), "\nserver ntp1.example.com iburst\nserver 192.0.2.123 iburst\n") || strings.Contains(string(b), "pool") {
		t.Errorf("chrony sources:\n%s", b)
	}
	if i, _ := rec.ran("systemctl --no-block try-restart chrony.service"); i < 0 {
		t.Errorf("chrony not restarted (calls %v)", rec.calls)
	}
	if cfg.Report.UploadProxy != proxyURL {
		t.Errorf("report.upload_proxy = %q", cfg.Report.UploadProxy)
	}
	apt := mustMode(t, filepath.Join(root, firstboot.AptProxyPath), 0o600)
	if !strings.Contains(apt, `Acquire::http::Proxy "`+proxyURL+`";`) || !strings.Contains(apt, `Acquire::https::Proxy "`+proxyURL+`";`) {
		t.Errorf("apt proxy:\n%s", apt)
	}
	fwd := mustMode(t, filepath.Join(root, firstboot.SyslogForwardPath), 0o644)
	if !strings.Contains(fwd, `*.* action(type="omfwd" target="syslog.example.com" port="6514" protocol="tcp"`) {
		t.Errorf("rsyslog forward:\n%s", fwd)
	}
	if i, _ := rec.ran("systemctl enable rsyslog.service"); i < 0 {
		t.Errorf("rsyslog not enabled (calls %v)", rec.calls)
	}
	keys := mustMode(t, filepath.Join(root, firstboot.AuthorizedKeysPath), 0o600)
	if lines := strings.Split(strings.TrimSpace(keys), "\n"); len(lines) != 3 || !strings.HasSuffix(lines[1], " ops@laptop") || !strings.HasSuffix(lines[2], " backup@jump") {
		t.Errorf("authorized_keys:\n%s", keys)
	}
	if st, err := os.Stat(filepath.Join(root, firstboot.AdminHome, ".ssh")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("~admin/.ssh: %v %v", err, st)
	}
	for _, want := range []string{firstboot.AdminHome + "/.ssh admin:admin", firstboot.AuthorizedKeysPath + " admin:admin"} {
		if !strings.Contains(strings.Join(rec.chowns, "\n"), want) {
			t.Errorf("no chown %s: %v", want, rec.chowns)
		}
	}
	reg, _ := rec.ran("runuser -u usagemeter -- /usr/bin/usagemeter register --config " + firstboot.ConfigPath + " --contract CTR-2026-0042 --program sovereign-cloud")
	db, _ = rec.ran("runuser -u postgres -- psql")
	if reg < 0 || reg < db {
		t.Errorf("not registered after the database was made (calls %v)", rec.calls)
	}
	if !strings.Contains(console, "registered: contract CTR-2026-0042, programme sovereign-cloud") {
		t.Errorf("console does not say the appliance is registered:\n%s", console)
	}
	// The proxy password is in config.yaml and apt's proxy file (both 0600), nowhere else.
	if strings.Contains(console, proxyPassword) || !strings.Contains(console, "proxy: http://meter:xxxxx@proxy.example.com:3128") {
		t.Errorf("console shows the proxy password or no proxy:\n%s", console)
	}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			if bytes.Contains(b, []byte(proxyPassword)) && p != filepath.Join(root, firstboot.ConfigPath) && p != filepath.Join(root, firstboot.AptProxyPath) {
				t.Errorf("%s holds the proxy password", p)
			}
		}
		return err
	})

	// TLS certificate and key.
	if st, err := os.Stat(filepath.Join(root, firstboot.TLSDir, "key.pem")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("TLS key: %v %v", err, st)
	}
	if _, err := os.Stat(filepath.Join(root, firstboot.TLSDir, "cert.pem")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(root, firstboot.MarkerPath)); err != nil {
		t.Errorf("marker not written: %v", err)
	}

	// A second boot does nothing; --force runs again.
	rec2, _, err := runFirstboot(t, root, goodProps(t), false)
	if !errors.Is(err, firstboot.ErrDone) || len(rec2.calls) != 0 {
		t.Errorf("second run: err %v, calls %v", err, rec2.calls)
	}
	rec3, console3, err := runFirstboot(t, root, goodProps(t), true)
	if err != nil || len(rec3.calls) == 0 {
		t.Errorf("forced run: err %v, calls %v\n%s", err, rec3.calls, console3)
	}
}

// mustMode reads a written file and checks its mode.
func mustMode(t *testing.T, p string, mode os.FileMode) string {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Error(err)
		return ""
	}
	if st.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want %v", p, st.Mode().Perm(), mode)
	}
	b, _ := os.ReadFile(p)
	return string(b)
}

// TestRunRegistrationFails: a failed registration is a problem on the
// console and the banner, with the command to run; first boot completes.
func TestRunRegistrationFails(t *testing.T) {
	root := t.TempDir()
	_, console, err := runFirstbootWith(t, &recorder{failing: "runuser -u usagemeter"}, root, goodProps(t), false)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, console)
	}
	want := "PROBLEM registration.contract: not registered (runuser: exit status 1); once fixed, run: sudo -u usagemeter usagemeter register --contract CTR-2026-0042 --program sovereign-cloud"
	if !strings.Contains(console, want) {
		t.Errorf("console lacks %q:\n%s", want, console)
	}
	if issue, _ := os.ReadFile(filepath.Join(root, "/etc/issue.d/usagemeter.issue")); !strings.Contains(string(issue), "registration.contract: not registered") {
		t.Errorf("login banner does not show it:\n%s", issue)
	}
	if _, err := os.Stat(filepath.Join(root, firstboot.MarkerPath)); err != nil {
		t.Errorf("first boot not marked done: %v", err)
	}
}

// noSecretOutsideConfig fails if a password is in the console output or in
// any file written other than the config.
func noSecretOutsideConfig(t *testing.T, root, console string) {
	t.Helper()
	for _, s := range []string{adminPassword, smtpPassword} {
		if strings.Contains(console, s) {
			t.Errorf("console output holds a secret:\n%s", console)
		}
	}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(adminPassword)) {
			t.Errorf("%s holds the admin password", p)
		}
		if bytes.Contains(b, []byte(smtpPassword)) && p != filepath.Join(root, firstboot.ConfigPath) {
			t.Errorf("%s holds the SMTP password", p)
		}
		return nil
	})
}

// TestRunBadIP: an invalid address is reported on the console and the
// appliance comes up on DHCP; first boot still completes.
func TestRunBadIP(t *testing.T) {
	root := t.TempDir()
	props := goodProps(t)
	props[ova.KeyIP] = "192.0.2.999/24"
	_, console, err := runFirstboot(t, root, props, false)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, console)
	}
	if !strings.Contains(console, "PROBLEM net.ip: \"192.0.2.999/24\" is not an address with prefix length") || !strings.Contains(console, "falling back to DHCP") {
		t.Errorf("console does not explain the bad address:\n%s", console)
	}
	net, _ := os.ReadFile(filepath.Join(root, firstboot.NetworkPath))
	if !strings.Contains(string(net), "DHCP=yes") {
		t.Errorf("not DHCP:\n%s", net)
	}
	issue, _ := os.ReadFile(filepath.Join(root, "/etc/issue.d/usagemeter.issue"))
	if !strings.Contains(string(issue), "net.ip") {
		t.Errorf("login banner does not show the problem:\n%s", issue)
	}
	readConfig(t, root)
	noSecretOutsideConfig(t, root, console)
}

// TestRunNoEnvironment: without any OVF environment the appliance still
// comes up on DHCP and says what is missing.
func TestRunNoEnvironment(t *testing.T) {
	root := t.TempDir()
	rec, console, err := runFirstboot(t, root, nil, false)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, console)
	}
	for _, want := range []string{"no OVF environment found", "smtp.host", "alerts.to", "will not start until"} {
		if !strings.Contains(console, want) {
			t.Errorf("console lacks %q:\n%s", want, console)
		}
	}
	if i, _ := rec.ran("chpasswd"); i >= 0 {
		t.Error("chpasswd run without a password")
	}
	if i, _ := rec.ran("runuser -u usagemeter"); i >= 0 {
		t.Error("a web console admin created without a password")
	}
	for _, p := range []string{firstboot.AptProxyPath, firstboot.SyslogForwardPath, firstboot.AuthorizedKeysPath} {
		if _, err := os.Stat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s written without its property (%v)", p, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, firstboot.ChronySourcesPath)); !strings.Contains(string(b), "pool 2.debian.pool.ntp.org iburst") {
		t.Errorf("chrony sources without net.ntp:\n%s", b)
	}
	if i, _ := rec.ran("systemctl disable --now --no-block rsyslog.service"); i < 0 {
		t.Errorf("rsyslog left on without log.syslog (calls %v)", rec.calls)
	}
	if i, _ := rec.ran("runuser -u usagemeter"); i >= 0 {
		t.Errorf("registered without a contract: %v", rec.calls)
	}
	if _, err := os.Stat(filepath.Join(root, firstboot.ConfigPath)); err != nil {
		t.Errorf("no config written for the admin to complete: %v", err)
	}
}

// TestRunShortAdminPassword: an Administrator password the OS accepts but
// the web console does not (under 12 characters) creates no web admin and
// says how to make one; first boot still succeeds.
func TestRunShortAdminPassword(t *testing.T) {
	if firstboot.WebMinPasswordLength != auth.MinPasswordLength {
		t.Fatalf("firstboot.WebMinPasswordLength %d, the web console's %d", firstboot.WebMinPasswordLength, auth.MinPasswordLength)
	}
	props := goodProps(t)
	props[ova.KeyAdminPassword] = "Sh0rt-pw9"
	rec, console, err := runFirstboot(t, t.TempDir(), props, false)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, console)
	}
	if i, _ := rec.ran("runuser -u usagemeter -- /usr/bin/usagemeter admin"); i >= 0 || !strings.Contains(console, "PROBLEM web console: no admin account, the Administrator password is shorter than 12 characters") ||
		!strings.Contains(console, "usagemeter admin set-password admin") || strings.Contains(console, "Sh0rt-pw9") {
		t.Fatalf("calls %v\n%s", rec.calls, console)
	}
}
