package report

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/usagemeter/usagemeter/anonymize"
	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/vra8/simulator"
	"github.com/usagemeter/usagemeter/internal/store"
)

// TestAriaAutomationCloudSplit: the vra8 collector, run against its
// simulator, stores its machines through the store's hourly merge; the
// report, encrypted and decrypted with gpg, gives the non-unique VM count of
// Aria Automation 8 on one line per cloud (vSphere, AWS, Azure, GCP, and a
// cloud account of another type under its own name) and customer, and Aria
// Automation 7 on its own line.
func TestAriaAutomationCloudSplit(t *testing.T) {
	g := newGPGHome(t)
	recipient := mustKey(t, "Aggregator Billing")
	g.importKey(armoredPrivate(t, recipient))
	g.importKey(mustPublic(t, testSigner(t)))

	f := newFixture(t)
	f.register(t)
	f.keys = openpgp.EntityList{publicOnly(t, recipient)}
	ctx := context.Background()
	vra, err := f.st.AddProduct(ctx, store.Product{Kind: "vra8", Endpoint: "https://vra8.corp.example"})
	if err != nil {
		t.Fatal(err)
	}
	vra7, err := f.st.AddProduct(ctx, store.Product{Kind: "vra7", Endpoint: "https://vra7.corp.example"})
	if err != nil {
		t.Fatal(err)
	}
	h := func(n int) time.Time { return march.Start.Add(time.Duration(n) * time.Hour) }

	// First half of March: 3 vSphere VMs, 2 machines in each public cloud
	// and one on a VMware Cloud on AWS (vmc) cloud account.
	vms := []simulator.VMRef{{VCenterUUID: "564d1a2b-3c4d-5e6f-7a8b-9c0d1e2f3a4b", MoRef: "vm-1"},
		{VCenterUUID: "564d1a2b-3c4d-5e6f-7a8b-9c0d1e2f3a4b", MoRef: "vm-2"}, {VCenterUUID: "5022c0de-1111-4222-8333-944455556666", MoRef: "vm-1", Name: "dr-1"}}
	first := simulator.NewDemoState("meter", "pw", vms, 2)
	first.CloudAccounts = append(first.CloudAccounts, simulator.CloudAccount{ID: "vmc-1", Name: "sddc", Type: "vmc"})
	first.Machines = append(first.Machines, simulator.Machine{ID: "m-vmc", Name: "sddc-vm", CloudAccounts: []string{"vmc-1"}, ExternalID: "vmc-vm-1"})
	// Second half: two more AWS machines, one GCP machine fewer.
	second := first
	second.Machines = nil
	for _, m := range first.Machines {
		if m.ID != "machine-gcp-00001" {
			second.Machines = append(second.Machines, m)
		}
	}
	second.Machines = append(second.Machines,
		simulator.Machine{ID: "m-aws-new-1", Name: "aws-new-1", CloudAccounts: []string{"aws-1"}, ExternalID: "i-new-1"},
		simulator.Machine{ID: "m-aws-new-2", Name: "aws-new-2", CloudAccounts: []string{"aws-1"}, ExternalID: "i-new-2"})

	collect := func(hour time.Time, st simulator.State) {
		t.Helper()
		sim := simulator.New(st)
		u, thumb := sim.Start(t)
		c, err := collectors.New(collectors.Target{Kind: "vra8", Endpoint: u, Username: "meter", Password: collectors.Secret("pw"), Thumbprint: thumb, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		obs, err := c.Collect(ctx, hour)
		if err != nil {
			t.Fatal(err)
		}
		if cl, err := f.st.ClaimHour(ctx, vra, hour, "test", time.Minute); err != nil || !cl.Claimed {
			t.Fatalf("claim %s: %+v %v", hour, cl, err)
		}
		if _, err := f.st.CommitHour(ctx, vra, hour, "test", obs); err != nil {
			t.Fatal(err)
		}
	}
	// Each state is collected once and its spans stretched over its half
	// (as hourly collections of an unchanged state would merge them).
	collect(h(0), first)
	f.exec(t, `UPDATE usage_spans SET last_hour = $2 WHERE product_id = $1`, vra, h(371))
	collect(h(372), second)
	f.exec(t, `UPDATE usage_spans SET last_hour = $2 WHERE product_id = $1 AND last_hour = $3`, vra, h(743), h(372))
	f.runs(t, vra, h(1), h(372))
	f.runs(t, vra, h(373), march.End)
	// Aria Automation 7: 2 vSphere VMs all month, one for a quarter of it.
	for i, last := range []time.Time{h(743), h(743), h(185)} {
		f.span(t, vra7, collectors.MetricVMManaged, "564d1a2b-3c4d-5e6f-7a8b-9c0d1e2f3a4b/moref/vm-7"+itoa(i), march.Start, last, 1, "count", "",
			map[string]string{"vm": "v7-" + itoa(i), "vcenter_join": "joined"})
	}

	// A customer bound to vc01 takes its vSphere machines (the collector
	// names their vCenter as the vcenter collector does).
	if _, err := f.st.AddCustomerRule(ctx, store.CustomerRule{Label: "Acme", ObjectType: "vcenter", ObjectName: "vc01.demo.example"}); err != nil {
		t.Fatal(err)
	}

	res, err := f.generator(t, anonymize.ModeNone, nil).Generate(ctx, march)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := os.ReadFile(res.Path)
	if err != nil || IsPlainBundle(enc) {
		t.Fatalf("the report is not encrypted (%v)", err)
	}
	plain, status := g.decrypt(enc)
	if !strings.Contains(status, "GOODSIG") {
		t.Errorf("gpg does not verify the signature:\n%s", status)
	}
	files, err := ReadTarGz(bytes.NewReader(plain))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string][]byte{}
	for _, fl := range files {
		byName[fl.Name] = fl.Data
	}
	got := string(byName[FileMonthly])
	for _, want := range []string{
		"Aria Automation\tvSphere\tNon-unique VM Count\tcount\t2.000\tvra8.corp.example\t\tAcme\n",
		"Aria Automation\tvSphere\tNon-unique VM Count\tcount\t1.000\tvra8.corp.example\t\tNo Customer Label\n",
		"Aria Automation\tAWS\tNon-unique VM Count\tcount\t3.000\tvra8.corp.example\t\tNo Customer Label\n",
		"Aria Automation\tAzure\tNon-unique VM Count\tcount\t2.000\tvra8.corp.example\t\tNo Customer Label\n",
		"Aria Automation\tGCP\tNon-unique VM Count\tcount\t1.500\tvra8.corp.example\t\tNo Customer Label\n",
		"Aria Automation\tvmc\tNon-unique VM Count\tcount\t1.000\tvra8.corp.example\t\tNo Customer Label\n",
		"Aria Automation 7\t\tNon-unique VM Count\tcount\t2.250\tvra7.corp.example\t\tNo Customer Label\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Monthly_Usage lacks %q:\n%s", want, got)
		}
	}
	// VM_History names each machine's cloud in its edition column.
	vmh := string(byName[FileVMs])
	for _, want := range []string{"\tvm.managed\t564d1a2b-3c4d-5e6f-7a8b-9c0d1e2f3a4b/moref/vm-1\t", "\tvm.managed\taws/i-new-1\t", "\tAWS\t"} {
		if !strings.Contains(vmh, want) {
			t.Errorf("VM_History lacks %q", want)
		}
	}
	var man Manifest
	if err := json.Unmarshal(byName[FileManifest], &man); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(man.Assumptions, "\n"), "Aria Automation 8 is billed on the non-unique count") || man.RulesVersion != RulesVersion {
		t.Errorf("manifest: %s %v", man.RulesVersion, man.Assumptions)
	}
}
