package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/store"
)

// Sizes of BenchmarkCommitHour: 50,000 objects, each with about 15 spans of
// history (a month), 2% of them changing every hour (DESIGN.md, issue 19).
const (
	benchObjects   = 50000
	benchChanging  = 1000 // objects changing state each hour
	benchMonthHour = 720
)

// BenchmarkCommitHour measures, side by side in one run, the span merge of
// one hour of 50,000 observations into a store already holding a month of
// spans for them, with 2% of the objects changing each hour:
//
//   - distinct: VMs whose state (vRAM, dims naming the VM) differs from one
//     VM to the next, so every state hash is shared by one object;
//   - samehash: objects of a type without names (protected VMs with minimal
//     dims) flipping between two states, so 50,000 objects share two state
//     hashes, and so does their history: the distribution that made a merge
//     keyed on the hash quadratic;
//   - copy: the baseline, a plain COPY of the distinct case's rows (built as
//     CommitHour builds them, state hash included) into a bare table with no
//     index, no merge and no run bookkeeping.
//
// The stores are built once, outside the sub-benchmarks, so the extra
// single-iteration run the testing package makes first is a warm-up and not
// a second month of set-up.
func BenchmarkCommitHour(b *testing.B) {
	distinct := newMergeBench(b, newStore(b), "distinct", false, func(i int) collectors.Observation {
		return collectors.Observation{Metric: collectors.MetricVMVRAM, ObjectKey: fmt.Sprintf("vc/vm/%d", i), Quantity: 2048, Unit: "MB", Edition: "std",
			Dims: map[string]string{"vm": fmt.Sprintf("vm-%d", i), "host": fmt.Sprintf("esx-%d", i%64), "cluster": "c1", "datacenter": "dc1"}}
	}, func(o *collectors.Observation) { o.Quantity += 512 }) // a resize
	same := newMergeBench(b, newStore(b), "samehash", true, func(i int) collectors.Observation {
		return collectors.Observation{Metric: collectors.MetricVMProtected, ObjectKey: fmt.Sprintf("srm/vm/%d", i), Quantity: 1, Unit: "count",
			Dims: map[string]string{"policy": "gold"}}
	}, func(o *collectors.Observation) { // moved to the other protection policy
		if o.Dims["policy"] == "gold" {
			o.Dims = map[string]string{"policy": "silver"}
		} else {
			o.Dims = map[string]string{"policy": "gold"}
		}
	})

	b.Run("distinct", distinct.run)
	b.Run("samehash", same.run)
	b.Run("copy", func(b *testing.B) {
		ctx := context.Background()
		if _, err := distinct.s.Pool().Exec(ctx, `CREATE TABLE IF NOT EXISTS copy_baseline (product_id bigint, metric text, object_key text,
			first_hour timestamptz, last_hour timestamptz, quantity double precision, unit text, edition text, dims_hash bytea, dims jsonb)`); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			rows := make([][]any, 0, len(distinct.obs))
			for _, o := range distinct.obs {
				hash, dims := store.StateHash(o)
				rows = append(rows, []any{distinct.pid, o.Metric, o.ObjectKey, distinct.hour, distinct.hour, o.Quantity, o.Unit, o.Edition, hash, string(dims)})
			}
			if _, err := distinct.s.Pool().CopyFrom(ctx, pgx.Identifier{"copy_baseline"},
				[]string{"product_id", "metric", "object_key", "first_hour", "last_hour", "quantity", "unit", "edition", "dims_hash", "dims"},
				pgx.CopyFromRows(rows)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// mergeBench is one store with a month of history for benchObjects objects,
// committed hour after hour across the runs the testing package makes.
type mergeBench struct {
	s      *store.Store
	pid    int64
	obs    []collectors.Observation
	change func(*collectors.Observation)
	next   int       // the next hour to commit, after h0
	hour   time.Time // the last hour committed
}

// newMergeBench builds the history of object(0..benchObjects-1), whose keys
// must be a common prefix and the object's number. With shared, every span
// holds one of two states (object(0)'s and the one change makes of it) that
// all objects share; otherwise each span has a state of its own.
func newMergeBench(b *testing.B, s *store.Store, name string, shared bool, object func(i int) collectors.Observation, change func(*collectors.Observation)) *mergeBench {
	b.Helper()
	ctx := context.Background()
	m := &mergeBench{s: s, change: change, obs: make([]collectors.Observation, benchObjects)}
	m.pid = addProduct(b, m.s)
	for i := range m.obs {
		m.obs[i] = object(i)
	}

	// A month of history written with SQL in one go: object i changes every
	// benchObjects/benchChanging = 50 hours, so it has about 15 spans. Each
	// span's state is the object's own (its name, a quantity) or, for
	// samehash, one of the two states every object shares.
	stateA, stateB := m.obs[0], m.obs[0]
	change(&stateB)
	_, dimsA := store.StateHash(stateA)
	_, dimsB := store.StateHash(stateB)
	prefix := strings.TrimSuffix(m.obs[0].ObjectKey, "0")
	_, err := m.s.ImportSpans(ctx, `
		SELECT $1::bigint, $6::text, $7 || i, $2::timestamptz + make_interval(hours => lo), $2::timestamptz + make_interval(hours => hi),
		       CASE WHEN $8 THEN $9::double precision ELSE 1024 * (1 + k % 4) END, $10::text, $11::text,
		       CASE WHEN NOT $8 THEN jsonb_build_object('vm', 'vm-' || i) WHEN k % 2 = 0 THEN $12::jsonb ELSE $13::jsonb END
		  FROM generate_series(0, $3 - 1) AS i,
		       LATERAL (SELECT k, greatest(0, (i / $4) + (k - 1) * 50) AS lo, least($5 - 2, (i / $4) + k * 50 - 1) AS hi
		                  FROM generate_series(0, 15) AS k) AS p
		 WHERE lo <= hi`, m.pid, h0, benchObjects, benchChanging, benchMonthHour,
		stateA.Metric, prefix, shared, stateA.Quantity, stateA.Unit, stateA.Edition,
		string(dimsA), string(dimsB))
	if err != nil {
		b.Fatal(err)
	}
	m.next = benchMonthHour - 1
	m.commit(b) // the current state of every object
	if _, err := m.s.Pool().Exec(ctx, `VACUUM ANALYZE span_objects, spans, span_states, span_names`); err != nil {
		b.Fatal(err)
	}
	var n int
	_ = m.s.Pool().QueryRow(ctx, `SELECT count(*) FROM usage_spans`).Scan(&n)
	b.Logf("%s: store holds %d spans for %d objects", name, n, benchObjects)
	return m
}

// commit claims and commits the next hour.
func (m *mergeBench) commit(b *testing.B) {
	ctx := context.Background()
	m.hour = h0.Add(time.Duration(m.next) * time.Hour)
	m.next++
	if c, err := m.s.ClaimHour(ctx, m.pid, m.hour, "bench", time.Hour); err != nil || !c.Claimed {
		b.Fatal(c, err)
	}
	if _, err := m.s.CommitHour(ctx, m.pid, m.hour, "bench", m.obs); err != nil {
		b.Fatal(err)
	}
}

func (m *mergeBench) run(b *testing.B) {
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := 0; j < benchChanging; j++ { // 2% of the objects change this hour
			m.change(&m.obs[(m.next*benchChanging+j)%len(m.obs)])
		}
		b.StartTimer()
		m.commit(b)
	}
}

// BenchmarkCommitHourSmall measures the fixed cost of a commit: one hour of
// 200 small products (25 observations each), committed one after the other
// (the claims are made untimed).
func BenchmarkCommitHourSmall(b *testing.B) {
	const products, perProduct = 200, 25
	s := newStore(b)
	ctx := context.Background()
	pids := make([]int64, products)
	for i := range pids {
		pids[i] = addProduct(b, s)
	}
	obs := make([]collectors.Observation, perProduct)
	for i := range obs {
		obs[i] = vm(fmt.Sprintf("vc/vm/%d", i), 2048, fmt.Sprintf("vm-%d", i))
	}
	next := 0
	commitAll := func() { // the claims are not timed
		hr := hour(next)
		next++
		b.StopTimer()
		for _, pid := range pids {
			if c, err := s.ClaimHour(ctx, pid, hr, "bench", time.Hour); err != nil || !c.Claimed {
				b.Fatal(c, err)
			}
		}
		b.StartTimer()
		for _, pid := range pids {
			if _, err := s.CommitHour(ctx, pid, hr, "bench", obs); err != nil {
				b.Fatal(err)
			}
		}
	}
	commitAll()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		commitAll()
	}
}
