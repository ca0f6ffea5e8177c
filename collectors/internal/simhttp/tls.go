package simhttp

import (
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// ServeTLS serves h on 127.0.0.1 over TLS with a new self-signed certificate,
// and returns its URL, the SHA-256 thumbprint of its certificate (the form
// tlsutil.Config accepts, as an admin would accept it) and a function that
// stops it. The demo and the tests use it; it panics only if loopback cannot
// be listened on.
func ServeTLS(h http.Handler) (url, thumbprint string, stop func()) {
	cert, err := tlsutil.SelfSigned("usagemeter product simulator", []string{"127.0.0.1", "localhost", "::1"}, 24*time.Hour)
	if err != nil {
		panic("simhttp: " + err.Error())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic("simhttp: listening on loopback: " + err.Error())
	}
	srv := &http.Server{
		Handler:   h,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		// Refused handshakes are what TLS tests provoke: keep them out of the log.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("simhttp: %v", err)
		}
	}()
	return "https://" + ln.Addr().String(), tlsutil.Thumbprint(cert.Leaf.Raw), func() {
		_ = srv.Close()
		<-done
	}
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
