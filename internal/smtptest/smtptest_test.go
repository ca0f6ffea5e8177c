package smtptest_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	gsmtp "github.com/wneessen/go-mail/smtp"

	"github.com/usagemeter/usagemeter/internal/smtptest"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

const body = "From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nhello\r\n"

// dial connects a raw SMTP client (go-mail's low-level package, not the
// code under test elsewhere) and says EHLO.
func dial(t *testing.T, s *smtptest.Server, implicitTLS bool) *gsmtp.Client {
	t.Helper()
	var (
		conn net.Conn
		err  error
	)
	d := &net.Dialer{Timeout: 5 * time.Second}
	if implicitTLS {
		conn, err = tls.DialWithDialer(d, "tcp", s.Addr(), s.TLSConfig())
	} else {
		conn, err = d.Dial("tcp", s.Addr())
	}
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c, err := gsmtp.NewClient(conn, s.Host())
	if err != nil {
		t.Fatalf("greeting: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatalf("EHLO: %v", err)
	}
	return c
}

func send(c *gsmtp.Client, from string, to []string, data string) error {
	if err := c.Mail(from); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(data)); err != nil {
		return err
	}
	return w.Close()
}

func code(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

func TestDeliverPlainText(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{})
	c := dial(t, s, false)
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered although not configured")
	}
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH offered although not configured")
	}
	if err := send(c, "a@example.org", []string{"b@example.org", "c@example.org"}, body); err != nil {
		t.Fatal(err)
	}
	msgs, err := s.WaitFor(1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m := msgs[0]
	if m.From != "a@example.org" || strings.Join(m.To, ",") != "b@example.org,c@example.org" {
		t.Errorf("envelope = %q %q", m.From, m.To)
	}
	if !bytes.Equal(m.Data, []byte(body)) {
		t.Errorf("data = %q, want %q", m.Data, body)
	}
	if m.TLS || m.AuthMechanism != "" || m.HeloName != "client.test" {
		t.Errorf("TLS=%v mech=%q helo=%q", m.TLS, m.AuthMechanism, m.HeloName)
	}
}

func TestSTARTTLSWithEachMechanism(t *testing.T) {
	for _, mech := range []string{smtptest.Plain, smtptest.Login, smtptest.CramMD5} {
		t.Run(mech, func(t *testing.T) {
			s := smtptest.Start(t, smtptest.Options{
				STARTTLS: true, Username: "meter", Password: "s3cret", AuthRequired: true,
			})
			c := dial(t, s, false)
			if ok, _ := c.Extension("AUTH"); ok {
				t.Error("AUTH advertised before STARTTLS")
			}
			if err := c.Mail("a@example.org"); code(err) != 530 {
				t.Errorf("MAIL before AUTH: %v, want 530", err)
			}
			if err := c.StartTLS(s.TLSConfig()); err != nil {
				t.Fatalf("STARTTLS: %v", err)
			}
			ok, mechs := c.Extension("AUTH")
			if !ok || mechs != "PLAIN LOGIN CRAM-MD5" {
				t.Errorf("AUTH after STARTTLS = %v %q", ok, mechs)
			}
			if err := c.Auth(clientAuth(mech, "meter", "s3cret", s.Host())); err != nil {
				t.Fatalf("AUTH %s: %v", mech, err)
			}
			if err := send(c, "a@example.org", []string{"b@example.org"}, body); err != nil {
				t.Fatal(err)
			}
			m := s.Messages()[0]
			if !m.TLS || m.AuthMechanism != mech || m.AuthUsername != "meter" {
				t.Errorf("TLS=%v mech=%q user=%q", m.TLS, m.AuthMechanism, m.AuthUsername)
			}
		})
	}
}

func clientAuth(mech, user, pass, host string) gsmtp.Auth {
	switch mech {
	case smtptest.Plain:
		return gsmtp.PlainAuth("", user, pass, host, false)
	case smtptest.Login:
		return gsmtp.LoginAuth(user, pass, host, false)
	default:
		return gsmtp.CRAMMD5Auth(user, pass)
	}
}

func TestWrongPasswordEachMechanism(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{ImplicitTLS: true, Username: "meter", Password: "s3cret"})
	for _, mech := range []string{smtptest.Plain, smtptest.Login, smtptest.CramMD5} {
		t.Run(mech, func(t *testing.T) {
			c := dial(t, s, true)
			if err := c.Auth(clientAuth(mech, "meter", "wrong", s.Host())); code(err) != 535 {
				t.Errorf("AUTH with a wrong password: %v, want 535", err)
			}
		})
	}
}

func TestMechanismsOption(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{ImplicitTLS: true, Username: "u", Password: "p", Mechanisms: []string{smtptest.CramMD5}})
	c := dial(t, s, true)
	if _, mechs := c.Extension("AUTH"); mechs != "CRAM-MD5" {
		t.Errorf("AUTH = %q", mechs)
	}
	if err := c.Auth(clientAuth(smtptest.Plain, "u", "p", s.Host())); code(err) != 504 {
		t.Errorf("AUTH PLAIN when not offered: %v, want 504", err)
	}
	if _, err := smtptest.New(smtptest.Options{Mechanisms: []string{"NTLM"}}); err == nil {
		t.Error("New accepted an unsupported mechanism")
	}
}

func TestAllowInsecureAuth(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Username: "u", Password: "p", AllowInsecureAuth: true})
	c := dial(t, s, false)
	if err := c.Auth(gsmtp.LoginAuth("u", "p", s.Host(), true)); err != nil {
		t.Fatal(err)
	}
	if err := send(c, "a@example.org", []string{"b@example.org"}, body); err != nil {
		t.Fatal(err)
	}
	if m := s.Messages()[0]; m.TLS || m.AuthMechanism != smtptest.Login {
		t.Errorf("TLS=%v mech=%q", m.TLS, m.AuthMechanism)
	}
}

func TestImplicitTLSAndCertificate(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{ImplicitTLS: true})
	conn, err := tls.Dial("tcp", s.Addr(), s.TLSConfig())
	if err != nil {
		t.Fatalf("TLS dial trusting CertPool: %v", err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	if got := tlsutil.Thumbprint(leaf.Raw); got != s.Thumbprint() {
		t.Errorf("thumbprint %s, server says %s", got, s.Thumbprint())
	}
	if !leaf.Equal(s.Certificate()) {
		t.Error("presented certificate differs from Certificate()")
	}
	// Without the pool the certificate is not trusted.
	if c, err := tls.Dial("tcp", s.Addr(), &tls.Config{ServerName: "127.0.0.1"}); err == nil {
		c.Close()
		t.Error("self-signed certificate trusted by the system pool")
	}

	c := dial(t, s, true)
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered on an implicit TLS connection")
	}
	if err := send(c, "a@example.org", []string{"b@example.org"}, body); err != nil {
		t.Fatal(err)
	}
	if !s.Messages()[0].TLS {
		t.Error("message over implicit TLS not marked TLS")
	}
}

func TestRejectRecipient(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{})
	s.RejectRecipient("Nobody@example.org")
	c := dial(t, s, false)
	err := send(c, "a@example.org", []string{"b@example.org", "nobody@example.org"}, body)
	if code(err) != 550 || !strings.Contains(err.Error(), "no such user") {
		t.Fatalf("got %v, want 550 no such user", err)
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("%d messages captured", n)
	}
}

func TestFailNext(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{})
	s.FailNext(2)
	c := dial(t, s, false)
	for i := 0; i < 2; i++ {
		if err := send(c, "a@example.org", []string{"b@example.org"}, body); code(err) != 451 {
			t.Fatalf("attempt %d: %v, want 451", i, err)
		}
	}
	if err := send(c, "a@example.org", []string{"b@example.org"}, body); err != nil {
		t.Fatalf("third attempt: %v", err)
	}
	if n := len(s.Messages()); n != 1 {
		t.Errorf("%d messages captured, want 1", n)
	}
}

func TestDownUp(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{})
	addr := s.Addr()
	open := dial(t, s, false)
	if err := s.Down(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("connection accepted while down")
	}
	if err := open.Noop(); err == nil {
		t.Error("open connection survived Down")
	}
	if err := s.Up(); err != nil {
		t.Fatal(err)
	}
	if s.Addr() != addr {
		t.Errorf("address changed: %s -> %s", addr, s.Addr())
	}
	if err := send(dial(t, s, false), "a@example.org", []string{"b@example.org"}, body); err != nil {
		t.Fatal(err)
	}
	if s.Connections() != 2 {
		t.Errorf("Connections() = %d, want 2", s.Connections())
	}
}

func TestWaitForTimesOut(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{})
	start := time.Now()
	msgs, err := s.WaitFor(1, 100*time.Millisecond)
	if err == nil || len(msgs) != 0 {
		t.Fatalf("WaitFor = %v, %v", msgs, err)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 2*time.Second {
		t.Errorf("WaitFor returned after %s", d)
	}
}

func TestRefuseAuthThenAccept(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Username: "u", Password: "p", AllowInsecureAuth: true})
	s.RefuseAuth(1)
	c := dial(t, s, false)
	if err := c.Auth(gsmtp.PlainAuth("", "u", "p", s.Host(), true)); code(err) != 535 {
		t.Fatalf("first AUTH with the right password: %v, want 535", err)
	}
	c = dial(t, s, false)
	if err := c.Auth(gsmtp.PlainAuth("", "u", "p", s.Host(), true)); err != nil {
		t.Fatalf("second AUTH: %v", err)
	}
}

func TestSetSTARTTLS(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{STARTTLS: true})
	if err := s.SetSTARTTLS(false); err != nil {
		t.Fatal(err)
	}
	if ok, _ := dial(t, s, false).Extension("STARTTLS"); ok {
		t.Fatal("STARTTLS offered after SetSTARTTLS(false)")
	}
	if err := s.SetSTARTTLS(true); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s, false)
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Fatal("STARTTLS not offered after SetSTARTTLS(true)")
	}
	if err := c.StartTLS(s.TLSConfig()); err != nil {
		t.Fatal(err)
	}
}

func TestRotateCertificate(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{ImplicitTLS: true})
	old := s.TLSConfig()
	oldPrint := s.Thumbprint()
	if err := s.RotateCertificate(); err != nil {
		t.Fatal(err)
	}
	if s.Thumbprint() == oldPrint {
		t.Fatal("thumbprint unchanged")
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	if conn, err := tls.DialWithDialer(d, "tcp", s.Addr(), old); err == nil {
		conn.Close()
		t.Fatal("the old CA still verifies the new certificate")
	}
	conn, err := tls.DialWithDialer(d, "tcp", s.Addr(), s.TLSConfig())
	if err != nil {
		t.Fatalf("the new CA: %v", err)
	}
	conn.Close()
}

func TestSetMaxMessageBytes(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{MaxMessageBytes: 100})
	big := body + strings.Repeat("x", 200) + "\r\n"
	if err := send(dial(t, s, false), "a@example.org", []string{"b@example.org"}, big); code(err) != 552 {
		t.Fatalf("a message over the limit: %v, want 552", err)
	}
	if err := s.SetMaxMessageBytes(1 << 20); err != nil {
		t.Fatal(err)
	}
	if err := send(dial(t, s, false), "a@example.org", []string{"b@example.org"}, big); err != nil {
		t.Fatalf("after raising the limit: %v", err)
	}
}
