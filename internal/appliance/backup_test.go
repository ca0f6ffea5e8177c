package appliance

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usagemeter/usagemeter/anonymize"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/report"
)

// TestBackupRestore (issue 16): a backup of an appliance with products,
// collected hours and its keys, restored onto a fresh appliance (another
// database, another data_dir), gives the same products (passwords readable
// with the restored credentials key), the same spans and runs, the same
// appliance identity, and the same anonymisation secret and signing key,
// so reports regenerate with the same hashes. The archive holds no key in
// clear; a wrong passphrase, a damaged archive and a non-empty target are
// refused.
func TestBackupRestore(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	h.addProduct("https://vc01.example")
	h.addProduct("https://vc02.example")
	for n := range 3 {
		h.hour(n)
	}
	if _, err := anonymize.LoadOrCreateSecret(report.SecretPath(h.app.Config)); err != nil {
		t.Fatal(err)
	}
	if _, err := report.LoadSigningKey(ctx, h.app.Config, h.app.Store); err != nil {
		t.Fatal(err)
	}
	pass := []byte("correct horse battery staple")
	var buf bytes.Buffer
	man, err := Backup(ctx, h.app, &buf, BackupKey{Passphrase: pass}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(man.Files) != 4 || man.Appliance != h.app.Appliance.ID {
		t.Fatalf("manifest: %+v", man)
	}
	creds, _ := os.ReadFile(filepath.Join(h.app.Config.DataDir, "credentials.key"))
	if bytes.Contains(buf.Bytes(), creds) || bytes.Contains(buf.Bytes(), []byte("ProductPassw0rd")) || bytes.Contains(buf.Bytes(), []byte("PGDMP")) {
		t.Fatal("the backup holds a key, a password or the dump in clear")
	}

	fresh := func() *config.Config {
		cfg := *h.app.Config
		cfg.DataDir = t.TempDir()
		cfg.Database.URL = config.Secret(pgtest.NewDatabase(t))
		return &cfg
	}
	target := fresh()
	if _, err := Restore(ctx, target, bytes.NewReader(buf.Bytes()), BackupKey{Passphrase: []byte("wrong")}, os.Stderr, false); err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("wrong passphrase: %v", err)
	}
	damaged := bytes.Clone(buf.Bytes())
	damaged[len(damaged)/2] ^= 0xff
	if _, err := Restore(ctx, target, bytes.NewReader(damaged), BackupKey{Passphrase: pass}, os.Stderr, false); err == nil {
		t.Fatal("a damaged backup was restored")
	}
	got, err := Restore(ctx, target, bytes.NewReader(buf.Bytes()), BackupKey{Passphrase: pass}, os.Stderr, false)
	if err != nil {
		t.Fatal(err)
	}
	if got.Schema != man.Schema {
		t.Fatalf("restored manifest %+v", got)
	}
	for _, f := range []string{"credentials.key", report.DefaultSecretFile, report.DefaultSigningKey} {
		a, _ := os.ReadFile(filepath.Join(h.app.Config.DataDir, f))
		b, err := os.ReadFile(filepath.Join(target.DataDir, f))
		if err != nil || !bytes.Equal(a, b) || len(a) == 0 {
			t.Errorf("%s not restored byte for byte: %v", f, err)
		}
	}
	app, err := openWithConfig(ctx, os.Stderr, target, openOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if app.Appliance.ID != h.app.Appliance.ID {
		t.Fatalf("appliance id %s, was %s", app.Appliance.ID, h.app.Appliance.ID)
	}
	ps, err := app.Store.Products(ctx, false)
	if err != nil || len(ps) != 2 || ps[0].Password.Reveal() != "ProductPassw0rd" {
		t.Fatalf("restored products: %+v %v", ps, err)
	}
	count := func(a *App, table string) int {
		var n int
		if err := a.Store.Pool().QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, table := range []string{"usage_spans", "collection_runs", "alerts", "outbox"} {
		if a, b := count(h.app, table), count(app, table); a != b || (table != "alerts" && table != "outbox" && a == 0) {
			t.Errorf("%s: %d rows restored, %d backed up", table, b, a)
		}
	}

	// A second restore onto the now used appliance is refused.
	if _, err := Restore(ctx, target, bytes.NewReader(buf.Bytes()), BackupKey{Passphrase: pass}, os.Stderr, false); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("restore onto a used appliance: %v", err)
	}
}
