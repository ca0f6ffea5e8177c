package aria

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// RenewBefore is how long before its expiry a token is given up.
const RenewBefore = time.Minute

// Token is the token a product's login answered, with its expiry. It is
// kept between hours and given up RenewBefore its expiry, or when the
// product refuses it (Session): the next call then logs in again.
type Token struct {
	Value   string
	Expires time.Time        // zero when the login did not say
	Now     func() time.Time // nil: time.Now
}

// Set keeps a new token that expires at expiryMs (epoch milliseconds; 0
// when the login did not say).
func (t *Token) Set(value string, expiryMs int64) {
	t.Value, t.Expires = value, time.Time{}
	if expiryMs > 0 {
		t.Expires = time.UnixMilli(expiryMs)
	}
}

// Session is the rest.Session of calls made with t: product names the
// product in the log lines that say a token was given up.
func (t *Token) Session(product string, log *slog.Logger, login func(context.Context) error) rest.Session {
	return rest.Session{
		Active: func() bool {
			now := time.Now
			if t.Now != nil {
				now = t.Now
			}
			if t.Value != "" && !t.Expires.IsZero() && now().After(t.Expires.Add(-RenewBefore)) {
				log.Info(product + " token expired, logging in again")
				t.Value = ""
			}
			return t.Value != ""
		},
		Login:    login,
		Forget:   func() { t.Value = "" },
		Refused:  func(err error) bool { return rest.StatusIs(err, http.StatusUnauthorized, http.StatusForbidden) },
		Renewing: func() { log.Info(product + " token refused (expired), logging in again") },
	}
}
