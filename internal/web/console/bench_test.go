package console_test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"syscall"
	"testing"
	"time"
)

// BenchmarkConsole measures the dashboard and the journal at provider
// scale: 200 products with a year of hours (1.75 million collection runs)
// and 25 objects each whose spans change every 5 days (the history is
// written in SQL once per run). Each page is fetched over HTTPS, logged in,
// as a browser would; p99-ms is the 99th percentile latency, cpu-ms/op the
// process's CPU per view (its wall time grows with the machine's load).
//
//	go test -run '^$' -bench Console -benchmem -benchtime 50x ./internal/web/console/
func BenchmarkConsole(b *testing.B) {
	s := newSite(b, nil)
	now := time.Now().UTC().Truncate(time.Hour)
	start := time.Now()
	ids := seed(b, s, history{Products: 200, Objects: 25, From: now.AddDate(-1, 0, 0), To: now})
	for _, id := range ids[:5] {
		openAlert(b, s, id, now.Add(-2*time.Hour), "dial tcp 10.20.0.1:443: connect: connection timed out")
	}
	b.Logf("seeded 200 products, a year of hours, in %s", time.Since(start).Round(time.Second))
	c := s.client()
	for _, p := range []struct{ name, path string }{
		{"dashboard", "/"},
		{"journal", "/journal"},
		{"journal-product", fmt.Sprintf("/journal?product=%d", ids[100])},
		{"journal-failed", "/journal?state=failed"},
		{"journal-half-a-year-back", fmt.Sprintf("/journal?before=%d-0", now.AddDate(0, -6, 0).Unix())},
	} {
		fetch := func(b *testing.B) {
			resp, err := c.Get(s.srv.URL + p.path)
			if err != nil {
				b.Fatal(err)
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Fatalf("%s: %s %v", p.path, resp.Status, err)
			}
		}
		b.Run(p.name, func(b *testing.B) {
			fetch(b) // the connection and the database's caches warm
			var lat []time.Duration
			cpu0 := cpuTime(b)
			for b.Loop() {
				t0 := time.Now()
				fetch(b)
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99-ms")
			// The process's CPU per view (server and client; PostgreSQL's
			// own is not counted): what the page costs whatever else the
			// machine runs, where its wall times grow with the load.
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/1000/float64(len(lat)), "cpu-ms/op")
		})
	}
}

// cpuTime is the CPU time the process has used (user and system).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
