package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/internal/store"
)

// TestInstanceIDs: the recorded identities of a kind's products that are
// not removed, lower-cased, without the products of unknown identity.
func TestInstanceIDs(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	add := func(kind, endpoint, id string) int64 {
		t.Helper()
		pid, err := s.AddProduct(ctx, store.Product{Kind: kind, Endpoint: endpoint, InstanceID: id})
		if err != nil {
			t.Fatal(err)
		}
		return pid
	}
	add("vcenter", "https://vc01", "564D1A2B-3C4D-5E6F-7A8B-9C0D1E2F3A4B")
	add("vcenter", "https://vc02", "")
	gone := add("vcenter", "https://vc03", "5022c0de-1111-4222-8333-944455556666")
	add("srm", "https://srm01", "6f1e2d3c-4b5a-4978-8a1b-2c3d4e5f6a7b")
	if _, err := s.RemoveProduct(ctx, gone, time.Now()); err != nil {
		t.Fatal(err)
	}
	ids, err := s.InstanceIDs(ctx, "vcenter")
	if err != nil || !slices.Equal(ids, []string{"564d1a2b-3c4d-5e6f-7a8b-9c0d1e2f3a4b"}) {
		t.Fatalf("InstanceIDs = %v, %v", ids, err)
	}
}
