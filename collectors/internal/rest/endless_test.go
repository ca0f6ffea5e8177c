package rest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/nsxt"
	simnsxt "github.com/usagemeter/usagemeter/collectors/nsxt/simulator"
	"github.com/usagemeter/usagemeter/collectors/nsxv"
	simnsxv "github.com/usagemeter/usagemeter/collectors/nsxv/simulator"
	"github.com/usagemeter/usagemeter/collectors/vcd"
	simvcd "github.com/usagemeter/usagemeter/collectors/vcd/simulator"
)

// envEndless runs TestHelperEndless in a child process.
const envEndless = "REST_ENDLESS_HELPER"

// endlessProducts is the daemon's default collection concurrency.
const endlessProducts = 8

// endlessResult is what the helper reports: each product's collection error
// and the process's peak resident set.
type endlessResult struct {
	Products []endlessProduct `json:"products"`
	PeakKB   int64            `json:"peak_kb"` // VmHWM
}

type endlessProduct struct {
	Kind string `json:"kind"`
	Host string `json:"host"`
	Call string `json:"call"` // the call that never ends
	Err  string `json:"err"`
}

// TestHelperEndless is not a test: run by TestEndlessAnswers in a child
// process (so that the peak RSS is this scenario's alone), it collects
// endlessProducts products at once, each answering its first list call with
// a body that never ends, and prints an endlessResult.
func TestHelperEndless(t *testing.T) {
	if os.Getenv(envEndless) == "" {
		t.Skip("helper process only")
	}
	type product struct {
		endlessProduct
		c collectors.Collector
	}
	var ps []product
	for i := range endlessProducts {
		var (
			kind, url, tp, call string
			paired              *collectors.Target
		)
		switch i % 3 {
		case 0:
			s := simvcd.New(simvcd.State{User: "admin", Password: "pw"})
			s.SetFaults(simvcd.Faults{Endless: true})
			kind, call = vcd.Kind, "/api/query?type=virtualCenter"
			url, tp = s.Start(t)
		case 1:
			s := simnsxt.New(simnsxt.State{User: "admin", Password: "pw"})
			s.SetFaults(simnsxt.Faults{Endless: true})
			kind, call = nsxt.Kind, "/api/v1/fabric/virtual-machines"
			url, tp = s.Start(t)
			paired = &collectors.Target{Kind: "vcenter", Endpoint: "vc.example.net", Username: "u", InstanceID: "vc-uuid"}
		case 2:
			s := simnsxv.New(simnsxv.State{User: "admin", Password: "pw"})
			s.SetFaults(simnsxv.Faults{Endless: true})
			kind, call = nsxv.Kind, "/api/2.0/vdn/virtualwires"
			url, tp = s.Start(t)
			paired = &collectors.Target{Kind: "vcenter", Endpoint: "vc.example.net", Username: "u", InstanceID: "vc-uuid"}
		}
		c, err := collectors.New(collectors.Target{Kind: kind, Endpoint: url, Username: "admin", Password: "pw",
			Thumbprint: tp, Timeout: 5 * time.Minute, Paired: paired})
		if err != nil {
			t.Fatal(err)
		}
		host := strings.TrimPrefix(url, "https://")
		host, _, _ = strings.Cut(host, ":")
		ps = append(ps, product{endlessProduct{Kind: kind, Host: host, Call: call}, c})
	}
	var wg sync.WaitGroup
	for i := range ps {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			_, err := ps[i].c.Collect(ctx, time.Date(2026, 11, 30, 7, 0, 0, 0, time.UTC))
			if err == nil {
				ps[i].Err = "<nil>"
			} else {
				ps[i].Err = err.Error()
			}
		})
	}
	wg.Wait()
	res := endlessResult{PeakKB: peakRSSKB(t)}
	for _, p := range ps {
		res.Products = append(res.Products, p.endlessProduct)
	}
	b, _ := json.Marshal(res)
	fmt.Printf("endless-result %s\n", b)
}

// peakRSSKB is the process's peak resident set (VmHWM), in KiB.
func peakRSSKB(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// Eight products answering endless bodies at once (the daemon's default
// concurrency): each collection fails with an error naming the product, the
// call and the limit, and the process stays under 512 MB resident.
func TestEndlessAnswers(t *testing.T) {
	if testing.Short() {
		t.Skip("reads a few hundred MB over loopback")
	}
	if raceEnabled {
		// The race detector multiplies memory and slows decoding eightfold:
		// the figure would mean nothing. The limits themselves are tested
		// with small ones in limits_test.go.
		t.Skip("peak RSS is measured without -race")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperEndless$", "-test.count=1")
	cmd.Env = append(os.Environ(), envEndless+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	var res endlessResult
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(nil, 1<<20)
	found := false
	for sc.Scan() {
		if b, ok := strings.CutPrefix(sc.Text(), "endless-result "); ok {
			if err := json.Unmarshal([]byte(b), &res); err != nil {
				t.Fatal(err)
			}
			found = true
		}
	}
	if !found || len(res.Products) != endlessProducts {
		t.Fatalf("helper printed no result:\n%s", out)
	}
	for _, p := range res.Products {
		t.Logf("%s: %s", p.Kind, p.Err)
		for _, want := range []string{p.Kind + " " + p.Host, p.Call, "limit"} {
			if !strings.Contains(p.Err, want) {
				t.Errorf("%s collection error %q lacks %q", p.Kind, p.Err, want)
			}
		}
	}
	mb := float64(res.PeakKB) / 1024
	t.Logf("peak RSS with %d products answering endless bodies at once: %.0f MiB (VmHWM of the collecting process)", endlessProducts, mb)
	if res.PeakKB > 512<<10 {
		t.Errorf("peak RSS %.0f MiB, want under 512 MiB", mb)
	}
}
