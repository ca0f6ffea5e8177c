package appliance

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/seal"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/migrations"
)

// oldSchema is the schema the upgrade tests start from: 4, the last before
// migration 005 moved the spans into span_objects and spans, so that the
// upgrade also moves data, not only adds tables.
const oldSchema = 4

const oldAppliance = "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"

// fillOld writes, through SQL that schema 4 and the latest schema both
// accept, an appliance row, a product with its password sealed as
// store.AddProduct seals it, 24 collected hours and three spans of two VMs
// on 2026-05-01 (UTC), one VM changing its vRAM at 10:00.
func fillOld(t *testing.T, url string, box *seal.Box) {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `INSERT INTO appliance (id) VALUES ($1)`, oldAppliance); err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := pool.QueryRow(ctx, `INSERT INTO products (kind, endpoint, username) VALUES ('test', 'https://vc01.example', 'meter') RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	sealed, err := box.Seal([]byte("ProductPassw0rd"), []byte("product:1"))
	if err != nil || id != 1 {
		t.Fatalf("product %d: %v", id, err)
	}
	if _, err := pool.Exec(ctx, `UPDATE products SET credentials = $1 WHERE id = 1`, sealed); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO collection_runs (product_id, hour, state, attempts, finished_at, objects)
		SELECT 1, h, 'done', 1, h + interval '5 minutes', 2 FROM generate_series('2026-05-01 00:00Z'::timestamptz, '2026-05-01 23:00Z', interval '1 hour') h`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO usage_spans (product_id, metric, object_key, first_hour, last_hour, quantity, unit, dims_hash, dims) VALUES
		(1, 'vm.vram', 'vc/vm/1', '2026-05-01 00:00Z', '2026-05-01 09:00Z', 2048, 'MB', '\x00', '{"vm": "web01", "host": "esx01", "vcenter": "vc"}'),
		(1, 'vm.vram', 'vc/vm/1', '2026-05-01 10:00Z', '2026-05-01 23:00Z', 3072, 'MB', '\x00', '{"vm": "web01", "host": "esx01", "vcenter": "vc"}'),
		(1, 'vm.vram', 'vc/vm/2', '2026-05-01 00:00Z', '2026-05-01 23:00Z', 4096, 'MB', '\x00', '{"vm": "db01", "host": "esx01", "vcenter": "vc"}')`); err != nil {
		t.Fatal(err)
	}
}

// newOldAppliance builds, in a data_dir of its own, a credentials key and a
// database at schema 4 filled by fillOld, as an appliance of that version
// left them. The database is not migrated.
func newOldAppliance(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Database.URL = config.Secret(pgtest.NewDatabaseAt(t, oldSchema))
	box, _, err := seal.LoadOrCreateKey(filepath.Join(cfg.DataDir, seal.KeyFileName), true)
	if err != nil {
		t.Fatal(err)
	}
	fillOld(t, cfg.Database.URL.Reveal(), box)
	return &cfg
}

// wantFigures is the month's vRAM figures of fillOld's data stored by the
// current schema (fillOld on a database at the latest schema, the key of
// cfg), what an upgraded appliance must aggregate.
func wantFigures(t *testing.T, cfg *config.Config) []store.Figure {
	t.Helper()
	box := mustKey(t, cfg)
	url := pgtest.NewDatabase(t)
	fillOld(t, url, box)
	return figures(t, url, box)
}

var may2026 = store.MonthIn(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), time.UTC)

func figures(t *testing.T, url string, box *seal.Box) []store.Figure {
	t.Helper()
	pool, err := store.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	f, err := store.New(pool, box).AverageFigures(context.Background(), may2026, []string{collectors.MetricVMVRAM})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// checkUpgraded checks the appliance of cfg after an upgrade from
// newOldAppliance: schema latest, the appliance id, the product (password
// readable), its spans and runs, and the month's figures those of want.
func checkUpgraded(t *testing.T, cfg *config.Config, want []store.Figure) {
	t.Helper()
	ctx := context.Background()
	app, err := openWithConfig(ctx, os.Stderr, cfg, openOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if v, err := app.Store.SchemaVersion(ctx); err != nil || v != migrations.Latest() {
		t.Fatalf("schema %d (%v), want %d", v, err, migrations.Latest())
	}
	if app.Appliance.ID != oldAppliance {
		t.Fatalf("appliance id %s, want %s", app.Appliance.ID, oldAppliance)
	}
	ps, err := app.Store.Products(ctx, false)
	if err != nil || len(ps) != 1 || ps[0].Endpoint != "https://vc01.example" || ps[0].Password.Reveal() != "ProductPassw0rd" {
		t.Fatalf("products: %+v %v", ps, err)
	}
	var spans, vm1, runs int
	if err := app.Store.Pool().QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE object_key = 'vc/vm/1'), (SELECT count(*) FROM collection_runs WHERE state = 'done') FROM usage_spans WHERE product_id = 1`).Scan(&spans, &vm1, &runs); err != nil {
		t.Fatal(err)
	}
	if spans != 3 || vm1 != 2 || runs != 24 {
		t.Fatalf("%d spans (%d of vm 1), %d runs; want 3 (2), 24", spans, vm1, runs)
	}
	got := figures(t, cfg.Database.URL.Reveal(), app.Box)
	// 10 h of 2048 MB + 14 h of 3072 MB + 24 h of 4096 MB: 48 object-hours.
	var hours float64
	for _, f := range got {
		hours += f.Hours
	}
	if len(got) == 0 || hours != 48 || !reflect.DeepEqual(got, want) {
		t.Fatalf("May 2026 figures after the upgrade:\n got  %+v\n want %+v", got, want)
	}
}

// TestRestoreOlderBackup (issue 16, the OVA upgrade path: deploy the new
// OVA, restore the backup): a backup taken by an appliance whose database
// is at schema 4, restored onto a fresh appliance by this binary's
// Restore, is migrated to the latest schema and keeps the appliance id,
// the product, its spans and runs, and the month's figures.
//
// The archive is written by Backup itself: Backup reads only the schema
// version, the appliance id and the database URL from the App, so an App
// built on the un-migrated database (openWithConfig would migrate it)
// dumps it at schema 4 as that appliance's Backup would have.
func TestRestoreOlderBackup(t *testing.T) {
	ctx := context.Background()
	src := newOldAppliance(t)
	want := wantFigures(t, src)
	box := mustKey(t, src)
	pool, err := store.Connect(ctx, src.Database.URL.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	old := &App{Config: src, Store: store.New(pool, box), Appliance: store.Appliance{ID: oldAppliance}}
	pass := []byte("correct horse battery staple")
	var buf bytes.Buffer
	man, err := Backup(ctx, old, &buf, BackupKey{Passphrase: pass}, "old")
	pool.Close()
	if err != nil {
		t.Fatal(err)
	}
	if man.Schema != oldSchema || man.Files[backupDump] == "" || man.Files[backupCreds] == "" {
		t.Fatalf("backup manifest %+v, want schema %d with the dump and the credentials key", man, oldSchema)
	}

	target := config.Default()
	target.DataDir = t.TempDir()
	target.Database.URL = config.Secret(pgtest.NewDatabase(t))
	got, err := Restore(ctx, &target, bytes.NewReader(buf.Bytes()), BackupKey{Passphrase: pass}, os.Stderr, false)
	if err != nil {
		t.Fatal(err)
	}
	if got.Schema != oldSchema || got.Appliance != oldAppliance {
		t.Fatalf("restored manifest %+v", got)
	}
	checkUpgraded(t, &target, want)
}

// TestOpenOlderDatabase (issue 16, the other upgrade path: replace the
// binary and restart): opening an appliance as serve does, on its data_dir
// and its database at schema 4, migrates the database and keeps its data.
func TestOpenOlderDatabase(t *testing.T) {
	cfg := newOldAppliance(t)
	checkUpgraded(t, cfg, wantFigures(t, cfg))
}

// TestRestoreFailureKeepsTarget: a dump pg_restore fails on halfway (cut
// short), restored onto an appliance with data, leaves that data as it
// was: the schema is emptied and the dump run in one transaction that only
// a complete restore commits.
func TestRestoreFailureKeepsTarget(t *testing.T) {
	ctx := context.Background()
	cfg := newOldAppliance(t)
	dir := t.TempDir()
	full := filepath.Join(dir, "full.dump")
	pgDump, err := pgTool("pg_dump")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(pgDump, "--format=custom", "--no-owner", "--no-privileges", "--file="+full, "--dbname="+cfg.Database.URL.Reveal()).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v: %s", err, out)
	}
	b, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.dump")
	if err := os.WriteFile(cut, b[:len(b)*3/4], 0o600); err != nil {
		t.Fatal(err)
	}
	target := pgtest.NewDatabase(t)
	fillOld(t, target, mustKey(t, cfg))
	if err := pgRestore(ctx, target, cut); err == nil {
		t.Fatal("a dump cut short was restored")
	}
	pool, err := pgxpool.New(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var spans int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM usage_spans`).Scan(&spans); err != nil || spans != 3 {
		t.Fatalf("after a failed restore: %d spans (%v), want the 3 the target had", spans, err)
	}
	if err := pgRestore(ctx, target, full); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM spans`).Scan(&spans); err == nil {
		t.Fatal("the restored database still has the target's spans table (schema 5): not replaced by the schema 4 dump")
	}
}

func mustKey(t *testing.T, cfg *config.Config) *seal.Box {
	t.Helper()
	box, err := seal.LoadKey(filepath.Join(cfg.DataDir, seal.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	return box
}
