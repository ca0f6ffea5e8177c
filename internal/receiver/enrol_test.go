package receiver_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/internal/receiver/protocol"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
	"github.com/usagemeter/usagemeter/report"
)

// TestEnrolLeavesNoConnection: enrolment is a one-off request, its HTTPS
// connection closed when Enrol returns rather than left idle (the receiver
// would hold one per enrolling appliance until the client's idle timeout).
func TestEnrolLeavesNoConnection(t *testing.T) {
	clk := newClock(time.Date(2026, 4, 1, 3, 0, 0, 0, time.UTC))
	f := newFleet(t, clk)
	var mu sync.Mutex
	opened, open := 0, 0
	srv := httptest.NewUnstartedServer(f.r.Handler())
	srv.EnableHTTP2 = true
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch s {
		case http.StateNew:
			opened++
			open++
		case http.StateClosed, http.StateHijacked:
			open--
		}
	}
	srv.StartTLS()
	defer srv.Close()
	f.r.Thumbprint = tlsutil.Thumbprint(srv.Certificate().Raw)
	signer, err := report.GenerateKey("usagemeter appliance a1", "usagemeter@appliance.invalid", clk.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := report.ExportPublic(signer)
	if _, err := protocol.Enrol(context.Background(), protocol.EnrolOptions{DataDir: t.TempDir(), URL: srv.URL, Token: f.token(t), ApplianceID: "a1", ReportKey: pub}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		o, n := open, opened
		mu.Unlock()
		if n > 0 && o == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections still open after the enrolment", o, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
