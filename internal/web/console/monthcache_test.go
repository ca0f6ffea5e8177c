package console

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/internal/web/service"
)

// TestMonthCache: figures under a minute old are served as they are; up to
// ten minutes old they are served while one reload runs in the
// background; older (or none yet) they are reloaded before answering.
func TestMonthCache(t *testing.T) {
	var loads atomic.Int32
	release := make(chan struct{})
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	m := &monthCache{now: func() time.Time { return now }, load: func(context.Context) (service.MonthToDate, error) {
		n := loads.Add(1)
		if n == 2 {
			<-release // the background reload waits for the test
		}
		return service.MonthToDate{Hours: int(n)}, nil
	}}
	ctx := context.Background()
	get := func() int {
		v, _, err := m.get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v.Hours
	}
	if got := get(); got != 1 || loads.Load() != 1 {
		t.Fatalf("first view: figures %d after %d loads, want a load", got, loads.Load())
	}
	now = now.Add(30 * time.Second)
	if got := get(); got != 1 || loads.Load() != 1 {
		t.Fatalf("30 s later: figures %d after %d loads, want the same without a load", got, loads.Load())
	}
	now = now.Add(2 * time.Minute)
	if got := get(); got != 1 {
		t.Fatalf("stale: figures %d, want the old ones at once", got)
	}
	if got := get(); got != 1 {
		t.Fatalf("stale again: figures %d", got)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for get() != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the background reload never landed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := loads.Load(); n != 2 {
		t.Fatalf("%d loads, want one background reload for the stale views", n)
	}
	now = now.Add(time.Hour)
	if got := get(); got != 3 {
		t.Fatalf("an hour later: figures %d, want a load before answering", got)
	}
}
