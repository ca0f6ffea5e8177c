package appliance

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/httpapi"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// TestListeners: the daemon's listener is HTTPS with the configured
// certificate (http.tls_cert, http.tls_key: the OVA's), /metrics is
// served on its own plain loopback listener (http.metrics_listen) behind
// http.metrics_token and not on the main one, and the web handler is
// switched in once the appliance is open.
func TestListeners(t *testing.T) {
	certDir := t.TempDir()
	cert, _, err := tlsutil.LoadOrCreateServerCert(certDir, "meter.provider.example")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *config.Config) {
		c.HTTP.Listen = "127.0.0.1:0"
		c.HTTP.TLSCert, c.HTTP.TLSKey = filepath.Join(certDir, tlsutil.ServerCertFile), filepath.Join(certDir, tlsutil.ServerKeyFile)
		c.HTTP.MetricsListen = "127.0.0.1:0"
		c.HTTP.MetricsToken = "Metr1cs-Token"
	})
	logs := &syncBuffer{}
	h.app.Log = NewLogger(config.Log{Level: "info"}, logs)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	var opened atomic.Pointer[App]
	go func() {
		done <- Run(ctx, h.app, "test", ready, WithWeb(func(app *App, base *httpapi.Server, tls bool) (http.Handler, error) {
			opened.Store(app)
			mux := http.NewServeMux()
			mux.Handle("GET /healthz", base.Healthz())
			mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "console") })
			return mux, nil
		}))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("Run did not stop")
		}
	})
	var url string
	select {
	case url = <-ready:
	case err := <-done:
		t.Fatalf("Run: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("not listening")
	}
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("url %s", url)
	}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(url, "https://"), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	got := tlsutil.Thumbprint(conn.ConnectionState().PeerCertificates[0].Raw)
	conn.Close()
	if want := tlsutil.Thumbprint(cert.Leaf.Raw); got != want || !strings.Contains(logs.String(), "tls_sha256="+want) {
		t.Fatalf("the listener presents %s, the configured certificate is %s\n%s", got, want, logs.String())
	}
	if _, err := os.Stat(filepath.Join(h.app.Config.DataDir, "tls")); !os.IsNotExist(err) {
		t.Fatalf("a self-signed certificate was made although one is configured: %v", err)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(c *http.Client, u string, hdr ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", u, nil)
		if len(hdr) == 2 {
			req.Header.Set(hdr[0], hdr[1])
		}
		for i := 0; ; i++ {
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			// The web handler comes once the daemon has started.
			if res.StatusCode == http.StatusServiceUnavailable && i < 100 {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return res.StatusCode, string(b)
		}
	}
	if code, body := get(c, url+"/hello"); code != 200 || body != "console" || opened.Load() != h.app {
		t.Fatalf("/hello: %d %q", code, body)
	}
	if code, _ := get(c, url+"/metrics"); code != http.StatusNotFound {
		t.Fatalf("/metrics on the main listener: %d", code)
	}
	m := regexp.MustCompile(`serving /metrics.* http=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no metrics listener logged:\n%s", logs.String())
	}
	if code, _ := get(http.DefaultClient, "http://"+m[1]+"/metrics"); code != http.StatusUnauthorized {
		t.Fatalf("/metrics without its token: %d", code)
	}
	if code, body := get(http.DefaultClient, "http://"+m[1]+"/metrics", "Authorization", "Bearer Metr1cs-Token"); code != 200 || !strings.Contains(body, "usagemeter_build_info") {
		t.Fatalf("/metrics: %d %.200s", code, body)
	}
	if strings.Contains(logs.String(), "Metr1cs-Token") {
		t.Fatal("the log shows the metrics token")
	}
}
