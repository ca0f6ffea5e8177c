package report

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	netmail "net/mail"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/usagemeter/usagemeter/anonymize"
	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/mail"
	"github.com/usagemeter/usagemeter/internal/smtptest"
	"github.com/usagemeter/usagemeter/internal/store"
)

// attachments returns the attachments of a raw MIME message by file name.
func attachments(t *testing.T, raw []byte) map[string][]byte {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	var walk func(ct string, cte string, disp string, body io.Reader)
	walk = func(ct, cte, disp string, body io.Reader) {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			t.Fatalf("content type %q: %v", ct, err)
		}
		if strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(body, params["boundary"])
			for {
				p, err := mr.NextRawPart()
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				walk(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p.Header.Get("Content-Disposition"), p)
			}
		}
		_, dp, _ := mime.ParseMediaType(disp)
		name := dp["filename"]
		if name == "" {
			name = params["name"]
		}
		if name == "" {
			return
		}
		if strings.EqualFold(cte, "base64") {
			body = base64.NewDecoder(base64.StdEncoding, body)
		}
		data, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = data
	}
	walk(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Header.Get("Content-Disposition"), msg.Body)
	return out
}

// TestMailDeliveryDecryptsWithGPG: the monthly job queues the encrypted
// bundle in the outbox; sent through the real SMTP server, the captured
// attachment is decrypted and its signature verified by gpg, and its
// manifest checks.
func TestMailDeliveryDecryptsWithGPG(t *testing.T) {
	g := newGPGHome(t)
	recipient := mustKey(t, "Aggregator Billing")
	g.importKey(armoredPrivate(t, recipient))
	g.importKey(mustPublic(t, testSigner(t)))

	f := newFixture(t)
	f.register(t)
	f.seed(t)
	f.keys = openpgp.EntityList{publicOnly(t, recipient)}
	ctx := context.Background()
	gen := f.generator(t, anonymize.ModeHashed, secretA, &MailChannel{Store: f.st, To: []string{"billing@aggregator.example"}, Now: func() time.Time { return fixedAt }})
	if err := gen.RunMonthly(ctx, fixedAt); err != nil {
		t.Fatal(err)
	}
	rep, err := f.st.LatestReport(ctx, march.Start)
	if err != nil {
		t.Fatal(err)
	}
	if st := rep.Channels[ChannelEmail]; st.State != store.ChannelQueued || !strings.HasPrefix(st.Detail, "outbox ") {
		t.Fatalf("email channel: %+v", st)
	}
	// A second run (a restart) neither makes a version nor queues again.
	if err := gen.RunMonthly(ctx, fixedAt.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	mails, err := f.st.ClaimMail(ctx, fixedAt.Add(time.Hour), 10, time.Minute)
	if err != nil || len(mails) != 1 {
		t.Fatalf("outbox: %d mails, %v", len(mails), err)
	}
	m := mails[0]
	if m.Kind != "report" || len(m.Attachments) != 1 || m.To[0] != "billing@aggregator.example" || !strings.Contains(m.Subject, "2026-03") {
		t.Fatalf("mail: %+v", m)
	}
	if IsPlainBundle(m.Attachments[0].Data) {
		t.Fatal("the attachment is the plain bundle")
	}

	srv := smtptest.Start(t, smtptest.Options{STARTTLS: true})
	sender, err := mail.NewSender(mail.Config{Host: srv.Host(), Port: srv.Port(), TLS: mail.TLSStartTLS, Auth: mail.AuthNone,
		From: "usagemeter <meter@provider.example>", RootCAs: srv.CertPool(), HeloName: "meter.provider.example"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := mail.Message{MessageID: mail.MessageID(m.ID, "provider.example"), To: m.To, Subject: m.Subject, Text: m.Text}
	for _, a := range m.Attachments {
		msg.Attachments = append(msg.Attachments, mail.Attachment{Name: a.Name, ContentType: a.ContentType, Data: a.Data})
	}
	if err := sender.Send(ctx, msg); err != nil {
		t.Fatal(err)
	}
	got, err := srv.WaitFor(1, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	att := attachments(t, got[0].Data)
	enc := att["usage-2026-03-v1.tar.gz.gpg"]
	if enc == nil {
		t.Fatalf("no report attachment in %v", mapKeys(att))
	}
	plain, status := g.decrypt(enc)
	for _, want := range []string{"DECRYPTION_OKAY", "GOODSIG", "VALIDSIG " + fingerprint(testSigner(t))} {
		if !strings.Contains(status, want) {
			t.Errorf("gpg status lacks %q:\n%s", want, status)
		}
	}
	man, err := VerifyBundle(plain)
	if err != nil || man.Month != "2026-03" || man.Version != 1 || man.ContractID != "C-1234" {
		t.Fatalf("manifest: %+v %v", man, err)
	}
	// The plain bundle kept on disk is the one that was encrypted.
	if !bytes.Equal(plain, mustRead(t, strings.TrimSuffix(rep.Path, ".gpg"))) {
		t.Error("the decrypted bundle differs from the plain one kept on disk")
	}
	// report verify, as the aggregator runs it.
	v, err := VerifyFile(rep.Path, openpgp.EntityList{recipient}, openpgp.EntityList{publicOnly(t, testSigner(t))})
	if err != nil || !v.Encrypted || v.Signer != fingerprint(testSigner(t)) {
		t.Fatalf("verify: %+v %v", v, err)
	}
	if _, err := VerifyFile(rep.Path, nil, nil); err == nil || !strings.Contains(err.Error(), "--key") {
		t.Fatalf("verify without a key: %v", err)
	}
}

func mapKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestUploadSurvivesRefusals: the HTTPS upload checks the bearer token,
// is refused twice with 503, succeeds on the third attempt; a wrong token
// fails at once without printing the token.
func TestUploadSurvivesRefusals(t *testing.T) {
	var mu sync.Mutex
	var calls int
	var body []byte
	var hdr http.Header
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer tok-123" {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		calls++
		if calls <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		body, _ = io.ReadAll(r.Body)
		hdr = r.Header.Clone()
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()

	recipient := mustKey(t, "Aggregator Upload")
	f := newFixture(t)
	f.register(t)
	f.seed(t)
	f.keys = openpgp.EntityList{publicOnly(t, recipient)}
	ctx := context.Background()
	up := &UploadChannel{URL: srv.URL + "/reports", Token: collectors.Secret("tok-123"), Client: srv.Client(), Backoff: func(int) time.Duration { return 10 * time.Millisecond }}
	gen := f.generator(t, anonymize.ModeHashed, secretA, up)
	res, err := gen.Send(ctx, march)
	if err != nil {
		t.Fatal(err)
	}
	st := res.Report.Channels[ChannelUpload]
	if st.State != store.ChannelSent || st.Attempts != 3 || st.Detail != "HTTP 201" || calls != 3 {
		t.Fatalf("upload status %+v after %d calls", st, calls)
	}
	if !bytes.Equal(body, mustRead(t, res.Path)) || hdr.Get("X-Usagemeter-Month") != "2026-03" || hdr.Get("X-Usagemeter-Appliance") != applianceID {
		t.Fatalf("uploaded %d bytes, headers %v", len(body), hdr)
	}
	// Done channels are not retried.
	if _, err := gen.Send(ctx, march); err != nil || calls != 3 {
		t.Fatalf("second send: %v, %d calls", err, calls)
	}

	// A wrong token: final at the first answer.
	f2 := newFixture(t)
	f2.register(t)
	f2.seed(t)
	f2.keys = f.keys
	bad := &UploadChannel{URL: srv.URL, Token: collectors.Secret("wrong-secret-token"), Client: srv.Client(), Backoff: func(int) time.Duration { return time.Millisecond }}
	_, err = f2.generator(t, anonymize.ModeHashed, secretA, bad).Send(ctx, march)
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "report.upload_token") || strings.Contains(err.Error(), "wrong-secret-token") {
		t.Fatalf("bad token: %v", err)
	}
	rep, _ := f2.st.LatestReport(ctx, march.Start)
	if st := rep.Channels[ChannelUpload]; st.State != store.ChannelFailed || st.Attempts != 1 {
		t.Fatalf("bad token status: %+v", st)
	}
}

// TestPlainOnlyWithoutRecipients: with no recipient keys a report is kept
// plain and no channel can send it.
func TestPlainOnlyWithoutRecipients(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	f.seed(t)
	gen := f.generator(t, anonymize.ModeHashed, secretA, &MailChannel{Store: f.st, To: []string{"a@example.com"}})
	_, err := gen.Send(context.Background(), march)
	if err == nil || !strings.Contains(err.Error(), "recipient_keys") {
		t.Fatalf("send without recipients: %v", err)
	}
}

// TestRetryUndelivered: an upload that failed for longer than its retries
// is delivered by the periodic retry once the server is back; delivered
// channels are left alone.
func TestRetryUndelivered(t *testing.T) {
	var mu sync.Mutex
	up, calls := false, 0
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if !up {
			http.Error(w, "maintenance", http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	f := newFixture(t)
	f.register(t)
	f.seed(t)
	f.keys = openpgp.EntityList{publicOnly(t, mustKey(t, "Aggregator Retry"))}
	ctx := context.Background()
	ch := &UploadChannel{URL: srv.URL, Token: collectors.Secret("t"), Client: srv.Client(), Attempts: 2, Backoff: func(int) time.Duration { return time.Millisecond }}
	mailCh := &MailChannel{Store: f.st, To: []string{"billing@aggregator.example"}}
	gen := f.generator(t, anonymize.ModeHashed, secretA, mailCh, ch)
	if err := gen.RunMonthly(ctx, fixedAt); err == nil || !strings.Contains(err.Error(), "502") {
		t.Fatalf("upload during maintenance: %v", err)
	}
	rep, _ := f.st.LatestReport(ctx, march.Start)
	if rep.Channels[ChannelUpload].State != store.ChannelFailed || rep.Channels[ChannelEmail].State != store.ChannelQueued {
		t.Fatalf("channels: %+v", rep.Channels)
	}
	mu.Lock()
	up = true
	mu.Unlock()
	if err := gen.RetryUndelivered(ctx); err != nil {
		t.Fatal(err)
	}
	rep, _ = f.st.LatestReport(ctx, march.Start)
	if st := rep.Channels[ChannelUpload]; st.State != store.ChannelSent || st.Attempts != 3 || calls != 3 {
		t.Fatalf("after retry: %+v, %d calls", st, calls)
	}
	var mails int
	_ = f.st.Pool().QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&mails)
	if mails != 1 {
		t.Fatalf("%d mails queued, want 1", mails)
	}
	if err := gen.RetryUndelivered(ctx); err != nil || calls != 3 {
		t.Fatalf("nothing to retry: %v, %d calls", err, calls)
	}
}

// TestUploadThroughProxy: with report.upload_proxy the upload goes through
// an HTTP proxy (CONNECT tunnel), TLS still verified end to end.
func TestUploadThroughProxy(t *testing.T) {
	var got atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer via-proxy" {
			got.Add(1)
			w.WriteHeader(http.StatusCreated)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	var tunnels atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		tunnels.Add(1)
		dst, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		// Hijack first, then answer on the raw connection: a 200 written
		// through the ResponseWriter may not be flushed before the tunnel
		// starts, and the client's TLS bytes would race it.
		src, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			dst.Close()
			return
		}
		if _, err := src.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
			src.Close()
			dst.Close()
			return
		}
		go func() { io.Copy(dst, buf); dst.Close() }()
		io.Copy(src, dst)
		src.Close()
	}))
	defer proxy.Close()

	ch, err := NewUploadChannel(srv.URL+"/upload", collectors.Secret("via-proxy"), proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	tr := ch.Client.Transport.(*http.Transport)
	tr.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone() // trust the test server's certificate
	detail, attempts, err := ch.Deliver(context.Background(), Delivery{Month: "2026-03", Version: 1, FileName: "x.gpg", Data: []byte("payload")})
	if err != nil || detail != "HTTP 201" || attempts != 1 || got.Load() != 1 || tunnels.Load() != 1 {
		t.Fatalf("upload via proxy: %q %d %v (server %d, tunnels %d)", detail, attempts, err, got.Load(), tunnels.Load())
	}
	if _, err := NewUploadChannel("http://plain.example/upload", "t", ""); err == nil {
		t.Error("an http:// upload URL was accepted")
	}
	if _, err := NewUploadChannel("https://a.example/upload", "t", "::bad"); err == nil {
		t.Error("a malformed proxy was accepted")
	}
}

// TestNewRecipientKeyMakesNewVersion: unchanged figures are reused only
// while the recipient keys stay the same; a new aggregator key gives a new
// version encrypted to it.
func TestNewRecipientKeyMakesNewVersion(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	f.seed(t)
	ctx := context.Background()
	oldKey, newKey := mustKey(t, "Aggregator Old"), mustKey(t, "Aggregator New")
	f.keys = openpgp.EntityList{publicOnly(t, oldKey)}
	r1, err := f.generator(t, anonymize.ModeHashed, secretA).Generate(ctx, march)
	if err != nil || r1.Report.Version != 1 {
		t.Fatalf("v1: %+v %v", r1, err)
	}
	if again, err := f.generator(t, anonymize.ModeHashed, secretA).Generate(ctx, march); err != nil || !again.Unchanged {
		t.Fatalf("same key: %+v %v", again, err)
	}
	f.keys = openpgp.EntityList{publicOnly(t, newKey)}
	r2, err := f.generator(t, anonymize.ModeHashed, secretA).Generate(ctx, march)
	if err != nil || r2.Report.Version != 2 || r2.Unchanged || r2.Report.FiguresSHA256 != r1.Report.FiguresSHA256 {
		t.Fatalf("new key: %+v %v", r2, err)
	}
	if _, err := VerifyFile(r2.Path, openpgp.EntityList{newKey}, openpgp.EntityList{testSigner(t)}); err != nil {
		t.Fatalf("v2 does not open with the new key: %v", err)
	}
	if _, err := VerifyFile(r2.Path, openpgp.EntityList{oldKey}, openpgp.EntityList{testSigner(t)}); err == nil {
		t.Fatal("v2 opens with the old key")
	}
}
