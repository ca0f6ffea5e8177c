package console

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/usagemeter/usagemeter/internal/web/auth"
	"github.com/usagemeter/usagemeter/internal/web/service"
)

func (c *Console) routes(static fs.FS) {
	mux := http.NewServeMux()
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	mux.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The pages link each asset with its content hash: a year is safe.
		if r.URL.Query().Get("v") != "" {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		}
		files.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /login", c.loginPage)
	mux.HandleFunc("POST /login", c.login)

	in := http.NewServeMux()
	in.HandleFunc("POST /logout", c.logout)
	in.HandleFunc("GET /{$}", c.dashboard)
	in.HandleFunc("GET /month.csv", c.monthCSV)

	in.HandleFunc("GET /products", c.products)
	in.HandleFunc("GET /products/new", c.newProduct)
	in.HandleFunc("POST /products/new", c.addProduct)
	in.HandleFunc("GET /products/{id}", c.product)
	in.HandleFunc("POST /products/{id}/edit", c.editProduct)
	in.HandleFunc("POST /products/{id}/test", c.testProduct)
	in.HandleFunc("POST /products/{id}/deactivate", c.setActive(false))
	in.HandleFunc("POST /products/{id}/reactivate", c.setActive(true))
	in.HandleFunc("POST /products/{id}/remove", c.removeProduct)

	in.HandleFunc("GET /journal", c.journal)
	in.HandleFunc("GET /alerts", c.alerts)

	in.HandleFunc("GET /reports", c.reports)
	in.HandleFunc("POST /reports/generate", c.generateReport)
	in.HandleFunc("GET /reports/{id}/bundle", c.download(false))
	in.HandleFunc("GET /reports/{id}/plain", c.download(true))
	in.HandleFunc("POST /reports/{id}/resend", c.resendReport)
	in.HandleFunc("POST /reports/{id}/verify", c.verifyReport)

	in.HandleFunc("GET /customers", c.customers)
	in.HandleFunc("POST /customers/add", c.addCustomer)
	in.HandleFunc("POST /customers/{id}/remove", c.removeCustomer)

	in.HandleFunc("GET /licences", c.licences)
	in.HandleFunc("POST /licences/set", c.setLicence)

	in.HandleFunc("GET /registration", c.registration)
	in.HandleFunc("POST /registration", c.register)
	in.HandleFunc("GET /settings", c.settings)
	in.HandleFunc("GET /audit", c.audit)

	in.HandleFunc("GET /account", c.account)
	in.HandleFunc("POST /account/password", c.changePassword)
	in.HandleFunc("POST /account/tokens", c.createToken)
	in.HandleFunc("POST /account/tokens/{id}/revoke", c.revokeToken)

	in.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.pageError(w, r, &service.Error{Status: http.StatusNotFound, Msg: "there is no page " + r.URL.Path + " on this appliance."})
	})
	mux.Handle("/", c.am.RequirePage(in))
	c.mux = mux
}

type loginData struct {
	Next, Username string
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, err := c.am.Authenticate(r); err == nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	c.render(w, r, "login", "Log in", loginData{Next: safeNext(r.URL.Query().Get("next"))}, nil)
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if err := form(w, r); err != nil {
		c.render(w, r, "login", "Log in", loginData{}, err)
		return
	}
	user, next := strings.TrimSpace(r.PostForm.Get("username")), safeNext(r.PostForm.Get("next"))
	err := c.am.Login(w, r, user, r.PostForm.Get("password"))
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
	c.render(w, r, "login", "Log in", loginData{Next: next, Username: user}, err)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	c.am.Logout(w, r)
	c.done(w, r, "/login", "You are logged out.")
}
