package report

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/usagemeter/usagemeter/anonymize"
	"github.com/usagemeter/usagemeter/collectors"
	tkgsim "github.com/usagemeter/usagemeter/collectors/tkgm/simulator"
	vcsim "github.com/usagemeter/usagemeter/collectors/vcenter/simulator"
	"github.com/usagemeter/usagemeter/internal/store"
)

// TestTKGmVRAMvsCores: two TKG management cluster products over the same
// clusters, one metered on vRAM, the other on cores (option metric, as
// tanzu_metric for TKGs), each collected by the tkgm collector from its
// simulator and a vCenter simulator for four hours of March 2026, stored
// through the store's hourly merge. The report gives Tanzu Kubernetes Grid,
// edition Standard: the average capped billed vRAM of the cluster VMs for
// the first, the average cores of the hosts running them for the second,
// both over the 744 hours of the month (the missing hours count zero). No
// Kubernetes cluster or machine name is in a hashed bundle.
func TestTKGmVRAMvsCores(t *testing.T) {
	f := newFixture(t)
	f.register(t)
	ctx := context.Background()

	vc, err := vcsim.New(vcsim.Options{Clusters: 1, HostsPerCluster: 2, InstanceUUID: "5003c0de-aaaa-4bbb-8ccc-0000000000b7"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vc.Close)
	hosts := vc.Hosts()
	vc.SetCores(hosts[0], 2, 8)  // 16 cores
	vc.SetCores(hosts[1], 2, 12) // 24 cores
	on, off := types.VirtualMachinePowerStatePoweredOn, types.VirtualMachinePowerStatePoweredOff
	type spec struct {
		name        string
		host        int
		mem, resMB  int64
		power       types.VirtualMachinePowerState
		bios, instc string
	}
	specs := []spec{
		{"tkg-mgmt-cp", 0, 8192, 0, on, "4237aaaa-0000-4000-8000-000000000001", "5037aaaa-0000-4000-8000-000000000001"},         // 4096
		{"workload-01-cp", 0, 4096, 0, on, "4237aaaa-0000-4000-8000-000000000002", "5037aaaa-0000-4000-8000-000000000002"},      // 2048
		{"workload-01-w1", 1, 65536, 65536, on, "4237aaaa-0000-4000-8000-000000000003", "5037aaaa-0000-4000-8000-000000000003"}, // capped 24576
		{"workload-01-w2", 1, 16384, 0, off, "4237aaaa-0000-4000-8000-000000000004", "5037aaaa-0000-4000-8000-000000000004"},    // off, then 8192
		{"not-kubernetes", 1, 32768, 0, on, "4237aaaa-0000-4000-8000-000000000005", "5037aaaa-0000-4000-8000-000000000005"},     // not a machine
	}
	for _, s := range specs {
		if _, err := vc.CreateVM(ctx, vcsim.VMSpec{Name: s.name, Host: hosts[s.host], MemoryMB: int32(s.mem), ReservationMB: s.resMB,
			PowerState: s.power, BIOSUUID: s.bios, InstanceUUID: s.instc}); err != nil {
			t.Fatal(err)
		}
	}
	st := tkgsim.Fleet("tkgm-token", []string{specs[0].bios}, []string{specs[1].bios, specs[2].bios, specs[3].bios})
	sim := tkgsim.New(st)
	u, thumb := sim.Start(t)
	paired := &collectors.Target{Kind: "vcenter", Endpoint: vc.URL(), Username: vc.User(), Password: collectors.Secret(vc.Password()),
		Thumbprint: vc.Thumbprint(), InstanceID: vc.InstanceUUID(), Timeout: 10 * time.Second}

	products := map[string]int64{}
	colls := map[string]collectors.Collector{}
	for _, metric := range []string{"vram", "cores"} {
		opts := json.RawMessage(`{"metric":"` + metric + `"}`)
		id, err := f.st.AddProduct(ctx, store.Product{Kind: "tkgm", Endpoint: "https://tkg-mgmt-" + metric + ".corp.example:6443", Options: opts})
		if err != nil {
			t.Fatal(err)
		}
		c, err := collectors.New(collectors.Target{Kind: "tkgm", Endpoint: u, Password: collectors.Secret(st.Token), Thumbprint: thumb,
			Options: opts, Timeout: 10 * time.Second, Paired: paired})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.(collectors.Closer).Close(context.Background()) })
		products[metric], colls[metric] = id, c
	}
	collect := func(hour time.Time) {
		t.Helper()
		for metric, c := range colls {
			obs, err := c.Collect(ctx, hour)
			if err != nil {
				t.Fatal(err)
			}
			pid := products[metric]
			if cl, err := f.st.ClaimHour(ctx, pid, hour, "test", time.Minute); err != nil || !cl.Claimed {
				t.Fatalf("claim %s: %+v %v", hour, cl, err)
			}
			if _, err := f.st.CommitHour(ctx, pid, hour, "test", obs); err != nil {
				t.Fatal(err)
			}
		}
	}
	at := func(d, h int) time.Time { return time.Date(2026, 3, d, h, 0, 0, 0, time.UTC) }
	collect(at(1, 0))
	collect(at(1, 1))
	collect(at(1, 2))
	vc.SetPower(vc.VM("workload-01-w2"), on) // a worker VM powered on: it bills from its hour
	collect(at(10, 9))

	g, err := New(Options{Store: f.st, Mode: anonymize.ModeNone, Dir: t.TempDir(), Now: func() time.Time { return fixedAt }})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := ParseMonth("2026-03", time.UTC)
	got := string(buildFiles(t, g, m, 1)[FileMonthly])
	// vRAM: 3 hours of 4096+2048+24576 MB, 1 hour with 8192 MB more:
	// 131072 MB = 128 GB over 744 hours. Cores: 16+24 cores in each of the
	// 4 hours (both hosts run a cluster VM throughout): 160 / 744.
	for _, want := range []string{
		"Tanzu Kubernetes Grid\tStandard\tAverage Capped Billed vRAM\tGB\t" + num(128.0/744) + "\ttkg-mgmt-vram.corp.example\t\tNo Customer Label\n",
		"Tanzu Kubernetes Grid\tStandard\tAverage Cores\tcores\t" + num(160.0/744) + "\ttkg-mgmt-cores.corp.example\t\tNo Customer Label\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Monthly_Usage lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "Tanzu Kubernetes Grid\t"); n != 2 || strings.Contains(got, "Tanzu Basic") {
		t.Errorf("Monthly_Usage: %d TKGm lines, want 2 (one per product, on its metric), and no Tanzu Basic:\n%s", n, got)
	}

	hg, err := New(Options{Store: f.st, Mode: anonymize.ModeHashed, Secret: secretA, Dir: t.TempDir(), Now: func() time.Time { return fixedAt }})
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range buildFiles(t, hg, m, 1) {
		for _, clear := range []string{"tkg-mgmt", "workload-01", "tkg-system"} {
			if strings.Contains(string(b), clear) {
				t.Errorf("%s (hashed): clear name %q", name, clear)
			}
		}
	}
}
