package report

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/usagemeter/usagemeter/anonymize"
	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/vrops/simulator"
	"github.com/usagemeter/usagemeter/internal/store"
)

const (
	ariaVC    = "564d1a2b-3c4d-5e6f-7a8b-9c0d1e2f3a4b"
	ariaOther = "5022c0de-1111-4222-8333-944455556666" // a vCenter not registered here
)

// ariaVCenter stores the vCenter's month: web (vm-1) bills 4 GB all month,
// db (vm-2) 8 GB in the first half only (hours 0 to 371), off (vm-3) is
// powered off (no vm.vram). Its spans carry the MoRef (vm_moref) as the
// vCenter collector writes it; their keys are instance UUIDs.
func ariaVCenter(t *testing.T, f *fixture) {
	t.Helper()
	half := march.Start.Add(371 * time.Hour)
	f.span(t, f.vc, collectors.MetricVMVRAM, ariaVC+"/vm/5003aaaa-0000-4000-8000-000000000001", march.Start, march.End, 4096, "MB", "e",
		map[string]string{"vm": "web", "host": "esx-a", "vm_moref": "vm-1"})
	f.span(t, f.vc, collectors.MetricVMVRAM, ariaVC+"/vm/5003aaaa-0000-4000-8000-000000000002", march.Start, half, 8192, "MB", "e",
		map[string]string{"vm": "db", "host": "esx-b", "vm_moref": "vm-2"})
}

// ariaMonitored stores the VMs an Aria product monitors from first to last
// (inclusive) with edition: web, db, off and a VM of an unregistered
// vCenter, each keyed as the collector keys them.
func ariaMonitored(t *testing.T, f *fixture, pid int64, first, last time.Time, edition string) {
	t.Helper()
	for _, k := range []string{ariaVC + "/moref/vm-1", ariaVC + "/moref/vm-2", ariaVC + "/moref/vm-3", ariaOther + "/moref/vm-9"} {
		f.span(t, pid, collectors.MetricMonitoredVM, k, first, last, 1, "count", edition, map[string]string{"vm": k[strings.LastIndexByte(k, '/')+1:]})
	}
}

// addKind registers a product of kind at endpoint with options opts.
func (f *fixture) addKind(t *testing.T, kind, endpoint, opts string) int64 {
	t.Helper()
	id, err := f.st.AddProduct(context.Background(), store.Product{Kind: kind, Endpoint: endpoint, Options: json.RawMessage(opts)})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// decryptedFiles generates March as the appliance does, encrypted to an
// aggregator's key and signed, and returns the files of the bundle the
// aggregator decrypts.
func decryptedFiles(t *testing.T, f *fixture) map[string][]byte {
	t.Helper()
	recipient := mustKey(t, "Aggregator Aria")
	f.keys = openpgp.EntityList{publicOnly(t, recipient)}
	res, err := f.generator(t, anonymize.ModeNone, nil).Generate(context.Background(), march)
	if err != nil {
		t.Fatal(err)
	}
	plain, _, err := DecryptAndVerify(bytes.NewReader(mustRead(t, res.Path)), openpgp.EntityList{recipient}, openpgp.EntityList{testSigner(t)})
	if err != nil {
		t.Fatal(err)
	}
	return tarFiles(t, plain)
}

func wantLines(t *testing.T, got string, want, not []string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("Monthly_Usage lacks %q:\n%s", w, got)
		}
	}
	for _, n := range not {
		if strings.Contains(got, n) {
			t.Errorf("Monthly_Usage has %q:\n%s", n, got)
		}
	}
}

// TestAriaAddonAndStandalone: two Aria Operations instances and two Aria
// Operations for Networks instances monitor the same VMs all March, one of
// each billed as a Flex add-on and one standalone. The
// add-on bills the capped billed vRAM its VMs' vCenter bills, joined by
// vCenter instance UUID and MoRef hour by hour: web 4 GB all month + db 8 GB
// half the month = 8 GB; the powered-off VM and the VM of the unregistered
// vCenter bill nothing. Standalone counts the four VMs all month: 4.
func TestAriaAddonAndStandalone(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	ariaVCenter(t, f)
	addon := f.addKind(t, "vrops", "https://ops-a.corp.example", `{"mode":"addon"}`)
	alone := f.addKind(t, "vrops", "https://ops-b.corp.example", `{"mode":"standalone"}`)
	niAddon := f.addKind(t, "vrni", "https://ni-a.corp.example", `{"mode":"addon"}`)
	niAlone := f.addKind(t, "vrni", "https://ni-b.corp.example", `{"mode":"standalone"}`)
	last := march.End.Add(-time.Hour)
	ariaMonitored(t, f, addon, march.Start, last, collectors.AriaEdition("Advanced", collectors.AriaAddon))
	ariaMonitored(t, f, alone, march.Start, last, collectors.AriaEdition("Advanced", collectors.AriaStandalone))
	ariaMonitored(t, f, niAddon, march.Start, last, collectors.AriaEdition("Enterprise", collectors.AriaAddon))
	ariaMonitored(t, f, niAlone, march.Start, last, collectors.AriaEdition("Enterprise", collectors.AriaStandalone))
	files := buildFiles(t, f.generator(t, anonymize.ModeNone, nil), march, 1)
	wantLines(t, string(files[FileMonthly]), []string{
		"Aria Operations\tAdvanced (Flex add-on)\tAverage Capped Billed vRAM\tGB\t8.000\tops-a.corp.example\t\tNo Customer Label\n",
		"Aria Operations\tAdvanced (standalone)\tNon-unique VM Count\tcount\t4.000\tops-b.corp.example\t\tNo Customer Label\n",
		"Aria Operations for Networks\tEnterprise (Flex add-on)\tAverage Capped Billed vRAM\tGB\t8.000\tni-a.corp.example\t\tNo Customer Label\n",
		"Aria Operations for Networks\tEnterprise (standalone)\tNon-unique VM Count\tcount\t4.000\tni-b.corp.example\t\tNo Customer Label\n",
	}, []string{
		"Advanced (Flex add-on)\tNon-unique VM Count",
		"Advanced (standalone)\tAverage Capped Billed vRAM",
		"Enterprise (Flex add-on)\tNon-unique VM Count",
		"Enterprise (standalone)\tAverage Capped Billed vRAM",
	})
	var man Manifest
	if err := json.Unmarshal(files[FileManifest], &man); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(man.Assumptions, "\n"), "Aria Operations and Aria Operations for Networks: the billing mode") {
		t.Errorf("the manifest does not state the Aria assumptions: %v", man.Assumptions)
	}
}

// TestAriaModeChangeMidMonth: an Aria Operations instance billed as a Flex
// add-on is switched to standalone from March 16 12:00 (hour 372). The
// collector writes the mode on each hour's edition, so the store starts new
// spans at that hour; the report bills the add-on rule on the hours before
// it and the standalone rule from it, in the bundle the aggregator
// decrypts: (4 GB + 8 GB) x 372 h / 744 h = 6 GB of vRAM, and 4 VMs x 372 h
// / 744 h = 2 VMs.
func TestAriaModeChangeMidMonth(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	ariaVCenter(t, f)
	ctx := context.Background()
	ops := f.addKind(t, "vrops", "https://ops.corp.example", `{"mode":"addon"}`)
	change := march.Start.Add(372 * time.Hour)

	// The collector, run against its simulator, in the two hours around the
	// change: the hours commit through the store's merge.
	sim := simulator.Monitoring("meter", "pw", "Advanced", []simulator.VMRef{
		{VCenter: ariaVC, MoRef: "vm-1", Name: "web"}, {VCenter: ariaVC, MoRef: "vm-2", Name: "db"},
		{VCenter: ariaVC, MoRef: "vm-3", Name: "off"}, {VCenter: ariaOther, MoRef: "vm-9", Name: "remote"},
	}, 4)
	u, thumb := sim.Start(t)
	collect := func(hour time.Time, mode string) {
		t.Helper()
		c, err := collectors.New(collectors.Target{Kind: "vrops", Endpoint: u, Username: "meter", Password: collectors.Secret("pw"), Thumbprint: thumb,
			Options: json.RawMessage(`{"mode":"` + mode + `"}`), Timeout: 5 * time.Second,
			Paired: &collectors.Target{Kind: "vcenter", Endpoint: "vc01.corp.example", InstanceID: ariaVC}})
		if err != nil {
			t.Fatal(err)
		}
		obs, err := c.Collect(ctx, hour)
		if err != nil {
			t.Fatal(err)
		}
		if cl, err := f.st.ClaimHour(ctx, ops, hour, "test", time.Minute); err != nil || !cl.Claimed {
			t.Fatalf("claim %s: %+v %v", hour, cl, err)
		}
		if _, err := f.st.CommitHour(ctx, ops, hour, "test", obs); err != nil {
			t.Fatal(err)
		}
	}
	collect(change.Add(-2*time.Hour), collectors.AriaAddon)
	collect(change.Add(-time.Hour), collectors.AriaAddon)
	collect(change, collectors.AriaStandalone)
	collect(change.Add(time.Hour), collectors.AriaStandalone)
	spans, err := f.st.Spans(ctx, ops)
	if err != nil {
		t.Fatal(err)
	}
	byEdition := map[string]int{}
	for _, s := range spans {
		byEdition[s.Edition]++
		switch collectors.AriaMode(s.Edition) {
		case collectors.AriaAddon:
			if !s.LastHour.Equal(change.Add(-time.Hour)) {
				t.Errorf("an add-on span goes on after the change: %+v", s)
			}
		case collectors.AriaStandalone:
			if !s.FirstHour.Equal(change) {
				t.Errorf("a standalone span does not start at the change: %+v", s)
			}
		default:
			t.Errorf("a span without a mode: %+v", s)
		}
	}
	if byEdition["Advanced (Flex add-on)"] != 4 || byEdition["Advanced (standalone)"] != 4 {
		t.Fatalf("spans by edition %v, want 4 of each mode", byEdition)
	}

	// The rest of the month as the collector would have stored it: the
	// add-on hours from March 1, the standalone hours to March 31.
	f.exec(t, `DELETE FROM usage_spans WHERE product_id = $1`, ops)
	ariaMonitored(t, f, ops, march.Start, change.Add(-time.Hour), collectors.AriaEdition("Advanced", collectors.AriaAddon))
	ariaMonitored(t, f, ops, change, march.End.Add(-time.Hour), collectors.AriaEdition("Advanced", collectors.AriaStandalone))
	files := decryptedFiles(t, f)
	wantLines(t, string(files[FileMonthly]), []string{
		"Aria Operations\tAdvanced (Flex add-on)\tAverage Capped Billed vRAM\tGB\t6.000\tops.corp.example\t\tNo Customer Label\n",
		"Aria Operations\tAdvanced (standalone)\tNon-unique VM Count\tcount\t2.000\tops.corp.example\t\tNo Customer Label\n",
	}, []string{"Advanced (Flex add-on)\tNon-unique VM Count", "Advanced (standalone)\tAverage Capped Billed vRAM"})
}

// BenchmarkAriaJoin50kVMs: a month's report with 50,000 vCenter VMs (three
// spans each in March, their MoRef in vm_moref) all monitored by an Aria
// Operations instance as a Flex add-on (one span each, keyed by MoRef):
// the joined vRAM figure is one hash join over month_spans.
func BenchmarkAriaJoin50kVMs(b *testing.B) {
	f := newFixture(b)
	f.register(b)
	ops, err := f.st.AddProduct(context.Background(), store.Product{Kind: "vrops", Endpoint: "https://ops.corp.example", Options: json.RawMessage(`{}`)})
	if err != nil {
		b.Fatal(err)
	}
	f.exec(b, `
	INSERT INTO usage_spans (product_id, metric, object_key, first_hour, last_hour, quantity, unit, edition, dims_hash, dims)
	SELECT $1, 'vm.vram', 'vc-uuid/vm/' || i, seg.h0, seg.h1, 1024 + (i % 16) * 512, 'MB', 'e', '\x00',
	       jsonb_build_object('vm', 'vm-' || i, 'host', 'esx-' || (i % 500), 'vcenter', 'vc01.corp.example', 'vm_moref', 'vm-' || i)
	  FROM generate_series(0, 49999) AS i
	 CROSS JOIN LATERAL (VALUES ($2::timestamptz, $2::timestamptz + interval '239 hours'),
	                            ($2::timestamptz + interval '240 hours', $2::timestamptz + interval '479 hours'),
	                            ($2::timestamptz + interval '480 hours', $3::timestamptz - interval '1 hour')) AS seg(h0, h1)`, f.vc, march.Start, march.End)
	f.exec(b, `
	INSERT INTO usage_spans (product_id, metric, object_key, first_hour, last_hour, quantity, unit, edition, dims_hash, dims)
	SELECT $1, 'vm.monitored', 'vc-uuid/moref/vm-' || i, $2::timestamptz, $3::timestamptz - interval '1 hour', 1, 'count', $4, '\x00',
	       jsonb_build_object('vm', 'vm-' || i)
	  FROM generate_series(0, 49999) AS i`, ops, march.Start, march.End, collectors.AriaEdition("Advanced", collectors.AriaAddon))
	f.exec(b, `ANALYZE`)
	g := f.generator(b, anonymize.ModeNone, nil)
	if testing.Verbose() {
		g.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	b.ReportAllocs()
	for b.Loop() {
		bundle, _, err := g.Build(context.Background(), march)
		if err != nil {
			b.Fatal(err)
		}
		// 50,000 VMs: 1 to 8.5 GB each (i % 16), all month.
		monthly, err := bundle.data(FileMonthly)
		bundle.Close()
		if err != nil || !strings.Contains(string(monthly), "Aria Operations\tAdvanced (Flex add-on)\tAverage Capped Billed vRAM\tGB\t237500.000\t") {
			b.Fatalf("no joined figure (%v):\n%s", err, monthly)
		}
	}
}
