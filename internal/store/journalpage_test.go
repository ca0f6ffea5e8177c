package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/internal/store"
)

// TestJournalKeyset pages through a journal of 3 products and 30 hours
// (some failed, one running) by keyset, older then newer, with and without
// filters: every page in the journal's order, nothing skipped or repeated;
// LastCollected is each product's last done hour.
func TestJournalKeyset(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	h0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var ids []int64
	for i := range 3 {
		id, err := s.AddProduct(ctx, store.Product{Kind: "vcenter", Endpoint: fmt.Sprintf("https://vc%d.example/sdk", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := s.Pool().Exec(ctx, `INSERT INTO collection_runs (product_id, hour, state, attempts, error)
	SELECT p, $1::timestamptz + h * interval '1 hour',
	       CASE WHEN h = 29 AND p = $2 THEN 'running' WHEN (h + p) % 7 = 0 THEN 'failed' ELSE 'done' END, 1,
	       CASE WHEN (h + p) % 7 = 0 THEN 'refused' END
	  FROM unnest($3::bigint[]) p, generate_series(0, 29) h`, h0, ids[0], ids); err != nil {
		t.Fatal(err)
	}
	type run struct {
		id int64
		h  time.Time
	}
	all := func(product int64, state string) []run {
		rows, err := s.Pool().Query(ctx, `SELECT product_id, hour FROM collection_runs WHERE ($1 = 0 OR product_id = $1) AND ($2 = '' OR state = $2)
		 ORDER BY hour DESC, product_id DESC`, product, state)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []run
		for rows.Next() {
			var r run
			if err := rows.Scan(&r.id, &r.h); err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		return out
	}
	for _, f := range []struct {
		product int64
		state   string
	}{{0, ""}, {0, "failed"}, {ids[1], ""}, {ids[2], "failed"}} {
		want := all(f.product, f.state)
		var got []run
		var pages []store.JournalPage
		q := store.JournalQuery{ProductID: f.product, State: f.state, Limit: 7}
		for {
			pg, err := s.JournalKeyset(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range pg.Entries {
				got = append(got, run{e.ProductID, e.Hour})
				if e.Endpoint == "" || e.Kind != "vcenter" {
					t.Fatalf("entry without its product: %+v", e)
				}
			}
			pages = append(pages, pg)
			if pg.Newer != (len(pages) > 1) {
				t.Fatalf("%+v page %d: newer %v", f, len(pages), pg.Newer)
			}
			if !pg.Older {
				break
			}
			q.Before, q.After = &pg.Last, nil
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%+v: paging older gives\n%v\nwant\n%v", f, got, want)
		}
		// Back, newer, from the last page: the same pages.
		for i := len(pages) - 2; i >= 0; i-- {
			pg, err := s.JournalKeyset(ctx, store.JournalQuery{ProductID: f.product, State: f.state, Limit: 7, After: &pages[i+1].First})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(pg.Entries) != fmt.Sprint(pages[i].Entries) || pg.Newer != (i > 0) || !pg.Older {
				t.Fatalf("%+v: page %d read newer differs: %v (newer %v)", f, i, pg.Entries, pg.Newer)
			}
		}
		if f.product != 0 && pages[0].ProductTotal != len(want) {
			t.Errorf("%+v: product total %d, want %d", f, pages[0].ProductTotal, len(want))
		}
	}
	last, err := s.LastCollected(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		var want time.Time
		if err := s.Pool().QueryRow(ctx, `SELECT max(hour) FROM collection_runs WHERE product_id = $1 AND state = 'done'`, id).Scan(&want); err != nil {
			t.Fatal(err)
		}
		if !last[id].Equal(want) {
			t.Errorf("product %d: last collected %s, want %s", id, last[id], want)
		}
	}
}
