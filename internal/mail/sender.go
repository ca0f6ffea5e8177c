// Package mail sends the appliance's e-mail: alerts and monthly reports.
//
// Sender delivers one Message over SMTP with github.com/wneessen/go-mail:
// STARTTLS (mandatory: a server that does not offer it gets nothing, not even
// credentials), implicit TLS, or, only where explicitly allowed, plain text;
// AUTH PLAIN, LOGIN or CRAM-MD5. Its errors say what failed and carry a Class
// so that the caller can tell three kinds of failure apart: a temporary one
// (connection refused, 4xx, timeouts), a configuration one that an admin has
// to fix (authentication refused, no STARTTLS, a certificate not trusted, a
// policy refusal) and a definitive refusal of the message itself (an unknown
// recipient). Only the last one ends a mail; the first two are retried.
// Passwords never appear in errors or logs.
//
// Worker drains the outbox: every e-mail is first stored, then sent by
// RunOnce with retries and exponential backoff, so that nothing is lost while
// the SMTP server is down or refuses the configuration; only a Refused mail
// ends, and an Observer hears of every failure as it happens. The store itself (PostgreSQL) lives in
// internal/store and implements the Outbox interface defined here.
package mail

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	netmail "net/mail"
	"net/textproto"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	gsmtp "github.com/wneessen/go-mail/smtp"

	"github.com/usagemeter/usagemeter/internal/config"
)

// TLSMode says how the connection to the SMTP server is protected.
type TLSMode string

const (
	// TLSStartTLS connects in plain text and requires STARTTLS before
	// anything else is sent (usually port 587).
	TLSStartTLS TLSMode = "starttls"
	// TLSImplicit speaks TLS from the first byte (SMTPS, usually port 465).
	TLSImplicit TLSMode = "tls"
	// TLSNone sends everything in clear text (usually port 25).
	TLSNone TLSMode = "none"
)

// AuthMode is the SMTP AUTH mechanism used.
type AuthMode string

const (
	AuthPlain   AuthMode = "plain"
	AuthLogin   AuthMode = "login"
	AuthCRAMMD5 AuthMode = "cram-md5"
	AuthNone    AuthMode = "none"
)

// DefaultTimeout bounds connecting and each SMTP command when
// Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Config is how the appliance reaches its SMTP relay.
type Config struct {
	Host string
	// Port 0 means the usual port for TLS: 587 for starttls, 465 for tls,
	// 25 for none.
	Port int
	// TLS "" means starttls.
	TLS TLSMode
	// Auth "" means none.
	Auth     AuthMode
	Username string
	Password config.Secret
	// From is the envelope sender and From header, e.g.
	// "usagemeter <meter@provider.example>".
	From string
	// Timeout bounds connecting and each SMTP command; default 30s.
	Timeout time.Duration
	// RootCAs verifies the server's certificate; nil means the system roots.
	RootCAs *x509.CertPool
	// HeloName is the name sent in EHLO; "" means the machine's host name.
	HeloName string
	// AllowPlainAuthWithoutTLS permits AUTH when TLS is none, that is,
	// sending credentials over an unprotected connection. Without it such a
	// configuration is refused by NewSender.
	AllowPlainAuthWithoutTLS bool
}

// Attachment is a file attached to a Message.
type Attachment struct {
	Name        string
	ContentType string // "" means application/octet-stream
	Data        []byte
}

// Message is one e-mail.
type Message struct {
	// MessageID is stable for the message (see MessageID) and becomes its
	// Message-ID header, so that a message sent twice after a crash can be
	// recognised as the same one. Angle brackets are optional.
	MessageID   string
	To          []string
	Subject     string
	Text        string
	HTML        string
	Attachments []Attachment
	// Date is the Date header; zero means the time of sending.
	Date time.Time
}

// Sender sends messages over SMTP. It holds no connection between sends and
// is safe for concurrent use.
type Sender struct {
	cfg    Config
	addr   string // host:port for messages
	from   *netmail.Address
	tls    *tls.Config
	logger *slog.Logger
}

// NewSender validates cfg, fills in its defaults and returns a Sender. A nil
// logger discards.
func NewSender(cfg Config, logger *slog.Logger) (*Sender, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.TLS == "" {
		cfg.TLS = TLSStartTLS
	}
	if cfg.Auth == "" {
		cfg.Auth = AuthNone
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Port == 0 {
		switch cfg.TLS {
		case TLSImplicit:
			cfg.Port = 465
		case TLSNone:
			cfg.Port = 25
		default:
			cfg.Port = 587
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("mail config: %w", err)
	}
	from, _ := netmail.ParseAddress(cfg.From) // checked by validate
	return &Sender{
		cfg:  cfg,
		addr: net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)),
		from: from,
		tls: &tls.Config{
			ServerName: cfg.Host,
			RootCAs:    cfg.RootCAs,
			MinVersion: tls.VersionTLS12,
		},
		logger: logger,
	}, nil
}

func (c Config) validate() error {
	switch {
	case strings.TrimSpace(c.Host) == "":
		return errors.New("host: must be set")
	case c.Port < 1 || c.Port > 65535:
		return fmt.Errorf("port: %d is not between 1 and 65535", c.Port)
	case c.Timeout < 0:
		return fmt.Errorf("timeout: %s is negative", c.Timeout)
	}
	switch c.TLS {
	case TLSStartTLS, TLSImplicit, TLSNone:
	default:
		return fmt.Errorf("tls: %q is not one of starttls, tls, none", c.TLS)
	}
	switch c.Auth {
	case AuthNone:
		if c.Username != "" || c.Password.IsSet() {
			return errors.New("auth: is none but a username or password is set")
		}
	case AuthPlain, AuthLogin, AuthCRAMMD5:
		if c.Username == "" {
			return fmt.Errorf("username: must be set for auth %s", c.Auth)
		}
		if !c.Password.IsSet() {
			return fmt.Errorf("password: must be set for auth %s", c.Auth)
		}
		if c.TLS == TLSNone && !c.AllowPlainAuthWithoutTLS {
			return fmt.Errorf("auth: %s over tls none would send credentials unprotected; use starttls or tls, or allow it explicitly", c.Auth)
		}
	default:
		return fmt.Errorf("auth: %q is not one of plain, login, cram-md5, none", c.Auth)
	}
	if c.From == "" {
		return errors.New("from: must be set")
	}
	if _, err := netmail.ParseAddress(c.From); err != nil {
		return fmt.Errorf("from: %q is not an e-mail address: %v", c.From, err)
	}
	if strings.ContainsAny(c.HeloName, " \r\n") {
		return fmt.Errorf("helo_name: %q contains white space", c.HeloName)
	}
	return nil
}

// Class is the kind of a send failure: what should happen to the mail.
type Class string

const (
	// Temporary failures (connection refused or lost, 4xx replies,
	// timeouts) go away by themselves: retry with backoff.
	Temporary Class = "temporary"
	// Configuration failures need an admin: the server refused the
	// credentials, does not offer STARTTLS, presents a certificate that is
	// not trusted, or refused the sender or message by policy (5.7.x,
	// 530, 554 greeting, 552 size). The mail is kept and retried with
	// backoff, and an admin is alerted at once.
	Configuration Class = "configuration"
	// Refused is a definitive refusal of this mail: a recipient the server
	// says does not exist (550 5.1.1), or a message that cannot be built.
	// Sending it again fails the same way; the mail ends, with an alert.
	Refused Class = "refused"
)

// Error is what Send returns when a message was not delivered.
type Error struct {
	// Addr is the server, host:port.
	Addr string
	// Reason says what failed, e.g. "authentication failed".
	Reason string
	// Code is the SMTP reply code, 0 when the server did not answer one.
	Code int
	// Class says what should happen to the mail; see ClassOf.
	Class Class
	// Permanent is true when the mail is refused for good (Class Refused);
	// see IsPermanent.
	Permanent bool
	// Refused lists the recipients the server refused for good, when it
	// named them (Class Refused, reason "recipient refused").
	Refused []string
	// DeliveredTo lists the other recipients, to whom the message was
	// delivered after the refusal: the mail is sent, except to Refused.
	DeliveredTo []string

	detail string // the server's reply or the cause, password removed
	err    error
}

func (e *Error) Error() string {
	s := "sending mail via " + e.Addr + ": " + e.Reason
	if e.detail != "" {
		s += " (" + e.detail + ")"
	}
	if len(e.DeliveredTo) > 0 {
		s += "; delivered to the other recipients: " + strings.Join(e.DeliveredTo, ", ")
	}
	return s
}

// PartlyDelivered reports whether err refused some recipients for good but
// the message was delivered to all the others: the mail is sent.
func PartlyDelivered(err error) bool {
	var e *Error
	return errors.As(err, &e) && len(e.DeliveredTo) > 0
}

// RefusedRecipients returns the recipients err refused for good, when the
// server named them.
func RefusedRecipients(err error) []string {
	var e *Error
	if errors.As(err, &e) {
		return e.Refused
	}
	return nil
}

func (e *Error) Unwrap() error { return e.err }

// IsPermanent reports whether err refuses the mail for good (Class Refused):
// a recipient the server does not know, or a message that cannot be built.
// An authentication, TLS or policy refusal is not permanent: it is a
// Configuration failure, fixed by an admin, after which the same mail goes
// through.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Class == Refused
}

// ClassOf returns the class of a send failure. Errors that are not from
// Sender (cancellation, ...) are Temporary; nil is "".
func ClassOf(err error) Class {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Class != "" {
		return e.Class
	}
	return Temporary
}

// Send delivers m over a new SMTP connection. It returns once the server
// accepted the message, or with an *Error. ctx cancels the whole exchange;
// cfg.Timeout bounds each step.
func (s *Sender) Send(ctx context.Context, m Message) error {
	msg, err := s.build(m)
	if err != nil {
		return s.fail("message invalid", 0, Refused, err)
	}

	d := &dialer{s: s, outer: ctx}
	defer d.stop()
	auth := s.auth()
	client, err := gomail.NewClient(s.cfg.Host, s.options(d, auth)...)
	if err != nil {
		return s.fail("configuring SMTP client", 0, Configuration, err)
	}

	sc, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return s.classifySetup(ctx, err, auth)
	}
	if err := client.SendWithSMTPClient(sc, msg); err != nil {
		if client.CloseWithSMTPClient(sc) != nil {
			_ = sc.Close()
		}
		return s.sendToOthers(ctx, m, s.classifySend(ctx, err))
	}
	// Delivered. A failing QUIT changes nothing about that; reporting it
	// would make the outbox send the message again.
	if err := client.CloseWithSMTPClient(sc); err != nil {
		s.logger.Debug("closing SMTP connection after delivery", "server", s.addr, "error", s.scrub(err.Error()))
	}
	s.logger.Debug("mail sent", "server", s.addr, "message_id", msg.GetMessageID(), "recipients", len(m.To))
	return nil
}

// sendToOthers delivers m to the recipients the server did not refuse, when
// err refused only some of them for good: one unknown address among the
// admins must not keep the mail from the others. The result says both.
func (s *Sender) sendToOthers(ctx context.Context, m Message, err error) error {
	var e *Error
	if !errors.As(err, &e) || e.Class != Refused || len(e.Refused) == 0 {
		return err
	}
	var rest []string
	for _, to := range m.To {
		if !slices.ContainsFunc(e.Refused, func(r string) bool { return sameAddress(r, to) }) {
			rest = append(rest, to)
		}
	}
	if len(rest) == 0 || len(rest) == len(m.To) {
		return err
	}
	m.To = rest
	if err := s.Send(ctx, m); err != nil {
		return err // retried later, to everyone: nothing was delivered
	}
	e.DeliveredTo = rest
	return e
}

func sameAddress(a, b string) bool {
	pa, err1 := netmail.ParseAddress(a)
	pb, err2 := netmail.ParseAddress(b)
	if err1 != nil || err2 != nil {
		return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
	}
	return strings.EqualFold(pa.Address, pb.Address)
}

var affectedRecipients = regexp.MustCompile(`, affected recipient\(s\): (.+?)(?:, affected message ID: \S*)?$`)

func (s *Sender) build(m Message) (*gomail.Msg, error) {
	id := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(m.MessageID), "<"), ">")
	if id == "" || strings.ContainsAny(id, "<> \r\n") || !strings.Contains(id, "@") {
		return nil, fmt.Errorf("message id %q is not of the form <left@right>", m.MessageID)
	}
	if len(m.To) == 0 {
		return nil, errors.New("no recipients")
	}
	msg := gomail.NewMsg()
	msg.FromMailAddress(s.from)
	if err := msg.To(m.To...); err != nil {
		return nil, fmt.Errorf("recipients: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(id)
	date := m.Date
	if date.IsZero() {
		date = time.Now()
	}
	msg.SetDateWithValue(date)
	msg.SetUserAgent("usagemeter")
	switch {
	case m.HTML == "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	case m.Text == "":
		msg.SetBodyString(gomail.TypeTextHTML, m.HTML)
	default:
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	for i, a := range m.Attachments {
		if a.Name == "" {
			return nil, fmt.Errorf("attachment %d has no name", i)
		}
		ct := a.ContentType
		if ct == "" {
			ct = string(gomail.TypeAppOctetStream)
		}
		if err := msg.AttachReader(a.Name, bytes.NewReader(a.Data),
			gomail.WithFileContentType(gomail.ContentType(ct)),
			gomail.WithFileEncoding(gomail.EncodingB64)); err != nil {
			return nil, fmt.Errorf("attachment %q: %w", a.Name, err)
		}
	}
	return msg, nil
}

func (s *Sender) options(d *dialer, auth *trackedAuth) []gomail.Option {
	opts := []gomail.Option{
		gomail.WithPort(s.cfg.Port),
		gomail.WithTimeout(s.cfg.Timeout),
		gomail.WithTLSConfig(s.tls),
		gomail.WithDialContextFunc(d.dial),
	}
	switch s.cfg.TLS {
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSImplicit:
		// The dialer does the TLS handshake; WithSSL tells go-mail not to
		// try STARTTLS on top of it.
		opts = append(opts, gomail.WithSSL(), gomail.WithTLSPolicy(gomail.NoTLS))
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.cfg.HeloName != "" {
		opts = append(opts, gomail.WithHELO(s.cfg.HeloName))
	}
	if auth != nil {
		opts = append(opts, gomail.WithSMTPAuthCustom(auth))
	}
	return opts
}

// auth returns the SMTP AUTH client for the configured mechanism, wrapped so
// that a failure can be recognised as an authentication failure.
func (s *Sender) auth() *trackedAuth {
	// go-mail's PLAIN and LOGIN refuse an unencrypted connection unless told
	// otherwise; validate allowed that only with AllowPlainAuthWithoutTLS.
	noEnc := s.cfg.TLS == TLSNone && s.cfg.AllowPlainAuthWithoutTLS
	user, pass := s.cfg.Username, s.cfg.Password.Reveal()
	switch s.cfg.Auth {
	case AuthPlain:
		return &trackedAuth{mech: "PLAIN", inner: gsmtp.PlainAuth("", user, pass, s.cfg.Host, noEnc)}
	case AuthLogin:
		return &trackedAuth{mech: "LOGIN", inner: gsmtp.LoginAuth(user, pass, s.cfg.Host, noEnc)}
	case AuthCRAMMD5:
		return &trackedAuth{mech: "CRAM-MD5", inner: gsmtp.CRAMMD5Auth(user, pass)}
	}
	return nil
}

// trackedAuth records that authentication began, so that an error after it
// is reported as an authentication failure, and refuses a mechanism the
// server does not offer with a clear message.
type trackedAuth struct {
	mech    string
	inner   gsmtp.Auth
	started bool
	offered []string
}

func (a *trackedAuth) Start(si *gsmtp.ServerInfo) (string, []byte, error) {
	a.started = true
	a.offered = si.Auth
	if !slices.ContainsFunc(si.Auth, func(m string) bool { return strings.EqualFold(m, a.mech) }) {
		return "", nil, errMechanismNotOffered
	}
	return a.inner.Start(si)
}

func (a *trackedAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	return a.inner.Next(fromServer, more)
}

var errMechanismNotOffered = errors.New("mechanism not offered")

// dialer connects for go-mail, does the implicit TLS handshake itself, and
// closes the connection when the caller's context ends, so that Send
// returns promptly on cancellation whatever step it is in.
type dialer struct {
	s     *Sender
	outer context.Context

	mu    sync.Mutex
	stops []func() bool
}

type dialFailure struct {
	reason string
	err    error
}

func (f *dialFailure) Error() string { return f.reason + ": " + f.err.Error() }
func (f *dialFailure) Unwrap() error { return f.err }

func (d *dialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.s.cfg.Timeout}
	conn, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, &dialFailure{reason: "connecting failed", err: err}
	}
	if d.s.cfg.TLS == TLSImplicit {
		tc := tls.Client(conn, d.s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, &dialFailure{reason: "TLS handshake failed", err: err}
		}
		conn = tc
	}
	stop := context.AfterFunc(d.outer, func() { conn.Close() })
	d.mu.Lock()
	d.stops = append(d.stops, stop)
	d.mu.Unlock()
	return conn, nil
}

func (d *dialer) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, stop := range d.stops {
		stop()
	}
}

// classifySetup turns an error from connecting, greeting, EHLO, STARTTLS or
// AUTH into an *Error.
func (s *Sender) classifySetup(ctx context.Context, err error, auth *trackedAuth) error {
	var df *dialFailure
	code := replyCode(err)
	switch {
	case isCertificateError(err):
		return s.fail("TLS certificate not trusted", 0, Configuration, err)
	case ctx.Err() != nil:
		return s.fail("interrupted", 0, Temporary, context.Cause(ctx))
	case errors.As(err, &df):
		if isTimeout(err) {
			return s.fail(df.reason+": timed out", 0, Temporary, df.err)
		}
		return s.fail(df.reason, 0, Temporary, df.err)
	case strings.Contains(err.Error(), "does not support STARTTLS"):
		// go-mail has no sentinel for this; TestSTARTTLSNotOffered pins
		// the wording.
		return s.fail("server does not offer STARTTLS", 0, Configuration, nil)
	case auth != nil && auth.started:
		if errors.Is(err, errMechanismNotOffered) {
			detail := "server does not offer AUTH " + auth.mech
			if len(auth.offered) > 0 {
				detail += "; it offers " + strings.Join(auth.offered, " ")
			} else {
				detail += "; it offers no AUTH at all"
			}
			return s.fail("authentication failed", 0, Configuration, errors.New(detail))
		}
		if code == 0 {
			return s.fail("connection lost during authentication", 0, Temporary, err)
		}
		return s.fail("authentication failed", code, classFor(code, Configuration), reply(err))
	case code != 0:
		return s.fail("server refused the session", code, classFor(code, Configuration), reply(err))
	case isTimeout(err):
		return s.fail("timed out", 0, Temporary, err)
	}
	return s.fail("SMTP session failed", 0, Temporary, err)
}

// classFor is Temporary for a 4xx reply and class for a 5xx one.
func classFor(code int, class Class) Class {
	if code >= 500 {
		return class
	}
	return Temporary
}

var enhancedCode = regexp.MustCompile(`\b([245])\.(\d{1,3})\.(\d{1,3})\b`)

// classifySend turns an error from MAIL, RCPT or DATA into an *Error. Only a
// recipient refused with 5xx (other than a 5.7.x policy refusal, such as
// "relaying denied") ends the mail; a refused sender or message is a matter
// of configuration or policy that an admin can fix.
func (s *Sender) classifySend(ctx context.Context, err error) error {
	var se *gomail.SendError
	if !errors.As(err, &se) {
		if ctx.Err() != nil {
			return s.fail("interrupted", 0, Temporary, context.Cause(ctx))
		}
		return s.fail("sending failed", 0, Temporary, err)
	}
	code := se.ErrorCode()
	if code < 400 || code > 599 {
		code = 0
	}
	detail := strings.TrimPrefix(se.Error(), se.Reason.String()+": ")
	esc := se.EnhancedStatusCode()
	if esc == "" {
		esc = enhancedCode.FindString(detail)
	}
	policy := strings.HasPrefix(esc, "5.7.")
	reason, class := "sending failed", Configuration
	switch se.Reason {
	case gomail.ErrSMTPMailFrom:
		reason = "sender refused"
	case gomail.ErrSMTPRcptTo:
		reason = "recipient refused"
		if !policy {
			class = Refused
		}
	case gomail.ErrSMTPData, gomail.ErrSMTPDataClose:
		reason = "message refused"
	case gomail.ErrConnCheck, gomail.ErrWriteContent:
		reason = "connection lost"
	case gomail.ErrGetSender, gomail.ErrGetRcpts, gomail.ErrNoUnencoded:
		return s.fail("message invalid", 0, Refused, err)
	}
	if ctx.Err() != nil && code == 0 {
		return s.fail("interrupted", 0, Temporary, context.Cause(ctx))
	}
	if code == 0 {
		class = Temporary
	}
	e := s.fail(reason, code, classFor(code, class), errors.New(detail))
	if e.Class == Refused && se.Reason == gomail.ErrSMTPRcptTo {
		// go-mail names the refused recipients only in its text
		// (TestPartlyRefusedRecipients pins it).
		if m := affectedRecipients.FindStringSubmatch(detail); m != nil {
			for _, r := range strings.Split(m[1], ", ") {
				e.Refused = append(e.Refused, strings.TrimSuffix(strings.TrimPrefix(r, "<"), ">"))
			}
		}
	}
	return e
}

func (s *Sender) fail(reason string, code int, class Class, cause error) *Error {
	e := &Error{Addr: s.addr, Reason: reason, Code: code, Class: class, Permanent: class == Refused, err: cause}
	if cause != nil {
		e.detail = s.scrub(readable(cause.Error()))
	}
	return e
}

var (
	quotedReply = regexp.MustCompile(`\b([45]\d\d) ("(?:[^"\\]|\\.)*")`)
	affectedID  = regexp.MustCompile(`, affected message ID: \S*$`)
)

// readable turns net/textproto's `535 "5.7.8 Authentication failed"` back
// into the reply as the server sent it, and drops go-mail's echo of the
// Message-ID, which the caller knows.
func readable(text string) string {
	text = quotedReply.ReplaceAllStringFunc(text, func(m string) string {
		code, quoted, _ := strings.Cut(m, " ")
		if u, err := strconv.Unquote(quoted); err == nil {
			return code + " " + u
		}
		return m
	})
	return affectedID.ReplaceAllString(text, "")
}

// scrub removes the password from text, should a server or library ever
// echo it.
func (s *Sender) scrub(text string) string {
	if p := s.cfg.Password.Reveal(); p != "" {
		text = strings.ReplaceAll(text, p, config.Secret(p).String())
	}
	return text
}

// reply returns the server's reply inside err, or err.
func reply(err error) error {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te
	}
	return err
}

func replyCode(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 400 && te.Code <= 599 {
		return te.Code
	}
	return 0
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func isCertificateError(err error) bool {
	var (
		verr *tls.CertificateVerificationError
		uerr x509.UnknownAuthorityError
		herr x509.HostnameError
		ierr x509.CertificateInvalidError
	)
	return errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &ierr)
}
