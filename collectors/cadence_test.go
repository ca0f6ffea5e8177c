package collectors_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
)

func noCollector(collectors.Target) (collectors.Collector, error) { return nil, nil }

// TestCadence: a kind's Every is its cadence in hours (1 when unset), it
// must be whole hours dividing a day, and a kind with a longer cadence is
// due only in the UTC hours that are multiples of it.
func TestCadence(t *testing.T) {
	collectors.Register(collectors.Kind{Name: "cadence-test-6h", DisplayName: "Six-hourly", Every: 6 * time.Hour, New: noCollector})
	collectors.Register(collectors.Kind{Name: "cadence-test-1h", DisplayName: "Hourly", Every: time.Hour, New: noCollector})
	collectors.Register(collectors.Kind{Name: "cadence-test-default", DisplayName: "Default", New: noCollector})
	for kind, want := range map[string]int{"cadence-test-6h": 6, "cadence-test-1h": 1, "cadence-test-default": 1, "no-such-kind": 1} {
		if got := collectors.Cadence(kind); got != want {
			t.Errorf("Cadence(%s) = %d, want %d", kind, got, want)
		}
	}
	names, hours := collectors.Cadences()
	if i := slices.Index(names, "cadence-test-6h"); i < 0 || hours[i] != 6 || slices.Contains(names, "cadence-test-1h") || slices.Contains(names, "cadence-test-default") {
		t.Errorf("Cadences = %v %v", names, hours)
	}
	for h := range 24 {
		at := time.Date(2026, 3, 29, h, 0, 0, 0, time.UTC)
		if collectors.Due("cadence-test-6h", at) != (h%6 == 0) || !collectors.Due("cadence-test-default", at) {
			t.Errorf("due at %02d:00 UTC: 6h %v, default %v", h, collectors.Due("cadence-test-6h", at), collectors.Due("cadence-test-default", at))
		}
	}
	// The hour is UTC's, whatever the location of the time given.
	berlin, _ := time.LoadLocation("Europe/Berlin")
	if !collectors.Due("cadence-test-6h", time.Date(2026, 3, 1, 7, 0, 0, 0, berlin)) {
		t.Error("07:00 in Berlin (06:00 UTC) is not due")
	}
	for i, bad := range []time.Duration{-time.Hour, 90 * time.Minute, 5 * time.Hour, 48 * time.Hour} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("cadence %s accepted", bad)
				}
			}()
			collectors.Register(collectors.Kind{Name: fmt.Sprintf("cadence-test-bad-%d", i), DisplayName: "Bad", Every: bad, New: noCollector})
		}()
	}
}
