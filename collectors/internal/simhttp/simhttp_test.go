package simhttp

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

func TestCoreAndSessions(t *testing.T) {
	type faults struct{ ExpireAfter int }
	var c Core[faults]
	c.SetFaults(faults{ExpireAfter: 2})
	f, n := c.Begin()
	if f.ExpireAfter != 2 || n != 1 || c.Calls() != 1 || c.Faults() != f {
		t.Fatalf("begin: %+v %d, %d calls", f, n, c.Calls())
	}
	var s Sessions[string]
	s.Open("a", "xsrf")
	want := func(v string) bool { return v == "xsrf" }
	if got := s.Use("a", false, f.ExpireAfter, func(string) bool { return false }); got != Refused {
		t.Fatalf("refused call: %v", got)
	}
	for i := range 2 {
		if got := s.Use("a", false, f.ExpireAfter, want); got != Accepted {
			t.Fatalf("call %d: %v", i+1, got)
		}
	}
	if got := s.Use("a", false, f.ExpireAfter, want); got != Gone {
		t.Fatalf("call 3 after ExpireAfter 2: %v", got)
	}
	s.Open("b", "")
	if s.Use("b", true, 0, nil) != Gone || s.Use("b", false, 0, nil) != Gone || s.Logins() != 2 {
		t.Fatal("a rejected session lives on")
	}
	s.Open("c", "")
	s.ExpireAll()
	if s.Use("c", false, 0, nil) != Gone {
		t.Fatal("ExpireAll")
	}
}

func TestWait(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
	Wait(r, 0) // no delay: no wait, even for a client that gave up
	defer func() {
		if p := recover(); p != http.ErrAbortHandler {
			t.Fatalf("waiting for a client that gave up: panic %v, want http.ErrAbortHandler", p)
		}
	}()
	Wait(r, time.Hour)
	t.Fatal("waited for a client that gave up")
}

// TestWaitAnswersNothing: a client that gives up on a delayed answer gets
// no answer at all, not an empty "200 OK". The client is the one the
// transport of net/http is when its deadline passes: it sends the TLS
// close_notify alert (CloseWrite), which cancels the request's context on
// the server, and reads on until its socket is closed.
func TestWaitAnswersNothing(t *testing.T) {
	waiting := make(chan struct{})
	u, thumb := StartTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(waiting)
		Wait(r, time.Hour)
		_, _ = w.Write([]byte("late"))
	}))
	conn, err := tls.Dial("tcp", strings.TrimPrefix(u, "https://"), tlsutil.Config("127.0.0.1", thumb, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	<-waiting
	if err := conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(conn)
	if len(b) != 0 || err != nil {
		t.Fatalf("the client gave up, and got %q (%v), want the connection closed without an answer", b, err)
	}
}

func TestLoadState(t *testing.T) {
	type state struct {
		User string `json:"user"`
	}
	if st, err := LoadState[state]("srm", []byte(`{"user":"u"}`)); err != nil || st.User != "u" {
		t.Fatal(st, err)
	}
	if _, err := LoadState[state]("srm", []byte(`{"usr":"u"}`)); err == nil || !strings.HasPrefix(err.Error(), `srm simulator state: json: unknown field "usr"`) {
		t.Fatal(err)
	}
}

func TestIntParams(t *testing.T) {
	for _, tc := range []struct {
		query     string
		skip, top int
		bad       string
	}{
		{"", 0, 50, ""},
		{"$skip=4&$top=2", 4, 2, ""},
		{"$top=7", 0, 7, ""},
		{"$skip=-1&$top=2", 0, 50, "$skip"},
		{"$skip=0&$top=0", 0, 50, "$top"},
		{"$skip=x", 0, 50, "$skip"},
		{"$skip=3&$top=1.5", 3, 50, "$top"},
	} {
		q, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		skip, top := 0, 50
		bad := IntParams(q, Int("$skip", 0, &skip), Int("$top", 1, &top))
		if bad != tc.bad || skip != tc.skip || top != tc.top {
			t.Errorf("%q: skip %d, top %d, bad %q; want %d, %d, %q", tc.query, skip, top, bad, tc.skip, tc.top, tc.bad)
		}
	}
}
