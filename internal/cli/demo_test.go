//go:build demo

package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/usagemeter/usagemeter/report"
)

// TestDemoShort runs the demo end to end in short mode (three days of a
// month, a smaller provider), then --serve until /metrics answered: the
// figures printed are the figures of the report decrypted independently
// from the bundle on disk, and the failure and recovery mails of the product
// that went down were captured.
func TestDemoShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own PostgreSQL and simulators")
	}
	// A guard against a hang, not a speed check: a loaded 2-core machine
	// needs several minutes (the -race build, vcsim, PostgreSQL start-up).
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	out := &syncBuffer{}
	metrics := make(chan string, 1)
	go func() { // --serve: fetch /metrics once serving, then stop.
		re := regexp.MustCompile(`Serving the demo appliance on (https://\S+) `)
		for ctx.Err() == nil {
			if m := re.FindStringSubmatch(out.String()); m != nil {
				body := ""
				for i := 0; i < 50 && !strings.Contains(body, "usagemeter_"); i++ {
					// The demo's certificate is self-signed.
					c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
					if res, err := c.Get(m[1] + "/metrics"); err == nil {
						b, _ := io.ReadAll(res.Body)
						res.Body.Close()
						body = string(b)
					}
					time.Sleep(100 * time.Millisecond)
				}
				metrics <- body
				cancel()
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	start := time.Now()
	run, err := runDemoWith(ctx, &Env{Stdout: out, Stderr: io.Discard, Now: time.Now}, demoOptions{
		dataDir: filepath.Join(t.TempDir(), "demo-data"), month: "2026-02", hours: 72, vms: 80, seed: 1,
		serve: true, listen: "127.0.0.1:0", downAt: -1, downFor: 4,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("demo took %s\n%s", time.Since(start).Round(100*time.Millisecond), out.String())
	// The receiver merged both appliances' months, vc01 billed once.
	if !regexp.MustCompile(`Provider month 2026-02 at the receiver: 2 appliance reports verified and merged, \d+ figures`).MatchString(out.String()) ||
		!regexp.MustCompile(`a vCenter metered by 2 appliances \(fleet fingerprint [0-9a-f]{12}\.\.\.\): billed once, by appliance \S+; [1-9]\d* lines of the other listed, not billed`).MatchString(out.String()) {
		t.Errorf("no provider month in the summary")
	}
	select {
	case body := <-metrics:
		if !strings.Contains(body, "usagemeter_outbox_queued") {
			t.Errorf("/metrics while serving:\n%.2000s", body)
		}
	default:
		t.Error("--serve never reported its address")
	}

	// Decrypt the stored bundle on our own, with the key files on disk.
	priv, err := os.ReadFile(run.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	keyring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(priv))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := report.LoadOrCreateKey(filepath.Join(run.DataDir, report.DefaultSigningKey), "", "")
	if err != nil {
		t.Fatal(err)
	}
	enc, err := os.ReadFile(run.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	tgz, _, err := report.DecryptAndVerify(bytes.NewReader(enc), keyring, openpgp.EntityList{signer})
	if err != nil {
		t.Fatal(err)
	}
	if dec, _ := os.ReadFile(run.Decrypted); !bytes.Equal(dec, tgz) {
		t.Error("the decrypted copy of the mailed attachment differs from the stored bundle")
	}
	man, err := report.VerifyBundle(tgz)
	if err != nil {
		t.Fatal(err)
	}
	files, err := report.ReadTarGz(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]string
	for _, f := range files {
		if f.Name == report.FileMonthly {
			rows = demoTSV(f.Data)
		}
	}
	if len(rows) < 5 {
		t.Fatalf("report rows: %q", rows)
	}

	// Every printed figure is a report row, and every report row is printed.
	text := out.String()
	table := text[strings.Index(text, "PRODUCT "):]
	table = table[:strings.Index(table, "\n\n")]
	printed := strings.Split(table, "\n")[1:]
	if len(printed) != len(rows) {
		t.Fatalf("%d figures printed, %d in the report:\n%s", len(printed), len(rows), table)
	}
	used := make([]bool, len(printed))
	products := map[string]bool{}
	for _, r := range rows {
		found := false
		for i, line := range printed {
			f := strings.Fields(line)
			if !used[i] && strings.HasPrefix(line, r[0]+" ") && strings.Contains(line, " "+r[1]+" ") && strings.Contains(line, " "+r[2]+" ") &&
				f[len(f)-2] == r[4] && f[len(f)-1] == r[3] {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("report row %q not printed:\n%s", r, table)
		}
		products[r[0]+"/"+r[2]] = true
	}
	for _, want := range []string{"vCenter Server/Average Capped Billed vRAM", "VMware Cloud Foundation/Average Cores", "vSAN/Average Used Capacity",
		"Cloud Director/Non-unique VM Count", "NSX-T/Average Capped Billed vRAM",
		"NSX-V/Average Capped Billed vRAM",
		"Site Recovery Manager/Non-unique Protected VM Count",
		"Cloud Director Availability/Unique Protected VMs", "Cloud Director Availability/Unique Migrated VMs",
		"Horizon/Maximum Desktop VMs under Management", "Horizon/Maximum RDSH Sessions under Management",
		"Horizon DaaS/Maximum Concurrent Connections",
		"Aria Operations/Average Capped Billed vRAM", "Aria Operations for Networks/Non-unique VM Count",
		"Tanzu Kubernetes Grid/Average Capped Billed vRAM", "Aria Automation/Non-unique VM Count",
	} {
		if !products[want] {
			t.Errorf("no %s figure in the report", want)
		}
	}

	// Gaps: vc02 missed the 4 hours it was down, and so did the NSX-V
	// Manager paired with it (it resolves VMs through vc02); all products
	// miss the rest of the month. Horizon DaaS is sampled every 6 hours:
	// one expected hour in six.
	down := 0
	for _, p := range man.Products {
		expected := 672
		if p.Kind == "horizon-daas" {
			expected = 672 / 6
		}
		if p.ExpectedHours != expected || p.MissingHours != expected-p.CollectedHours {
			t.Errorf("gaps: %+v", p)
		}
		switch {
		case p.CollectedHours == 72/6 && p.Kind == "horizon-daas":
		case p.CollectedHours == 68 && p.Kind == "vcenter":
			down++
		case p.CollectedHours == 68 && p.Kind == "nsxv":
		case p.CollectedHours == 72:
		default:
			t.Errorf("collected hours: %+v", p)
		}
	}
	if down != 1 || len(man.Products) < 2 {
		t.Errorf("gaps: %+v", man.Products)
	}
	if len(man.Excluded) == 0 {
		t.Error("the evaluation host's usage is not listed as excluded")
	}
	// vc01 is flagged VCF Enterprise: its cores are reported, its VMs'
	// vRAM is included in VCF, not billed again as vCenter Server.
	if len(man.Included) == 0 {
		t.Error("nothing listed as included in VCF")
	}
	for _, x := range man.Included { // one line per customer and edition
		if x.Product != "vCenter Server" || x.IncludedIn != "VMware Cloud Foundation" || x.Host != man.Included[0].Host || x.Quantity <= 0 {
			t.Errorf("included: %+v, want vc01's vRAM", x)
		}
	}
	if len(man.Included) > 0 {
		for _, r := range rows {
			if r[0] == "vCenter Server" && r[5] == man.Included[0].Host {
				t.Errorf("vc01's vRAM billed as vCenter Server although included in VCF: %q", r)
			}
		}
	}
	if !strings.Contains(text, "Metered, included in another product rather than reported") || !strings.Contains(text, "Metered but not reported") {
		t.Error("the summary lacks the included or the excluded lines")
	}

	// The mails, saved as .eml: failure, recovery, report.
	emls, _ := filepath.Glob(filepath.Join(run.MailDir, "*.eml"))
	var subjects []string
	for _, p := range emls {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, demoSubject(b))
	}
	all := strings.Join(subjects, "\n")
	// Mails of one hour come in any order (products are collected at once).
	if len(emls) < 3 || !strings.Contains(all, "collection from vcenter") || !strings.Contains(all, "(product 2) failing") ||
		!strings.Contains(all, "resolved: collection from vcenter") || !strings.Contains(all, "(product 2) works again") ||
		!strings.HasPrefix(subjects[len(subjects)-1], "Usage report 2026-02 (version 1)") {
		t.Fatalf("mails captured:\n%s", all)
	}
	for _, s := range subjects {
		if !strings.Contains(text, s) {
			t.Errorf("mail %q not in the summary", s)
		}
	}
	if strings.Contains(text, "Gr3en-Tea") {
		t.Error("the simulator's password was printed")
	}
	// The Horizon pod's and the DaaS tenants' session users and clients
	// (user0001..., CLIENT-0001..., daasuser0001...)
	// are counted, never printed nor logged.
	log, err := os.ReadFile(filepath.Join(run.DataDir, "demo.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, pd := range []string{"user0", "CLIENT-0", "dev01", "daasuser0"} {
		if strings.Contains(text, pd) || strings.Contains(string(log), pd) {
			t.Errorf("Horizon (DaaS) personal data %q printed or logged", pd)
		}
	}
}
