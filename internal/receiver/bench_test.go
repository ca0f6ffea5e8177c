package receiver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/usagemeter/usagemeter/anonymize"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/receiver"
	"github.com/usagemeter/usagemeter/internal/receiver/protocol"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/internal/tlsutil"
	"github.com/usagemeter/usagemeter/report"
)

// BenchmarkMergeFleet: N appliances each upload the encrypted March bundle
// of M VMs (each VM changing once in the month: 2 spans; 40 customers by
// folder; every appliance also meters one shared vCenter of 100 VMs) to a
// receiver on loopback, which verifies, stores and re-merges the month
// after each upload; then the month is merged once more. The bundles are
// made by the real report generator before the timer starts.
//
//	go test ./internal/receiver -run '^$' -bench MergeFleet -benchtime 1x -benchmem
//
// ns/op is all N uploads (signed, over HTTPS: decrypt, signature, manifest,
// lines stored, merge) and the final merge. It also reports the mean
// per upload (upload-ms), the bundle size (bundle-MB) and the peak Go heap
// (peak-heap-MB: HeapInuse sampled every 5 ms, garbage not yet collected
// included; client and receiver are in this process, each bundle read from
// disk at its upload; PostgreSQL's memory is not counted).
// BENCH_FLEET="N×M,N×M" picks the sizes (default 10×5000 and 2×50000).
func BenchmarkMergeFleet(b *testing.B) {
	sizes := [][2]int{{10, 5000}, {2, 50000}}
	if s := os.Getenv("BENCH_FLEET"); s != "" {
		sizes = nil
		for _, p := range splitList(s) {
			var n, m int
			if _, err := fmt.Sscanf(p, "%dx%d", &n, &m); err != nil {
				b.Fatalf("BENCH_FLEET %q: want NxM", p)
			}
			sizes = append(sizes, [2]int{n, m})
		}
	}
	for _, sz := range sizes {
		b.Run(fmt.Sprintf("appliances=%d/vms=%d", sz[0], sz[1]), func(b *testing.B) { benchFleet(b, sz[0], sz[1]) })
	}
}

func splitList(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

type benchBundle struct {
	dir    string
	id     string
	signer *openpgp.Entity
	d      report.Delivery // without Data: read from path at upload, as the appliance does
	path   string
	size   int
}

func benchFleet(b *testing.B, n, vms int) {
	ctx := context.Background()
	now := time.Date(2026, 4, 1, 3, 0, 0, 0, time.UTC)
	agg, err := report.GenerateKey("Aggregator", "billing@aggregator.example", now.Add(-48*time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	bundles := make([]benchBundle, n)
	for i := range bundles {
		bundles[i] = makeBundle(b, agg, i, vms, now)
	}
	var size int
	for _, x := range bundles {
		size += x.size
	}
	b.ResetTimer()
	var uploads time.Duration
	var peak uint64
	for range b.N {
		b.StopTimer()
		pool := pgtest.NewPool(b)
		r := &receiver.Receiver{Pool: pool, Store: store.New(pool, nil), Keys: openpgp.EntityList{agg}, AlertTo: []string{"fleet@provider.example"},
			Now: func() time.Time { return time.Now() }}
		if err := receiver.Open(ctx, r); err != nil {
			b.Fatal(err)
		}
		url, thumb, stop, err := tlsutil.ServeLoopback(r.Handler())
		if err != nil {
			b.Fatal(err)
		}
		r.Thumbprint = thumb
		chans := make([]report.Channel, n)
		for i, x := range bundles {
			tok, _, err := r.CreateToken(ctx, "", time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			pub, _ := report.ExportPublic(x.signer)
			enr, err := protocol.Enrol(ctx, protocol.EnrolOptions{DataDir: x.dir, URL: url, Token: tok, ApplianceID: x.id, ReportKey: pub})
			if err != nil {
				b.Fatal(err)
			}
			chans[i] = report.ReceiverChannel(enr)
		}
		runtime.GC()
		stopSampling := sampleHeap(&peak)
		b.StartTimer()
		start := time.Now()
		for i, x := range bundles {
			d := x.d
			if d.Data, err = os.ReadFile(x.path); err != nil {
				b.Fatal(err)
			}
			if _, _, err := chans[i].Deliver(ctx, d); err != nil {
				b.Fatal(err)
			}
		}
		uploads += time.Since(start)
		m, err := r.Merge(ctx, "2026-03")
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		stopSampling()
		if len(m.Bundles) != n || (n > 1 && len(m.Shared) != 1) {
			b.Fatalf("merged %d bundles, %d shared", len(m.Bundles), len(m.Shared))
		}
		stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(uploads.Milliseconds())/float64(b.N*n), "upload-ms")
	b.ReportMetric(float64(size)/float64(n)/(1<<20), "bundle-MB")
	b.ReportMetric(float64(atomic.LoadUint64(&peak))/(1<<20), "peak-heap-MB")
}

// sampleHeap records the peak HeapInuse every 5 ms until stopped.
func sampleHeap(peak *uint64) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > atomic.LoadUint64(peak) {
				atomic.StoreUint64(peak, ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// makeBundle is appliance i's encrypted March: vms VMs on its own vCenter
// and 100 on the shared one.
func makeBundle(b *testing.B, agg *openpgp.Entity, i, vms int, now time.Time) benchBundle {
	ctx := context.Background()
	st := store.New(pgtest.NewPool(b), nil)
	defer st.Close() // 200 appliances' pools would exceed the server's connections
	if _, err := st.EnsureAppliance(ctx, false); err != nil {
		b.Fatal(err)
	}
	id := fmt.Sprintf("a%07d-0000-4000-8000-000000000000", i)
	if _, err := st.Pool().Exec(ctx, `UPDATE appliance SET id = $1`, id); err != nil {
		b.Fatal(err)
	}
	if err := st.Register(ctx, "C-42", "rental", now); err != nil {
		b.Fatal(err)
	}
	for c := range 40 {
		if _, err := st.AddCustomerRule(ctx, store.CustomerRule{Label: "Tenant " + strconv.Itoa(c), ObjectType: "folder", ObjectName: "vm/t" + strconv.Itoa(c)}); err != nil {
			b.Fatal(err)
		}
	}
	for _, vc := range []struct {
		host, uuid string
		n          int
	}{{fmt.Sprintf("vc%d.corp.example", i), fmt.Sprintf("50%06d-0000-4000-8000-0000000000aa", i), vms}, {"vc-shared.corp.example", sharedUUID, 100}} {
		pid, err := st.AddProduct(ctx, store.Product{Kind: "vcenter", Endpoint: "https://" + vc.host + "/sdk", InstanceID: vc.uuid, Options: json.RawMessage(`{"version":"8.0.3"}`)})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.ImportSpans(ctx, `
		SELECT $1::bigint, 'vm.vram', $6 || '/vm/' || i, seg.first_hour, seg.last_hour, (1024 + (i % 16) * 512 + seg.n * 256)::float8, 'MB', 'vsphere-ent',
		       jsonb_build_object('vm', 'vm-' || i, 'host', 'esx-' || (i % 50), 'cluster', 'cl-' || (i % 5), 'datacenter', 'dc',
		                          'folder', '/dc/vm/t' || (i % 40), 'resource_pool', 'rp', 'vcenter', $5::text, 'license_key', 'KEY-1')
		  FROM generate_series(0, $4 - 1) AS i
		 CROSS JOIN LATERAL (VALUES
		        (0, $2::timestamptz - interval '2 days', $2::timestamptz + ((i % 27) + 1) * interval '1 day' - interval '1 hour'),
		        (1, $2::timestamptz + ((i % 27) + 1) * interval '1 day', $3::timestamptz + interval '1 day')) AS seg(n, first_hour, last_hour)`,
			pid, march.Start, march.End, vc.n, vc.host, vc.uuid); err != nil {
			b.Fatal(err)
		}
		if _, err := st.Pool().Exec(ctx, `INSERT INTO collection_runs (product_id, hour, state)
			SELECT $1, h, 'done' FROM generate_series($2::timestamptz, $3::timestamptz - interval '1 hour', interval '1 hour') h`, pid, march.Start, march.End); err != nil {
			b.Fatal(err)
		}
	}
	signer, err := report.GenerateKey("usagemeter appliance "+id, "usagemeter@appliance.invalid", now.Add(-48*time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	// The bundles are made before the receiver exists: they carry one fixed
	// fleet key, as if enrolled with one receiver (the merge compares the
	// bundles' fingerprints with each other only).
	g, err := report.New(report.Options{Store: st, Mode: anonymize.ModeHashed, Secret: []byte(fmt.Sprintf("%032d", i)), Recipients: openpgp.EntityList{agg},
		Signer: signer, Dir: filepath.Join(dir, "reports"), FleetKey: benchFleetKey, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	res, err := g.Generate(ctx, march)
	if err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(res.Report.Path)
	if err != nil {
		b.Fatal(err)
	}
	return benchBundle{dir: dir, id: id, signer: signer, path: res.Report.Path, size: int(fi.Size()), d: report.Delivery{ApplianceID: id, Month: "2026-03",
		Version: res.Report.Version, FileName: filepath.Base(res.Report.Path), SHA256: res.Report.BundleSHA256}}
}

var benchFleetKey = []byte("bench-fleet-key-bench-fleet-key!")
