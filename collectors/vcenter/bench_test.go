package vcenter

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmware/govmomi/cli"
	_ "github.com/vmware/govmomi/cli/object" // govc object.collect
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/usagemeter/usagemeter/collectors"
	vcsim "github.com/usagemeter/usagemeter/collectors/vcenter/simulator"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
)

// The benchmark inventory: 4 clusters of 8 hosts (32 hosts), 2,500 VMs in
// each cluster's root pool: 10,000 VMs. Built once per test binary, and only
// when a benchmark runs.
const (
	benchClusters    = 4
	benchClusterHost = 8
	benchVMsPerPool  = 2500
)

// The simulated vCenter runs in a child process (this test binary again,
// see TestMain), so that the heap measured in the benchmark is the
// collector's (or govc's) alone, not the simulator's 10,000 VMs and the
// responses it encodes.
const benchChildEnv = "USAGEMETER_VCENTER_BENCH_SIM"

// benchTarget is where the child's simulator listens.
type benchTarget struct {
	url        *url.URL // with the credentials
	thumbprint string
	built      string
}

var (
	benchOnce  sync.Once
	benchSrv   benchTarget
	benchErr   error
	benchStdin io.WriteCloser
)

// TestMain serves the benchmark inventory when run as the child.
func TestMain(m *testing.M) {
	if os.Getenv(benchChildEnv) == "1" {
		if err := serveBenchInventory(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serveBenchInventory builds the inventory, prints its URL and thumbprint
// and serves until its stdin closes (the parent exited).
func serveBenchInventory() error {
	start := time.Now()
	m := simulator.VPX()
	m.Datacenter = 1
	m.Cluster = benchClusters
	m.ClusterHost = benchClusterHost
	m.Host = 0
	m.Machine = 0
	if err := m.Create(); err != nil {
		return err
	}
	n, err := createVMs(m, benchVMsPerPool)
	if err != nil {
		return err
	}
	m.Service.TLS = new(tls.Config)
	m.Service.Listen = &url.URL{User: url.UserPassword(simUser, simPassword)}
	s := m.Service.NewServer()
	defer s.Close()
	fmt.Printf("url %s\nthumbprint %s\nbuilt %d VMs on %d hosts in %s\n", s.URL, tlsutil.Thumbprint(s.Certificate().Raw),
		n, benchClusters*benchClusterHost, time.Since(start).Round(time.Millisecond))
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

func benchServer(b *testing.B) benchTarget {
	b.Helper()
	benchOnce.Do(func() {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), benchChildEnv+"=1")
		cmd.Stderr = io.Discard
		// Kept open (a package variable, or the garbage collector closes it)
		// until this process exits: the child serves until then.
		if benchStdin, benchErr = cmd.StdinPipe(); benchErr != nil {
			return
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			benchErr = err
			return
		}
		if benchErr = cmd.Start(); benchErr != nil {
			return
		}
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), " ")
			switch k {
			case "url":
				benchSrv.url, benchErr = url.Parse(v)
			case "thumbprint":
				benchSrv.thumbprint = v
			case "built":
				benchSrv.built = v
			}
			if benchSrv.built != "" || benchErr != nil {
				break
			}
		}
		if benchSrv.url == nil && benchErr == nil {
			benchErr = fmt.Errorf("simulator child exited: %v", cmd.Wait())
		}
		b.Logf("simulator (child process): %s", benchSrv.built)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchSrv
}

// createVMs creates perPool VMs in every cluster's root pool, 32 at a time
// (Model.Create makes them one after the other, at two tasks each, which
// takes minutes for 10,000), with realistic sizes: 1 to 64 GB, some
// reservations, a tenth powered off.
func createVMs(m *simulator.Model, perPool int) (int, error) {
	ctx := context.Background()
	vc, err := vim25.NewClient(ctx, m.Service)
	if err != nil {
		return 0, err
	}
	finder := find.NewFinder(vc)
	dc, err := finder.Datacenter(ctx, "DC0")
	if err != nil {
		return 0, err
	}
	finder.SetDatacenter(dc)
	folders, err := dc.Folders(ctx)
	if err != nil {
		return 0, err
	}
	pools, err := finder.ResourcePoolList(ctx, "/DC0/host/*/Resources")
	if err != nil {
		return 0, err
	}
	type job struct {
		pool *object.ResourcePool
		name string
		i    int
	}
	jobs := make(chan job)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				spec := types.VirtualMachineConfigSpec{
					Name:             j.name,
					GuestId:          string(types.VirtualMachineGuestOsIdentifierOtherGuest),
					Files:            &types.VirtualMachineFileInfo{VmPathName: "[LocalDS_0]"},
					MemoryMB:         int64(1024 << (j.i % 7)),
					NumCPUs:          int32(1 << (j.i % 4)),
					MemoryAllocation: &types.ResourceAllocationInfo{Reservation: types.NewInt64(int64((j.i % 5) * 512))},
				}
				task, err := folders.VmFolder.CreateVM(ctx, spec, j.pool, nil)
				if err == nil {
					_, err = task.WaitForResult(ctx, nil)
				}
				if err != nil {
					select {
					case errs <- fmt.Errorf("creating %s: %w", j.name, err):
					default:
					}
				}
			}
		}()
	}
	n := 0
	for ci, p := range pools {
		for i := 0; i < perPool; i++ {
			jobs <- job{pool: p, name: fmt.Sprintf("DC0_C%d_VM%d", ci, i), i: n}
			n++
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	i := 0
	for _, e := range m.Map().All("VirtualMachine") {
		if i%10 != 0 {
			vcsim.SetPower(e.(*simulator.VirtualMachine), types.VirtualMachinePowerStatePoweredOn)
		}
		i++
	}
	return n, nil
}

// heapPeak samples the live heap while f runs and returns the peak in MB and
// the heap before f (after a GC) in MB. The simulator runs in another
// process: this is the client's heap.
func heapPeak(f func()) (peakMB, baseMB float64) {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	peak := base
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if h := read(); h > peak {
					peak = h
				}
			}
		}
	}()
	f()
	close(done)
	wg.Wait()
	if h := read(); h > peak {
		peak = h
	}
	return float64(peak) / (1 << 20), float64(base) / (1 << 20)
}

// BenchmarkCollect is a full collection (VMs, hosts, clusters, pools,
// folders, licences) of 10,000 VMs over an open session.
func BenchmarkCollect(b *testing.B) {
	s := benchServer(b)
	c, err := newCollector(collectors.Target{
		Kind:       Kind,
		Endpoint:   s.url.Host,
		Username:   simUser,
		Password:   collectors.Secret(simPassword),
		Thumbprint: s.thumbprint,
		Options:    []byte(`{"vcf_edition": "standard"}`),
		Timeout:    time.Minute,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(context.Background())
	ctx := context.Background()
	if _, err := c.Collect(ctx, hour); err != nil { // log in, create the views
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var peak, base float64
	var n int
	for i := 0; i < b.N; i++ {
		p, bs := heapPeak(func() {
			obs, err := c.Collect(ctx, hour)
			if err != nil {
				b.Fatal(err)
			}
			n = len(obs)
		})
		peak, base = max(peak, p), bs
	}
	b.ReportMetric(peak, "peak-heap-MB")
	b.ReportMetric(peak-base, "heap-growth-MB")
	b.ReportMetric(float64(n), "observations")
	b.ReportMetric(float64(c.pages), "pages")
}

// BenchmarkGovcCollectVMs is govc's `object.collect -json -type m` of the
// same VM properties, in process, for comparison. Each run logs in, creates
// a view, collects and logs out, as a govc invocation does.
func BenchmarkGovcCollectVMs(b *testing.B) {
	s := benchServer(b)
	b.Setenv("GOVC_URL", s.url.String())
	b.Setenv("GOVC_INSECURE", "1")
	args := append([]string{"object.collect", "-json", "-type", "m", "/"}, propertySpecs[0].PathSet...)

	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer null.Close()
	stdout := os.Stdout
	os.Stdout = null
	defer func() { os.Stdout = stdout }()

	b.ReportAllocs()
	b.ResetTimer()
	var peak, base float64
	for i := 0; i < b.N; i++ {
		p, bs := heapPeak(func() {
			if rc := cli.Run(args); rc != 0 {
				b.Fatalf("govc %v: exit status %d", args, rc)
			}
		})
		peak, base = max(peak, p), bs
	}
	b.ReportMetric(peak, "peak-heap-MB")
	b.ReportMetric(peak-base, "heap-growth-MB")
}
