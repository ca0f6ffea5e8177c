package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/store"
)

// TestMergeSameHash commits 3,000 objects that share their state hash (same
// quantity, unit and dims, different keys) through extensions, changes, gaps,
// late hours that join spans and a recommit, and checks every span against a
// model of the hours. A merge joining spans to observations on the hash
// multiplied such objects (quadratic); this test guards the result, not the
// time.
func TestMergeSameHash(t *testing.T) {
	const n = 3000
	s := newStore(t)
	pid := addProduct(t, s)

	// state[h](i) is object i's protection policy at hour h.
	all := func(p string) func(int) string { return func(int) string { return p } }
	tenth := func(i int) string { // every tenth object moved to silver
		if i%10 == 0 {
			return "silver"
		}
		return "gold"
	}
	state := map[int]func(int) string{
		0: all("gold"),
		1: all("gold"),
		2: tenth,
		3: func(i int) string { // late; every seventh object in bronze for that hour only
			if i%7 == 0 {
				return "bronze"
			}
			return tenth(i)
		},
		4: tenth, 5: tenth, 6: tenth,
	}
	obs := func(h int) []collectors.Observation {
		out := make([]collectors.Observation, n)
		for i := range out {
			out[i] = collectors.Observation{Metric: collectors.MetricVMProtected, ObjectKey: fmt.Sprintf("srm/vm/%d", i),
				Quantity: 1, Unit: "count", Dims: map[string]string{"policy": state[h](i)}}
		}
		return out
	}
	bronze := (n + 6) / 7
	steps := []struct {
		hour int
		want store.MergeResult
	}{
		{0, store.MergeResult{Inserted: n}},
		{1, store.MergeResult{Extended: n}},
		{2, store.MergeResult{Extended: n - n/10, Inserted: n / 10}}, // a change opens spans
		{4, store.MergeResult{Inserted: n}},                          // after a gap
		{6, store.MergeResult{Inserted: n}},                          // after another gap
		{5, store.MergeResult{Extended: n, Joined: n}},               // late: [4,5] joins [6,6]
		{3, store.MergeResult{Extended: n - bronze, Inserted: bronze, Joined: n - bronze}},
	}
	var committed []int
	for _, st := range steps {
		got := collect(t, s, pid, hour(st.hour), obs(st.hour)...)
		st.want.Observations = n
		if got != st.want {
			t.Fatalf("hour %d: %+v, want %+v", st.hour, got, st.want)
		}
		committed = append(committed, st.hour)
		assertModel(t, s, pid, n, state, committed)
	}

	if _, err := s.CommitHour(context.Background(), pid, hour(3), "test", obs(0)); !errors.Is(err, store.ErrCommitted) {
		t.Fatalf("recommit: %v, want ErrCommitted", err)
	}
	assertModel(t, s, pid, n, state, committed)
}

// assertModel compares the product's spans with the runs of consecutive
// committed hours in which each object kept its state.
func assertModel(t *testing.T, s *store.Store, pid int64, n int, state map[int]func(int) string, committed []int) {
	t.Helper()
	hours := slices.Sorted(slices.Values(committed))
	var want []string
	for i := 0; i < n; i++ {
		for j := 0; j < len(hours); {
			k := j
			for k+1 < len(hours) && hours[k+1] == hours[k]+1 && state[hours[k+1]](i) == state[hours[j]](i) {
				k++
			}
			want = append(want, fmt.Sprintf("srm/vm/%d [%d,%d] %s", i, hours[j], hours[k], state[hours[j]](i)))
			j = k + 1
		}
	}
	sp, err := s.Spans(context.Background(), pid)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range sp {
		got = append(got, fmt.Sprintf("%s [%d,%d] %s", x.ObjectKey, int(x.FirstHour.Sub(h0).Hours()), int(x.LastHour.Sub(h0).Hours()), x.Dims["policy"]))
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("after hours %v: %d spans, want %d; first difference: got %q, want %q", committed, len(got), len(want), got[i], want[i])
			}
		}
		t.Fatalf("after hours %v: %d spans, want %d", committed, len(got), len(want))
	}
}

// TestMergeSpanDeletedMeanwhile: the span a commit is about to extend is
// deleted by another transaction after the merge read it (as a late hour's
// join does); the object still gets its hour, as a new span.
func TestMergeSpanDeletedMeanwhile(t *testing.T) {
	s := newStore(t)
	pid := addProduct(t, s)
	ctx := context.Background()
	collect(t, s, pid, hour(0), vm("a", 1024, "x"))
	collect(t, s, pid, hour(1), vm("a", 1024, "x"))

	other, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(ctx)
	if _, err := other.Exec(ctx, `DELETE FROM usage_spans WHERE product_id = $1`, pid); err != nil {
		t.Fatal(err)
	}

	if c, err := s.ClaimHour(ctx, pid, hour(2), "test", time.Minute); err != nil || !c.Claimed {
		t.Fatal(c, err)
	}
	type result struct {
		r   store.MergeResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := s.CommitHour(ctx, pid, hour(2), "test", []collectors.Observation{vm("a", 1024, "x")})
		done <- result{r, err}
	}()
	// Wait until the merge waits for the deleting transaction's row lock.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var waiting bool
		if err := s.Pool().QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the merge never waited for the deleted span's lock")
		}
	}
	if err := other.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if want := (store.MergeResult{Observations: 1, Inserted: 1}); res.r != want {
		t.Fatalf("%+v, want %+v", res.r, want)
	}
	var got []string
	for _, v := range spans(t, s, pid) {
		got = append(got, fmt.Sprint(v))
	}
	if strings.Join(got, " ") != "{a 2 2 1024 x}" {
		t.Fatalf("spans %v, want the new [2, 2] only", got)
	}
}

// TestConcurrentCommitsStaging: products commit concurrently through the
// pool, each connection reusing its staging table; after commits that rolled
// back on it (unclaimed hours), and across products sharing connections, each
// product gets exactly its own observations.
func TestConcurrentCommitsStaging(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	const products, hours, objects = 12, 3, 40
	pids := make([]int64, products)
	for i := range pids {
		pids[i] = addProduct(t, s)
	}
	obs := func(p int) []collectors.Observation {
		out := make([]collectors.Observation, objects)
		for i := range out {
			out[i] = vm(fmt.Sprintf("p%d/vm/%d", p, i), float64(1024*(p+1)), fmt.Sprintf("vm-%d", i))
		}
		return out
	}
	errs := make(chan error, products)
	for p, pid := range pids {
		go func() {
			errs <- func() error {
				for h := 0; h < hours; h++ {
					if _, err := s.CommitHour(ctx, pid, hour(h), "test", obs(p)); !errors.Is(err, store.ErrNotClaimed) {
						return fmt.Errorf("unclaimed commit: %v", err)
					}
					if c, err := s.ClaimHour(ctx, pid, hour(h), "test", time.Minute); err != nil || !c.Claimed {
						return fmt.Errorf("claim: %+v %v", c, err)
					}
					r, err := s.CommitHour(ctx, pid, hour(h), "test", obs(p))
					if err != nil {
						return err
					}
					if want := (store.MergeResult{Observations: objects, Extended: objects}); h == 0 {
						want.Extended, want.Inserted = 0, objects
						if r != want {
							return fmt.Errorf("product %d hour %d: %+v", p, h, r)
						}
					} else if r != want {
						return fmt.Errorf("product %d hour %d: %+v", p, h, r)
					}
				}
				return nil
			}()
		}()
	}
	for range pids {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for p, pid := range pids {
		sp, err := s.Spans(ctx, pid)
		if err != nil {
			t.Fatal(err)
		}
		if len(sp) != objects {
			t.Fatalf("product %d: %d spans, want %d", p, len(sp), objects)
		}
		for _, x := range sp {
			if !strings.HasPrefix(x.ObjectKey, fmt.Sprintf("p%d/", p)) || x.Quantity != float64(1024*(p+1)) || !x.FirstHour.Equal(hour(0)) || !x.LastHour.Equal(hour(hours-1)) {
				t.Fatalf("product %d: span %+v", p, x)
			}
		}
	}
}
