package rest

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// lingeringConn is a client connection whose Close lingers between the TLS
// close_notify alert, which tls.Conn.Close writes first, and the closing of
// the socket, until an answer came in (or 5 s passed): as a client
// goroutine descheduled between the two under load does. Armed once the
// connection is up and idle, it takes any bytes read for the answer.
type lingeringConn struct {
	net.Conn
	armed    atomic.Bool // set once the connection is up and idle
	once     sync.Once
	answered chan struct{} // closed when bytes came in once armed
}

func (c *lingeringConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && c.armed.Load() {
		c.once.Do(func() { close(c.answered) })
	}
	return n, err
}

func (c *lingeringConn) Close() error {
	select {
	case <-c.answered:
		// Leave the transport's reader time to take the answer in.
		time.Sleep(50 * time.Millisecond)
	case <-time.After(5 * time.Second):
	}
	return c.Conn.Close()
}

// lateTransport hands each answer over once the call's context has ended,
// as net/http does with an answer that races its cancel (see lingeringConn).
type lateTransport struct{ http.RoundTripper }

func (t lateTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.RoundTripper.RoundTrip(r.WithContext(context.WithoutCancel(r.Context())))
	<-r.Context().Done()
	return resp, err
}

// lateServer answers every call with body, on /late only once the client
// gave up (its request context ends on the client's close_notify), as a
// handler returning without a word does: "200 OK" and an empty body.
func lateServer(t *testing.T, body string) (*Client, *collectors.Target) {
	t.Helper()
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/late" {
			<-r.Context().Done()
		}
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(ts.Close)
	tg := &collectors.Target{Endpoint: ts.URL, Username: "u", Thumbprint: tlsutil.Thumbprint(ts.Certificate().Raw)}
	c, err := NewClient("srm", tg, "")
	if err != nil {
		t.Fatal(err)
	}
	return c, tg
}

// callLate makes a call of 100 ms on path, whole (Do) when body is "",
// else decoded (DoJSON), and fails unless it is a deadline error.
func callLate(t *testing.T, c *Client, path, body string) {
	t.Helper()
	var b []byte
	var err error
	if body == "" {
		b, _, err = c.Do(context.Background(), http.MethodPost, path, nil, nil)
	} else {
		var v testItem
		err = c.DoJSON(context.Background(), http.MethodGet, path, nil, nil, &v)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer within the 100ms deadline") {
		t.Fatalf("answer %q, error %v, want a deadline error", b, err)
	}
}

// TestAnswerAfterDeadline: an answer handed over as the call's deadline
// passes is a deadline error, not the product's answer, be it empty (a
// login would read "truncated JSON") or one that decodes.
func TestAnswerAfterDeadline(t *testing.T) {
	for _, body := range []string{"", `{"n":1}`} {
		t.Run("body "+body, func(t *testing.T) {
			c, tg := lateServer(t, body)
			tg.Timeout = 100 * time.Millisecond
			c.HTTP.Transport = lateTransport{c.HTTP.Transport}
			callLate(t, c, "/now", body)
		})
	}
}

// TestAnswerRacingClose runs the race as net/http runs it: when the
// deadline passes, the client's transport writes close_notify, the server
// answers, and the answer comes in before the client closed its socket
// (lingeringConn); net/http's persistConn.roundTrip then uses it when its
// reader hands it over first (a few times in ten here).
func TestAnswerRacingClose(t *testing.T) {
	for _, body := range []string{"", `{"n":1}`} {
		t.Run("body "+body, func(t *testing.T) {
			c, tg := lateServer(t, body)
			var mu sync.Mutex
			var conns []*lingeringConn
			c.HTTP.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				lc := &lingeringConn{Conn: conn, answered: make(chan struct{})}
				mu.Lock()
				defer mu.Unlock()
				conns = append(conns, lc)
				return lc, nil
			}
			for try := 1; try <= 3; try++ {
				// Connected first (the handshake is not what the
				// deadline is for here), then the call on that
				// connection.
				tg.Timeout = DefaultTimeout
				if _, _, err := c.Do(context.Background(), http.MethodGet, "/now", nil, nil); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				lc := conns[len(conns)-1]
				mu.Unlock()
				lc.armed.Store(true)
				tg.Timeout = 100 * time.Millisecond
				callLate(t, c, "/late", body)
				select {
				case <-lc.answered:
				default:
					t.Fatal("the server's answer did not come in before the client closed its socket: the race was not run")
				}
				mu.Lock()
				n := len(conns)
				mu.Unlock()
				if n != try {
					t.Fatalf("%d connections after %d calls on a new one each", n, try)
				}
			}
		})
	}
}
