package ui

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/internal/web/auth"
	"github.com/usagemeter/usagemeter/internal/web/service"
)

type loginData struct {
	Next, Username string
}

// LoginRoutes mounts GET and POST /login on mux (for anyone) and
// POST /logout on in (the logged-in routes).
func (s *Site) LoginRoutes(am *auth.Manager, mux, in *http.ServeMux) {
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		if _, err := am.Authenticate(r); err == nil {
			http.Redirect(w, r, SafeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
			return
		}
		s.Render(w, r, "login", "Log in", loginData{Next: SafeNext(r.URL.Query().Get("next"))}, nil)
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) { s.login(am, w, r) })
	in.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		am.Logout(w, r)
		Done(w, r, "/login", "You are logged out.")
	})
}

func (s *Site) login(am *auth.Manager, w http.ResponseWriter, r *http.Request) {
	if err := Form(w, r); err != nil {
		s.Render(w, r, "login", "Log in", loginData{}, err)
		return
	}
	user, next := strings.TrimSpace(r.PostForm.Get("username")), SafeNext(r.PostForm.Get("next"))
	err := am.Login(w, r, user, r.PostForm.Get("password"))
	if err == nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	var locked *auth.LockedError
	var throttled *auth.ThrottledError
	switch {
	case errors.Is(err, auth.ErrBadCredentials):
		err = &service.Error{Status: http.StatusUnauthorized, Msg: "the user name or the password is wrong."}
	case errors.As(err, &locked):
		err = &service.Error{Status: http.StatusForbidden, Msg: fmt.Sprintf("the account is locked after too many failed logins, until %s.", when(locked.Until))}
	case errors.As(err, &throttled):
		w.Header().Set("Retry-After", fmt.Sprint(int(throttled.RetryAfter.Seconds())+1))
		err = &service.Error{Status: http.StatusTooManyRequests, Msg: fmt.Sprintf("too many failed logins from this address: try again in %s.", throttled.RetryAfter.Round(time.Second))}
	}
	s.Render(w, r, "login", "Log in", loginData{Next: next, Username: user}, err)
}
