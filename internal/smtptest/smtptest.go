// Package smtptest runs a real SMTP server in the test process, for tests of
// code that sends mail. It is built on the server side of
// github.com/emersion/go-smtp and listens on 127.0.0.1 on a free port, over
// real TCP: clients speak the same protocol to it as to a production relay.
//
// A server can offer STARTTLS or not, listen with implicit TLS, advertise and
// require AUTH with the PLAIN, LOGIN and CRAM-MD5 mechanisms (go-smtp supports
// PLAIN itself; LOGIN and CRAM-MD5 are implemented here as SASL servers), and
// presents a self-signed certificate generated at start whose pool and
// thumbprint are exposed so that clients can trust it.
//
// Every delivered message is captured with its envelope, its raw data and how
// it arrived (TLS or not, which AUTH mechanism). Failures can be switched on
// while a test runs: Down and Up close and reopen the listener on the same
// port, RejectRecipient answers 550 to one address, FailNext answers 451
// to the next n messages, RefuseAuth answers 535 to the next n AUTH
// exchanges whatever the credentials, SetSTARTTLS stops or starts offering
// STARTTLS, and RotateCertificate makes the server present a certificate
// from a new CA.
//
// As in a real relay, AUTH is only advertised on a TLS connection unless
// Options.AllowInsecureAuth is set.
package smtptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// SASL mechanism names the server supports.
const (
	Plain   = "PLAIN"
	Login   = "LOGIN"
	CramMD5 = "CRAM-MD5"
)

// Options configures a Server. The zero value is a plain-text server without
// TLS or AUTH that accepts every message.
type Options struct {
	// STARTTLS offers the STARTTLS extension on the plain listener.
	STARTTLS bool
	// ImplicitTLS makes the listener speak TLS from the first byte (SMTPS,
	// port 465 style). STARTTLS is then never offered.
	ImplicitTLS bool

	// Username and Password are the only credentials AUTH accepts. AUTH is
	// advertised only when Username is set.
	Username string
	Password string
	// Mechanisms lists the SASL mechanisms advertised, in order. Empty means
	// PLAIN, LOGIN and CRAM-MD5.
	Mechanisms []string
	// AuthRequired refuses MAIL FROM with 530 until the client authenticated.
	AuthRequired bool
	// AllowInsecureAuth advertises and accepts AUTH on a connection without
	// TLS.
	AllowInsecureAuth bool

	// Domain is the name in the greeting; default "smtptest.local".
	Domain string
	// MaxMessageBytes refuses larger messages with 552 5.3.4; default 32 MiB.
	MaxMessageBytes int64
	// Timeout is the server's read and write timeout per command; default 10s.
	Timeout time.Duration
}

// Message is one delivered message as the server received it.
type Message struct {
	From string   // envelope sender (MAIL FROM)
	To   []string // envelope recipients (RCPT TO), in order
	Data []byte   // raw message: headers and body, CRLF line endings
	// TLS reports whether the message came over TLS (implicit or STARTTLS).
	TLS bool
	// AuthMechanism is the SASL mechanism the client authenticated with, ""
	// if it did not.
	AuthMechanism string
	// AuthUsername is the user the client authenticated as.
	AuthUsername string
	// HeloName is the name the client gave in EHLO/HELO.
	HeloName string
	Received time.Time
}

// Server is a running SMTP test server. Its methods are safe for concurrent
// use.
type Server struct {
	tls  *tls.Config
	addr string // 127.0.0.1:port, fixed for the server's life

	mu         sync.Mutex
	opts       Options
	cert       *x509.Certificate
	pair       tls.Certificate
	pool       *x509.CertPool
	cond       *sync.Cond
	msgs       []Message
	rejected   map[string]bool
	failNext   int
	refuseAuth int
	conns      int
	srv        *smtp.Server
	listener   net.Listener
	serveDone  chan struct{}
	closed     bool
}

// Start starts a server for the duration of the test and closes it in
// t.Cleanup. It fails the test if the server cannot start.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("smtptest: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// New starts a server on 127.0.0.1 on a free port. Close it when done.
func New(opts Options) (*Server, error) {
	if opts.STARTTLS && opts.ImplicitTLS {
		return nil, errors.New("STARTTLS and ImplicitTLS are exclusive")
	}
	for _, m := range opts.Mechanisms {
		if m != Plain && m != Login && m != CramMD5 {
			return nil, fmt.Errorf("unsupported mechanism %q", m)
		}
	}
	if len(opts.Mechanisms) == 0 {
		opts.Mechanisms = []string{Plain, Login, CramMD5}
	}
	if opts.Domain == "" {
		opts.Domain = "smtptest.local"
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	certificate, leaf, err := selfSigned()
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:     opts,
		cert:     leaf,
		pair:     certificate,
		pool:     x509.NewCertPool(),
		rejected: map[string]bool{},
	}
	s.tls = &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			c := s.pair
			return &c, nil
		},
		MinVersion: tls.VersionTLS12,
	}
	s.pool.AddCert(leaf)
	s.cond = sync.NewCond(&s.mu)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening: %w", err)
	}
	s.addr = l.Addr().String()
	s.mu.Lock()
	s.serveLocked(l)
	s.mu.Unlock()
	return s, nil
}

// selfSigned makes an ECDSA certificate valid for localhost, 127.0.0.1 and ::1.
func selfSigned() (tls.Certificate, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "smtptest", Organization: []string{"usagemeter tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf, nil
}

// serveLocked starts a go-smtp server on l. A go-smtp Server cannot be
// restarted after Close, so every Up gets a fresh one.
func (s *Server) serveLocked(l net.Listener) {
	srv := smtp.NewServer(backend{s})
	srv.Domain = s.opts.Domain
	srv.ReadTimeout = s.opts.Timeout
	srv.WriteTimeout = s.opts.Timeout
	srv.MaxMessageBytes = 32 << 20
	if s.opts.MaxMessageBytes > 0 {
		srv.MaxMessageBytes = s.opts.MaxMessageBytes
	}
	srv.MaxRecipients = 100
	srv.AllowInsecureAuth = s.opts.AllowInsecureAuth
	srv.ErrorLog = log.New(io.Discard, "", 0)
	if s.opts.STARTTLS || s.opts.ImplicitTLS {
		srv.TLSConfig = s.tls
	}
	if s.opts.ImplicitTLS {
		l = tls.NewListener(l, s.tls)
	}
	done := make(chan struct{})
	s.srv, s.listener, s.serveDone = srv, l, done
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
}

// Addr returns "127.0.0.1:port". It stays the same across Down and Up.
func (s *Server) Addr() string { return s.addr }

// Host returns "127.0.0.1".
func (s *Server) Host() string {
	h, _, _ := net.SplitHostPort(s.addr)
	return h
}

// Port returns the TCP port.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.addr)
	n, _ := strconv.Atoi(p)
	return n
}

// Certificate returns the server's current self-signed certificate.
func (s *Server) Certificate() *x509.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cert
}

// CertPool returns a pool that trusts the server's current certificate (and
// only it), for a client's RootCAs.
func (s *Server) CertPool() *x509.CertPool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pool
}

// Thumbprint returns the SHA-256 thumbprint of the current certificate in
// the form internal/tlsutil uses (upper-case hex pairs separated by colons).
func (s *Server) Thumbprint() string { return tlsutil.Thumbprint(s.Certificate().Raw) }

// TLSConfig returns a client configuration that trusts the server.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.CertPool(), ServerName: s.Host(), MinVersion: tls.VersionTLS12}
}

// RotateCertificate makes the server present a new self-signed certificate,
// its own CA, from the next TLS handshake on: a client that trusts only the
// old one (an old CertPool) refuses it, as when a relay's certificate is
// renewed by another CA.
func (s *Server) RotateCertificate() error {
	pair, leaf, err := selfSigned()
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pair, s.cert, s.pool = pair, leaf, pool
	return nil
}

// SetSTARTTLS makes the plain listener offer STARTTLS (on) or not (off) to
// the sessions that start from now on, as a relay whose TLS was switched off
// by mistake and then on again. It is an error on an implicit TLS server.
func (s *Server) SetSTARTTLS(on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.ImplicitTLS {
		return errors.New("smtptest: SetSTARTTLS on an implicit TLS server")
	}
	if s.opts.STARTTLS == on {
		return nil
	}
	s.opts.STARTTLS = on
	return s.restartLocked()
}

// SetMaxMessageBytes changes the size limit (see Options.MaxMessageBytes)
// for the sessions that start from now on, as an admin who raised it.
func (s *Server) SetMaxMessageBytes(n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.MaxMessageBytes = n
	return s.restartLocked()
}

// restartLocked restarts a running server on the same port so that it
// takes changed options: go-smtp holds them in its server.
func (s *Server) restartLocked() error {
	if s.srv == nil || s.closed {
		return nil // Up starts with the new setting
	}
	l := s.addr
	if err := s.downLocked(); err != nil {
		return err
	}
	var (
		ln  net.Listener
		err error
	)
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", l); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("smtptest: reopening %s: %w", l, err)
	}
	s.serveLocked(ln)
	return nil
}

// RefuseAuth makes the next n AUTH exchanges fail with "535 5.7.8
// Authentication credentials invalid", whatever the credentials, as a relay
// whose directory refused the account for a while.
func (s *Server) RefuseAuth(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuseAuth = n
}

// Down closes the listener and every open connection: connecting is refused
// until Up.
func (s *Server) Down() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.downLocked()
}

func (s *Server) downLocked() error {
	if s.srv == nil {
		return nil
	}
	// Close the listener ourselves as well: go-smtp only knows it once
	// Serve has registered it.
	_ = s.listener.Close()
	_ = s.srv.Close()
	done := s.serveDone
	s.srv, s.listener, s.serveDone = nil, nil, nil
	s.mu.Unlock()
	<-done
	s.mu.Lock()
	return nil
}

// Up reopens the listener on the same port after Down.
func (s *Server) Up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("smtptest: server closed")
	}
	if s.srv != nil {
		return nil
	}
	var (
		l   net.Listener
		err error
	)
	// The port was ours a moment ago; retry briefly in case the kernel
	// has not released it yet.
	for i := 0; i < 50; i++ {
		if l, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("smtptest: reopening %s: %w", s.addr, err)
	}
	s.serveLocked(l)
	return nil
}

// Close stops the server for good.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	err := s.downLocked()
	s.cond.Broadcast()
	return err
}

// RejectRecipient makes RCPT TO for addr (case-insensitive) fail with
// "550 5.1.1 no such user".
func (s *Server) RejectRecipient(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejected[strings.ToLower(addr)] = true
}

// FailNext makes the next n messages fail at the end of DATA with
// "451 4.3.0 temporary failure". They are not captured.
func (s *Server) FailNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = n
}

// Connections returns how many SMTP sessions (EHLO/HELO) the server has seen.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Messages returns a copy of the messages delivered so far, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.copyLocked()
}

func (s *Server) copyLocked() []Message {
	out := make([]Message, len(s.msgs))
	for i, m := range s.msgs {
		m.To = slices.Clone(m.To)
		m.Data = bytes.Clone(m.Data)
		out[i] = m
	}
	return out
}

// WaitFor waits until at least n messages were delivered and returns them,
// or returns an error with what arrived after timeout.
func (s *Server) WaitFor(n int, timeout time.Duration) ([]Message, error) {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer timer.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.msgs) < n && !s.closed && time.Now().Before(deadline) {
		s.cond.Wait()
	}
	if len(s.msgs) < n {
		return s.copyLocked(), fmt.Errorf("smtptest: %d of %d messages after %s", len(s.msgs), n, timeout)
	}
	return s.copyLocked(), nil
}

type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	b.s.mu.Lock()
	b.s.conns++
	b.s.mu.Unlock()
	return &session{s: b.s, conn: c}, nil
}

type session struct {
	s    *Server
	conn *smtp.Conn

	mech string // set once AUTH succeeded
	user string
	from string
	to   []string
}

var (
	errNoSuchUser = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	errTemporary  = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "temporary failure, try again later"}
)

func (ss *session) AuthMechanisms() []string {
	if ss.s.opts.Username == "" {
		return nil
	}
	return ss.s.opts.Mechanisms
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if ss.s.opts.Username == "" || !slices.Contains(ss.s.opts.Mechanisms, mech) {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	check := func(user, pass string) error {
		ss.s.mu.Lock()
		refuse := ss.s.refuseAuth > 0
		if refuse {
			ss.s.refuseAuth--
		}
		ss.s.mu.Unlock()
		if refuse || user != ss.s.opts.Username || pass != ss.s.opts.Password {
			return smtp.ErrAuthFailed
		}
		ss.mech, ss.user = mech, user
		return nil
	}
	switch mech {
	case Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && identity != user {
				return smtp.ErrAuthFailed
			}
			return check(user, pass)
		}), nil
	case Login:
		return &loginServer{check: check}, nil
	default: // CRAM-MD5
		cs, err := newCramMD5Server(ss.s.opts.Domain)
		if err != nil {
			return nil, err
		}
		cs.verify = func(user, digest string) error {
			mac := hmac.New(md5.New, []byte(ss.s.opts.Password))
			mac.Write(cs.challenge)
			want := hex.EncodeToString(mac.Sum(nil))
			ss.s.mu.Lock()
			refuse := ss.s.refuseAuth > 0
			if refuse {
				ss.s.refuseAuth--
			}
			ss.s.mu.Unlock()
			if refuse || user != ss.s.opts.Username || !hmac.Equal([]byte(want), []byte(strings.ToLower(digest))) {
				return smtp.ErrAuthFailed
			}
			ss.mech, ss.user = mech, user
			return nil
		}
		return cs, nil
	}
}

func (ss *session) Reset() {
	ss.from, ss.to = "", nil
}

func (ss *session) Logout() error { return nil }

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.opts.AuthRequired && ss.mech == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	ss.from, ss.to = from, nil
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	rejected := ss.s.rejected[strings.ToLower(to)]
	ss.s.mu.Unlock()
	if rejected {
		return errNoSuchUser
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := ss.conn.TLSConnectionState()
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if ss.s.failNext > 0 {
		ss.s.failNext--
		return errTemporary
	}
	ss.s.msgs = append(ss.s.msgs, Message{
		From:          ss.from,
		To:            slices.Clone(ss.to),
		Data:          data,
		TLS:           isTLS,
		AuthMechanism: ss.mech,
		AuthUsername:  ss.user,
		HeloName:      ss.conn.Hostname(),
		Received:      time.Now(),
	})
	ss.s.cond.Broadcast()
	return nil
}

// loginServer is the server side of the LOGIN mechanism
// (draft-murchison-sasl-login): it asks for "Username:" then "Password:",
// accepting the user name as an initial response as well.
type loginServer struct {
	check func(user, pass string) error
	step  int
	user  string
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		l.step = 1
		if response == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		l.user = string(response)
		l.step = 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		if err := l.check(l.user, string(response)); err != nil {
			return nil, false, err
		}
		return nil, true, nil
	}
	return nil, false, errors.New("unexpected response")
}

// cramMD5Server is the server side of CRAM-MD5 (RFC 2195).
type cramMD5Server struct {
	challenge []byte
	verify    func(user, digest string) error
	sent      bool
}

func newCramMD5Server(domain string) (*cramMD5Server, error) {
	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	ch := fmt.Sprintf("<%s.%d@%s>", hex.EncodeToString(nonce[:]), time.Now().Unix(), domain)
	return &cramMD5Server{challenge: []byte(ch)}, nil
}

func (c *cramMD5Server) Next(response []byte) (challenge []byte, done bool, err error) {
	if !c.sent {
		if len(response) > 0 {
			return nil, false, errors.New("CRAM-MD5 takes no initial response")
		}
		c.sent = true
		return c.challenge, false, nil
	}
	user, digest, ok := strings.Cut(string(response), " ")
	if !ok {
		return nil, false, smtp.ErrAuthFailed
	}
	if err := c.verify(user, digest); err != nil {
		return nil, false, err
	}
	return nil, true, nil
}
