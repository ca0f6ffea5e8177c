package alert_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/internal/alert"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/seal"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

func certValidFor(t *testing.T, d time.Duration) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "nsx01.provider.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(d), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestCheckEndpoint(t *testing.T) {
	cert := certValidFor(t, 10*24*time.Hour)
	skew := 10 * time.Minute
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", time.Now().Add(skew).UTC().Format(http.TimeFormat))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()

	box, _ := seal.NewBox(bytes.Repeat([]byte{1}, 32))
	st := store.New(pgtest.NewPool(t), box)
	ctx := context.Background()
	thumb := tlsutil.Thumbprint(cert.Certificate[0])
	id, err := st.AddProduct(ctx, store.Product{Kind: "nsxt", Endpoint: srv.URL, Thumbprint: thumb})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := st.Product(ctx, id)
	e := &alert.Engine{Store: st, Log: slog.New(slog.DiscardHandler), Rules: alert.Rules{To: []string{"ops@example.com"}, Reminder: 24 * time.Hour}}

	if _, err := e.CheckEndpoint(ctx, p); err != nil {
		t.Fatal(err)
	}
	open, _ := st.OpenAlerts(ctx)
	kinds := map[string]bool{}
	for _, a := range open {
		kinds[a.Kind] = true
	}
	if !kinds[alert.KindCertificateExpiry] || !kinds[alert.KindClockSkew] {
		t.Fatalf("open alerts: %+v", open)
	}
	// Run again the same day: deduplicated, no new mail.
	if _, err := e.CheckEndpoint(ctx, p); err != nil {
		t.Fatal(err)
	}
	stats, _ := st.OutboxStats(ctx)
	if stats.Queued != 2 {
		t.Fatalf("queued %d mails, want 2", stats.Queued)
	}
	m, _ := st.Mail(ctx, 1)
	if !strings.Contains(m.Subject+m.Text, "expires") {
		t.Fatalf("mail: %s\n%s", m.Subject, m.Text)
	}
	// The clock is fixed: the skew alert resolves.
	skew = 0
	if _, err := e.CheckEndpoint(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := st.OpenAlert(ctx, alert.Key(alert.KindClockSkew, id)); err == nil {
		t.Fatal("clock skew alert still open")
	}
}
