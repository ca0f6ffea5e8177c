package rest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

func TestWithSession(t *testing.T) {
	var held bool
	var logins, renewals int
	s := &Session{
		Active:   func() bool { return held },
		Login:    func(context.Context) error { logins++; held = true; return nil },
		Forget:   func() { held = false },
		Refused:  func(err error) bool { return StatusIs(err, http.StatusUnauthorized) },
		Renewing: func() { renewals++ },
	}
	refuse := 0 // calls still to refuse
	call := func() (int, error) {
		if refuse > 0 {
			refuse--
			return 0, &HTTPError{Status: http.StatusUnauthorized}
		}
		return 7, nil
	}
	ctx := context.Background()
	if v, err := WithSession(ctx, s, call); v != 7 || err != nil || logins != 1 {
		t.Fatalf("first call: %d %v, %d logins", v, err, logins)
	}
	refuse = 1 // the kept session expired
	if v, err := WithSession(ctx, s, call); v != 7 || err != nil || logins != 2 || renewals != 1 {
		t.Fatalf("expired: %d %v, %d logins, %d renewals", v, err, logins, renewals)
	}
	refuse = 2 // refused again right after logging in
	_, err := WithSession(ctx, s, call)
	if err == nil || !strings.HasPrefix(err.Error(), "session refused right after logging in: HTTP 401") || held || logins != 3 {
		t.Fatalf("refused: %v, held %v, %d logins", err, held, logins)
	}
	bad := errors.New("incorrect user name or password")
	s.Login = func(context.Context) error { logins++; return bad }
	if _, err := WithSession(ctx, s, call); err != bad || logins != 4 {
		t.Fatalf("login refused: %v, %d logins (no retry)", err, logins)
	}
	if StatusIs(errors.New("x"), 401) || !StatusIs(&HTTPError{Status: 403}, 401, 403) {
		t.Fatal("StatusIs")
	}
}

func TestEnsureSessionAndLogout(t *testing.T) {
	status := http.StatusNoContent // the answer to the logout
	var logouts int
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodDelete || r.URL.Path != "/api/session" || r.Header.Get("X-Session") != "s1" {
			t.Errorf("%s %s %v", r.Method, r.URL, r.Header)
		}
		logouts++
		w.WriteHeader(status)
	}))
	defer ts.Close()
	c, err := NewClient("srm", &collectors.Target{Endpoint: ts.URL, Username: "u", Thumbprint: tlsutil.Thumbprint(ts.Certificate().Raw)}, "")
	if err != nil {
		t.Fatal(err)
	}
	host := c.Host()

	var held bool
	var logins int
	bad := errors.New("logging in as u: refused")
	s := &Session{Active: func() bool { return held }, Login: func(context.Context) error { logins++; held = true; return nil }}
	ctx := context.Background()
	for range 2 {
		if err := c.EnsureSession(ctx, s); err != nil || logins != 1 {
			t.Fatalf("EnsureSession: %v, %d logins (want one, then the session kept)", err, logins)
		}
	}
	held = false
	s.Login = func(context.Context) error { return bad }
	if err := c.EnsureSession(ctx, s); !errors.Is(err, bad) || err.Error() != "srm "+host+": logging in as u: refused" {
		t.Fatalf("refused login: %v", err)
	}

	hdr := http.Header{"X-Session": {"s1"}}
	for _, tc := range []struct {
		status int
		gone   []int
		want   string // "" no error
	}{
		{http.StatusNoContent, nil, ""},
		{http.StatusUnauthorized, nil, ""}, // gone already
		{http.StatusForbidden, nil, ""},
		{http.StatusNotFound, []int{http.StatusNotFound, http.StatusMethodNotAllowed}, ""},
		{http.StatusNotFound, nil, "srm " + host + ": logging out: HTTP 404 Not Found"},
		{http.StatusInternalServerError, []int{http.StatusNotFound}, "srm " + host + ": logging out: HTTP 500 Internal Server Error"},
	} {
		status = tc.status
		err := c.Logout(ctx, http.MethodDelete, "/api/session", hdr, tc.gone...)
		if (tc.want == "" && err != nil) || (tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want))) {
			t.Errorf("logout answered %d (gone %v): error %v, want %q", tc.status, tc.gone, err, tc.want)
		}
	}
	if logouts != 6 {
		t.Errorf("%d logout calls, want 6 (no retry)", logouts)
	}
}
