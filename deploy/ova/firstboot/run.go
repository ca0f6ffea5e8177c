package firstboot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/deploy/ova"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/report"
)

// System is what first boot does to the machine beyond writing files; the
// tests record it instead.
type System interface {
	// Run runs a command. stdin (may be nil) is the only way a secret is
	// passed: never in args, which may show in ps or a log.
	Run(ctx context.Context, stdin []byte, name string, args ...string) error
	// Chown gives path to the named user and group.
	Chown(path, user, group string) error
}

// Options shape a run.
type Options struct {
	Root    string   // prefix of every path written: "" on the appliance
	Sources []Source // where to look for the OVF environment, in order
	Force   bool     // run even if the marker says first boot is done
	Console io.Writer
	Now     func() time.Time
}

// ErrDone is returned when first boot already ran and Force is not set.
var ErrDone = errors.New("first boot already done")

// Run configures the appliance. Problems with the properties are printed on
// the console and do not fail the run; a step that cannot be carried out
// fails it (after the other steps were tried), and the marker is then not
// written, so the next boot tries again.
func Run(ctx context.Context, o Options, sys System) error {
	if o.Console == nil {
		o.Console = io.Discard
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	path := func(p string) string { return filepath.Join(o.Root, p) }
	say := func(format string, a ...any) { fmt.Fprintf(o.Console, "usagemeter first boot: "+format+"\n", a...) }

	if _, err := os.Stat(path(MarkerPath)); err == nil && !o.Force {
		say("already done (%s exists); run usagemeter-firstboot --force to run it again", MarkerPath)
		return ErrDone
	}

	props, src, err := ReadEnv(ctx, o.Sources...)
	switch {
	case errors.Is(err, os.ErrNotExist):
		say("no OVF environment found (neither VMware Tools guestinfo nor an ovf-env.xml CD): using defaults and DHCP")
		props = map[string]string{}
	case err != nil:
		say("ERROR %v: using defaults and DHCP", err)
		props = map[string]string{}
	default:
		say("read %d properties from %s", len(props), src)
	}
	s, probs := Parse(props)
	for _, p := range probs {
		say("PROBLEM %s", p)
	}

	var failed []error
	step := func(what string, err error) {
		if err != nil {
			err = fmt.Errorf("%s: %w", what, err)
			say("ERROR %v", err)
			failed = append(failed, err)
		}
	}

	// Host name and network.
	step("writing /etc/hostname", writeFile(path("/etc/hostname"), []byte(s.Hostname+"\n"), 0o644))
	step("writing /etc/hosts", writeFile(path("/etc/hosts"), []byte(Hosts(s)), 0o644))
	step("setting the host name", sys.Run(ctx, nil, "hostname", s.Hostname))
	step("writing "+NetworkPath, writeFile(path(NetworkPath), []byte(NetworkUnit(s)), 0o644))
	step("restarting systemd-networkd", sys.Run(ctx, nil, "systemctl", "restart", "systemd-networkd.service"))
	if s.DHCP() {
		say("network: DHCP on every Ethernet interface, host name %s", s.Hostname)
	} else {
		say("network: %s gateway %s, host name %s", s.Address, s.Gateway, s.Hostname)
	}

	// Time sources; chrony is ordered after first boot, --no-block so that
	// a run with --force restarts it without waiting on us.
	step("writing "+ChronySourcesPath, writeFile(path(ChronySourcesPath), []byte(ChronySources(s)), 0o644))
	step("restarting chrony", sys.Run(ctx, nil, "systemctl", "--no-block", "try-restart", "chrony.service"))
	if len(s.NTP) > 0 {
		say("time: NTP servers %s", strings.Join(s.NTP, ", "))
	} else {
		say("time: the Debian NTP pool")
	}

	// The proxy for the internet: the report upload (config.yaml) and apt.
	step("writing "+AptProxyPath, writeOrRemove(path(AptProxyPath), AptProxy(s), 0o600))
	if s.Proxy != nil {
		say("proxy: %s for the report upload and Debian updates", s.Proxy.Redacted())
	}

	// Remote syslog: rsyslog (disabled in the image) forwards the journal.
	fwd := SyslogForward(s)
	step("writing "+SyslogForwardPath, writeOrRemove(path(SyslogForwardPath), fwd, 0o644))
	if fwd != "" {
		step("enabling rsyslog", sys.Run(ctx, nil, "systemctl", "enable", "rsyslog.service"))
		step("starting rsyslog", sys.Run(ctx, nil, "systemctl", "--no-block", "restart", "rsyslog.service"))
		say("logs: the journal is forwarded to %s://%s", s.Syslog.Protocol, net.JoinHostPort(s.Syslog.Host, strconv.Itoa(s.Syslog.Port)))
	} else {
		step("disabling rsyslog", sys.Run(ctx, nil, "systemctl", "disable", "--now", "--no-block", "rsyslog.service"))
	}

	// The admin account: the password goes through chpasswd's stdin only.
	if s.AdminPassword != "" {
		step("setting the admin password", sys.Run(ctx, []byte("admin:"+s.AdminPassword+"\n"), "chpasswd"))
	}
	// The admin's SSH keys (left alone when none is given).
	if keys := AuthorizedKeys(s); keys != "" {
		dir := filepath.Dir(path(AuthorizedKeysPath))
		step("creating "+filepath.Dir(AuthorizedKeysPath), mkdirMode(dir, 0o700))
		step("writing "+AuthorizedKeysPath, writeFile(path(AuthorizedKeysPath), []byte(keys), 0o600))
		step("chown "+filepath.Dir(AuthorizedKeysPath), sys.Chown(dir, "admin", "admin"))
		step("chown "+AuthorizedKeysPath, sys.Chown(path(AuthorizedKeysPath), "admin", "admin"))
		say("ssh: %d public key(s) may log in as admin", len(s.AdminSSHKeys))
	}

	// The appliance's TLS certificate and key (the config names them).
	cert, key, err := SelfSignedCert(s, o.Now())
	step("generating the TLS certificate", err)
	if err == nil {
		step("writing the TLS certificate", writeFile(path(TLSDir+"/cert.pem"), cert, 0o644))
		step("writing the TLS key", writeFile(path(TLSDir+"/key.pem"), key, 0o600))
		step("chown the TLS key", sys.Chown(path(TLSDir+"/key.pem"), "usagemeter", "usagemeter"))
	}

	// The report recipient's key (public) and the config (holds the SMTP password).
	keyPath := ""
	if s.RecipientKey != "" {
		keyPath = RecipientKeyPath
		step("writing "+RecipientKeyPath, writeFile(path(RecipientKeyPath), []byte(s.RecipientKey), 0o644))
		if _, err := report.ReadRecipients(path(RecipientKeyPath)); err != nil {
			say("PROBLEM %s: %v; reports cannot be encrypted until %s is replaced", "report.recipient_key", errors.Unwrap(err), RecipientKeyPath)
		}
	}
	cfg, err := ConfigYAML(s, keyPath, TLSDir)
	step("rendering the config", err)
	configOK := err == nil
	if err == nil {
		// Validate as the daemon will, with the key where this run wrote it.
		check, _ := ConfigYAML(s, path(keyPath), path(TLSDir))
		if _, err := config.Parse(check, ""); err != nil {
			configOK = false
			for _, line := range strings.Split(err.Error(), "\n") {
				say("CONFIG %s", line)
			}
			say("usagemeter will not start until %s is fixed (check it with: usagemeter config check)", ConfigPath)
		}
		step("writing "+ConfigPath, writeFile(path(ConfigPath), cfg, 0o600))
		step("chown "+ConfigPath, sys.Chown(path(ConfigPath), "usagemeter", "usagemeter"))
	}

	// The database: a role for the usagemeter OS user (peer authentication
	// over the socket) and its database. The daemon migrates it.
	dbErr := createDatabase(ctx, sys)
	step("creating the database", dbErr)

	// The web console's first admin account: 'admin' with the same
	// password, when it meets the console's rules (at least
	// WebMinPasswordLength characters). Not fatal: `usagemeter admin
	// set-password` makes one at any time.
	const hint = "create one with: sudo -u usagemeter usagemeter admin set-password admin"
	switch {
	case s.AdminPassword == "" || dbErr != nil:
	case len([]rune(s.AdminPassword)) < WebMinPasswordLength:
		say("PROBLEM web console: no admin account, the Administrator password is shorter than %d characters; %s", WebMinPasswordLength, hint)
	default:
		err := sys.Run(ctx, []byte(s.AdminPassword+"\n"), "runuser", "-u", "usagemeter", "--", "/usr/bin/usagemeter", "admin", "set-password", "admin", "--password-stdin", "--config", ConfigPath)
		if err != nil {
			say("PROBLEM web console: creating the admin account: %v; %s", err, hint)
		} else {
			say("web console: account admin created with the Administrator password")
		}
	}
	// Registration: with the daemon's own command, as its user, before it
	// starts. A failure leaves the appliance unregistered (the readiness
	// check says so) and does not fail first boot.
	if s.Contract != "" {
		register := fmt.Sprintf("sudo -u usagemeter usagemeter register --contract %s --program %s", s.Contract, s.Program)
		var why string
		switch {
		case !configOK || dbErr != nil:
			why = "the configuration or the database is not ready"
		default:
			if err := sys.Run(ctx, nil, "runuser", "-u", "usagemeter", "--", UsagemeterBin, "register", "--config", ConfigPath,
				"--contract", s.Contract, "--program", s.Program); err != nil {
				why = err.Error()
			}
		}
		if why == "" {
			say("registered: contract %s, programme %s", s.Contract, s.Program)
		} else {
			p := Problem{ova.KeyContract, fmt.Sprintf("not registered (%s); once fixed, run: %s", why, register)}
			probs = append(probs, p)
			say("PROBLEM %s", p)
		}
	}

	// What the console shows above the login prompt.
	step("writing /etc/issue.d/usagemeter.issue", writeFile(path("/etc/issue.d/usagemeter.issue"), []byte(issue(s, probs)), 0o644))

	if len(failed) > 0 {
		say("FAILED: %d step(s) failed; first boot runs again at the next boot", len(failed))
		return errors.Join(failed...)
	}
	step("writing "+MarkerPath, writeFile(path(MarkerPath), []byte(o.Now().UTC().Format(time.RFC3339)+"\n"), 0o644))
	if len(failed) > 0 {
		return errors.Join(failed...)
	}
	say("done; usagemeter will answer on https://%s:%d/ (web console and API; /healthz)", displayAddr(s), HTTPPort)
	return nil
}

const createDatabaseSQL = `SELECT 'CREATE ROLE usagemeter LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'usagemeter')\gexec
SELECT 'CREATE DATABASE usagemeter OWNER usagemeter' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'usagemeter')\gexec
`

func createDatabase(ctx context.Context, sys System) error {
	var err error
	for i := 0; i < 30; i++ {
		if err = sys.Run(ctx, nil, "runuser", "-u", "postgres", "--", "pg_isready", "-q"); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	if err != nil {
		return fmt.Errorf("PostgreSQL is not answering: %w", err)
	}
	return sys.Run(ctx, []byte(createDatabaseSQL), "runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres")
}

func displayAddr(s Settings) string {
	if s.DHCP() {
		return s.Hostname
	}
	a := s.Address.Addr()
	if a.Is6() {
		return "[" + a.String() + "]"
	}
	return a.String()
}

func issue(s Settings, probs []Problem) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usagemeter appliance %s\n", s.Hostname)
	fmt.Fprintf(&b, "  Web console, API and health: https://\\4:%d/   SSH: admin@\\4\n", HTTPPort)
	if len(probs) > 0 {
		b.WriteString("  First boot found problems with the deploy-time properties:\n")
		for _, p := range probs {
			fmt.Fprintf(&b, "   - %s\n", p)
		}
		fmt.Fprintf(&b, "  Fix them in %s (or redeploy); see journalctl -u usagemeter-firstboot\n", ConfigPath)
	}
	b.WriteString("\n")
	return b.String()
}

// writeOrRemove writes b, or removes the file when b is empty.
func writeOrRemove(path, b string, mode os.FileMode) error {
	if b == "" {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return writeFile(path, []byte(b), mode)
}

// mkdirMode makes a directory (and its parents) and sets its mode.
func mkdirMode(dir string, mode os.FileMode) error {
	if err := os.MkdirAll(dir, mode); err != nil {
		return err
	}
	return os.Chmod(dir, mode)
}

// writeFile writes atomically, with the mode set before any byte is written.
func writeFile(path string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
