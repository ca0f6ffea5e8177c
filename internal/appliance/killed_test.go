package appliance

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vmware/govmomi/simulator"

	vcsim "github.com/usagemeter/usagemeter/collectors/vcenter/simulator"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/store"
)

var (
	binOnce sync.Once
	binFile string
	binErr  error
)

// usagemeterBinary builds cmd/usagemeter once for the tests of this package
// that run it as a child process.
func usagemeterBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "usagemeter-bin-")
		if err != nil {
			binErr = err
			return
		}
		binFile = filepath.Join(dir, "usagemeter")
		if out, err := exec.Command("go", "build", "-o", binFile, "../../cmd/usagemeter").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binFile
}

// stallProxy is a product's address: it relays to target, or, while
// stalled, accepts connections and never answers (a product that hangs
// mid-collection).
type stallProxy struct {
	ln     net.Listener
	target string
	stall  atomic.Bool
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *stallProxy) serve(c net.Conn) {
	defer c.Close()
	if p.stall.Load() {
		_, _ = io.Copy(io.Discard, c) // until the client gives up or dies
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	_, _ = io.Copy(c, up)
}

// TestKilledDaemonHourReclaimed (issue 20, item 3): a usagemeter process
// killed with SIGKILL in the middle of collecting an hour leaves the run
// `running` under its lease. While the lease runs, `collect` by hand says
// the hour is being collected by another daemon, until when, and exits
// non-zero; once the lease has run out, the restarted daemon's catch-up
// collects the hour, within the same hour.
func TestKilledDaemonHourReclaimed(t *testing.T) {
	bin := usagemeterBinary(t)
	sim, err := vcsim.New(vcsim.Options{Clusters: 1, HostsPerCluster: 2, Shape: func(m *simulator.Model) { m.Machine = 2 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	proxy := newStallProxy(t, sim.Addr())
	h := newHarness(t, nil)
	ctx := context.Background()
	endpoint := "https://" + proxy.ln.Addr().String() + "/sdk"
	id, _, err := AddProduct(ctx, h.app, store.Product{Kind: "vcenter", Endpoint: endpoint, Username: sim.User(), Password: config.Secret(sim.Password()), Thumbprint: sim.Thumbprint()})
	if err != nil {
		t.Fatal(err)
	}

	// The child processes share the database and the data_dir (its credentials key).
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	cfgText := fmt.Sprintf(`data_dir: %s
database:
  url: %s
http:
  listen: 127.0.0.1:0
collection:
  timeout: 6s
  call_timeout: 6s
  retries: 0
smtp:
  host: %s
  port: %d
  tls: none
  auth: none
  from: meter@provider.example
alerts:
  to: [ops@provider.example]
`, h.app.Config.DataDir, h.app.Config.Database.URL.Reveal(), h.smtp.Host(), h.smtp.Port())
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	hour := time.Now().UTC().Truncate(time.Hour)
	collect := func() *exec.Cmd {
		return exec.Command(bin, "collect", "--config", cfgPath, "--product", fmt.Sprint(id), "--hour", hour.Format(time.RFC3339))
	}

	// 1. A collection that hangs on the product, killed once it holds the hour.
	proxy.stall.Store(true)
	victim := collect()
	var victimOut strings.Builder
	victim.Stdout, victim.Stderr = &victimOut, &victimOut
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := h.app.Store.Run(ctx, id, hour)
		if err == nil && r.State == store.RunRunning {
			break
		}
		if time.Now().After(deadline) {
			_ = victim.Process.Kill()
			t.Fatalf("the collection never claimed the hour: %+v %v\n%s", r, err, victimOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := victim.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = victim.Wait()
	if r, _ := h.app.Store.Run(ctx, id, hour); r.State != store.RunRunning {
		t.Fatalf("after kill -9: %+v", r)
	}

	// 2. By hand, during the lease: "being collected ... until", exit status 1.
	out, err := collect().CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != 1 || !strings.Contains(string(out), "being collected by another daemon until "+hour.Format("2006-01-02T")) {
		t.Fatalf("collect during the lease (exit %d):\n%s", code, out)
	}

	// 3. The daemon restarted (product answering again) collects the hour
	// once the lease has run out, inside the hour.
	proxy.stall.Store(false)
	clock := &fakeClock{t: hour.Add(20 * time.Minute)}
	sender, err := newSenderForTest(h)
	if err != nil {
		t.Fatal(err)
	}
	d, err := newDaemonWith(h.app, nil, daemonOptions{now: clock.Now, sender: sender, catchUp: 250 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	d.Start(ctx)
	defer d.Stop()
	deadline = time.Now().Add(60 * time.Second)
	for {
		r, err := h.app.Store.Run(ctx, id, hour)
		if err == nil && r.State == store.RunDone {
			if r.Attempts != 2 || r.Objects == 0 {
				t.Fatalf("reclaimed run: %+v", r)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted daemon did not collect the abandoned hour after its lease: %+v %v\n%s", r, err, h.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if sp, _ := h.app.Store.Spans(ctx, id); len(sp) == 0 {
		t.Fatal("no usage stored for the reclaimed hour")
	}
}
