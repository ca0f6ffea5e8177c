package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
)

// BenchmarkCommitHour measures the span merge of one hour of 50,000 VM
// observations into a store already holding a month of spans for them, with
// 2% of the VMs changing each hour (DESIGN.md, issue "Foundation").
func BenchmarkCommitHour(b *testing.B) {
	const vms, changePerHour, monthHours = 50000, 1000, 720
	s := newStore(b)
	ctx := context.Background()
	pid := addProduct(b, s)

	// A month of history: VM i changes every vms/changePerHour = 50 hours, so
	// it has about 15 spans; the history is written with SQL in one go.
	_, err := s.Pool().Exec(ctx, `
		INSERT INTO usage_spans (product_id, metric, object_key, first_hour, last_hour, quantity, unit, edition, dims_hash, dims)
		SELECT $1, 'vm.vram', 'vc/vm/' || i, $2::timestamptz + make_interval(hours => lo), $2::timestamptz + make_interval(hours => hi),
		       1024 * (1 + k % 4), 'MB', 'std', decode(md5(i::text || '/' || k), 'hex'), jsonb_build_object('vm', 'vm-' || i)
		  FROM generate_series(0, $3 - 1) AS i,
		       LATERAL (SELECT k, greatest(0, (i / $4) + (k - 1) * 50) AS lo, least($5 - 2, (i / $4) + k * 50 - 1) AS hi
		                  FROM generate_series(0, 15) AS k) AS p
		 WHERE lo <= hi`, pid, h0, vms, changePerHour, monthHours)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `ANALYZE usage_spans`); err != nil {
		b.Fatal(err)
	}
	var n int
	_ = s.Pool().QueryRow(ctx, `SELECT count(*) FROM usage_spans`).Scan(&n)

	obs := make([]collectors.Observation, vms)
	for i := range obs {
		obs[i] = collectors.Observation{Metric: collectors.MetricVMVRAM, ObjectKey: fmt.Sprintf("vc/vm/%d", i), Quantity: 2048, Unit: "MB", Edition: "std",
			Dims: map[string]string{"vm": fmt.Sprintf("vm-%d", i), "host": fmt.Sprintf("esx-%d", i%64), "cluster": "c1", "datacenter": "dc1"}}
	}
	commit := func(h int) {
		hr := h0.Add(time.Duration(h) * time.Hour)
		if c, err := s.ClaimHour(ctx, pid, hr, "bench", time.Hour); err != nil || !c.Claimed {
			b.Fatal(c, err)
		}
		if _, err := s.CommitHour(ctx, pid, hr, "bench", obs); err != nil {
			b.Fatal(err)
		}
	}
	commit(monthHours - 1) // the current state of every VM
	b.Logf("store holds %d spans of history for %d VMs", n+vms, vms)

	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h := monthHours + i
		b.StopTimer()
		for j := 0; j < changePerHour; j++ { // 2% of VMs resize this hour
			o := &obs[(h*changePerHour+j)%vms]
			o.Quantity += 512
		}
		b.StartTimer()
		commit(h)
	}
}
