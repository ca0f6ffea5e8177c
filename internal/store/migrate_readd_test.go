package store_test

import (
	"context"
	"testing"

	"github.com/usagemeter/usagemeter/internal/pgtest"
	"github.com/usagemeter/usagemeter/internal/store"
	"github.com/usagemeter/usagemeter/migrations"
)

// TestProductReaddMigration (issue 16: migrations only forward, each tested
// from the schema before it with data): a database of the schema before
// 003_product_readd, holding a removed vCenter with usage and an active
// one, migrates forward; the removed one's history stays, and it can be
// added again under its old id, which the old unique constraint refused.
func TestProductReaddMigration(t *testing.T) {
	ctx := context.Background()
	v, err := migrations.VersionOf("product_readd")
	if err != nil {
		t.Fatal(err)
	}
	url := pgtest.NewDatabaseAt(t, v-1)
	pool, err := store.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var removed int64
	if err := pool.QueryRow(ctx, `INSERT INTO products (kind, endpoint, username, instance_id, active, removed_at)
		VALUES ('vcenter', 'https://vc01.example', 'meter', 'uuid-A', false, '2026-03-10T00:00:00Z') RETURNING id`).Scan(&removed); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO products (kind, endpoint, username, instance_id) VALUES ('vcenter', 'https://vc02.example', 'meter', 'uuid-B')`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO products (kind, endpoint, username) VALUES ('vcenter', 'https://vc01.example', 'meter')`); err == nil {
		t.Fatal("the schema before the migration accepts a removed product's address again: the test does not start from it")
	}

	s := store.New(pool, nil)
	if _, _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := s.AddProduct(ctx, store.Product{Kind: "vcenter", Endpoint: "https://vc01.example", Username: "meter", InstanceID: "uuid-A"})
	if err != nil || again != removed {
		t.Fatalf("the removed vCenter added again after the migration: id %d (was %d), %v", again, removed, err)
	}
	if _, err := s.AddProduct(ctx, store.Product{Kind: "vcenter", Endpoint: "https://vc02.example", Username: "meter", InstanceID: "uuid-B"}); err == nil {
		t.Fatal("an active product was added twice after the migration")
	}
}
