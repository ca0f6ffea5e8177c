package store_test

import (
	"context"
	"slices"
	"testing"

	"github.com/usagemeter/usagemeter/collectors"
)

// TestRetainDeletesUnusedDims: the states and names only deleted spans
// referred to are deleted with them; those of the spans kept stay, and a
// state or name deleted comes back when an object is seen in it again.
func TestRetainDeletesUnusedDims(t *testing.T) {
	s := newStore(t)
	pid := addProduct(t, s)
	ctx := context.Background()
	on := func(o collectors.Observation, host string) collectors.Observation {
		o.Dims["host"] = host
		return o
	}
	// Hour 0: a (web-old on esx-old) and b (db on esx-old); three months
	// later a is web on esx-new, b is gone.
	collect(t, s, pid, hour(0), on(vm("a", 2048, "web-old"), "esx-old"), on(vm("b", 1024, "db"), "esx-old"))
	collect(t, s, pid, hour(2200), on(vm("a", 2048, "web"), "esx-new"))
	dims := func() (hosts, names []string) {
		t.Helper()
		rows, err := s.Pool().Query(ctx, `SELECT 'host ' || (dims ->> 'host') FROM span_states UNION ALL SELECT 'vm ' || (dims ->> 'vm') FROM span_names ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			if v[0] == 'h' {
				hosts = append(hosts, v)
			} else {
				names = append(names, v)
			}
		}
		return hosts, names
	}
	if h, n := dims(); len(h) != 2 || len(n) != 3 {
		t.Fatalf("before retention: %v %v", h, n)
	}

	r, err := s.Retain(ctx, hour(1000), hour(0))
	if err != nil {
		t.Fatal(err)
	}
	if r.Spans != 2 || r.Dims != 3 {
		t.Errorf("retained %+v, want 2 spans and 3 dims (esx-old, web-old, db) deleted", r)
	}
	if h, n := dims(); !slices.Equal(h, []string{"host esx-new"}) || !slices.Equal(n, []string{"vm web"}) {
		t.Errorf("after retention: %v %v, want the dims of a's latest span only", h, n)
	}
	assertSpans(t, spans(t, s, pid), []spanView{{"a", 2200, 2200, 2048, "web"}})

	// Nothing more to delete; b comes back in its old state and name.
	if r, err := s.Retain(ctx, hour(1000), hour(0)); err != nil || r.Dims != 0 {
		t.Errorf("second retention: %+v %v, want nothing deleted", r, err)
	}
	collect(t, s, pid, hour(2201), on(vm("a", 2048, "web"), "esx-new"), on(vm("b", 1024, "db"), "esx-old"))
	assertSpans(t, spans(t, s, pid), []spanView{{"a", 2200, 2201, 2048, "web"}, {"b", 2201, 2201, 1024, "db"}})
}
