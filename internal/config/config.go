package config

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"
)

// Config is the whole configuration file.
type Config struct {
	DataDir    string     `yaml:"data_dir"`
	Database   Database   `yaml:"database"`
	HTTP       HTTP       `yaml:"http"`
	Collection Collection `yaml:"collection"`
	SMTP       SMTP       `yaml:"smtp"`
	Alerts     Alerts     `yaml:"alerts"`
	Report     Report     `yaml:"report"`
	Retention  Retention  `yaml:"retention"`
	Backup     Backup     `yaml:"backup"`
	Log        Log        `yaml:"log"`
	// Receiver configures the receiver role (`usagemeter receiver serve`,
	// docs/RECEIVER.md); an appliance ignores it.
	Receiver Receiver `yaml:"receiver"`
}

// Receiver is the receiver role's section.
type Receiver struct {
	Listen string `yaml:"listen"` // HTTPS
	// CertFile and KeyFile (PEM) are the TLS certificate; empty: a
	// self-signed one is created once in data_dir (receiver-tls.crt/.key)
	// for Hosts.
	CertFile string   `yaml:"cert_file"`
	KeyFile  string   `yaml:"key_file"`
	Hosts    []string `yaml:"hosts"` // names and addresses of the self-signed certificate
	// AggregatorKeys are armored OpenPGP private key files: bundles are
	// decrypted with them.
	AggregatorKeys []string `yaml:"aggregator_keys"`
	AdminToken     Secret   `yaml:"admin_token"`  // a bearer token of the fleet API besides the accounts' sessions and API tokens; empty: none
	SilentAfter    Duration `yaml:"silent_after"` // without a heartbeat: alert
	DueDay         int      `yaml:"due_day"`      // of the next month: a month's report missing is alerted
	TokenTTL       Duration `yaml:"token_ttl"`    // of enrolment tokens
	MaxBundleBytes int64    `yaml:"max_bundle_bytes"`
}

// Backup is the optional backup job of the daemon: the archive of
// `usagemeter backup` (database and key files, encrypted), written on a
// schedule into a directory where only the newest are kept.
type Backup struct {
	Enabled   bool   `yaml:"enabled"`
	Schedule  string `yaml:"schedule"`  // cron spec (minute hour day month weekday), in UTC
	Directory string `yaml:"directory"` // default data_dir/backups
	Keep      int    `yaml:"keep"`      // the newest archives kept
	// RetentionDays also deletes the archives older than this many days
	// (0: by count only). The archive just written is always kept.
	RetentionDays    int    `yaml:"retention_days"`
	PassphraseFile   string `yaml:"passphrase_file"`    // its first line is the passphrase (12 characters or more; gpg -c compatible)
	RecipientKeyFile string `yaml:"recipient_key_file"` // or an OpenPGP public key file to encrypt to
}

// Retention says how long data is kept.
type Retention struct {
	Months       int `yaml:"months"`         // usage spans and collection runs (the programme wants 24-36 months)
	SentMailDays int `yaml:"sent_mail_days"` // delivered mails in the outbox
}

// Database says where PostgreSQL is.
type Database struct {
	// URL of an existing server; empty means a managed local PostgreSQL in data_dir/postgres.
	URL Secret `yaml:"url"`
}

// HTTP is the web console, the REST API, health and metrics: one HTTPS
// listener.
type HTTP struct {
	Listen string `yaml:"listen"`
	// TLS is "on" (the default: HTTPS) or "off" (plain HTTP, only when
	// set explicitly, e.g. behind a TLS-terminating proxy on loopback).
	TLS string `yaml:"tls"`
	// TLSCert and TLSKey are PEM files (the OVA's first-boot
	// certificate); when both are empty a self-signed certificate is
	// generated once into data_dir/tls.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// MetricsListen, when set, serves /metrics on its own plain listener
	// (a loopback address) instead of the main one.
	MetricsListen string `yaml:"metrics_listen"`
	// MetricsToken, when set, is required as "Authorization: Bearer" on
	// /metrics.
	MetricsToken Secret `yaml:"metrics_token"`
	// SessionIdle and SessionMax end a console session after this long
	// unused, and this long after login.
	SessionIdle Duration `yaml:"session_idle"`
	SessionMax  Duration `yaml:"session_max"`
	// LoginMaxFailures failed logins in a row lock an account for
	// LoginLockout.
	LoginMaxFailures int      `yaml:"login_max_failures"`
	LoginLockout     Duration `yaml:"login_lockout"`
}

// TLSOn reports whether the listener serves HTTPS.
func (h HTTP) TLSOn() bool { return h.TLS != "off" }

// Collection shapes the hourly collection.
type Collection struct {
	Minute      int      `yaml:"minute"`       // minute of the hour the collection starts
	Concurrency int      `yaml:"concurrency"`  // products collected at once
	Timeout     Duration `yaml:"timeout"`      // one product's whole collection
	CallTimeout Duration `yaml:"call_timeout"` // one remote call
	Retries     int      `yaml:"retries"`      // retries inside the hour after a failure
}

// SMTP is the mail server used for alerts and reports.
type SMTP struct {
	Host              string   `yaml:"host"`
	Port              int      `yaml:"port"`
	TLS               string   `yaml:"tls"`  // starttls | tls | none
	Auth              string   `yaml:"auth"` // plain | login | cram-md5 | none
	Username          string   `yaml:"username"`
	Password          Secret   `yaml:"password"`
	PasswordFile      string   `yaml:"password_file"`
	From              string   `yaml:"from"`
	Timeout           Duration `yaml:"timeout"`
	AllowInsecureAuth bool     `yaml:"allow_insecure_auth"` // permit auth with tls: none
}

// Alerts says who is told when something fails.
type Alerts struct {
	To               []string `yaml:"to"`
	ReminderInterval Duration `yaml:"reminder_interval"`
	FailureThreshold int      `yaml:"failure_threshold"` // failed hours before the first mail
	DeactivateAfter  int      `yaml:"deactivate_after"`  // consecutive failed hours before a product is deactivated
	// DatabaseDownAfter is how long the database may be unreachable (also
	// while the daemon starts) before the admins are mailed directly.
	DatabaseDownAfter Duration `yaml:"database_down_after"`
}

// Report is the monthly usage report.
type Report struct {
	To             []string `yaml:"to"`
	RecipientKeys  []string `yaml:"recipient_keys"`   // armored PGP public key files
	SigningKeyFile string   `yaml:"signing_key_file"` // appliance key; created in data_dir when empty
	Anonymization  string   `yaml:"anonymization"`    // hashed | redacted | none
	SecretFile     string   `yaml:"secret_file"`      // anonymisation secret; created in data_dir when empty
	Timezone       string   `yaml:"timezone"`
	Schedule       string   `yaml:"schedule"` // cron spec (minute hour day-of-month month day-of-week), in UTC
	UploadURL      string   `yaml:"upload_url"`
	UploadToken    Secret   `yaml:"upload_token"`
	UploadProxy    Secret   `yaml:"upload_proxy"` // may hold the proxy's password: config show hides it
}

// Log configures log/slog.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// Default returns the defaults; every default lives here.
func Default() Config {
	return Config{
		DataDir: "/var/lib/usagemeter",
		HTTP: HTTP{Listen: "127.0.0.1:8080", TLS: "on", SessionIdle: Duration(30 * time.Minute), SessionMax: Duration(12 * time.Hour),
			LoginMaxFailures: 5, LoginLockout: Duration(15 * time.Minute)},
		Collection: Collection{Minute: 5, Concurrency: 8, Timeout: Duration(10 * time.Minute), CallTimeout: Duration(60 * time.Second), Retries: 3},
		SMTP:       SMTP{Port: 587, TLS: "starttls", Auth: "plain", Timeout: Duration(30 * time.Second)},
		Alerts:     Alerts{ReminderInterval: Duration(24 * time.Hour), FailureThreshold: 1, DeactivateAfter: 720, DatabaseDownAfter: Duration(5 * time.Minute)},
		Report:     Report{Anonymization: "hashed", Timezone: "UTC", Schedule: "0 2 1 * *"},
		Retention:  Retention{Months: 36, SentMailDays: 90},
		Backup:     Backup{Schedule: "30 3 * * *", Keep: 7},
		Log:        Log{Level: "info", Format: "text"},
		Receiver: Receiver{Listen: "0.0.0.0:8443", SilentAfter: Duration(2 * time.Hour), DueDay: 3, TokenTTL: Duration(7 * 24 * time.Hour),
			MaxBundleBytes: 1 << 30},
	}
}

// Duration is a time.Duration written as "90s", "10m", "24h".
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: not a duration (use e.g. 30s, 10m, 24h): %q", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Load reads, parses and validates a configuration file over the defaults.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := Parse(b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse parses YAML over the defaults and validates it. Relative file paths
// in the config are resolved against baseDir.
func Parse(b []byte, baseDir string) (*Config, error) {
	cfg := Default()
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", cleanYAMLError(err))
	}
	if len(root.Content) > 0 {
		if errs := checkKeys(root.Content[0], reflect.TypeOf(cfg), ""); len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil {
			return nil, cleanYAMLError(err)
		}
	}
	cfg.resolve(baseDir)
	if err := cfg.readFiles(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func cleanYAMLError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.ReplaceAll(msg, "unmarshal errors:\n  ", "")
	return errors.New(msg)
}

// checkKeys walks the YAML mapping against the struct's yaml tags and reports
// every unknown key with its full dotted name, its line, and a suggestion, and
// every value of the wrong type with its dotted name and line (the decoder
// itself names only the line).
func checkKeys(n *yaml.Node, t reflect.Type, prefix string) []error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || n.Kind != yaml.MappingNode {
		return checkValue(n, t, strings.TrimSuffix(prefix, "."))
	}
	fields := map[string]reflect.Type{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = t.Field(i).Type
		names = append(names, name)
	}
	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		full := prefix + k.Value
		ft, ok := fields[k.Value]
		if !ok {
			msg := fmt.Sprintf("%s: unknown key (line %d)", full, k.Line)
			if s := suggest(k.Value, names); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", prefix+s)
			}
			errs = append(errs, errors.New(msg))
			continue
		}
		errs = append(errs, checkKeys(v, ft, full+".")...)
	}
	return errs
}

// yamlLine is the "line N: " the YAML decoder starts its messages with.
var yamlLine = regexp.MustCompile(`^line \d+: `)

// checkValue decodes the value of key on its own into its Go type, and
// reports a wrong type as "key: what is wrong (line N)".
func checkValue(n *yaml.Node, t reflect.Type, key string) []error {
	if n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice {
		var errs []error
		for i, e := range n.Content {
			errs = append(errs, checkKeys(e, t.Elem(), fmt.Sprintf("%s[%d].", key, i))...)
		}
		return errs
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // an empty value keeps the default
	}
	err := n.Decode(reflect.New(t).Interface())
	if err == nil {
		return nil
	}
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	errs := make([]error, 0, len(msgs))
	for _, m := range msgs {
		m = yamlLine.ReplaceAllString(strings.TrimPrefix(m, "yaml: "), "")
		if key == "" {
			errs = append(errs, fmt.Errorf("%s (line %d)", m, n.Line))
			continue
		}
		errs = append(errs, fmt.Errorf("%s: %s (line %d)", key, m, n.Line))
	}
	return errs
}

// suggest returns the known name closest to s, if it is close.
func suggest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := distance(strings.ToLower(s), n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func (c *Config) resolve(base string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) && base != "" {
			*p = filepath.Join(base, *p)
		}
	}
	abs(&c.DataDir)
	abs(&c.HTTP.TLSCert)
	abs(&c.HTTP.TLSKey)
	if c.Backup.Directory == "" && c.DataDir != "" {
		c.Backup.Directory = filepath.Join(c.DataDir, "backups")
	}
	abs(&c.Backup.Directory)
	abs(&c.Backup.PassphraseFile)
	abs(&c.Backup.RecipientKeyFile)
	abs(&c.SMTP.PasswordFile)
	abs(&c.Report.SigningKeyFile)
	abs(&c.Report.SecretFile)
	for i := range c.Report.RecipientKeys {
		abs(&c.Report.RecipientKeys[i])
	}
	abs(&c.Receiver.CertFile)
	abs(&c.Receiver.KeyFile)
	for i := range c.Receiver.AggregatorKeys {
		abs(&c.Receiver.AggregatorKeys[i])
	}
}

func (c *Config) readFiles() error {
	if c.SMTP.PasswordFile != "" {
		if c.SMTP.Password.IsSet() {
			return errors.New("smtp.password_file: set either smtp.password or smtp.password_file, not both")
		}
		b, err := os.ReadFile(c.SMTP.PasswordFile)
		if err != nil {
			return fmt.Errorf("smtp.password_file: %w", err)
		}
		c.SMTP.Password = Secret(strings.TrimRight(string(b), "\r\n"))
	}
	return nil
}

// Validate checks every field and the rules between fields. The error lists
// every problem, one per line, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, a...)...))
	}

	if c.DataDir == "" {
		bad("data_dir", "must be set")
	}
	if c.HTTP.Listen != "" {
		if _, port, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
			bad("http.listen", "must be host:port, e.g. 127.0.0.1:8080 (%v)", strings.TrimPrefix(err.Error(), "address "+c.HTTP.Listen+": "))
		} else if !validPort(port) {
			bad("http.listen", "port %q must be a number between 0 and 65535 (or a service name)", port)
		}
	}
	h := c.HTTP
	switch h.TLS {
	case "on", "off":
	default:
		bad("http.tls", "must be on (HTTPS, the default) or off (plain HTTP), got %q", h.TLS)
	}
	switch {
	case (h.TLSCert == "") != (h.TLSKey == ""):
		bad("http.tls_cert", "set both http.tls_cert and http.tls_key, or neither (a self-signed certificate is made in data_dir)")
	case h.TLSCert != "" && h.TLS == "off":
		bad("http.tls_cert", "http.tls is off: drop http.tls_cert and http.tls_key, or turn http.tls on")
	case h.TLSCert != "":
		if _, err := tls.LoadX509KeyPair(h.TLSCert, h.TLSKey); err != nil {
			bad("http.tls_cert", "cannot load the certificate and key: %v", err)
		}
	}
	if h.MetricsListen != "" {
		if host, _, err := net.SplitHostPort(h.MetricsListen); err != nil {
			bad("http.metrics_listen", "must be host:port, e.g. 127.0.0.1:9090 (%v)", err)
		} else if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			bad("http.metrics_listen", "must be a loopback address (127.0.0.1, ::1 or localhost): it is served without TLS, got %q", host)
		}
	}
	if h.SessionIdle.D() < time.Minute || h.SessionMax.D() < h.SessionIdle.D() {
		bad("http.session_idle", "must be at least 1m and at most http.session_max (got %s and %s)", h.SessionIdle.D(), h.SessionMax.D())
	}
	if h.LoginMaxFailures < 1 || h.LoginMaxFailures > 100 {
		bad("http.login_max_failures", "must be between 1 and 100")
	}
	if h.LoginLockout.D() < time.Second {
		bad("http.login_lockout", "must be at least 1s")
	}

	col := c.Collection
	if col.Minute < 0 || col.Minute > 59 {
		bad("collection.minute", "must be between 0 and 59")
	}
	if col.Concurrency < 1 || col.Concurrency > 256 {
		bad("collection.concurrency", "must be between 1 and 256")
	}
	if col.Retries < 0 || col.Retries > 10 {
		bad("collection.retries", "must be between 0 and 10")
	}
	if col.Timeout.D() <= 0 {
		bad("collection.timeout", "must be positive")
	} else if col.Timeout.D() >= 50*time.Minute {
		bad("collection.timeout", "must be shorter than 50m so that a collection and its retries end within its hour (got %s)", col.Timeout.D())
	}
	if col.CallTimeout.D() <= 0 {
		bad("collection.call_timeout", "must be positive")
	} else if col.Timeout.D() > 0 && col.CallTimeout.D() > col.Timeout.D() {
		bad("collection.call_timeout", "must not be longer than collection.timeout (%s)", col.Timeout.D())
	}

	s := c.SMTP
	if s.Host == "" {
		bad("smtp.host", "must be set: alerts are sent by e-mail")
	}
	if s.Port < 1 || s.Port > 65535 {
		bad("smtp.port", "must be between 1 and 65535")
	}
	if !oneOf(s.TLS, "starttls", "tls", "none") {
		bad("smtp.tls", "must be starttls, tls or none (got %q)", s.TLS)
	}
	if !oneOf(s.Auth, "plain", "login", "cram-md5", "none") {
		bad("smtp.auth", "must be plain, login, cram-md5 or none (got %q)", s.Auth)
	}
	if s.Auth != "none" && s.Auth != "" {
		if s.Username == "" {
			bad("smtp.username", "must be set when smtp.auth is %s", s.Auth)
		}
		if !s.Password.IsSet() {
			bad("smtp.password", "must be set (or smtp.password_file) when smtp.auth is %s", s.Auth)
		}
		if s.TLS == "none" && !s.AllowInsecureAuth {
			bad("smtp.tls", "is none but smtp.auth is %s: the password would cross the network in clear; use starttls or tls, or set smtp.allow_insecure_auth: true", s.Auth)
		}
	}
	if s.From == "" {
		bad("smtp.from", "must be set")
	} else if _, err := mail.ParseAddress(s.From); err != nil {
		bad("smtp.from", "not an e-mail address: %q", s.From)
	}
	if s.Timeout.D() <= 0 {
		bad("smtp.timeout", "must be positive")
	}

	if len(c.Alerts.To) == 0 {
		bad("alerts.to", "must list at least one recipient: nobody would be told when collection fails")
	}
	for i, a := range c.Alerts.To {
		if _, err := mail.ParseAddress(a); err != nil {
			bad(fmt.Sprintf("alerts.to[%d]", i), "not an e-mail address: %q", a)
		}
	}
	if c.Alerts.ReminderInterval.D() < time.Hour {
		bad("alerts.reminder_interval", "must be at least 1h")
	}
	if c.Alerts.FailureThreshold < 1 {
		bad("alerts.failure_threshold", "must be at least 1")
	}
	if c.Alerts.DeactivateAfter < 1 {
		bad("alerts.deactivate_after", "must be at least 1 (hours)")
	}
	if d := c.Alerts.DatabaseDownAfter.D(); d <= 0 || d > time.Hour {
		bad("alerts.database_down_after", "must be between 1s and 1h (got %s)", d)
	}

	r := c.Report
	for i, a := range r.To {
		if _, err := mail.ParseAddress(a); err != nil {
			bad(fmt.Sprintf("report.to[%d]", i), "not an e-mail address: %q", a)
		}
	}
	if len(r.To) > 0 && len(r.RecipientKeys) == 0 {
		bad("report.recipient_keys", "must list at least one PGP public key file when report.to is set: reports are only sent encrypted")
	}
	for i, p := range r.RecipientKeys {
		if _, err := os.Stat(p); err != nil {
			bad(fmt.Sprintf("report.recipient_keys[%d]", i), "%v", err)
		}
	}
	if !oneOf(r.Anonymization, "hashed", "redacted", "none") {
		bad("report.anonymization", "must be hashed, redacted or none (got %q)", r.Anonymization)
	}
	if _, err := time.LoadLocation(r.Timezone); err != nil || r.Timezone == "" {
		bad("report.timezone", "unknown time zone %q (use an IANA name such as UTC or Europe/Berlin)", r.Timezone)
	}
	if _, err := cron.ParseStandard(r.Schedule); err != nil {
		bad("report.schedule", "not a cron schedule (minute hour day month weekday): %v", err)
	}
	if r.UploadURL != "" && !strings.HasPrefix(r.UploadURL, "https://") {
		bad("report.upload_url", "must be an https:// URL")
	}
	if r.UploadURL != "" && !r.UploadToken.IsSet() {
		bad("report.upload_token", "must be set when report.upload_url is set")
	}

	rc := c.Receiver
	if _, port, err := net.SplitHostPort(rc.Listen); err != nil || !validPort(port) {
		bad("receiver.listen", "must be host:port, e.g. 0.0.0.0:8443")
	}
	if (rc.CertFile == "") != (rc.KeyFile == "") {
		bad("receiver.cert_file", "set both receiver.cert_file and receiver.key_file, or neither (a self-signed certificate)")
	}
	if rc.SilentAfter.D() < 10*time.Minute {
		bad("receiver.silent_after", "must be at least 10m (heartbeats are hourly)")
	}
	if rc.DueDay < 1 || rc.DueDay > 28 {
		bad("receiver.due_day", "must be between 1 and 28")
	}
	if rc.TokenTTL.D() < time.Minute {
		bad("receiver.token_ttl", "must be at least 1m")
	}
	if rc.MaxBundleBytes < 1<<20 {
		bad("receiver.max_bundle_bytes", "must be at least 1048576")
	}
	for i, p := range rc.AggregatorKeys {
		if _, err := os.Stat(p); err != nil {
			bad(fmt.Sprintf("receiver.aggregator_keys[%d]", i), "%v", err)
		}
	}

	if c.Retention.Months < 13 {
		bad("retention.months", "must be at least 13: a month's report must stay reproducible for a year")
	}
	if c.Retention.SentMailDays < 1 {
		bad("retention.sent_mail_days", "must be at least 1")
	}
	b := c.Backup
	if _, err := cron.ParseStandard(b.Schedule); err != nil {
		bad("backup.schedule", "not a cron schedule (minute hour day month weekday): %v", err)
	}
	if b.Keep < 1 {
		bad("backup.keep", "must be at least 1")
	}
	if b.RetentionDays < 0 {
		bad("backup.retention_days", "must be 0 (keep by count only) or more")
	}
	if b.Enabled {
		switch {
		case b.Directory == "":
			bad("backup.directory", "must be set")
		case (b.PassphraseFile == "") == (b.RecipientKeyFile == ""):
			bad("backup", "set one of backup.passphrase_file or backup.recipient_key_file: a backup holds the appliance's keys and is never written in clear")
		case b.PassphraseFile != "":
			if _, err := os.Stat(b.PassphraseFile); err != nil {
				bad("backup.passphrase_file", "%v", err)
			}
		default:
			if _, err := os.Stat(b.RecipientKeyFile); err != nil {
				bad("backup.recipient_key_file", "%v", err)
			}
		}
	}
	if !oneOf(c.Log.Level, "debug", "info", "warn", "error") {
		bad("log.level", "must be debug, info, warn or error (got %q)", c.Log.Level)
	}
	if !oneOf(c.Log.Format, "text", "json") {
		bad("log.format", "must be text or json (got %q)", c.Log.Format)
	}
	return errors.Join(errs...)
}

// validPort accepts what net.Listen accepts as a TCP port: a number from 0
// to 65535, or a service name known to the system.
func validPort(port string) bool {
	if n, err := strconv.Atoi(port); err == nil {
		return n >= 0 && n <= 65535
	}
	_, err := net.LookupPort("tcp", port)
	return err == nil
}

func oneOf(v string, allowed ...string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

// Show renders the effective configuration as YAML, secrets as <secret>.
func (c *Config) Show() ([]byte, error) { return yaml.Marshal(c) }

// Location returns the report time zone.
func (c *Config) Location() *time.Location {
	loc, err := time.LoadLocation(c.Report.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}
