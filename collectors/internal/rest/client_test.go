package rest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct{ in, trim, want, err string }{
		{"vcd.example.net", "/api", "https://vcd.example.net", ""},
		{" https://u:p@vcd.example.net:8443/api/?x=1#f ", "/api", "https://vcd.example.net:8443", ""},
		{"https://nsx.example.net/", "", "https://nsx.example.net", ""},
		{"http://nsx.example.net", "", "", `srm endpoint "http://nsx.example.net": scheme must be https`},
		{"https://", "", "", `srm endpoint "https://": not a URL or host name`},
	} {
		u, err := ParseEndpoint("srm", tc.in, tc.trim)
		switch {
		case tc.err != "" && (err == nil || err.Error() != tc.err):
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || u.String() != tc.want):
			t.Errorf("%q: %v %v, want %s", tc.in, u, err, tc.want)
		}
	}
}

func TestDeadline(t *testing.T) {
	err := Call(context.Background(), 10*time.Millisecond, func(ctx context.Context) error {
		<-ctx.Done()
		return errors.New("read tcp: i/o timeout")
	})
	if !errors.Is(err, context.DeadlineExceeded) || strings.Count(err.Error(), "no answer within the 10ms deadline") != 1 {
		t.Fatalf("error %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	if again := Deadline(ctx, time.Second, err); again != err {
		t.Fatalf("said twice: %v", again)
	}
	if err := Deadline(context.Background(), time.Second, nil); err != nil {
		t.Fatal(err)
	}
	he := &HTTPError{Status: 403}
	if he.Error() != "HTTP 403 Forbidden" || !he.AuthFailed() {
		t.Fatalf("%v", he)
	}
}

func TestPageError(t *testing.T) {
	c := &Client{Kind: "srm"}
	c.Base, _ = ParseEndpoint("srm", "srm.example.net", "")
	err := c.PageError("protection groups", 3, &HTTPError{Status: 500, Msg: "boom"})
	var he *HTTPError
	if err.Error() != "srm srm.example.net: protection groups page 3: HTTP 500 Internal Server Error: boom" || !errors.As(err, &he) {
		t.Fatalf("%v", err)
	}
}

func TestDoThrottled(t *testing.T) {
	var calls int
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if b, _ := io.ReadAll(r.Body); string(b) != "form" || r.Header.Get("User-Agent") != "usagemeter" || r.Header.Get("Accept") != "application/json" {
			t.Errorf("request body %q, headers %v", b, r.Header)
		}
		if calls%3 != 0 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer ts.Close()
	tg := &collectors.Target{Endpoint: ts.URL, Username: "u", Thumbprint: tlsutil.Thumbprint(ts.Certificate().Raw)}
	c, err := NewClient("srm", tg, "")
	if err != nil {
		t.Fatal(err)
	}
	c.Header = http.Header{"Accept": {"application/json"}}
	var waits int
	c.Throttled = func(int, time.Duration) { waits++ }
	if _, _, err := c.Do(context.Background(), http.MethodPost, "/x", []byte("form"), nil); !StatusIs(err, http.StatusTooManyRequests) || calls != 1 {
		t.Fatalf("Throttle 0: %v after %d calls", err, calls)
	}
	c.Throttle = 5
	b, _, err := c.Do(context.Background(), http.MethodPost, "/x", []byte("form"), nil)
	if err != nil || string(b) != "ok" || calls != 3 || waits != 1 {
		t.Fatalf("throttled: %q %v after %d calls, %d waits", b, err, calls, waits)
	}
	if tg.Timeout != DefaultTimeout || tg.Logger == nil {
		t.Fatalf("defaults not filled in: %+v", tg)
	}
}

func TestThrottleLogged(t *testing.T) {
	var calls int
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if calls <= 2 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer ts.Close()
	c, err := NewClient("srm", &collectors.Target{Endpoint: ts.URL, Username: "u", Thumbprint: tlsutil.Thumbprint(ts.Certificate().Raw)}, "")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	c.ThrottleLogged(2, slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), "SRM is busy, waiting")
	if b, _, err := c.Do(context.Background(), http.MethodGet, "/x", nil, nil); err != nil || string(b) != "ok" || c.Throttle != 2 {
		t.Fatalf("%q %v, throttle %d", b, err, c.Throttle)
	}
	if n := strings.Count(buf.String(), `msg="SRM is busy, waiting" status=503 wait=0s`); n != 2 {
		t.Fatalf("%d waits logged, want 2:\n%s", n, buf.String())
	}
}
