package report

import (
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usagemeter/usagemeter/anonymize"
	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// The fixed month of the golden files: March 2026, 744 hours in UTC.
var (
	march   = store.MonthIn(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.UTC)
	fixedAt = time.Date(2026, 4, 1, 2, 0, 0, 0, time.UTC)
	secretA = bytes.Repeat([]byte{0x42}, 32)
	secretB = bytes.Repeat([]byte{0x17}, 32)
)

const applianceID = "5f0c6d2e-8a41-4b6e-9d3a-2c7e1f0a9b11"

// Every clear name the fixture puts in; none may appear in a hashed bundle.
var clearNames = []string{
	"web01", "db01", "eval01", "perp01", "10.1.2.3-test", "10.1.2.3",
	"esx01.corp.example", "esx02.corp.example", "esx03.corp.example", "Gold", "Silver", "DC-Paris",
	"/DC-Paris/vm/Tenants/Acme/web", "Tenants", "Acme", "Globex", "rp-acme", "rp-other", "Other",
	"vc01.corp.example", "srm01.corp.example", "horizon01.corp.example", "corp.example",
	"AAAAA-RENT", "BBBBB-PERP", "EEEEE-EVAL",
}

type fixture struct {
	st   *store.Store
	vc   int64
	srm  int64
	hz   int64
	dir  string
	keys openpgp.EntityList
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	return newFixtureOn(t, pgtest.NewPool(t))
}

// newFixtureOn is newFixture on a database of the test's (a migration test's).
func newFixtureOn(t testing.TB, pool *pgxpool.Pool) *fixture {
	t.Helper()
	ctx := context.Background()
	st := store.New(pool, nil)
	if _, err := st.EnsureAppliance(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `UPDATE appliance SET id = $1`, applianceID); err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, dir: t.TempDir()}
	// The products are inserted as they were in the first schema (the
	// migration tests build the fixture on a database of an older schema).
	add := func(kind, endpoint, version string) int64 {
		opts := `{}`
		if version != "" {
			opts = `{"version":"` + version + `"}`
		}
		var id int64
		if err := pool.QueryRow(ctx, `INSERT INTO products (kind, endpoint, options) VALUES ($1, $2, $3) RETURNING id`, kind, endpoint, opts).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	f.vc = add("vcenter", "https://vc01.corp.example/sdk", "8.0.3")
	f.srm = add("srm", "https://srm01.corp.example", "")
	f.hz = add("horizon", "https://horizon01.corp.example", "")
	return f
}

func (f *fixture) register(t testing.TB) {
	t.Helper()
	if err := f.st.Register(context.Background(), "C-1234", "rental", fixedAt); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := f.st.Pool().Exec(context.Background(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) span(t testing.TB, pid int64, metric, key string, first, last time.Time, qty float64, unit, edition string, dims map[string]string) {
	t.Helper()
	d, _ := json.Marshal(dims)
	f.exec(t, `INSERT INTO usage_spans (product_id, metric, object_key, first_hour, last_hour, quantity, unit, edition, dims_hash, dims)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '\x00', $9)`, pid, metric, key, first.UTC(), last.UTC(), qty, unit, edition, string(d))
}

// runs marks hours [from, to) of pid done, except the hours in skip.
func (f *fixture) runs(t testing.TB, pid int64, from, to time.Time, skip ...time.Time) {
	t.Helper()
	if skip == nil {
		skip = []time.Time{} // NULL would make "<> ALL" unknown
	}
	f.exec(t, `INSERT INTO collection_runs (product_id, hour, state)
		SELECT $1, h, 'done' FROM generate_series($2::timestamptz, $3::timestamptz - interval '1 hour', interval '1 hour') h
		WHERE h <> ALL ($4::timestamptz[])`, pid, from, to, skip)
}

func vmDims(name, host, cluster, folder, pool, key string) map[string]string {
	return map[string]string{
		"vm": name, "host": host, "cluster": cluster, "datacenter": "DC-Paris", "folder": folder,
		"resource_pool": pool, "vcenter": "vc01.corp.example", "license_key": key, "license_edition": "vsphere-ent",
	}
}

// seed writes the golden month: February 20 to April 5, 2026.
func (f *fixture) seed(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	h := func(day, hour int) time.Time { return time.Date(2026, 3, day, hour, 0, 0, 0, time.UTC) }
	feb20, apr5 := time.Date(2026, 2, 20, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 5, 0, 0, 0, 0, time.UTC)
	acme := "/DC-Paris/vm/Tenants/Acme/web"
	// web01: 8 GB configured, 4 GB billed, all along; Acme by its folder.
	f.span(t, f.vc, collectors.MetricVMVRAM, "vc-uuid/vm/web01", feb20, apr5, 4096, "MB", "vsphere-ent", vmDims("web01", "esx01.corp.example", "Gold", acme, "rp-acme", "AAAAA-RENT"))
	// db01: capped 24 GB until March 15 noon on esx01, then 16 GB on esx02
	// (Globex's host) until April 3: it crosses both month edges.
	f.span(t, f.vc, collectors.MetricVMVRAM, "vc-uuid/vm/db01", feb20, h(15, 11), 24576, "MB", "vsphere-ent", vmDims("db01", "esx01.corp.example", "Gold", "/DC-Paris/vm/Other", "rp-other", "AAAAA-RENT"))
	f.span(t, f.vc, collectors.MetricVMVRAM, "vc-uuid/vm/db01", h(15, 12), time.Date(2026, 4, 3, 0, 0, 0, 0, time.UTC), 16384, "MB", "vsphere-ent", vmDims("db01", "esx02.corp.example", "Silver", "/DC-Paris/vm/Other", "rp-other", "AAAAA-RENT"))
	// A VM named after an IP, present 10 days.
	f.span(t, f.vc, collectors.MetricVMVRAM, "vc-uuid/vm/ip", h(10, 0), h(19, 23), 2048, "MB", "vsphere-ent", vmDims("10.1.2.3-test", "esx02.corp.example", "Silver", "/DC-Paris/vm/Other", "rp-other", "AAAAA-RENT"))
	// Not reported: an evaluation host, a perpetual licence.
	ev := vmDims("eval01", "esx03.corp.example", "Silver", "/DC-Paris/vm/Other", "rp-other", "EEEEE-EVAL")
	ev[collectors.DimNotReportableKey] = "true"
	f.span(t, f.vc, collectors.MetricVMVRAM, "vc-uuid/vm/eval01", feb20, apr5, 1024, "MB", "eval", ev)
	f.span(t, f.vc, collectors.MetricVMVRAM, "vc-uuid/vm/perp01", feb20, apr5, 1024, "MB", "vsphere-ent", vmDims("perp01", "esx03.corp.example", "Silver", "/DC-Paris/vm/Other", "rp-other", "BBBBB-PERP"))
	if err := f.st.SetLicenseCategory(ctx, "BBBBB-PERP", store.LicensePerpetual); err != nil {
		t.Fatal(err)
	}
	// VCF cores of the two busy hosts, vSAN of cluster Gold.
	f.span(t, f.vc, collectors.MetricHostCores, "vc-uuid/host/host-1", feb20, apr5, 32, "cores", "vcf-standard", map[string]string{"host": "esx01.corp.example", "cluster": "Gold", "datacenter": "DC-Paris", "vcenter": "vc01.corp.example"})
	f.span(t, f.vc, collectors.MetricHostCores, "vc-uuid/host/host-2", h(10, 0), apr5, 16, "cores", "vcf-standard", map[string]string{"host": "esx02.corp.example", "cluster": "Silver", "datacenter": "DC-Paris", "vcenter": "vc01.corp.example"})
	f.span(t, f.vc, collectors.MetricVSANUsedGB, "vc-uuid/cluster/c-1", feb20, h(20, 23), 1234.56, "GB", "advanced", map[string]string{"cluster": "Gold", "datacenter": "DC-Paris", "vcenter": "vc01.corp.example"})
	f.span(t, f.vc, collectors.MetricVSANUsedGB, "vc-uuid/cluster/c-1", h(21, 0), apr5, 1500, "GB", "advanced", map[string]string{"cluster": "Gold", "datacenter": "DC-Paris", "vcenter": "vc01.corp.example"})
	// SRM protects web01 all month.
	f.span(t, f.srm, collectors.MetricVMProtected, "vc-uuid/vm/web01", feb20, apr5, 1, "count", "", map[string]string{"vm": "web01", "vcenter": "vc01.corp.example", "folder": acme})
	// Horizon: 10 connections all along, 25 more on March 9 from 9:00 to 17:59.
	f.span(t, f.hz, collectors.MetricConnections, "pool/desktops", feb20, apr5, 10, "count", "Enterprise", nil)
	f.span(t, f.hz, collectors.MetricConnections, "pool/apps", h(9, 9), h(9, 17), 25, "count", "Enterprise", nil)

	// Collection runs: the vCenter missed two hours on March 12.
	f.runs(t, f.vc, feb20, apr5, h(12, 3), h(12, 4))
	f.runs(t, f.srm, feb20, apr5)
	f.runs(t, f.hz, feb20, apr5)

	// The rules as the first schema holds them (the migration tests seed an older schema).
	f.exec(t, `INSERT INTO customer_rules (label, object_type, object_name) VALUES ('Acme', 'folder', 'Tenants/Acme'), ('Globex', 'host', 'esx02.corp.example')`)
}

func (f *fixture) generator(t testing.TB, mode anonymize.Mode, secret []byte, channels ...Channel) *Generator {
	t.Helper()
	o := Options{Store: f.st, Mode: mode, Secret: secret, Dir: f.dir, Channels: channels, Now: func() time.Time { return fixedAt }}
	if len(f.keys) > 0 {
		o.Recipients = f.keys
		o.Signer = testSigner(t)
	}
	g, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

var signerOnce struct {
	e *openpgp.Entity
}

// testSigner is one appliance key for the whole test binary.
func testSigner(t testing.TB) *openpgp.Entity {
	if signerOnce.e == nil {
		e, err := GenerateKey("usagemeter appliance test", "meter@example.com", time.Now().Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		signerOnce.e = e
	}
	return signerOnce.e
}

func buildFiles(t testing.TB, g *Generator, m store.Month, version int) map[string][]byte {
	t.Helper()
	b, _, err := g.Build(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tgz, err := b.TarGz(version)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyBundle(tgz); err != nil {
		t.Fatal(err)
	}
	return tarFiles(t, tgz)
}

// seededBundle builds March of the seeded fixture, hashed (closed when the
// test ends).
func seededBundle(t *testing.T) *Bundle {
	t.Helper()
	f := newFixture(t)
	f.register(t)
	f.seed(t)
	b, _, err := f.generator(t, anonymize.ModeHashed, secretA).Build(context.Background(), march)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// tarFiles is the files of a bundle's .tar.gz by name.
func tarFiles(t testing.TB, tgz []byte) map[string][]byte {
	t.Helper()
	files, err := ReadTarGz(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		out[f.Name] = f.Data
	}
	return out
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", strings.ReplaceAll(name, "/", "_")+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./report -run %s -update)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s (run with -update to accept):\n%s", name, path, firstDiff(string(want), string(got)))
	}
}

func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + itoa(i+1) + ":\n  want: " + w + "\n  got:  " + g
		}
	}
	return "(same lines)"
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestGoldenBundle: every file of the bundle of a fixed month, hashed with
// a fixed secret, and a readable copy of the Monthly_Usage in clear.
func TestGoldenBundle(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	f.seed(t)
	files := buildFiles(t, f.generator(t, anonymize.ModeHashed, secretA), march, 1)
	want := []string{FileClusters, FileHourly, FileMonthly, FileVMs, FileManifest}
	for _, n := range want {
		if files[n] == nil {
			t.Errorf("bundle lacks %s", n)
		}
	}
	customers := 0
	for name, data := range files {
		if strings.HasPrefix(name, CustomersDir) {
			customers++
		}
		golden(t, name, data)
	}
	if customers != 3 { // Acme, Globex, No Customer Label
		t.Errorf("%d customer files, want 3", customers)
	}
	// The same month in clear, for the reader of this test.
	clear := buildFiles(t, f.generator(t, anonymize.ModeNone, nil), march, 1)
	golden(t, "clear_"+FileMonthly, clear[FileMonthly])
	golden(t, "clear_"+FileManifest, clear[FileManifest])
	golden(t, "clear_customers_Acme"+customerFile, clear[CustomersDir+"Acme"+customerFile])
}

// TestPackBundle: a bundle's files re-packed under its own manifest are the
// same bytes; under another appliance's manifest, with a file changed, they
// verify with the new checksums; a changed file under the old checksums
// does not.
func TestPackBundle(t *testing.T) {
	b := seededBundle(t)
	tgz, err := b.TarGz(3)
	if err != nil {
		t.Fatal(err)
	}
	man, err := VerifyBundle(tgz)
	if err != nil {
		t.Fatal(err)
	}
	files, err := ReadTarGz(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	var same bytes.Buffer
	if err := PackBundle(&same, *man, files); err != nil {
		t.Fatal(err)
	}
	// The built bundle's spooled files are gzip members of their own, the
	// re-packed ones one stream: the tar inside is the same.
	if !bytes.Equal(gunzip(t, same.Bytes()), gunzip(t, tgz)) {
		t.Fatal("re-packed under its own manifest, the bundle's tar differs")
	}

	other := *man
	other.ApplianceID = "other-appliance"
	changed := make([]File, 0, len(files))
	for _, fl := range files {
		if fl.Name == FileMonthly {
			fl.Data = bytes.ReplaceAll(fl.Data, []byte("\t1"), []byte("\t2"))
		}
		changed = append(changed, fl)
	}
	var out bytes.Buffer
	if err := PackBundle(&out, other, changed); err != nil {
		t.Fatal(err)
	}
	got, err := VerifyBundle(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got.ApplianceID != "other-appliance" || got.Version != 3 || got.FiguresSHA256 == man.FiguresSHA256 {
		t.Errorf("re-packed manifest: appliance %q, version %d, figures %s (was %s)", got.ApplianceID, got.Version, got.FiguresSHA256, man.FiguresSHA256)
	}
	if m := tarFiles(t, out.Bytes())[FileMonthly]; bytes.Equal(m, tarFiles(t, tgz)[FileMonthly]) {
		t.Error("Monthly_Usage.tsv not changed in the re-packed bundle")
	}

	// The old manifest over the changed files: refused by verification.
	var forged bytes.Buffer
	if err := writeBundle(&forged, *man, asBundleFiles(changed), march.Start); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyBundle(forged.Bytes()); err == nil || !strings.Contains(err.Error(), "figures_sha256") {
		t.Errorf("changed files under the old figures hash: %v", err)
	}
	if err := PackBundle(io.Discard, *man, append(files, files[0])); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a file twice: %v", err)
	}
	bad := *man
	bad.PeriodStart = "March"
	if err := PackBundle(io.Discard, bad, files); err == nil || !strings.Contains(err.Error(), "period_start") {
		t.Errorf("a bad period_start: %v", err)
	}
}

// gunzip is the tar of a .tar.gz, its gzip members read as one stream.
func gunzip(t *testing.T, tgz []byte) []byte {
	t.Helper()
	zr, err := stdgzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// asBundleFiles is files as bundle files, the manifest left out.
func asBundleFiles(files []File) []bundleFile {
	var out []bundleFile
	for _, f := range files {
		if f.Name != FileManifest {
			out = append(out, memFile(f.Name, f.Data))
		}
	}
	return out
}

// TestFiguresOfTheGoldenMonth checks the golden figures by hand, from
// METERING.md, so that -update cannot silently accept a wrong number.
func TestFiguresOfTheGoldenMonth(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	f.seed(t)
	clear := buildFiles(t, f.generator(t, anonymize.ModeNone, nil), march, 1)
	lines := map[string]string{}
	for _, l := range strings.Split(string(clear[FileMonthly]), "\n")[1:] {
		if c := strings.Split(l, "\t"); len(c) == 8 {
			lines[c[0]+"|"+c[1]+"|"+c[2]+"|"+c[7]] = c[4]
		}
	}
	const hours = 744.0
	// db01 before the move: March 1 00:00 to 15 11:00 = 14*24+12 hours at 24 GB, then Globex.
	dbBefore := 14*24 + 12.0
	dbAfter := hours - dbBefore // to the end of March
	ipHours := 10 * 24.0
	want := map[string]float64{
		"vCenter Server|vsphere-ent|Average Capped Billed vRAM|Acme":              4,
		"vCenter Server|vsphere-ent|Average Capped Billed vRAM|No Customer Label": 24 * dbBefore / hours,
		"vCenter Server|vsphere-ent|Average Capped Billed vRAM|Globex":            (16*dbAfter + 2*ipHours) / hours,
		"VMware Cloud Foundation|vcf-standard|Average Cores|No Customer Label":    32,
		"VMware Cloud Foundation|vcf-standard|Average Cores|Globex":               16 * (hours - 9*24) / hours,
		"vSAN|advanced|Average Used Capacity|No Customer Label":                   (1234.56*20*24 + 1500*11*24) / hours,
		"Site Recovery Manager||Non-unique Protected VM Count|Acme":               1,
		"Horizon|Enterprise|Maximum Concurrent Connections|No Customer Label":     35,
	}
	for k, v := range want {
		if got, ok := lines[k]; !ok || got != num(v) {
			t.Errorf("%s = %q, want %s", k, got, num(v))
		}
	}
	if len(lines) != len(want) {
		t.Errorf("Monthly_Usage has %d figures, want %d:\n%s", len(lines), len(want), clear[FileMonthly])
	}
	var man Manifest
	if err := json.Unmarshal(clear[FileManifest], &man); err != nil {
		t.Fatal(err)
	}
	// The evaluation VM (edition eval) and the perpetual one (vsphere-ent), 1 GB each.
	if len(man.Excluded) != 2 || man.Excluded[0].Edition != "eval" || man.Excluded[0].Objects != 1 || man.Excluded[0].Quantity != 1 ||
		man.Excluded[1].Edition != "vsphere-ent" || man.Excluded[1].Objects != 1 || man.Excluded[1].Quantity != 1 {
		t.Errorf("excluded: %+v, want the eval and perpetual VMs, 1 GB each", man.Excluded)
	}
	gaps := map[string]int{}
	for _, p := range man.Products {
		gaps[p.Kind] = p.MissingHours
		if p.ExpectedHours != 744 {
			t.Errorf("%s expected %d hours, want 744", p.Kind, p.ExpectedHours)
		}
	}
	if gaps["vcenter"] != 2 || gaps["srm"] != 0 || gaps["horizon"] != 0 {
		t.Errorf("gaps %v, want 2 for the vCenter", gaps)
	}
	if man.ContractID != "C-1234" || man.Program != "rental" || man.ApplianceID != applianceID || man.HoursInMonth != 744 || man.RulesVersion != RulesVersion {
		t.Errorf("manifest: %+v", man)
	}
}

// TestHashedBundleLeaksNoName scans every file (and file name) of a hashed
// bundle for every clear name the fixture put in.
func TestHashedBundleLeaksNoName(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	f.seed(t)
	files := buildFiles(t, f.generator(t, anonymize.ModeHashed, secretA), march, 1)
	for name, data := range files {
		for _, n := range clearNames {
			if strings.Contains(name, n) || bytes.Contains(data, []byte(n)) {
				t.Errorf("%s contains the clear name %q", name, n)
			}
			if strings.Contains(strings.ToLower(name), strings.ToLower(n)) || bytes.Contains(bytes.ToLower(data), []byte(strings.ToLower(n))) {
				t.Errorf("%s contains the clear name %q (case folded)", name, n)
			}
		}
	}
	// Redacted mode: no name either.
	files = buildFiles(t, f.generator(t, anonymize.ModeRedacted, nil), march, 1)
	for name, data := range files {
		for _, n := range clearNames {
			if strings.Contains(name, n) || bytes.Contains(data, []byte(n)) {
				t.Errorf("redacted %s contains the clear name %q", name, n)
			}
		}
	}
}

// TestHashesStableAcrossMonthsAndSecrets: the same name gives the same hash
// in February and March; another appliance secret gives another hash.
func TestHashesStableAcrossMonthsAndSecrets(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	f.seed(t)
	feb := store.MonthIn(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), time.UTC)
	vmColumn := func(files map[string][]byte) map[string]bool {
		out := map[string]bool{}
		for _, l := range strings.Split(string(files[FileVMs]), "\n")[1:] {
			if c := strings.Split(l, "\t"); len(c) > 4 {
				out[c[4]] = true
			}
		}
		return out
	}
	a := anonymizerFor(t, secretA)
	db01, web01 := a.Name(anonymize.KindVM, "db01"), a.Name(anonymize.KindVM, "web01")
	gA := f.generator(t, anonymize.ModeHashed, secretA)
	febA, marA := vmColumn(buildFiles(t, gA, feb, 1)), vmColumn(buildFiles(t, gA, march, 1))
	for _, h := range []string{db01, web01} {
		if !febA[h] || !marA[h] {
			t.Errorf("hash %s not in both months: feb %v mar %v", h, febA, marA)
		}
	}
	marB := vmColumn(buildFiles(t, f.generator(t, anonymize.ModeHashed, secretB), march, 1))
	if marB[db01] || marB[web01] || len(marB) != len(marA) {
		t.Errorf("another secret gave the same hashes: %v vs %v", marB, marA)
	}
}

func anonymizerFor(t testing.TB, secret []byte) *anonymize.Anonymizer {
	a, err := anonymize.New(anonymize.ModeHashed, secret)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestVersions: regenerating unchanged data gives the same version; changed
// data gives a new version and keeps the old one; the reverse map is stored.
func TestVersions(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	f.seed(t)
	ctx := context.Background()
	g := f.generator(t, anonymize.ModeHashed, secretA)
	r1, err := g.Generate(ctx, march)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Report.Version != 1 || r1.Unchanged || r1.Path != r1.PlainPath {
		t.Fatalf("first: %+v", r1)
	}
	first, _ := os.ReadFile(r1.Path)
	again, err := g.Generate(ctx, march)
	if err != nil || !again.Unchanged || again.Report.ID != r1.Report.ID {
		t.Fatalf("again: %+v %v", again, err)
	}
	// A late correction of the data: a new span in March.
	f.span(t, f.vc, collectors.MetricVMVRAM, "vc-uuid/vm/late", march.Start.Add(100*time.Hour), march.Start.Add(110*time.Hour), 1024, "MB", "vsphere-ent", vmDims("late01", "esx01.corp.example", "Gold", "/x", "rp", "AAAAA-RENT"))
	r2, err := g.Generate(ctx, march)
	if err != nil || r2.Report.Version != 2 || r2.Unchanged || r2.Report.FiguresSHA256 == r1.Report.FiguresSHA256 {
		t.Fatalf("changed: %+v %v", r2, err)
	}
	if kept, err := os.ReadFile(r1.Path); err != nil || !bytes.Equal(kept, first) {
		t.Fatalf("version 1 not kept: %v", err)
	}
	man, err := VerifyBundle(mustRead(t, r2.PlainPath))
	if err != nil || man.Version != 2 {
		t.Fatalf("verify v2: %+v %v", man, err)
	}
	am, err := f.st.AnonMap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]anonymize.Entry{}
	for h, e := range am {
		m[h] = anonymize.Entry{Kind: e.Kind, Value: e.Value}
	}
	var out bytes.Buffer
	if err := ReverseBundle(mustRead(t, r2.PlainPath), m, &out); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"web01", "late01", "Acme", "esx02.corp.example", "/DC-Paris/vm/Tenants/Acme/web", "vc01.corp.example"} {
		if !strings.Contains(out.String(), n) {
			t.Errorf("reversed bundle lacks %q", n)
		}
	}
	// Every name hashed is in the stored reverse map (it was spooled to
	// disk during the build), and the build left no files behind.
	if left := regexp.MustCompile(`\b[0-9a-f]{40}\b`).FindString(out.String()); left != "" {
		t.Errorf("reversed bundle still holds hash %s", left)
	}
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left in the reports directory: %s", e.Name())
		}
	}
	list, err := f.st.Reports(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("reports: %v %v", list, err)
	}
}

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBadInput: an unregistered appliance, a month not over or in the
// future, a month without data; nothing is stored.
func TestBadInput(t *testing.T) {
	f := newFixture(t)
	f.seed(t)
	ctx := context.Background()
	g := f.generator(t, anonymize.ModeHashed, secretA)
	_, err := g.Generate(ctx, march)
	if !errors.Is(err, ErrNotRegistered) || !strings.Contains(err.Error(), "usagemeter register --contract") {
		t.Fatalf("unregistered: %v", err)
	}
	f.register(t)
	cases := []struct {
		month string
		want  error
		text  string
	}{
		{"2026-04", ErrMonthNotOver, "ends at 2026-05-01T00:00:00Z"},
		{"2027-01", ErrMonthNotOver, "in the future"},
		{"2025-06", ErrNoData, "no usage was collected"},
	}
	for _, c := range cases {
		m, err := ParseMonth(c.month, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		_, err = g.Generate(ctx, m)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: %v, want %v containing %q", c.month, err, c.want, c.text)
		}
	}
	if _, err := ParseMonth("2026-13", time.UTC); err == nil {
		t.Error("month 13 parsed")
	}
	if list, _ := f.st.Reports(ctx); len(list) != 0 {
		t.Errorf("reports stored: %v", list)
	}
	if err := g.RunMonthly(ctx, time.Date(2025, 7, 1, 2, 0, 0, 0, time.UTC)); !errors.Is(err, ErrNoData) {
		t.Errorf("monthly run on an empty month: %v", err)
	}
}

// TestBerlinMonth: in Europe/Berlin, March 2026 has 743 hours and starts at
// 23:00 UTC on February 28.
func TestBerlinMonth(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	f.seed(t)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(Options{Store: f.st, Location: berlin, Mode: anonymize.ModeNone, Dir: f.dir, Now: func() time.Time { return fixedAt }})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := ParseMonth("2026-03", berlin)
	files := buildFiles(t, g, m, 1)
	var man Manifest
	if err := json.Unmarshal(files[FileManifest], &man); err != nil {
		t.Fatal(err)
	}
	if man.HoursInMonth != 743 || man.PeriodStart != "2026-03-01T00:00:00+01:00" || man.PeriodEnd != "2026-04-01T00:00:00+02:00" || man.TimeZone != "Europe/Berlin" {
		t.Errorf("manifest: %+v", man)
	}
	hourly := strings.Split(strings.TrimSpace(string(files[FileHourly])), "\n")
	// One line per hour for each reported (product, metric, edition): cores,
	// vSAN, vRAM, SRM, Horizon.
	if got := len(hourly) - 1; got != 743*5 {
		t.Errorf("%d hourly lines, want %d", got, 743*5)
	}
	if !strings.HasPrefix(hourly[1], "2026-03-01T00:00:00+01:00\t") {
		t.Errorf("first hour: %s", hourly[1])
	}
	// web01 (4 GB all along) averages exactly 4 GB in any zone.
	if !strings.Contains(string(files[FileMonthly]), "Average Capped Billed vRAM\tGB\t4.000\t") {
		t.Errorf("Monthly_Usage:\n%s", files[FileMonthly])
	}
}

// TestCustomerFileNames: labels that differ only in characters a file name
// cannot hold get distinct files.
func TestCustomerFileNames(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	ctx := context.Background()
	f.span(t, f.vc, collectors.MetricVMVRAM, "vm/1", march.Start, march.End, 1024, "MB", "e", map[string]string{"host": "h1"})
	f.span(t, f.vc, collectors.MetricVMVRAM, "vm/2", march.Start, march.End, 2048, "MB", "e", map[string]string{"host": "h2"})
	for _, r := range []store.CustomerRule{{Label: "A/B", ObjectType: "host", ObjectName: "h1"}, {Label: "A_B", ObjectType: "host", ObjectName: "h2"}} {
		if _, err := f.st.AddCustomerRule(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	files := buildFiles(t, f.generator(t, anonymize.ModeNone, nil), march, 1)
	a, b := files[CustomersDir+"A_B"+customerFile], files[CustomersDir+"A_B-2"+customerFile]
	if !bytes.Contains(a, []byte("\t1.000\t")) || !bytes.Contains(b, []byte("\t2.000\t")) {
		t.Fatalf("customer files:\n%s\n%s\n(all: %v)", a, b, mapKeys(files))
	}
}

// TestCloudDirector: VCD's managed VMs give a non-unique count and the
// average of their vram_mb (METERING.md, Cloud Director).
func TestCloudDirector(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	ctx := context.Background()
	vcd, err := f.st.AddProduct(ctx, store.Product{Kind: "vcd", Endpoint: "https://vcd.corp.example"})
	if err != nil {
		t.Fatal(err)
	}
	// One VM all month with 4 GB; one half the month (372 of 744 hours) with 2 GB.
	f.span(t, vcd, collectors.MetricVMManaged, "vcd/vm/1", march.Start, march.End, 1, "count", "", map[string]string{"org": "org1", "vram_mb": "4096"})
	f.span(t, vcd, collectors.MetricVMManaged, "vcd/vm/2", march.Start, march.Start.Add(371*time.Hour), 1, "count", "", map[string]string{"org": "org1", "vram_mb": "2048"})
	if _, err := f.st.AddCustomerRule(ctx, store.CustomerRule{Label: "Org One", ObjectType: "vcd-org", ObjectName: "org1"}); err != nil {
		t.Fatal(err)
	}
	files := buildFiles(t, f.generator(t, anonymize.ModeNone, nil), march, 1)
	got := string(files[FileMonthly])
	for _, want := range []string{
		"Cloud Director\t\tNon-unique VM Count\tcount\t1.500\tvcd.corp.example\t\tOrg One\n",
		"Cloud Director\t\tAverage Capped Billed vRAM\tGB\t5.000\tvcd.corp.example\t\tOrg One\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Monthly_Usage lacks %q:\n%s", want, got)
		}
	}
}

// TestNSX: NSX reports which VMs it reaches (nsx.vm); their vRAM comes from
// the vCenter's vm.vram in the hours both exist; NSX-V Enterprise also
// gives the non-unique VM count.
func TestNSX(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	ctx := context.Background()
	nsxv, err := f.st.AddProduct(ctx, store.Product{Kind: "nsxv", Endpoint: "https://nsx.corp.example"})
	if err != nil {
		t.Fatal(err)
	}
	h := func(n int) time.Time { return march.Start.Add(time.Duration(n) * time.Hour) }
	// The vCenter bills web 4 GB all month, then db 8 GB for the first half only.
	f.span(t, f.vc, collectors.MetricVMVRAM, "vc/vm/web", march.Start, march.End, 4096, "MB", "e", map[string]string{"host": "esx-a"})
	f.span(t, f.vc, collectors.MetricVMVRAM, "vc/vm/db", march.Start, h(371), 8192, "MB", "e", map[string]string{"host": "esx-b"})
	// NSX reaches web all month (enterprise) and db all month (advanced): db
	// counts only while the vCenter bills it.
	f.span(t, nsxv, collectors.MetricNSXVM, "vc/vm/web", march.Start, march.End, 1, "count", "enterprise", map[string]string{"vm": "web"})
	f.span(t, nsxv, collectors.MetricNSXVM, "vc/vm/db", march.Start, march.End, 1, "count", "advanced", map[string]string{"vm": "db"})
	if _, err := f.st.AddCustomerRule(ctx, store.CustomerRule{Label: "Web Co", ObjectType: "host", ObjectName: "esx-a"}); err != nil {
		t.Fatal(err)
	}
	files := buildFiles(t, f.generator(t, anonymize.ModeNone, nil), march, 1)
	got := string(files[FileMonthly])
	for _, want := range []string{
		"NSX-V\tenterprise\tAverage Capped Billed vRAM\tGB\t4.000\tnsx.corp.example\t\tWeb Co\n",
		"NSX-V\tadvanced\tAverage Capped Billed vRAM\tGB\t4.000\tnsx.corp.example\t\tNo Customer Label\n",
		"NSX-V\tenterprise\tNon-unique VM Count\tcount\t1.000\tnsx.corp.example\t\tWeb Co\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Monthly_Usage lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "advanced\tNon-unique") {
		t.Errorf("a non-Enterprise NSX-V count was reported:\n%s", got)
	}
}

// TestCloudDirectorAvailability: VCDA's replications are reported as the
// unique protected and unique migrated VMs of the month (METERING.md
// "Unique count"): a VM seen in one hour counts as one seen all month, a VM
// whose name changed (two spans) counts once, a VM both protected and
// migrated counts once in each, and a VM replicated only outside the month
// does not count.
func TestCloudDirectorAvailability(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	ctx := context.Background()
	vcda, err := f.st.AddProduct(ctx, store.Product{Kind: "vcda", Endpoint: "https://vcda.corp.example"})
	if err != nil {
		t.Fatal(err)
	}
	h := func(n int) time.Time { return march.Start.Add(time.Duration(n) * time.Hour) }
	dims := func(vm, dir string) map[string]string {
		return map[string]string{"vm": vm, "org": "acme", "direction": dir, "source_site": "cloud-fra", "destination_site": "cloud-ams"}
	}
	p, m := collectors.MetricVMProtected, collectors.MetricVMMigrated
	// Protected all month, renamed half-way: two spans, one VM.
	f.span(t, vcda, p, "cloud-fra/vm/a", march.Start, h(371), 1, "count", "", dims("app-a", "incoming"))
	f.span(t, vcda, p, "cloud-fra/vm/a", h(372), h(743), 1, "count", "", dims("app-a-renamed", "incoming"))
	// Protected for one hour only.
	f.span(t, vcda, p, "cloud-fra/vm/b", h(10), h(10), 1, "count", "", dims("app-b", "incoming"))
	// Protected, then migrated: once in each.
	f.span(t, vcda, p, "cloud-fra/vm/c", march.Start, h(99), 1, "count", "", dims("app-c", "incoming"))
	f.span(t, vcda, m, "cloud-fra/vm/c", h(100), h(120), 1, "count", "", dims("app-c", "incoming"))
	// Migrated only, from an on-premises vCenter.
	f.span(t, vcda, m, "vc-uuid/moref/vm-7", h(200), h(201), 1, "count", "", dims("erp", "incoming"))
	// Protected in February only: not in March's figure.
	f.span(t, vcda, p, "cloud-fra/vm/old", march.Start.Add(-48*time.Hour), march.Start.Add(-time.Hour), 1, "count", "", dims("old", "outgoing"))
	f.runs(t, vcda, march.Start, march.End)
	// The tenant org (dims "org") takes the label of its Cloud Director org.
	if _, err := f.st.AddCustomerRule(ctx, store.CustomerRule{Label: "Acme Corp", ObjectType: "vcd-org", ObjectName: "acme"}); err != nil {
		t.Fatal(err)
	}

	files := buildFiles(t, f.generator(t, anonymize.ModeNone, nil), march, 1)
	got := string(files[FileMonthly])
	for _, want := range []string{
		"Cloud Director Availability\t\tUnique Protected VMs\tcount\t3.000\tvcda.corp.example\t\tAcme Corp\n",
		"Cloud Director Availability\t\tUnique Migrated VMs\tcount\t2.000\tvcda.corp.example\t\tAcme Corp\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Monthly_Usage lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "Cloud Director Availability\t\tNon-unique") {
		t.Errorf("VCDA reported as a non-unique count:\n%s", got)
	}
}
