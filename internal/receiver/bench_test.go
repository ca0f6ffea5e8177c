package receiver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
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
// receiver on loopback, which verifies and stores each upload; then the
// month is merged (MergeEach: streamed, its lines tallied, not held).
//
//	go test ./internal/receiver -run '^$' -bench MergeFleet -benchtime 1x -benchmem
//
// Before the timer starts, the real report generator makes fleetMonths
// distinct months (own VMs, customers and secrets); the other appliances'
// bundles are those months' files re-keyed as their own (product hosts and
// customers hashed under the appliance's secret, its own vCenter's fleet
// fingerprint, its appliance id), packed, encrypted to the aggregator key
// and signed with the appliance's own enrolled key (see deriveBundle):
// 200 generator runs of 50,000 VMs would take half an hour, these take a
// second each.
//
// ns/op is all N uploads (signed, over HTTPS: decrypt, signature, manifest,
// lines stored) and the final merge. It also reports the mean per upload
// (upload-ms; upload-ms-first and -last: the first and the last tenth of the
// uploads, which stay level when an upload's cost does not grow with the
// month), the merge (merge-ms; merged-lines: the appliances' lines it
// summed), the bundle size (bundle-MB), the peak Go
// heap (peak-heap-MB: heap objects and unused heap spans sampled every 5 ms
// through runtime/metrics; client and receiver are in this process, each
// bundle read from disk at its upload; PostgreSQL's memory is not counted;
// live-heap-MB: what is left after the merge and a GC),
// the CPU time of this process and of the PostgreSQL server over the timed
// part (go-cpu-s, pg-cpu-s: the machine may be shared, wall time is what
// the others leave), the database's size after (db-MB; db-MB-per-month:
// its growth per appliance-month, the empty schema's size left out) and
// the 1-minute load average at the end (load1).
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

// fleetMonths is how many distinct months the report generator makes for
// the benchmark; the other appliances' bundles are derived from them.
const fleetMonths = 4

type benchBundle struct {
	dir  string
	id   string
	pub  []byte          // the armored public signing key it enrols
	d    report.Delivery // without Data: read from path at upload, as the appliance does
	path string
	size int
	rows int // of Monthly_Usage.tsv: the appliance's parts of the merged month
}

// plainMonth is a generated month's plain bundle: its files and manifest,
// and the names in it that deriveBundle re-keys.
type plainMonth struct {
	man   report.Manifest
	files []report.File
	names []string // hashed product hosts and customers
	own   string   // the fleet fingerprint of the appliance's own vCenter
	rows  int
}

func benchFleet(b *testing.B, n, vms int) {
	ctx := context.Background()
	now := time.Date(2026, 4, 1, 3, 0, 0, 0, time.UTC)
	agg, err := report.GenerateKey("Aggregator", "billing@aggregator.example", now.Add(-48*time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	bundles := make([]benchBundle, n)
	months := make([]plainMonth, min(n, fleetMonths))
	for i := range months {
		var plain string
		bundles[i], plain = makeBundle(b, agg, i, vms, now)
		months[i] = readMonth(b, plain)
		bundles[i].rows = months[i].rows
	}
	// The other appliances' bundles, one per core at a time.
	var next atomic.Int64
	next.Store(int64(len(months)))
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := deriveBundle(&bundles[i], agg, &months[i%len(months)], i, now, b.TempDir()); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	months = nil
	var size int
	for _, x := range bundles {
		size += x.size
	}
	b.ResetTimer()
	var uploads, merge time.Duration
	var goCPU, pgCPU float64
	var peak atomic.Uint64
	var live uint64
	took := make([]time.Duration, n)
	var dbBefore, dbSize int64
	var parts int
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
		chans := make([]*report.UploadChannel, n)
		for i, x := range bundles {
			tok, _, err := r.CreateToken(ctx, "", time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			enr, err := protocol.Enrol(ctx, protocol.EnrolOptions{DataDir: x.dir, URL: url, Token: tok, ApplianceID: x.id, ReportKey: x.pub})
			if err != nil {
				b.Fatal(err)
			}
			chans[i] = report.ReceiverChannel(enr)
		}
		if err := pool.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&dbBefore); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		stopSampling := sampleHeap(&peak)
		pg0, go0 := pgtest.ServerCPU(b, pool), pgtest.ProcessCPU()
		b.StartTimer()
		start := time.Now()
		for i, x := range bundles {
			t0 := time.Now()
			d := x.d
			if d.Data, err = os.ReadFile(x.path); err != nil {
				b.Fatal(err)
			}
			if _, _, err := chans[i].Deliver(ctx, d); err != nil {
				b.Fatal(err)
			}
			// Each appliance is a process of its own, whose connection
			// closes when idle: here, at once, and the client is gone.
			chans[i].Client.CloseIdleConnections()
			chans[i] = nil
			took[i] += time.Since(t0)
		}
		uploads += time.Since(start)
		start = time.Now()
		sum := newFleetSum()
		m, err := r.MergeEach(ctx, "2026-03", sum.add)
		if err != nil {
			b.Fatal(err)
		}
		merge += time.Since(start)
		b.StopTimer()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		live = ms.HeapAlloc
		pgCPU += pgtest.ServerCPU(b, pool) - pg0
		goCPU += pgtest.ProcessCPU() - go0
		stopSampling()
		sum.check(b, m, bundles)
		parts = 0
		for _, c := range sum.parts {
			parts += c
		}
		if err := pool.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&dbSize); err != nil {
			b.Fatal(err)
		}
		stop()
		b.StartTimer()
	}
	b.StopTimer()
	tenth := max(n/10, 1)
	mean := func(ds []time.Duration) float64 {
		var sum time.Duration
		for _, d := range ds {
			sum += d
		}
		return float64(sum.Microseconds()) / 1000 / float64(len(ds)*b.N)
	}
	b.ReportMetric(float64(uploads.Microseconds())/1000/float64(b.N*n), "upload-ms")
	b.ReportMetric(mean(took[:tenth]), "upload-ms-first")
	b.ReportMetric(mean(took[n-tenth:]), "upload-ms-last")
	b.ReportMetric(float64(merge.Microseconds())/1000/float64(b.N), "merge-ms")
	b.ReportMetric(float64(parts), "merged-lines")
	b.ReportMetric(float64(size)/float64(n)/(1<<20), "bundle-MB")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(live)/(1<<20), "live-heap-MB")
	b.ReportMetric(goCPU/float64(b.N), "go-cpu-s")
	b.ReportMetric(pgCPU/float64(b.N), "pg-cpu-s")
	b.ReportMetric(float64(dbSize)/(1<<20), "db-MB")
	b.ReportMetric(float64(dbSize-dbBefore)/float64(n)/(1<<20), "db-MB-per-month")
	b.ReportMetric(load1(b), "load1")
}

// fleetSum tallies the merged month as it streams by.
type fleetSum struct {
	parts     map[string]int // per appliance
	customers map[string]bool
	unbilled  int
}

func newFleetSum() *fleetSum { return &fleetSum{parts: map[string]int{}, customers: map[string]bool{}} }

func (s *fleetSum) add(l receiver.Line) error {
	s.customers[l.Customer] = true
	for _, p := range l.Parts {
		s.parts[p.ApplianceID]++
		if !p.Billed {
			s.unbilled++
		}
	}
	return nil
}

// check: every appliance merged with all its lines, each with its own 40
// customers, the shared vCenter seen by all and billed once.
func (s *fleetSum) check(b *testing.B, m *receiver.Month, bundles []benchBundle) {
	b.Helper()
	n := len(bundles)
	if len(m.Bundles) != n {
		b.Fatalf("merged %d bundles, want %d", len(m.Bundles), n)
	}
	if n > 1 && (len(m.Shared) != 1 || len(m.Shared[0].Appliances) != n) {
		b.Fatalf("shared: %+v, want one instance of %d appliances", m.Shared, n)
	}
	for _, x := range bundles {
		if s.parts[x.id] != x.rows {
			b.Fatalf("appliance %s: %d parts merged, its Monthly_Usage.tsv has %d lines", x.id, s.parts[x.id], x.rows)
		}
	}
	if len(s.customers) != 40*n {
		b.Fatalf("%d customers merged, want 40 per appliance (%d)", len(s.customers), 40*n)
	}
	// The shared vCenter's line of each customer is billed by one appliance.
	if s.unbilled != 40*(n-1) {
		b.Fatalf("%d parts not billed, want the shared vCenter's 40 of each appliance but one (%d)", s.unbilled, 40*(n-1))
	}
}

// load1 is the 1-minute load average (Linux).
func load1(b *testing.B) float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		b.Fatal(err)
	}
	f, _, _ := strings.Cut(string(data), " ")
	l, err := strconv.ParseFloat(f, 64)
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// sampleHeap records the peak of the heap in use (objects, live or not yet
// collected, and unused spans) every 5 ms until stopped: through
// runtime/metrics, which does not stop the world as ReadMemStats does.
func sampleHeap(peak *atomic.Uint64) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(samples)
			if inuse := samples[0].Value.Uint64() + samples[1].Value.Uint64(); inuse > peak.Load() {
				peak.Store(inuse)
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

// readMonth reads a generated plain bundle and finds the names to re-key.
func readMonth(b *testing.B, path string) plainMonth {
	tgz, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	man, err := report.VerifyBundle(tgz)
	if err != nil {
		b.Fatal(err)
	}
	files, err := report.ReadTarGz(bytes.NewReader(tgz))
	if err != nil {
		b.Fatal(err)
	}
	pm := plainMonth{man: *man, files: files}
	shared := protocol.Fingerprint(benchFleetKey, sharedUUID)
	for _, f := range man.Fleet {
		if f.Fingerprint != shared {
			pm.own = f.Fingerprint
		}
	}
	seen := map[string]bool{}
	for _, f := range files {
		if f.Name != report.FileMonthly {
			continue
		}
		for i, row := range strings.Split(strings.TrimSuffix(string(f.Data), "\n"), "\n") {
			if i == 0 {
				continue
			}
			pm.rows++
			c := strings.Split(row, "\t")
			for _, v := range []string{c[5], c[7]} { // Product Host, Customer
				if hashRE.MatchString(v) && !seen[v] {
					seen[v] = true
					pm.names = append(pm.names, v)
				}
			}
		}
	}
	if pm.own == "" || len(pm.names) != 2+40 {
		b.Fatalf("%s: own vCenter %q, %d hashed names (want 2 hosts and 40 customers)", path, pm.own, len(pm.names))
	}
	return pm
}

var hashRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// deriveBundle makes appliance i's bundle of month m: every hashed product
// host and customer hashed again under appliance i's secret (so they are
// its own, as the hashes of appliances with their own secrets are), its own
// vCenter's fleet fingerprint, its appliance id; packed, encrypted to the
// aggregator and signed with a key of its own.
func deriveBundle(x *benchBundle, agg *openpgp.Entity, m *plainMonth, i int, now time.Time, dir string) error {
	an, err := anonymize.New(anonymize.ModeHashed, benchSecret(i))
	if err != nil {
		return err
	}
	h := an.Hasher()
	pairs := make([]string, 0, 2*len(m.names))
	for _, v := range m.names {
		pairs = append(pairs, v, h.Name(v))
	}
	rekey := strings.NewReplacer(pairs...)
	mj, err := json.Marshal(m.man)
	if err != nil {
		return err
	}
	var man report.Manifest
	if err := json.Unmarshal([]byte(rekey.Replace(string(mj))), &man); err != nil {
		return err
	}
	man.ApplianceID = benchApplianceID(i)
	for j, f := range man.Fleet {
		if f.Fingerprint == m.own {
			man.Fleet[j].Fingerprint = protocol.Fingerprint(benchFleetKey, benchOwnUUID(i))
		}
	}
	files := make([]report.File, len(m.files))
	for j, f := range m.files {
		files[j] = report.File{Name: rekey.Replace(f.Name), Data: []byte(rekey.Replace(string(f.Data)))}
	}
	var plain bytes.Buffer
	if err := report.PackBundle(&plain, man, files); err != nil {
		return err
	}
	files = nil
	signer, err := report.GenerateKey("usagemeter appliance "+man.ApplianceID, "usagemeter@appliance.invalid", now.Add(-48*time.Hour))
	if err != nil {
		return err
	}
	name := fmt.Sprintf("usage-%s-v%d.tar.gz", man.Month, man.Version)
	var enc bytes.Buffer
	if err := report.EncryptAndSign(&enc, &plain, name, openpgp.EntityList{agg}, signer, false); err != nil {
		return err
	}
	path := filepath.Join(dir, name+".gpg")
	if err := os.WriteFile(path, enc.Bytes(), 0o600); err != nil {
		return err
	}
	sum := sha256.Sum256(enc.Bytes())
	pub, err := report.ExportPublic(signer)
	if err != nil {
		return err
	}
	*x = benchBundle{dir: dir, id: man.ApplianceID, pub: pub, path: path, size: enc.Len(), rows: m.rows, d: report.Delivery{ApplianceID: man.ApplianceID,
		Month: man.Month, Version: man.Version, FileName: name + ".gpg", SHA256: hex.EncodeToString(sum[:])}}
	return nil
}

func benchApplianceID(i int) string { return fmt.Sprintf("a%07d-0000-4000-8000-000000000000", i) }
func benchOwnUUID(i int) string     { return fmt.Sprintf("50%06d-0000-4000-8000-0000000000aa", i) }
func benchSecret(i int) []byte      { return []byte(fmt.Sprintf("%032d", i)) }

// makeBundle is appliance i's encrypted March made by the report generator:
// vms VMs on its own vCenter and 100 on the shared one; and the path of the
// plain bundle.
func makeBundle(b *testing.B, agg *openpgp.Entity, i, vms int, now time.Time) (benchBundle, string) {
	ctx := context.Background()
	st := store.New(pgtest.NewPool(b), nil)
	defer st.Close() // 200 appliances' pools would exceed the server's connections
	if _, err := st.EnsureAppliance(ctx, false); err != nil {
		b.Fatal(err)
	}
	id := benchApplianceID(i)
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
	}{{fmt.Sprintf("vc%d.corp.example", i), benchOwnUUID(i), vms}, {"vc-shared.corp.example", sharedUUID, 100}} {
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
	g, err := report.New(report.Options{Store: st, Mode: anonymize.ModeHashed, Secret: benchSecret(i), Recipients: openpgp.EntityList{agg},
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
	pub, err := report.ExportPublic(signer)
	if err != nil {
		b.Fatal(err)
	}
	return benchBundle{dir: dir, id: id, pub: pub, path: res.Report.Path, size: int(fi.Size()), d: report.Delivery{ApplianceID: id, Month: "2026-03",
		Version: res.Report.Version, FileName: filepath.Base(res.Report.Path), SHA256: res.Report.BundleSHA256}}, res.PlainPath
}

var benchFleetKey = []byte("bench-fleet-key-bench-fleet-key!")
