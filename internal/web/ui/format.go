package ui

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Times are shown in UTC, as usagemeter counts its hours: the same on
// every admin's screen, whatever their browser's zone.

func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func hour(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:00")
}

func whenPtr(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return when(*t)
}

func agoPtr(now time.Time, t *time.Time) string {
	if t == nil {
		return "never"
	}
	return ago(now, *t)
}

// ago says how long before now t was, roughly: "3 h ago", "in 2 d".
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	suffix, prefix := " ago", ""
	if d < 0 {
		d, suffix, prefix = -d, "", "in "
	}
	switch {
	case d < time.Minute:
		if suffix == "" {
			return "in under a minute"
		}
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%s%d min%s", prefix, int(d.Minutes()), suffix)
	case d < 48*time.Hour:
		return fmt.Sprintf("%s%d h%s", prefix, int(d.Hours()), suffix)
	}
	return fmt.Sprintf("%s%d days%s", prefix, int(d.Hours()/24), suffix)
}

// duration writes d for a person: 850 ms, 12.3 s, 4 min 5 s.
func duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
}

// plural is "1 product", "3 products".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// query builds a query string from pairs of key and value, leaving out
// empty values: query "product" 3 "page" 2 -> "?product=3&page=2".
func query(kv ...any) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		s := fmt.Sprint(kv[i+1])
		if s != "" && s != "0" {
			v.Set(fmt.Sprint(kv[i]), s)
		}
	}
	if len(v) == 0 {
		return "?"
	}
	return "?" + v.Encode()
}

// Number writes v for a person: thousands separated by commas, at most two
// decimals, none for whole numbers.
func Number(v float64) string {
	neg := v < 0
	v = math.Abs(v)
	s := strconv.FormatFloat(math.Round(v*100)/100, 'f', 2, 64)
	s = strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
	whole, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	if neg && s != "0" {
		b.WriteByte('-')
	}
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if frac != "" {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String()
}

// num writes any number (or a pointer to one) for a person; nil is "".
func num(v any) string {
	switch n := v.(type) {
	case float64:
		return Number(n)
	case int:
		return Number(float64(n))
	case int64:
		return Number(float64(n))
	case *int:
		if n != nil {
			return Number(float64(*n))
		}
	case *int64:
		if n != nil {
			return Number(float64(*n))
		}
	case *float64:
		if n != nil {
			return Number(*n)
		}
	default:
		return fmt.Sprint(v)
	}
	return ""
}
