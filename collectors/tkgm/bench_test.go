package tkgm

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/collectortest"
	"github.com/usagemeter/usagemeter/collectors/tkgm/simulator"
)

// benchFleet is a management cluster (3 control-plane machines, 2 workers)
// and 200 workload clusters of 50 machines (the last of 45): 10,000
// machines, each with a
// VM in the fake vCenter lookup (one in ten powered off).
func benchFleet() (simulator.State, fakeVMs) {
	vms := fakeVMs{}
	n := 0
	uuids := func(k int) []string {
		out := make([]string, k)
		for i := range out {
			out[i] = fmt.Sprintf("4237%04x-%04x-4000-8000-%012x", n>>16, n&0xffff, n)
			vms.add(out[i], n)
			n++
		}
		return out
	}
	mgmt := uuids(5)
	var workload [][]string
	for i := range 200 {
		workload = append(workload, uuids(50-5*(i/199)))
	}
	st := simulator.Fleet("bench-token", mgmt, workload...)
	for i := range st.Machines[:3] {
		st.Machines[i].ControlPlane = true
	}
	return st, vms
}

// BenchmarkCollect10000Machines: the two Cluster API lists paged through
// client-go against the simulator over TLS on loopback, parsed and joined
// to the vCenter's VMs. The vCenter side is a lookup in memory (the
// vcenter package's BenchmarkCollect measures its inventory read of 10,000
// VMs, the same retrieve Paired makes).
func BenchmarkCollect10000Machines(b *testing.B) {
	st, vms := benchFleet()
	for _, tc := range []struct {
		metric string
		page   int
	}{{MetricVRAM, DefaultPageSize}, {MetricVRAM, MaxPageSize}, {MetricCores, DefaultPageSize}} {
		b.Run(fmt.Sprintf("metric=%s/page_size=%d", tc.metric, tc.page), func(b *testing.B) {
			_, c := startWith(b, st, fmt.Sprintf(`{"page_size": %d, "metric": %q}`, tc.page, tc.metric), &collectors.Target{Kind: "vcenter", InstanceID: vcUUID})
			c.vms = func(context.Context) (lookup, error) { return vms, nil }
			want := 9000 // one VM in ten is powered off
			if tc.metric == MetricCores {
				want = 8
			}
			before := cpuTime()
			collectortest.Bench(b, c, hour, func(n int) bool { return n == want })
			// The machine is shared: CPU time says more than wall time. It
			// includes the simulator's (in this process) encoding.
			b.ReportMetric(float64((cpuTime()-before).Milliseconds())/float64(b.N), "cpu-ms/op")
		})
	}
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
