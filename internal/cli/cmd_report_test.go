package cli_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/jackc/pgx/v5"

	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/report"
)

func armored(t *testing.T, e *openpgp.Entity, private bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	typ := openpgp.PublicKeyType
	if private {
		typ = openpgp.PrivateKeyType
	}
	aw, err := armor.Encode(&buf, typ, nil)
	if err != nil {
		t.Fatal(err)
	}
	if private {
		err = e.SerializePrivateWithoutSigning(aw, nil)
	} else {
		err = e.Serialize(aw)
	}
	if err != nil {
		t.Fatal(err)
	}
	aw.Close()
	return buf.Bytes()
}

func pgpKey(t *testing.T, name string, created time.Time, lifetime time.Duration) *openpgp.Entity {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", "", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519,
		Time: func() time.Time { return created }, KeyLifetimeSecs: uint32(lifetime / time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestReportCommands drives the binary through a month's report: refused
// until registered, customer rules, generate with --out --plain, verify
// (plain and encrypted), reverse, send by e-mail (queued), list, key; and a
// recipient key that expired is refused at config load, naming the file.
func TestReportCommands(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	dbURL := pgtest.NewDatabase(t)
	recipient := pgpKey(t, "Aggregator", time.Now().Add(-time.Hour), 0)
	pub := filepath.Join(dir, "aggregator.asc")
	priv := filepath.Join(dir, "aggregator-private.asc")
	_ = os.WriteFile(pub, armored(t, recipient, false), 0o600)
	_ = os.WriteFile(priv, armored(t, recipient, true), 0o600)
	cfg := writeConfig(t, filepath.Join(dir, "data"), "database:\n  url: "+dbURL+"\nreport:\n  to: [billing@aggregator.example]\n  recipient_keys: ["+pub+"]\n")
	run := func(args ...string) (int, string) {
		t.Helper()
		out, err := exec.Command(bin, append(args, "--config", cfg)...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	must := mustOf(t, run)
	must("migrate")

	// A month of data: one VM in Acme's folder, one elsewhere.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		`INSERT INTO products (kind, endpoint) VALUES ('vcenter', 'https://vc9.corp.example/sdk')`,
		`INSERT INTO usage_spans (product_id, metric, object_key, first_hour, last_hour, quantity, unit, edition, dims_hash, dims)
		 SELECT id, 'vm.vram', 'vc/vm/1', '2026-03-01', '2026-03-31 23:00', 2048, 'MB', 'ent', '\x00',
		        '{"vm":"web77","folder":"/DC/vm/Tenants/Acme","vcenter":"vc9.corp.example"}' FROM products`,
		`INSERT INTO usage_spans (product_id, metric, object_key, first_hour, last_hour, quantity, unit, edition, dims_hash, dims)
		 SELECT id, 'vm.vram', 'vc/vm/2', '2026-03-01', '2026-03-15 23:00', 1024, 'MB', 'ent', '\x00',
		        '{"vm":"db77","folder":"/DC/vm/Other","vcenter":"vc9.corp.example","license_key":"KEY-77","license_edition":"ent"}' FROM products`,
		`INSERT INTO collection_runs (product_id, hour, state)
		 SELECT id, h, 'done' FROM products, generate_series('2026-03-01'::timestamptz, '2026-03-31 23:00', interval '1 hour') h`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}

	code, out := run("report", "generate", "--month", "2026-03")
	if code != 1 || !strings.Contains(out, "usagemeter register --contract") {
		t.Fatalf("unregistered (exit %d):\n%s", code, out)
	}
	if code, out := run("register", "--contract", "C-77", "--program", "leasing"); code != 2 || !strings.Contains(out, "rental or sovereign-cloud") {
		t.Fatalf("bad programme (exit %d):\n%s", code, out)
	}
	must("register", "--contract", "C-77", "--program", "rental")
	must("customer", "add", "--label", "Acme Corp", "--object-type", "folder", "--object", "Tenants/Acme")
	if out := must("customer", "list"); !strings.Contains(out, "Acme Corp") || !strings.Contains(out, "Tenants/Acme") {
		t.Fatalf("customer list:\n%s", out)
	}
	if code, out := run("customer", "add", "--label", "X", "--object-type", "galaxy", "--object", "y"); code != 2 {
		t.Fatalf("bad object type (exit %d):\n%s", code, out)
	}
	// A cluster bound by identity: this vCenter's Gold, not another's.
	if code, out := run("customer", "add", "--label", "Y", "--object-type", "folder", "--object", "f", "--vcenter", "1"); code != 2 || !strings.Contains(out, "--vcenter goes with --object-type host, cluster or datacenter") {
		t.Fatalf("--vcenter with a folder (exit %d):\n%s", code, out)
	}
	if code, out := run("customer", "add", "--label", "Y", "--object-type", "cluster", "--object", "Gold", "--vcenter", "1"); code != 1 || !strings.Contains(out, "not a vCenter with a known instance UUID") {
		t.Fatalf("--vcenter without an instance UUID (exit %d):\n%s", code, out)
	}
	if _, err := conn.Exec(ctx, `UPDATE products SET instance_id = 'vc9-uuid' WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	if out := must("customer", "add", "--label", "Gold Co", "--object-type", "cluster", "--object", "Gold", "--vcenter", "1"); !strings.Contains(out, `cluster "vc9-uuid/Gold" -> Gold Co`) {
		t.Fatalf("customer add --vcenter:\n%s", out)
	}
	if code, out := run("report", "generate", "--month", "2099-01"); code != 1 || !strings.Contains(out, "in the future") {
		t.Fatalf("future month (exit %d):\n%s", code, out)
	}
	if code, out := run("report", "generate", "--month", "2025-01"); code != 1 || !strings.Contains(out, "no usage was collected") {
		t.Fatalf("empty month (exit %d):\n%s", code, out)
	}

	outDir := filepath.Join(dir, "out")
	out = must("report", "generate", "--month", "2026-03", "--out", outDir, "--plain")
	plain := filepath.Join(outDir, "usage-2026-03-v1.tar.gz")
	enc := plain + ".gpg"
	if !strings.Contains(out, "version 1 (new version)") || !strings.Contains(out, "written "+enc) || !strings.Contains(out, "written "+plain) {
		t.Fatalf("generate:\n%s", out)
	}
	if out := must("report", "generate", "--month", "2026-03"); !strings.Contains(out, "version 1 (unchanged") {
		t.Fatalf("regenerate:\n%s", out)
	}
	b, _ := os.ReadFile(plain)
	for _, name := range []string{"web77", "db77", "Acme", "vc9.corp.example", "Tenants"} {
		if bytes.Contains(b, []byte(name)) {
			t.Errorf("plain bundle (gzip) contains %q", name)
		}
	}
	if out := must("report", "verify", plain); !strings.Contains(out, "OK") || !strings.Contains(out, "contract C-77") {
		t.Fatalf("verify plain:\n%s", out)
	}
	if out := must("report", "verify", enc, "--key", priv); !strings.Contains(out, "decrypted; signed by") {
		t.Fatalf("verify encrypted:\n%s", out)
	}
	if code, out := run("report", "verify", enc); code != 1 || !strings.Contains(out, "--key") {
		t.Fatalf("verify encrypted without key (exit %d):\n%s", code, out)
	}
	out = must("anonymize", "reverse", enc)
	for _, want := range []string{"==> Monthly_Usage.tsv <==", "web77", "Acme Corp", "/DC/vm/Tenants/Acme", "vc9.corp.example", "No Customer Label"} {
		if !strings.Contains(out, want) {
			t.Errorf("reverse lacks %q:\n%s", want, out[:min(len(out), 2000)])
		}
	}
	// No SMTP server answers on smtp.port: the mail is queued, tried at
	// once, and report send says it is not delivered, with a failing exit.
	if code, out := run("report", "send", "--month", "2026-03"); code != 1 || !strings.Contains(out, "email: queued, not delivered yet (outbox ") ||
		!strings.Contains(out, "connecting failed") || !strings.Contains(out, "not delivered by email yet") {
		t.Fatalf("send (exit %d):\n%s", code, out)
	}
	var queued int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM outbox o JOIN outbox_attachments a ON a.outbox_id = o.id WHERE o.kind = 'report' AND a.name = 'usage-2026-03-v1.tar.gz.gpg'`).Scan(&queued); err != nil || queued != 1 {
		t.Fatalf("outbox: %d %v", queued, err)
	}
	if out := must("report", "list"); !strings.Contains(out, "2026-03") || !strings.Contains(out, "email=queued") {
		t.Fatalf("list:\n%s", out)
	}
	if out := must("report", "key"); !strings.Contains(out, "BEGIN PGP PUBLIC KEY BLOCK") || strings.Contains(out, "PRIVATE") {
		t.Fatalf("key:\n%s", out)
	}
	// The appliance key that signed is the one `report key` exports.
	el, err := openpgp.ReadArmoredKeyRing(strings.NewReader(must("report", "key")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := report.VerifyFile(enc, openpgp.EntityList{recipient}, el); err != nil {
		t.Fatalf("verify with the exported key: %v", err)
	}

	// A licence marked perpetual now applies from this hour: March, over,
	// keeps its version.
	if out := must("license", "list"); !strings.Contains(out, "KEY-77") || !strings.Contains(out, "rental") {
		t.Fatalf("license list:\n%s", out)
	}
	if out := must("license", "set-category", "KEY-77", "perpetual"); !strings.Contains(out, "hours before keep their category") {
		t.Fatalf("set-category:\n%s", out)
	}
	if out := must("report", "generate", "--month", "2026-03"); !strings.Contains(out, "version 1 (unchanged") {
		t.Fatalf("regenerate after a licence change in a later month:\n%s", out)
	}
	// Set from March 10 (a correction): db77 leaves the figures from that
	// hour on, a new version is made.
	must("license", "set-category", "KEY-77", "perpetual", "--from", "2026-03-10T00:00:00Z")
	if out := must("report", "generate", "--month", "2026-03"); !strings.Contains(out, "version 2 (new version)") || !strings.Contains(out, "1 figures not reported") {
		t.Fatalf("regenerate after licence change:\n%s", out)
	}
	if code, out := run("license", "set-category", "KEY-77", "rental", "--from", "2099-01-01T00:00:00Z"); code != 2 || !strings.Contains(out, "is in the future: a change applies from the current hour") {
		t.Fatalf("future --from (exit %d):\n%s", code, out)
	}
	// VCF flagged from March 20: the vCenter's vRAM is included in VCF
	// from then on.
	if code, out := run("product", "set", "--id", "1", "--vcf-edition", "platinum"); code != 1 || !strings.Contains(out, `vcf_edition "platinum"`) {
		t.Fatalf("bad edition (exit %d):\n%s", code, out)
	}
	if out := must("product", "set", "--id", "1", "--vcf-edition", "standard", "--from", "2026-03-20T00:00:00Z"); !strings.Contains(out, "vcf_edition standard from 2026-03-20T00:00:00Z") {
		t.Fatalf("product set:\n%s", out)
	}
	if out := must("report", "generate", "--month", "2026-03"); !strings.Contains(out, "version 3 (new version)") {
		t.Fatalf("regenerate after the VCF edition change:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "reports", "usage-2026-03-v1.tar.gz.gpg")); err != nil {
		t.Fatalf("version 1 not kept: %v", err)
	}

	// An expired recipient key is refused when the config is loaded.
	expired := pgpKey(t, "Old Aggregator", time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), 365*24*time.Hour)
	old := filepath.Join(dir, "old.asc")
	_ = os.WriteFile(old, armored(t, expired, false), 0o600)
	bad := writeConfig(t, filepath.Join(dir, "data"), "database:\n  url: "+dbURL+"\nreport:\n  recipient_keys: ["+pub+", "+old+"]\n")
	o, err := exec.Command(bin, "config", "check", "--config", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(o), "report.recipient_keys[1] "+old+": key expired on 2024-01-01") {
		t.Fatalf("expired key accepted or unnamed: %v\n%s", err, o)
	}
	shortSecret := filepath.Join(dir, "short.key")
	_ = os.WriteFile(shortSecret, []byte("abcd\n"), 0o600)
	bad = writeConfig(t, filepath.Join(dir, "data"), "database:\n  url: "+dbURL+"\nreport:\n  secret_file: "+shortSecret+"\n")
	o, err = exec.Command(bin, "config", "check", "--config", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(o), "report.secret_file: anonymisation secret "+shortSecret+" is 2 bytes") {
		t.Fatalf("short secret accepted or unnamed: %v\n%s", err, o)
	}
	garbage := filepath.Join(dir, "garbage.asc")
	_ = os.WriteFile(garbage, []byte("not a key\n"), 0o600)
	bad = writeConfig(t, filepath.Join(dir, "data"), "database:\n  url: "+dbURL+"\nreport:\n  recipient_keys: ["+garbage+"]\n")
	o, err = exec.Command(bin, "report", "generate", "--config", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(o), "report.recipient_keys[0] "+garbage+": not an OpenPGP public key") {
		t.Fatalf("malformed key accepted or unnamed: %v\n%s", err, o)
	}
}
