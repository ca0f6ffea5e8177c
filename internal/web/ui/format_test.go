package ui

import (
	"testing"
	"time"
)

func TestNumber(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 1234567: "1,234,567", 12.5: "12.5", 0.004: "0", -1500.256: "-1,500.26", 999.999: "1,000", 100: "100"} {
		if got := Number(v); got != want {
			t.Errorf("Number(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestAgoAndSafeNext(t *testing.T) {
	now := time.Date(2026, 3, 20, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{-30 * time.Second: "just now", -5 * time.Minute: "5 min ago", -3 * time.Hour: "3 h ago", 72 * time.Hour: "in 3 days"} {
		if got := ago(now, now.Add(d)); got != want {
			t.Errorf("ago(%v) = %q, want %q", d, got, want)
		}
	}
	for next, want := range map[string]string{"/months/2026-03": "/months/2026-03", "//evil.example/": "/", "https://evil.example/": "/", "/login?next=/": "/", "": "/", `/\evil`: "/"} {
		if got := SafeNext(next); got != want {
			t.Errorf("SafeNext(%q) = %q, want %q", next, got, want)
		}
	}
}
