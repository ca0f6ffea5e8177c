// Package sim holds what the REST product simulators below it share: starting
// a handler on a TLS test server and reporting the certificate's thumbprint
// the way an admin would accept it.
//
// Each simulator (internal/sim/vcd, internal/sim/nsxt, internal/sim/nsxv) is
// written from the product's public API reference, cited in its package
// comment: the same login flow, headers, status codes, paging and field names
// as the real API. Tests set the state (VMs, orgs, segments, rules, licences)
// and switch error modes (401 after N calls, 500 on a page, slow answers,
// malformed bodies). The same simulators serve `usagemeter demo`. The
// plumbing they share (fault switches, request counting, sessions, strict
// state files) is in internal/sim/simhttp.
package sim

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// ServeTLS serves h on a loopback TLS server with a self-signed certificate,
// and returns its URL, the SHA-256 thumbprint of its certificate (the form
// tlsutil.Config accepts) and a function that stops it. Used outside tests
// (the demo); tests use StartTLS.
func ServeTLS(h http.Handler) (url, thumbprint string, stop func()) {
	s := httptest.NewUnstartedServer(h)
	// Refused handshakes are what TLS tests provoke: keep them out of the log.
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS()
	return s.URL, tlsutil.Thumbprint(s.Certificate().Raw), s.Close
}

// StartTLS is ServeTLS for a test: the server stops when the test ends.
func StartTLS(t testing.TB, h http.Handler) (url, thumbprint string) {
	t.Helper()
	u, tp, stop := ServeTLS(h)
	t.Cleanup(stop)
	return u, tp
}
