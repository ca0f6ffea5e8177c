package report

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/usagemeter/usagemeter/anonymize"
	"github.com/usagemeter/usagemeter/internal/pgtest"
)

// BenchmarkMonth: aggregation and bundle of a full month (March, 744 hours)
// for 50,000 and 200,000 VMs (issue 19) of which 5% change every day (each
// VM changes on two days twenty days apart): about 2.6 spans per VM, plus
// VCF cores of one host per 100 VMs, and 200 folder customer rules. The
// spans of both sizes are written by INSERT ... generate_series statements,
// once, before the sub-benchmarks run.
//
//	go test ./report -run '^$' -bench Month -benchtime 1x
//
// ns/op is Build (the queries and the files, spooled to disk) plus the
// tar.gz streamed to a file. It also reports the time of one full Generate
// (generate-s: build, tar.gz, encryption and signature, reverse map,
// reports row) and the Go heap peak over both (peak-heap-MB: HeapInuse
// sampled every 5 ms); PostgreSQL's own memory is not counted, its CPU time
// is (pg-cpu-s/op, beside the process's go-cpu-s/op).
// BENCH_MONTH_VMS=n runs the size n only.
func BenchmarkMonth(b *testing.B) {
	sizes := []int{50000, 200000}
	if s := os.Getenv("BENCH_MONTH_VMS"); s != "" {
		n, _ := strconv.Atoi(s)
		sizes = []int{n}
	}
	fixtures := make([]*fixture, len(sizes))
	spans := make([]int, len(sizes))
	for i, n := range sizes {
		fixtures[i], spans[i] = monthFixture(b, n)
	}
	for i, n := range sizes {
		b.Run(fmt.Sprintf("vms=%d", n), func(b *testing.B) { benchMonth(b, fixtures[i], spans[i]) })
	}
}

// monthFixture writes the month of n VMs; 50,000 VMs run on 500 hosts in
// 50 clusters, and the inventory grows with n.
func monthFixture(b testing.TB, n int) (*fixture, int) {
	f := newFixture(b)
	f.register(b)
	ctx := context.Background()
	m := march
	hosts, clusters, tenants := n/100, n/1000, n/125
	if _, err := f.st.ImportSpans(ctx, `
	SELECT $1::bigint, 'vm.vram', 'vc-uuid/vm/' || i, seg.first_hour, seg.last_hour, (1024 + (i % 16) * 512 + seg.n * 256)::float8, 'MB', 'vsphere-ent',
	       jsonb_build_object('vm', 'vm-' || i, 'host', 'esx-' || ((i + seg.n) % $5) || '.corp.example', 'cluster', 'cl-' || ((i + seg.n) % $6),
	                          'datacenter', 'dc-' || (i % 5), 'folder', '/dc-' || (i % 5) || '/vm/tenant-' || (i % $7) || '/app-' || (i % 7),
	                          'resource_pool', 'rp-' || (i % 100), 'vcenter', 'vc01.corp.example', 'license_key', 'KEY-' || (i % 3))
	  FROM generate_series(0, $4 - 1) AS i
	 CROSS JOIN LATERAL (
	        SELECT $2::timestamptz - interval '5 days' AS b0,
	               $2::timestamptz + ((i % 20) + 1) * interval '1 day' AS b1,
	               $2::timestamptz + ((i % 20) + 21) * interval '1 day' AS b2,
	               $3::timestamptz + interval '2 days' AS b3) b
	 CROSS JOIN LATERAL (VALUES
	        (0, b.b0, b.b1 - interval '1 hour'),
	        (1, b.b1, least(b.b2, b.b3) - interval '1 hour'),
	        (2, b.b2, b.b3 - interval '1 hour')) AS seg(n, first_hour, last_hour)
	 WHERE seg.first_hour <= seg.last_hour`, f.vc, m.Start, m.End, n, hosts, clusters, tenants); err != nil {
		b.Fatal(err)
	}
	if _, err := f.st.ImportSpans(ctx, `
	SELECT $1::bigint, 'host.cores', 'vc-uuid/host/' || i, $2::timestamptz, $3::timestamptz, 32::float8, 'cores', 'vcf-standard',
	       jsonb_build_object('host', 'esx-' || i || '.corp.example', 'cluster', 'cl-' || (i % $5), 'datacenter', 'dc-' || (i % 5), 'vcenter', 'vc01.corp.example')
	  FROM generate_series(0, $4 - 1) AS i`, f.vc, m.Start, m.End, hosts, clusters); err != nil {
		b.Fatal(err)
	}
	f.runs(b, f.vc, m.Start, m.End)
	f.exec(b, `INSERT INTO customer_rules (label, object_type, object_name) SELECT 'Tenant ' || i, 'folder', 'tenant-' || i FROM generate_series(0, 199) i`)
	f.exec(b, `INSERT INTO licenses (license_key, category) VALUES ('KEY-2', 'demo')`)
	f.exec(b, `VACUUM ANALYZE`)
	var spans int
	if err := f.st.Pool().QueryRow(ctx, `SELECT count(*) FROM usage_spans`).Scan(&spans); err != nil {
		b.Fatal(err)
	}
	return f, spans
}

func benchMonth(b *testing.B, f *fixture, spans int) {
	ctx := context.Background()
	m := march
	f.keys = nil
	g := f.generator(b, anonymize.ModeHashed, secretA)
	if testing.Verbose() {
		g.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	out := filepath.Join(b.TempDir(), "bundle.tar.gz")

	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	runtime.GC()
	go func() {
		defer wg.Done()
		// HeapInuse is heap objects + heap unused, read without stopping
		// the world (runtime.ReadMemStats every 5 ms did, which slowed
		// what it measured).
		samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				metrics.Read(samples)
				if inuse := samples[0].Value.Uint64() + samples[1].Value.Uint64(); inuse > peak.Load() {
					peak.Store(inuse)
				}
			}
		}
	}()
	pgCPU0, goCPU0 := pgtest.ServerCPU(b, f.st.Pool()), pgtest.ProcessCPU()
	b.ResetTimer()
	var size int64
	for i := 0; i < b.N; i++ {
		bundle, _, err := g.Build(ctx, m)
		if err != nil {
			b.Fatal(err)
		}
		w, err := os.Create(out)
		if err != nil {
			b.Fatal(err)
		}
		bw := bufio.NewWriterSize(w, 256<<10)
		if err := bundle.WriteTarGz(bw, 1); err != nil {
			b.Fatal(err)
		}
		if err := bw.Flush(); err != nil {
			b.Fatal(err)
		}
		size, _ = w.Seek(0, io.SeekCurrent)
		w.Close()
		bundle.Close()
	}
	b.StopTimer()
	// CPU time of the database server and of this process per build: on a
	// shared machine, wall time is what the others leave.
	b.ReportMetric((pgtest.ServerCPU(b, f.st.Pool())-pgCPU0)/float64(b.N), "pg-cpu-s/op")
	b.ReportMetric((pgtest.ProcessCPU()-goCPU0)/float64(b.N), "go-cpu-s/op")
	// One full Generate besides: bundle, encryption to one recipient,
	// signature, reverse map (two names per VM), reports row.
	f.keys = openpgp.EntityList{testSigner(b)}
	g = f.generator(b, anonymize.ModeHashed, secretA)
	start := time.Now()
	if _, err := g.Generate(ctx, m); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(time.Since(start).Seconds(), "generate-s")
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(spans), "spans")
	b.ReportMetric(float64(size)/(1<<20), "bundle-MB")
}
