package mail_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	netmail "net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/mail"
	"github.com/usagemeter/usagemeter/internal/smtptest"
)

const (
	user     = "meter"
	password = "Tr0ub4dor&3-never-print"
)

func serverOpts(o smtptest.Options) smtptest.Options {
	o.Username, o.Password = user, password
	return o
}

func configFor(s *smtptest.Server, tlsMode mail.TLSMode, auth mail.AuthMode) mail.Config {
	c := mail.Config{
		Host: s.Host(), Port: s.Port(), TLS: tlsMode, Auth: auth,
		From:     "usagemeter <meter@provider.example>",
		Timeout:  5 * time.Second,
		RootCAs:  s.CertPool(),
		HeloName: "meter.provider.example",
	}
	if auth != mail.AuthNone {
		c.Username, c.Password = user, config.Secret(password)
	}
	return c
}

func newSender(t *testing.T, cfg mail.Config) *mail.Sender {
	t.Helper()
	s, err := mail.NewSender(cfg, nil)
	if err != nil {
		t.Fatalf("NewSender: %v", err)
	}
	return s
}

func testMessage(id int64) mail.Message {
	return mail.Message{
		MessageID: mail.MessageID(id, "meter.provider.example"),
		To:        []string{"ops@provider.example"},
		Subject:   "Collection failed: vcenter-1",
		Text:      "Collection of vcenter-1 failed.\n",
		Date:      time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC),
	}
}

// checkErr fails unless err is a *mail.Error of the given class whose text
// contains want, and proves the password is nowhere in it.
func checkErr(t *testing.T, err error, class mail.Class, want string) *mail.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("Send succeeded, want an error containing %q", want)
	}
	t.Logf("error: %v", err)
	var me *mail.Error
	if !errors.As(err, &me) {
		t.Fatalf("error %T %v is not a *mail.Error", err, err)
	}
	if got := mail.ClassOf(err); got != class {
		t.Errorf("ClassOf = %q, want %q for %v", got, class, err)
	}
	if got := mail.IsPermanent(err); got != (class == mail.Refused) {
		t.Errorf("IsPermanent = %v for class %s", got, class)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
	checkNoPassword(t, err)
	return me
}

func checkNoPassword(t *testing.T, err error) {
	t.Helper()
	for e := err; e != nil; e = errors.Unwrap(e) {
		for _, s := range []string{e.Error(), fmt.Sprintf("%v %+v %#v", e, e, e)} {
			if strings.Contains(s, password) || strings.Contains(s, base64.StdEncoding.EncodeToString([]byte(password))) {
				t.Errorf("password leaked in error: %s", s)
			}
		}
	}
}

func TestSendSTARTTLSEachMechanism(t *testing.T) {
	srv := smtptest.Start(t, serverOpts(smtptest.Options{STARTTLS: true, AuthRequired: true}))
	for i, tc := range []struct {
		auth mail.AuthMode
		mech string
	}{
		{mail.AuthPlain, smtptest.Plain},
		{mail.AuthLogin, smtptest.Login},
		{mail.AuthCRAMMD5, smtptest.CramMD5},
	} {
		t.Run(string(tc.auth), func(t *testing.T) {
			m := testMessage(int64(i + 1))
			if err := newSender(t, configFor(srv, mail.TLSStartTLS, tc.auth)).Send(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			msgs, err := srv.WaitFor(i+1, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			got := msgs[i]
			if !got.TLS || got.AuthMechanism != tc.mech || got.AuthUsername != user {
				t.Errorf("TLS=%v mech=%q user=%q, want TLS with %s", got.TLS, got.AuthMechanism, got.AuthUsername, tc.mech)
			}
			if got.From != "meter@provider.example" || strings.Join(got.To, ",") != "ops@provider.example" {
				t.Errorf("envelope %q -> %q", got.From, got.To)
			}
			if got.HeloName != "meter.provider.example" {
				t.Errorf("EHLO %q", got.HeloName)
			}
			h := parse(t, got.Data).Header
			if h.Get("Message-Id") != m.MessageID {
				t.Errorf("Message-ID %q, want %q", h.Get("Message-Id"), m.MessageID)
			}
		})
	}
}

func TestSendImplicitTLS(t *testing.T) {
	srv := smtptest.Start(t, serverOpts(smtptest.Options{ImplicitTLS: true, AuthRequired: true}))
	if err := newSender(t, configFor(srv, mail.TLSImplicit, mail.AuthPlain)).Send(context.Background(), testMessage(1)); err != nil {
		t.Fatal(err)
	}
	msgs, err := srv.WaitFor(1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !msgs[0].TLS || msgs[0].AuthMechanism != smtptest.Plain {
		t.Errorf("TLS=%v mech=%q", msgs[0].TLS, msgs[0].AuthMechanism)
	}
}

func TestSendWithoutTLS(t *testing.T) {
	t.Run("no auth", func(t *testing.T) {
		srv := smtptest.Start(t, smtptest.Options{})
		if err := newSender(t, configFor(srv, mail.TLSNone, mail.AuthNone)).Send(context.Background(), testMessage(1)); err != nil {
			t.Fatal(err)
		}
		if m := srv.Messages(); len(m) != 1 || m[0].TLS {
			t.Fatalf("messages %+v", m)
		}
	})
	t.Run("auth explicitly allowed", func(t *testing.T) {
		srv := smtptest.Start(t, serverOpts(smtptest.Options{AllowInsecureAuth: true, AuthRequired: true}))
		for _, auth := range []mail.AuthMode{mail.AuthPlain, mail.AuthLogin, mail.AuthCRAMMD5} {
			cfg := configFor(srv, mail.TLSNone, auth)
			cfg.AllowPlainAuthWithoutTLS = true
			if err := newSender(t, cfg).Send(context.Background(), testMessage(1)); err != nil {
				t.Fatalf("%s: %v", auth, err)
			}
		}
		if n := len(srv.Messages()); n != 3 {
			t.Fatalf("%d messages, want 3", n)
		}
	})
}

func TestSTARTTLSRequiredButNotOffered(t *testing.T) {
	// The server would even take the password in clear text.
	srv := smtptest.Start(t, serverOpts(smtptest.Options{AllowInsecureAuth: true}))
	err := newSender(t, configFor(srv, mail.TLSStartTLS, mail.AuthPlain)).Send(context.Background(), testMessage(1))
	checkErr(t, err, mail.Configuration, "sending mail via "+srv.Addr()+": server does not offer STARTTLS")
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d messages delivered in clear text", n)
	}
}

func TestWrongPassword(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{STARTTLS: true, Username: user, Password: "something else", AuthRequired: true})
	for _, auth := range []mail.AuthMode{mail.AuthPlain, mail.AuthLogin, mail.AuthCRAMMD5} {
		err := newSender(t, configFor(srv, mail.TLSStartTLS, auth)).Send(context.Background(), testMessage(1))
		me := checkErr(t, err, mail.Configuration, "sending mail via "+srv.Addr()+": authentication failed (535")
		if me.Code != 535 {
			t.Errorf("%s: Code = %d", auth, me.Code)
		}
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d messages delivered", n)
	}
}

func TestMechanismNotOffered(t *testing.T) {
	srv := smtptest.Start(t, serverOpts(smtptest.Options{STARTTLS: true, Mechanisms: []string{smtptest.CramMD5}}))
	err := newSender(t, configFor(srv, mail.TLSStartTLS, mail.AuthLogin)).Send(context.Background(), testMessage(1))
	checkErr(t, err, mail.Configuration, "authentication failed (server does not offer AUTH LOGIN; it offers CRAM-MD5)")
}

func TestAuthRequiredButNotConfigured(t *testing.T) {
	srv := smtptest.Start(t, serverOpts(smtptest.Options{STARTTLS: true, AuthRequired: true}))
	err := newSender(t, configFor(srv, mail.TLSStartTLS, mail.AuthNone)).Send(context.Background(), testMessage(1))
	checkErr(t, err, mail.Configuration, "sender refused (530")
}

func TestUnknownRecipient(t *testing.T) {
	srv := smtptest.Start(t, serverOpts(smtptest.Options{STARTTLS: true}))
	srv.RejectRecipient("nobody@provider.example")
	m := testMessage(1)
	m.To = []string{"nobody@provider.example"}
	err := newSender(t, configFor(srv, mail.TLSStartTLS, mail.AuthPlain)).Send(context.Background(), m)
	me := checkErr(t, err, mail.Refused, "recipient refused (550 5.1.1 no such user")
	if me.Code != 550 || !strings.Contains(err.Error(), "nobody@provider.example") || mail.PartlyDelivered(err) {
		t.Errorf("Code %d, error %q should name the recipient", me.Code, err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d messages delivered", n)
	}
}

// TestPartlyRefusedRecipients: one unknown address among the recipients
// does not keep the mail from the others; the error names it, and says the
// others got the mail.
func TestPartlyRefusedRecipients(t *testing.T) {
	srv := smtptest.Start(t, serverOpts(smtptest.Options{STARTTLS: true}))
	srv.RejectRecipient("nobody@provider.example")
	m := testMessage(1)
	m.To = []string{"ops@provider.example", "Nobody <nobody@provider.example>", "oncall@provider.example"}
	err := newSender(t, configFor(srv, mail.TLSStartTLS, mail.AuthPlain)).Send(context.Background(), m)
	checkErr(t, err, mail.Refused, "recipient refused (550 5.1.1 no such user")
	if !mail.PartlyDelivered(err) || !slices.Equal(mail.RefusedRecipients(err), []string{"nobody@provider.example"}) ||
		!strings.Contains(err.Error(), "delivered to the other recipients: ops@provider.example, oncall@provider.example") {
		t.Fatalf("error %q, refused %q", err, mail.RefusedRecipients(err))
	}
	msgs := srv.Messages()
	if len(msgs) != 1 || !slices.Equal(msgs[0].To, []string{"ops@provider.example", "oncall@provider.example"}) {
		t.Fatalf("delivered %d messages: %+v", len(msgs), msgs)
	}
}

func TestServerDown(t *testing.T) {
	srv := smtptest.Start(t, serverOpts(smtptest.Options{STARTTLS: true}))
	if err := srv.Down(); err != nil {
		t.Fatal(err)
	}
	err := newSender(t, configFor(srv, mail.TLSStartTLS, mail.AuthPlain)).Send(context.Background(), testMessage(1))
	checkErr(t, err, mail.Temporary, "sending mail via "+srv.Addr()+": connecting failed")
}

func TestTemporaryFailure(t *testing.T) {
	srv := smtptest.Start(t, serverOpts(smtptest.Options{STARTTLS: true}))
	srv.FailNext(1)
	s := newSender(t, configFor(srv, mail.TLSStartTLS, mail.AuthCRAMMD5))
	me := checkErr(t, s.Send(context.Background(), testMessage(1)), mail.Temporary, "message refused (451 4.3.0")
	if me.Code != 451 {
		t.Errorf("Code = %d", me.Code)
	}
	if err := s.Send(context.Background(), testMessage(1)); err != nil {
		t.Fatalf("second attempt: %v", err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

func TestUntrustedCertificate(t *testing.T) {
	for _, mode := range []mail.TLSMode{mail.TLSStartTLS, mail.TLSImplicit} {
		srv := smtptest.Start(t, serverOpts(smtptest.Options{STARTTLS: mode == mail.TLSStartTLS, ImplicitTLS: mode == mail.TLSImplicit}))
		cfg := configFor(srv, mode, mail.AuthPlain)
		cfg.RootCAs = nil // system roots do not know the test certificate
		checkErr(t, newSender(t, cfg).Send(context.Background(), testMessage(1)), mail.Configuration, "TLS certificate not trusted")
	}
}

// A server that accepts connections but never greets: Send must give up
// after the timeout, and report it as temporary.
func TestTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	s := newSender(t, mail.Config{Host: "127.0.0.1", Port: port, TLS: mail.TLSStartTLS, From: "meter@provider.example", Timeout: 300 * time.Millisecond})
	start := time.Now()
	checkErr(t, s.Send(context.Background(), testMessage(1)), mail.Temporary, "")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Send took %s with a 300ms timeout", d)
	}

	// Cancelling the context ends Send as well.
	s = newSender(t, mail.Config{Host: "127.0.0.1", Port: port, TLS: mail.TLSStartTLS, From: "meter@provider.example", Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	checkErr(t, s.Send(ctx, testMessage(1)), mail.Temporary, "interrupted (context deadline exceeded)")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Send took %s after cancellation", d)
	}
}

func TestMultipartAndAttachments(t *testing.T) {
	srv := smtptest.Start(t, serverOpts(smtptest.Options{STARTTLS: true}))
	binary := make([]byte, 100_000)
	if _, err := rand.Read(binary); err != nil {
		t.Fatal(err)
	}
	tsv := []byte("customer\tvm_hours\r\nacme\t720\nno trailing newline")
	m := mail.Message{
		MessageID: "<outbox-42@meter.provider.example>",
		To:        []string{"aggregator@example.net", "ops@provider.example"},
		Subject:   "Monthly usage report 2026-10 — Müller GmbH",
		Text:      "The report for 2026-10 is attached.\n",
		HTML:      "<p>The report for <b>2026-10</b> is attached.</p>",
		Date:      time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC),
		Attachments: []mail.Attachment{
			{Name: "report-2026-10.tar.gz.gpg", ContentType: "application/pgp-encrypted", Data: binary},
			{Name: "Monthly_Usage.tsv", ContentType: "text/tab-separated-values", Data: tsv},
			{Name: "empty.bin", Data: nil},
		},
	}
	if err := newSender(t, configFor(srv, mail.TLSStartTLS, mail.AuthPlain)).Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := srv.Messages()[0]
	if strings.Join(got.To, ",") != "aggregator@example.net,ops@provider.example" {
		t.Errorf("recipients %q", got.To)
	}
	msg := parse(t, got.Data)
	if id := msg.Header.Get("Message-Id"); id != m.MessageID {
		t.Errorf("Message-ID %q, want %q", id, m.MessageID)
	}
	if d, err := msg.Header.Date(); err != nil || !d.Equal(m.Date) {
		t.Errorf("Date %v (%v), want %v", d, err, m.Date)
	}
	dec := new(mime.WordDecoder)
	if s, err := dec.DecodeHeader(msg.Header.Get("Subject")); err != nil || s != m.Subject {
		t.Errorf("Subject %q (%v)", s, err)
	}

	var texts, attachments = map[string]string{}, map[string][]byte{}
	walk(t, msg.Header.Get("Content-Type"), msg.Body, texts, attachments)
	if !strings.Contains(texts["text/plain"], "The report for 2026-10 is attached.") {
		t.Errorf("text part %q", texts["text/plain"])
	}
	if texts["text/html"] != m.HTML {
		t.Errorf("html part %q", texts["text/html"])
	}
	if len(attachments) != len(m.Attachments) {
		t.Errorf("%d attachments, want %d", len(attachments), len(m.Attachments))
	}
	for _, a := range m.Attachments {
		if !bytes.Equal(attachments[a.Name], a.Data) {
			t.Errorf("attachment %s: %d bytes arrived, %d sent, or content differs", a.Name, len(attachments[a.Name]), len(a.Data))
		}
	}
}

func TestSingleBodies(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	s := newSender(t, configFor(srv, mail.TLSNone, mail.AuthNone))
	for i, tc := range []struct {
		text, html, wantType, wantBody string
	}{
		{"only text\n", "", "text/plain", "only text"},
		{"", "<p>only html</p>", "text/html", "<p>only html</p>"},
	} {
		m := testMessage(int64(i))
		m.Text, m.HTML = tc.text, tc.html
		if err := s.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		msg := parse(t, srv.Messages()[i].Data)
		mt, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		body, _ := io.ReadAll(msg.Body)
		if mt != tc.wantType || !strings.EqualFold(params["charset"], "utf-8") || !strings.Contains(string(body), tc.wantBody) {
			t.Errorf("Content-Type %q %v, body %q", mt, params, body)
		}
	}
}

func parse(t *testing.T, data []byte) *netmail.Message {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parsing delivered message: %v", err)
	}
	return msg
}

// walk collects the text parts by media type and the attachments by file
// name, decoding base64 (multipart.Reader decodes quoted-printable itself).
func walk(t *testing.T, contentType string, body io.Reader, texts map[string]string, attachments map[string][]byte) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		t.Fatalf("Content-Type %q: %v", contentType, err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		t.Fatalf("part of type %s outside multipart", mt)
	}
	r := multipart.NewReader(body, params["boundary"])
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		ct := p.Header.Get("Content-Type")
		pt, _, _ := mime.ParseMediaType(ct)
		var data []byte
		if strings.HasPrefix(pt, "multipart/") {
			walk(t, ct, p, texts, attachments)
			continue
		}
		if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "base64") {
			data, err = io.ReadAll(base64.NewDecoder(base64.StdEncoding, p))
		} else {
			data, err = io.ReadAll(p)
		}
		if err != nil {
			t.Fatal(err)
		}
		if name := p.FileName(); name != "" {
			attachments[name] = data
			continue
		}
		texts[pt] = string(data)
	}
}

func TestNewSenderValidation(t *testing.T) {
	good := mail.Config{Host: "smtp.provider.example", TLS: mail.TLSStartTLS, Auth: mail.AuthLogin,
		Username: user, Password: config.Secret(password), From: "meter@provider.example"}
	for _, tc := range []struct {
		name string
		edit func(*mail.Config)
		want string
	}{
		{"no host", func(c *mail.Config) { c.Host = " " }, "host: must be set"},
		{"bad port", func(c *mail.Config) { c.Port = 70000 }, "port: 70000"},
		{"bad tls", func(c *mail.Config) { c.TLS = "ssl" }, `tls: "ssl" is not one of`},
		{"bad auth", func(c *mail.Config) { c.Auth = "ntlm" }, `auth: "ntlm" is not one of`},
		{"no username", func(c *mail.Config) { c.Username = "" }, "username: must be set for auth login"},
		{"no password", func(c *mail.Config) { c.Password = "" }, "password: must be set"},
		{"credentials without auth", func(c *mail.Config) { c.Auth = mail.AuthNone }, "auth: is none but"},
		{"auth in clear", func(c *mail.Config) { c.TLS = mail.TLSNone }, "would send credentials unprotected"},
		{"no from", func(c *mail.Config) { c.From = "" }, "from: must be set"},
		{"bad from", func(c *mail.Config) { c.From = "not an address" }, "from: \"not an address\" is not an e-mail address"},
		{"negative timeout", func(c *mail.Config) { c.Timeout = -time.Second }, "timeout:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			_, err := mail.NewSender(cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			checkNoPassword(t, err)
		})
	}
	if _, err := mail.NewSender(good, nil); err != nil {
		t.Errorf("good config refused: %v", err)
	}
	allowed := good
	allowed.TLS, allowed.AllowPlainAuthWithoutTLS = mail.TLSNone, true
	if _, err := mail.NewSender(allowed, nil); err != nil {
		t.Errorf("auth without TLS refused although allowed: %v", err)
	}
	if s := fmt.Sprintf("%v %+v %#v", good, good, good); strings.Contains(s, password) {
		t.Errorf("Config prints the password: %s", s)
	}
}

func TestInvalidMessageIsPermanent(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	s := newSender(t, configFor(srv, mail.TLSNone, mail.AuthNone))
	for _, edit := range []func(*mail.Message){
		func(m *mail.Message) { m.To = nil },
		func(m *mail.Message) { m.To = []string{"not an address"} },
		func(m *mail.Message) { m.MessageID = "" },
	} {
		m := testMessage(1)
		edit(&m)
		checkErr(t, s.Send(context.Background(), m), mail.Refused, "message invalid")
	}
	if n := srv.Connections(); n != 0 {
		t.Errorf("%d connections for invalid messages", n)
	}
}

func TestMessageID(t *testing.T) {
	if got := mail.MessageID(42, "meter.provider.example"); got != "<outbox-42@meter.provider.example>" {
		t.Errorf("MessageID = %q", got)
	}
	if a, b := mail.MessageID(7, "a.example"), mail.MessageID(7, "a.example"); a != b {
		t.Error("MessageID not stable")
	}
	if got := mail.MessageID(1, ""); got != "<outbox-1@usagemeter.invalid>" {
		t.Errorf("MessageID with empty domain = %q", got)
	}
}

func TestIsPermanentOtherErrors(t *testing.T) {
	if mail.IsPermanent(nil) || mail.IsPermanent(errors.New("x")) || mail.IsPermanent(context.Canceled) {
		t.Error("non-Sender errors must be temporary")
	}
	wrapped := fmt.Errorf("outbox: %w", &mail.Error{Class: mail.Refused})
	if !mail.IsPermanent(wrapped) {
		t.Error("wrapped permanent error not recognised")
	}
}
