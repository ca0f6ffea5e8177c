package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/internal/store"
)

// BenchmarkSaveAnonMap: the reverse map of a 200,000-VM month (a name and
// an id per VM, and 20,000 placement names: 420,000 entries) saved in one
// statement, as the report does, into an empty map (the first month) and
// into a map that holds them all already (every month after).
//
//	go test ./internal/store -run '^$' -bench SaveAnonMap -benchtime 3x
func BenchmarkSaveAnonMap(b *testing.B) {
	ctx := context.Background()
	s := newStore(b)
	entries := make([]store.AnonEntry, 0, 420000)
	for i := range 420000 {
		kind, value := "vm", fmt.Sprintf("vm-%d", i/2)
		switch {
		case i >= 400000:
			kind, value = "folder", fmt.Sprintf("/dc/vm/tenant-%d", i)
		case i%2 == 1:
			kind, value = "vm_id", fmt.Sprintf("vc-uuid/vm/%d", i/2)
		}
		sum := sha256.Sum256([]byte(value))
		entries = append(entries, store.AnonEntry{Hash: hex.EncodeToString(sum[:]), Kind: kind, Value: value})
	}
	save := func(b *testing.B) {
		if _, err := s.SaveAnonMap(ctx, entries, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("empty", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			if _, err := s.Pool().Exec(ctx, `TRUNCATE anon_map`); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			save(b)
		}
	})
	b.Run("known", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			save(b)
		}
	})
}
