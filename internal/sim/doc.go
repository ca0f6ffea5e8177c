// Package sim holds what the REST product simulators below it share: starting
// a handler on a TLS test server and reporting the certificate's thumbprint
// the way an admin would accept it.
//
// Each simulator (internal/sim/vcd, internal/sim/nsxt, internal/sim/nsxv) is
// written from the product's public API reference, cited in its package
// comment: the same login flow, headers, status codes, paging and field names
// as the real API. Tests set the state (VMs, orgs, segments, rules, licences)
// and switch error modes (401 after N calls, 500 on a page, slow answers,
// malformed bodies). The same simulators serve `usagemeter demo`.
package sim

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// StartTLS serves h on a TLS test server closed when the test ends, and
// returns its URL and the SHA-256 thumbprint of its certificate (the form
// tlsutil.Config accepts).
func StartTLS(t testing.TB, h http.Handler) (url, thumbprint string) {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	// Refused handshakes are what TLS tests provoke: keep them out of the log.
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS()
	t.Cleanup(s.Close)
	return s.URL, tlsutil.Thumbprint(s.Certificate().Raw)
}
