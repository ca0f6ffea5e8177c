package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/store"
)

// TestRemovedProductAddedAgain: a removed product (kept for its history)
// can be added again: the same instance resumes its row (id, hours, no
// double counting), at the same or a new address; another instance at the
// removed product's address is a new product. Before migration 003 every
// such add failed as a duplicate, and the alert's advice ("remove and add
// it again") could not be followed.
func TestRemovedProductAddedAgain(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	add := func(endpoint, instance string) (int64, error) {
		return s.AddProduct(ctx, store.Product{Kind: "vcenter", Endpoint: endpoint, Username: "meter", Password: collectors.Secret("new-pw"), InstanceID: instance})
	}
	id, err := add("https://vc01.example", "uuid-A")
	if err != nil {
		t.Fatal(err)
	}
	collect(t, s, id, hour(0), vm("a", 1024, "x"))
	if _, err := add("https://vc01.example", "uuid-A"); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("adding an active product twice: %v", err)
	}
	if _, err := s.RemoveProduct(ctx, id, hour(1)); err != nil {
		t.Fatal(err)
	}

	again, err := add("https://vc01.example", "uuid-A")
	if err != nil || again != id {
		t.Fatalf("same instance added again: id %d (was %d), %v", again, id, err)
	}
	p, err := s.Product(ctx, id)
	if err != nil || !p.Active || p.Password.Reveal() != "new-pw" {
		t.Fatalf("resumed product: %+v %v", p, err)
	}
	collect(t, s, id, hour(2), vm("a", 1024, "x"))
	if sp := spans(t, s, id); len(sp) != 2 {
		t.Fatalf("the resumed product's history: %+v", sp)
	}

	// The same instance under a new address resumes it too.
	if _, err := s.RemoveProduct(ctx, id, hour(3)); err != nil {
		t.Fatal(err)
	}
	if moved, err := add("https://vc01-new.example", "uuid-A"); err != nil || moved != id {
		t.Fatalf("same instance at a new address: %d %v", moved, err)
	}

	// Another instance at a removed product's address is a new product.
	if _, err := s.RemoveProduct(ctx, id, hour(4)); err != nil {
		t.Fatal(err)
	}
	other, err := add("https://vc01-new.example", "uuid-B")
	if err != nil || other == id {
		t.Fatalf("another instance at the removed address: %d %v", other, err)
	}
	ps, err := s.Products(ctx, false)
	if err != nil || len(ps) != 1 || ps[0].ID != other {
		t.Fatalf("products listed: %+v %v", ps, err)
	}
}

// TestUpdateProduct: a rotated password, a new address and new options
// change the product in place; what is not given stays; the password is
// sealed again; a removed product cannot be changed.
func TestUpdateProduct(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	id, err := s.AddProduct(ctx, store.Product{Kind: "vcenter", Endpoint: "https://vc01.example", Username: "meter", Password: collectors.Secret("old-pw"), Thumbprint: "AA"})
	if err != nil {
		t.Fatal(err)
	}
	pw := collectors.Secret("Rotated-Passw0rd")
	ep := "https://vc01.new.example"
	if err := s.UpdateProduct(ctx, id, store.ProductUpdate{Password: &pw, Endpoint: &ep, Options: json.RawMessage(`{"tanzu_metric":"cores"}`)}); err != nil {
		t.Fatal(err)
	}
	p, err := s.Product(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if p.Password.Reveal() != "Rotated-Passw0rd" || p.Endpoint != ep || p.Username != "meter" || p.Thumbprint != "AA" || !bytes.Contains(p.Options, []byte(`"cores"`)) {
		t.Fatalf("after the change: %+v %s", p, p.Options)
	}
	var raw []byte
	if err := s.Pool().QueryRow(ctx, `SELECT credentials FROM products WHERE id = $1`, id).Scan(&raw); err != nil || bytes.Contains(raw, []byte("Rotated")) {
		t.Fatalf("sealed password: %v", err)
	}
	user := "other"
	if err := s.UpdateProduct(ctx, id, store.ProductUpdate{Username: &user}); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Product(ctx, id); p.Password.Reveal() != "Rotated-Passw0rd" || p.Username != "other" {
		t.Fatalf("a username change touched the password: %+v", p)
	}
	if _, err := s.RemoveProduct(ctx, id, hour(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateProduct(ctx, id, store.ProductUpdate{Username: &user}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("changing a removed product: %v", err)
	}
}
