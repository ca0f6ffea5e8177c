package rest

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
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
