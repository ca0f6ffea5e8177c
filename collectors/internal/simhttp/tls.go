package simhttp

import (
	"net/http"

	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// ServeTLS serves h on 127.0.0.1 over TLS with a new self-signed certificate,
// and returns its URL, the SHA-256 thumbprint of its certificate (the form
// tlsutil.Config accepts, as an admin would accept it) and a function that
// stops it. The demo and the tests use it; it panics only if loopback cannot
// be listened on.
func ServeTLS(h http.Handler) (url, thumbprint string, stop func()) {
	u, tp, stop, err := tlsutil.ServeLoopback(h)
	if err != nil {
		panic("simhttp: " + err.Error())
	}
	return u, tp, stop
}

// TB is the part of testing.TB that StartTLS needs (so that simulators,
// public packages, do not import testing).
type TB interface {
	Helper()
	Cleanup(func())
}

// StartTLS is ServeTLS for a test: the server stops when the test ends.
func StartTLS(t TB, h http.Handler) (url, thumbprint string) {
	t.Helper()
	u, tp, stop := ServeTLS(h)
	t.Cleanup(stop)
	return u, tp
}
