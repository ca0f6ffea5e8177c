package report

// Billing fidelity (issue 17): VCF replaces vSphere billing, admin changes
// apply from their hour, evaluation licences are a category.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/anonymize"
	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/store"
)

// monthlyLines reads a clear Monthly_Usage.tsv as "Product|Edition|Metric|Customer" -> quantity.
func monthlyLines(t testing.TB, data []byte) map[string]string {
	t.Helper()
	lines := map[string]string{}
	for _, l := range strings.Split(string(data), "\n")[1:] {
		if c := strings.Split(l, "\t"); len(c) == 8 {
			lines[c[0]+"|"+c[1]+"|"+c[2]+"|"+c[7]] = c[4]
		}
	}
	return lines
}

func manifestOf(t testing.TB, files map[string][]byte) Manifest {
	t.Helper()
	var man Manifest
	if err := json.Unmarshal(files[FileManifest], &man); err != nil {
		t.Fatal(err)
	}
	return man
}

// addProduct registers p and returns its id.
func (f *fixture) addProduct(t testing.TB, p store.Product) int64 {
	t.Helper()
	id, err := f.st.AddProduct(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// setOption sets a vCenter option as `product add` would have.
func (f *fixture) setOption(t testing.TB, id int64, key, value string) {
	t.Helper()
	f.exec(t, `UPDATE products SET options = options || jsonb_build_object($2::text, $3::text) WHERE id = $1`, id, key, value)
}

// vcfInventory is one vCenter's month: web01 billing 4 GB all month, one
// busy host of 32 cores (recorded as VCF cores by the collector), a vSAN
// cluster using 1000 GB.
func (f *fixture) vcfInventory(t testing.TB, edition string) {
	t.Helper()
	f.span(t, f.vc, collectors.MetricVMVRAM, "vc-uuid/vm/web01", march.Start, march.End, 4096, "MB", "vsphere-ent",
		vmDims("web01", "esx01.corp.example", "Gold", "/DC-Paris/vm/x", "rp", "AAAAA-RENT"))
	if edition != "sddc-manager" {
		f.span(t, f.vc, collectors.MetricHostCores, "vc-uuid/host/host-1", march.Start, march.End, 32, "cores", edition,
			map[string]string{"host": "esx01.corp.example", "cluster": "Gold", "vcenter": "vc01.corp.example"})
	}
	f.span(t, f.vc, collectors.MetricVSANUsedGB, "vc-uuid/cluster/c-1", march.Start, march.End, 1000, "GB", "standard",
		map[string]string{"cluster": "Gold", "vcenter": "vc01.corp.example"})
	f.runs(t, f.vc, march.Start, march.End)
}

// TestVCFReplacesVSphereBilling: the same inventory on a vCenter flagged
// VCF Standard, Standard with vSAN, and SDDC Manager. Core editions bill
// cores and include the vRAM (and with vSAN the vSAN capacity), listed
// under included; SDDC Manager bills the vRAM under Cloud Foundation.
func TestVCFReplacesVSphereBilling(t *testing.T) {
	const nc = "No Customer Label"
	for _, tc := range []struct {
		edition  string
		want     map[string]string // the whole of Monthly_Usage
		included []string          // Product|Metric of the included lines
	}{
		{"standard", map[string]string{
			"VMware Cloud Foundation|Standard|Average Cores|" + nc: "32.000",
			"vSAN|standard|Average Used Capacity|" + nc:            "1000.000",
		}, []string{"vCenter Server|Average Capped Billed vRAM"}},
		{"standard-vsan", map[string]string{
			"VMware Cloud Foundation|Standard with vSAN|Average Cores|" + nc: "32.000",
		}, []string{"vCenter Server|Average Capped Billed vRAM", "vSAN|Average Used Capacity"}},
		{"sddc-manager", map[string]string{
			"VMware Cloud Foundation|SDDC Manager|Average Capped Billed vRAM|" + nc: "4.000",
			"vSAN|standard|Average Used Capacity|" + nc:                             "1000.000",
		}, nil},
	} {
		t.Run(tc.edition, func(t *testing.T) {
			f := newFixture(t)
			f.register(t)
			f.setOption(t, f.vc, "vcf_edition", tc.edition)
			f.vcfInventory(t, tc.edition)
			files := buildFiles(t, f.generator(t, anonymize.ModeNone, nil), march, 1)
			got := monthlyLines(t, files[FileMonthly])
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %s", k, got[k], v)
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("Monthly_Usage has %d lines, want %d (no double billing):\n%s", len(got), len(tc.want), files[FileMonthly])
			}
			man := manifestOf(t, files)
			var inc []string
			for _, i := range man.Included {
				inc = append(inc, i.Product+"|"+i.Metric)
				if i.IncludedIn != "VMware Cloud Foundation" || i.Objects != 1 {
					t.Errorf("included %+v", i)
				}
			}
			if strings.Join(inc, ",") != strings.Join(tc.included, ",") {
				t.Errorf("included %v, want %v", inc, tc.included)
			}
			if len(man.Excluded) != 0 {
				t.Errorf("excluded %+v", man.Excluded)
			}
			// The VM history keeps the VM, metered, marked included.
			if vcfCore := tc.edition != "sddc-manager"; !strings.Contains(string(files[FileVMs]), "\tvm.vram\t") ||
				vcfCore != strings.Contains(string(files[FileVMs]), "\tincluded\t") {
				t.Errorf("VM history:\n%s", files[FileVMs])
			}
		})
	}
}

// generateClear generates month (plain bundles) and returns the files of
// the version stored.
func generateClear(t *testing.T, g *Generator, m store.Month) (*Result, map[string][]byte) {
	t.Helper()
	res, err := g.Generate(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	list, err := ReadTarGz(bytes.NewReader(mustRead(t, res.PlainPath)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range list {
		files[f.Name] = f.Data
	}
	return res, files
}

// TestCategoryChangeFromItsHour: a licence key set perpetual on March 15 at
// 10:00 (after March was reported) makes a new version of March whose VM is
// billed until 09:00 and excluded from 10:00; February, before the change,
// keeps its version.
func TestCategoryChangeFromItsHour(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	f.seed(t)
	ctx := context.Background()
	g := f.generator(t, anonymize.ModeNone, nil)
	feb := store.MonthIn(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), time.UTC)
	febV1, _ := generateClear(t, g, feb)
	v1, files1 := generateClear(t, g, march)
	before := monthlyLines(t, files1[FileMonthly])

	change := time.Date(2026, 3, 15, 10, 0, 0, 0, time.UTC)
	// The admin names 10:20: the change applies from the hour it falls in.
	if err := f.st.ChangeLicenseCategory(ctx, "AAAAA-RENT", store.LicensePerpetual, change.Add(20*time.Minute), fixedAt); err != nil {
		t.Fatal(err)
	}
	v2, files2 := generateClear(t, g, march)
	if v2.Unchanged || v2.Report.Version != v1.Report.Version+1 {
		t.Fatalf("March after the change: version %d unchanged %v, want a new version", v2.Report.Version, v2.Unchanged)
	}
	if again, _ := generateClear(t, g, feb); !again.Unchanged || again.Report.ID != febV1.Report.ID {
		t.Errorf("February changed by a change in March: %+v", again.Report)
	}
	after := monthlyLines(t, files2[FileMonthly])
	hoursBefore := float64(14*24 + 10) // March 1 00:00 to March 15 09:00
	// web01 (Acme, 4 GB all month) is billed only before the change.
	if k := "vCenter Server|vsphere-ent|Average Capped Billed vRAM|Acme"; before[k] != num(4) || after[k] != num(4*hoursBefore/744) {
		t.Errorf("%s: %s then %s, want 4 then %s", k, before[k], after[k], num(4*hoursBefore/744))
	}
	// Usage not on the key is as before.
	for k, v := range before {
		if !strings.HasPrefix(k, "vCenter Server|") && after[k] != v {
			t.Errorf("%s: %s then %s", k, v, after[k])
		}
	}
	// The VM history splits web01 at the change.
	vms := string(files2[FileVMs])
	for _, want := range []string{
		"\tAcme\tyes\t2026-03-01T00:00:00Z\t2026-03-15T09:00:00Z\t346\t",
		"\tAcme\tno\t2026-03-15T10:00:00Z\t2026-03-31T23:00:00Z\t398\t",
	} {
		if !strings.Contains(vms, want) {
			t.Errorf("VM history lacks %q:\n%s", want, vms)
		}
	}
	man := manifestOf(t, files2)
	if len(man.Changes) != 1 || man.Changes[0].From != "2026-03-15T10:00:00Z" || man.Changes[0].Old != "rental" || man.Changes[0].New != "perpetual" ||
		man.Changes[0].Setting != store.SettingLicenseCategory {
		t.Errorf("changes %+v", man.Changes)
	}
	// A change cannot apply from an hour that has not begun.
	if err := f.st.ChangeLicenseCategory(ctx, "AAAAA-RENT", store.LicenseRental, fixedAt.Add(2*time.Hour), fixedAt); err == nil {
		t.Error("a change from a future hour was accepted")
	}
}

// TestVCFEditionChangeFromItsHour: a vCenter flagged VCF Standard on March
// 15 at 10:00 bills its vRAM as vCenter Server until 09:00; from 10:00 it
// is included in VCF.
func TestVCFEditionChangeFromItsHour(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	f.vcfInventory(t, "standard")
	change := time.Date(2026, 3, 15, 10, 0, 0, 0, time.UTC)
	if err := f.st.ChangeProductOption(context.Background(), f.vc, store.SettingVCFEdition, "standard", change, fixedAt); err != nil {
		t.Fatal(err)
	}
	files := buildFiles(t, f.generator(t, anonymize.ModeNone, nil), march, 1)
	got := monthlyLines(t, files[FileMonthly])
	hoursBefore := float64(14*24 + 10)
	if k := "vCenter Server|vsphere-ent|Average Capped Billed vRAM|No Customer Label"; got[k] != num(4*hoursBefore/744) {
		t.Errorf("%s = %s, want %s (the hours before the change)", k, got[k], num(4*hoursBefore/744))
	}
	man := manifestOf(t, files)
	if len(man.Included) != 1 || man.Included[0].Quantity != float64(int(4*(744-hoursBefore)/744*1000+0.5))/1000 {
		t.Errorf("included %+v, want the vRAM from the change on", man.Included)
	}
	if len(man.Changes) != 1 || man.Changes[0].Setting != store.SettingVCFEdition || man.Changes[0].Old != "" || man.Changes[0].New != "standard" ||
		man.Changes[0].Subject != "vc01.corp.example" {
		t.Errorf("changes %+v", man.Changes)
	}
}

// TestEvaluationOverridden: an evaluation key is a category like the
// others: listed as evaluation, excluded by default, and billed from the
// hour an admin sets it rental (before, `license set-category KEY rental`
// on an evaluation key was accepted and silently ignored).
func TestEvaluationOverridden(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	f.seed(t)
	ctx := context.Background()
	if _, err := f.st.SyncLicenses(ctx, march.Start); err != nil {
		t.Fatal(err)
	}
	ls, err := f.st.Licenses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cats := map[string]string{}
	for _, l := range ls {
		cats[l.Key] = l.Category
	}
	if cats["EEEEE-EVAL"] != store.LicenseEvaluation || cats["AAAAA-RENT"] != store.LicenseRental || cats["BBBBB-PERP"] != store.LicensePerpetual {
		t.Errorf("licence categories %v", cats)
	}
	change := time.Date(2026, 3, 15, 10, 0, 0, 0, time.UTC)
	if err := f.st.ChangeLicenseCategory(ctx, "EEEEE-EVAL", store.LicenseRental, change, fixedAt); err != nil {
		t.Fatal(err)
	}
	files := buildFiles(t, f.generator(t, anonymize.ModeNone, nil), march, 1)
	got := monthlyLines(t, files[FileMonthly])
	// eval01: 1 GB, reported from the change on, under its edition.
	if k, want := "vCenter Server|eval|Average Capped Billed vRAM|No Customer Label", num(float64(744-(14*24+10))/744); got[k] != want {
		t.Errorf("%s = %q, want %s:\n%s", k, got[k], want, files[FileMonthly])
	}
	man := manifestOf(t, files)
	var evalExcluded float64
	for _, x := range man.Excluded {
		if x.Edition == "eval" {
			evalExcluded = x.ObjectHours
		}
	}
	if evalExcluded != 14*24+10 {
		t.Errorf("eval01 excluded for %v hours, want the %d before the change: %+v", evalExcluded, 14*24+10, man.Excluded)
	}
	if err := f.st.ChangeLicenseCategory(ctx, "EEEEE-EVAL", "trial", change, fixedAt); err == nil || !strings.Contains(err.Error(), "rental, perpetual, demo or evaluation") {
		t.Errorf("unknown category: %v", err)
	}
}

// TestBackfilledHoursInManifest: hours recorded with `collect --hour H
// --backfill` are counted per product in the manifest.
func TestBackfilledHoursInManifest(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	f.seed(t)
	f.exec(t, `UPDATE collection_runs SET backfilled = true WHERE product_id = $1 AND hour IN ('2026-03-12T05:00:00Z', '2026-03-12T06:00:00Z', '2026-02-28T00:00:00Z')`, f.vc)
	man := manifestOf(t, buildFiles(t, f.generator(t, anonymize.ModeNone, nil), march, 1))
	for _, p := range man.Products {
		want := 0
		if p.Kind == "vcenter" {
			want = 2 // the February hour is not March's
		}
		if p.BackfilledHours != want {
			t.Errorf("%s: %d backfilled hours, want %d", p.Kind, p.BackfilledHours, want)
		}
	}
}

// TestExpectedHoursFollowTheProductsLife: a product added on the 10th and
// removed on the 20th at 14:30 expects only the hours it existed; the gap
// count is of those hours.
func TestExpectedHoursFollowTheProductsLife(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	f.seed(t)
	vcd := f.addProduct(t, store.Product{Kind: "vcd", Endpoint: "https://vcd.corp.example"})
	added, removed := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 20, 14, 30, 0, 0, time.UTC)
	f.exec(t, `UPDATE products SET created_at = $2, removed_at = $3, active = false WHERE id = $1`, vcd, added, removed)
	f.span(t, vcd, collectors.MetricVMManaged, "vcd/vm/1", added, removed.Truncate(time.Hour), 1, "count", "", map[string]string{"org": "org1"})
	// Collected from the 10th to the 20th 14:00, but for three hours.
	f.runs(t, vcd, added, removed.Truncate(time.Hour).Add(time.Hour), added.Add(5*time.Hour), added.Add(6*time.Hour), added.Add(7*time.Hour))
	man := manifestOf(t, buildFiles(t, f.generator(t, anonymize.ModeNone, nil), march, 1))
	found := false
	for _, p := range man.Products {
		if p.Kind != "vcd" {
			continue
		}
		found = true
		if want := 10*24 + 15; p.ExpectedHours != want || p.CollectedHours != want-3 || p.MissingHours != 3 {
			t.Errorf("vcd: expected %d collected %d missing %d, want %d, %d, 3", p.ExpectedHours, p.CollectedHours, p.MissingHours, want, want-3)
		}
	}
	if !found {
		t.Errorf("the removed product is not in the manifest: %+v", man.Products)
	}
}

// TestReadableFields: the Edition column names the licence as the product
// does (the raw key stays in the VM history), the Product Version column
// has what the product reported when added, and cells a spreadsheet would
// run as formulas are made text.
func TestReadableFields(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	ctx := context.Background()
	vc := f.addProduct(t, store.Product{Kind: "vcenter", Endpoint: "https://vc02.corp.example/sdk", Version: "8.0.3 build 24022515"})
	d := vmDims("=HYPERLINK(\"http://x\")", "esx01", "Gold", "/DC-Paris/vm/x", "rp", "AAAAA-RENT")
	d["license_name"] = "vSphere 8 Enterprise Plus"
	f.span(t, vc, collectors.MetricVMVRAM, "vc2/vm/1", march.Start, march.End, 4096, "MB", "esx.enterprisePlus.cpuPackageCoreLimited", d)
	if _, err := f.st.AddCustomerRule(ctx, store.CustomerRule{Label: "=1+1", ObjectType: "host", ObjectName: "esx01"}); err != nil {
		t.Fatal(err)
	}
	files := buildFiles(t, f.generator(t, anonymize.ModeNone, nil), march, 1)
	want := "vCenter Server\tvSphere 8 Enterprise Plus\tAverage Capped Billed vRAM\tGB\t4.000\tvc02.corp.example\t8.0.3 build 24022515\t'=1+1\n"
	if got := string(files[FileMonthly]); !strings.Contains(got, want) {
		t.Errorf("Monthly_Usage lacks %q:\n%s", want, got)
	}
	vms := string(files[FileVMs])
	if !strings.Contains(vms, "\t'=HYPERLINK(\"http://x\")\t") || !strings.Contains(vms, "\tesx.enterprisePlus.cpuPackageCoreLimited\t'=1+1\t") {
		t.Errorf("VM history: the raw edition key, the VM name made text:\n%s", vms)
	}
	for name, data := range files {
		for _, line := range strings.Split(string(data), "\n") {
			for _, cell := range strings.Split(line, "\t") {
				if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) && !strings.HasSuffix(name, ".json") {
					t.Errorf("%s: cell %q starts a formula", name, cell)
				}
			}
		}
	}
}

// TestCloudDirectorVRAMFromTheVCenter: a VCD VM on a registered vCenter
// bills the vCenter's capped billed vRAM, its reservation included (8 GB
// reserved of 8 GB: 8 GB, where VCD's estimate says 4); a VM of a vCenter
// not registered keeps VCD's estimate and is counted as unjoined.
func TestCloudDirectorVRAMFromTheVCenter(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	f.exec(t, `UPDATE products SET instance_id = 'vc-uuid' WHERE id = $1`, f.vc)
	vcd := f.addProduct(t, store.Product{Kind: "vcd", Endpoint: "https://vcd.corp.example"})
	half := march.Start.Add(371 * time.Hour)
	// The vCenter bills vm-1 8 GB (its reservation) for the first half only (powered off after).
	vd := vmDims("tenant-vm", "esx01", "Gold", "/f", "rp", "AAAAA-RENT")
	vd["vm_moref"] = "vm-1"
	f.span(t, f.vc, collectors.MetricVMVRAM, "vc-uuid/vm/uuid-1", march.Start, half, 8192, "MB", "vsphere-ent", vd)
	vcdDims := func(vc, moref, vram string) map[string]string {
		return map[string]string{"org": "org1", "vcenter_uuid": vc, "vm_moref": moref, "vram_mb": vram}
	}
	f.span(t, vcd, collectors.MetricVMManaged, "vcd/vm/1", march.Start, march.End, 1, "count", "", vcdDims("vc-uuid", "vm-1", "4096"))
	// vm-9 lives on a vCenter this appliance does not meter: 2 GB estimated, all month.
	f.span(t, vcd, collectors.MetricVMManaged, "vcd/vm/9", march.Start, march.End, 1, "count", "", vcdDims("other-vc", "vm-9", "2048"))
	files := buildFiles(t, f.generator(t, anonymize.ModeNone, nil), march, 1)
	got := monthlyLines(t, files[FileMonthly])
	if k, want := "Cloud Director||Average Capped Billed vRAM|No Customer Label", num(8*372.0/744+2); got[k] != want {
		t.Errorf("%s = %q, want %s (8 GB joined for 372 hours + 2 GB estimated):\n%s", k, got[k], want, files[FileMonthly])
	}
	man := manifestOf(t, files)
	if len(man.Unjoined) != 1 || man.Unjoined[0].Objects != 1 || man.Unjoined[0].Product != "Cloud Director" {
		t.Errorf("unjoined %+v, want vm-9", man.Unjoined)
	}
}

// TestNSXAcrossVCenters: an NSX-T Manager paired with vc01 also serves
// vc02: its VM on vc02 bills vc02's vRAM; a VM no registered vCenter holds
// is counted as unjoined; the hours vc01 was not collected are missing
// hours of the NSX product.
func TestNSXAcrossVCenters(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	vc2 := f.addProduct(t, store.Product{Kind: "vcenter", Endpoint: "https://vc02.corp.example/sdk", InstanceID: "vc2-uuid"})
	nsx := f.addProduct(t, store.Product{Kind: "nsxt", Endpoint: "https://nsx.corp.example", PairedID: f.vc})
	f.span(t, f.vc, collectors.MetricVMVRAM, "vc-uuid/vm/a", march.Start, march.End, 4096, "MB", "e", map[string]string{"vm": "a"})
	f.span(t, vc2, collectors.MetricVMVRAM, "vc2-uuid/vm/b", march.Start, march.End, 8192, "MB", "e", map[string]string{"vm": "b"})
	for _, vm := range []string{"a", "b", "c"} { // keyed by the paired vCenter, as the collector does
		f.span(t, nsx, collectors.MetricNSXVM, "vc-uuid/vm/"+vm, march.Start, march.End, 1, "count", "Advanced", map[string]string{"vm": vm})
	}
	gap := []time.Time{march.Start.Add(30 * time.Hour), march.Start.Add(31 * time.Hour)}
	f.runs(t, f.vc, march.Start, march.End, gap...)
	f.runs(t, vc2, march.Start, march.End)
	f.runs(t, nsx, march.Start, march.End)
	files := buildFiles(t, f.generator(t, anonymize.ModeNone, nil), march, 1)
	got := monthlyLines(t, files[FileMonthly])
	if k := "NSX-T|Advanced|Average Capped Billed vRAM|No Customer Label"; got[k] != num(12) {
		t.Errorf("%s = %q, want 12 (4 GB on vc01 + 8 GB on vc02):\n%s", k, got[k], files[FileMonthly])
	}
	man := manifestOf(t, files)
	if len(man.Unjoined) != 1 || man.Unjoined[0].Product != "NSX-T" || man.Unjoined[0].Objects != 1 {
		t.Errorf("unjoined %+v, want VM c", man.Unjoined)
	}
	for _, p := range man.Products {
		if p.Kind == "nsxt" && (p.MissingHours != 2 || p.CollectedHours != 742) {
			t.Errorf("NSX-T: %d collected, %d missing; want the 2 hours its vCenter missed", p.CollectedHours, p.MissingHours)
		}
	}
}

// TestSameNamedClusters: two vCenters each have a cluster "Gold"; a rule
// bound to vc02's Gold by identity labels only vc02's VMs, the rule by
// name alone the rest.
func TestSameNamedClusters(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	ctx := context.Background()
	vc2 := f.addProduct(t, store.Product{Kind: "vcenter", Endpoint: "https://vc02.corp.example/sdk", InstanceID: "vc2-uuid"})
	f.span(t, f.vc, collectors.MetricVMVRAM, "vc-uuid/vm/a", march.Start, march.End, 4096, "MB", "e", map[string]string{"vm": "a", "cluster": "Gold"})
	f.span(t, vc2, collectors.MetricVMVRAM, "vc2-uuid/vm/b", march.Start, march.End, 8192, "MB", "e", map[string]string{"vm": "b", "cluster": "Gold"})
	for _, r := range []store.CustomerRule{
		{Label: "Alpha", ObjectType: "cluster", ObjectName: "Gold"},
		{Label: "Beta", ObjectType: "cluster", ObjectName: store.ScopedObjectName("vc2-uuid", "Gold")},
	} {
		if _, err := f.st.AddCustomerRule(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	got := monthlyLines(t, buildFiles(t, f.generator(t, anonymize.ModeNone, nil), march, 1)[FileMonthly])
	if a, b := got["vCenter Server|e|Average Capped Billed vRAM|Alpha"], got["vCenter Server|e|Average Capped Billed vRAM|Beta"]; a != num(4) || b != num(8) {
		t.Errorf("Alpha %q, Beta %q: want 4 (vc01's Gold) and 8 (vc02's Gold)", a, b)
	}
}

// TestNestedResourcePoolInherits: a VM in a resource pool nested in a
// labelled pool takes the parent's label (the collector records the pool's
// path); the pool's name alone did not say whose it was.
func TestNestedResourcePoolInherits(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	d := map[string]string{"vm": "a", "resource_pool": "web-tier", "resource_pool_path": "/Resources/Tenants/Acme/web-tier"}
	f.span(t, f.vc, collectors.MetricVMVRAM, "vc-uuid/vm/a", march.Start, march.End, 4096, "MB", "e", d)
	if _, err := f.st.AddCustomerRule(context.Background(), store.CustomerRule{Label: "Acme", ObjectType: "resource-pool", ObjectName: "Tenants/Acme"}); err != nil {
		t.Fatal(err)
	}
	got := monthlyLines(t, buildFiles(t, f.generator(t, anonymize.ModeNone, nil), march, 1)[FileMonthly])
	if k := "vCenter Server|e|Average Capped Billed vRAM|Acme"; got[k] != num(4) {
		t.Errorf("%s = %q, want 4: %v", k, got[k], got)
	}
}

// TestTanzuMetricChangeRecorded: a vCenter's Tanzu metric changed on the
// 15th at 10:00 is stored for the collector's next hour and listed in the
// month's manifest with its hour; a product that is not there is refused.
func TestTanzuMetricChangeRecorded(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	f.seed(t)
	ctx := context.Background()
	change := time.Date(2026, 3, 15, 10, 0, 0, 0, time.UTC)
	if err := f.st.ChangeProductOption(ctx, f.vc, store.SettingTanzuMetric, "cores", change, fixedAt); err != nil {
		t.Fatal(err)
	}
	p, err := f.st.Product(ctx, f.vc)
	if err != nil {
		t.Fatal(err)
	}
	var opts map[string]string
	if err := json.Unmarshal(p.Options, &opts); err != nil || opts["tanzu_metric"] != "cores" || opts["version"] != "8.0.3" {
		t.Errorf("options %s, %v", p.Options, err)
	}
	man := manifestOf(t, buildFiles(t, f.generator(t, anonymize.ModeNone, nil), march, 1))
	if len(man.Changes) != 1 || man.Changes[0].Setting != store.SettingTanzuMetric || man.Changes[0].From != "2026-03-15T10:00:00Z" || man.Changes[0].New != "cores" {
		t.Errorf("changes %+v", man.Changes)
	}
	if err := f.st.ChangeProductOption(ctx, 999, store.SettingTanzuMetric, "cores", change, fixedAt); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown product: %v", err)
	}
}
