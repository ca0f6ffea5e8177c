package console

import (
	"encoding/xml"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

type svgDoc struct {
	Label string `xml:"aria-label,attr"`
	Title string `xml:"title"`
	Paths []struct {
		Class string `xml:"class,attr"`
		D     string `xml:"d,attr"`
	} `xml:"path"`
	Texts []string `xml:"text"`
}

// barTops reads the bars' tops from a bar path: each bar is
// "Mx baseVtop hw Vbase Z".
var barRe = regexp.MustCompile(`M[0-9.]+ ([0-9.]+)V([0-9.]+)h[0-9.]+V[0-9.]+Z`)

func TestChartSVG(t *testing.T) {
	c := Chart{Title: `vCenter <vc1> & "friends"`, Unit: "GB", Bars: []Bar{
		{Label: "2026-11-01", Tick: "1", Value: 40},
		{Label: "2026-11-02", Value: 80},
		{Label: "2026-11-03", Value: 0},
		{Label: "2026-11-04", Tick: "4", Missing: true},
	}}
	out := string(c.SVG())
	if strings.Contains(out, "style=") || strings.Contains(out, "<script") {
		t.Fatalf("the chart carries inline style or script, which the CSP refuses: %s", out)
	}
	var doc svgDoc
	if err := xml.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not well-formed SVG: %v\n%s", err, out)
	}
	want := `vCenter <vc1> & "friends": 3 days, from 0 to 80 GB, last 2026-11-03 0`
	if doc.Label != want || doc.Title != want {
		t.Errorf("aria-label %q, title %q, want %q (escaped in the markup, intact once parsed)", doc.Label, doc.Title, want)
	}
	var bars, missing string
	for _, p := range doc.Paths {
		switch p.Class {
		case "bar":
			bars = p.D
		case "missing":
			missing = p.D
		}
	}
	m := barRe.FindAllStringSubmatch(bars, -1)
	if len(m) != 3 || strings.Count(missing, "M") != 1 {
		t.Fatalf("%d bars and %d missing days (%q, %q), want 3 and 1", len(m), strings.Count(missing, "M"), bars, missing)
	}
	h := func(i int) float64 {
		base, _ := strconv.ParseFloat(m[i][1], 64)
		top, _ := strconv.ParseFloat(m[i][2], 64)
		return base - top
	}
	if h(1) <= 0 || h(0)*2 < h(1)-0.2 || h(0)*2 > h(1)+0.2 {
		t.Errorf("bar heights %v and %v: the second should be twice the first", h(0), h(1))
	}
	if h(2) != 0 {
		t.Errorf("a zero day is drawn %v high", h(2))
	}
	if !strings.Contains(strings.Join(doc.Texts, " "), "100") {
		t.Errorf("the scale's top should be 100 (80 rounded up), texts %q", doc.Texts)
	}
	if err := xml.Unmarshal([]byte(Chart{Title: "empty"}.SVG()), &doc); err != nil {
		t.Errorf("an empty chart is not well-formed: %v", err)
	}
}

func TestNiceCeil(t *testing.T) {
	for v, want := range map[float64]float64{0: 0, 0.3: 0.5, 80: 100, 101: 200, 5: 5, 7: 10, 2500: 5000} {
		if got := niceCeil(v); got != want {
			t.Errorf("niceCeil(%v) = %v, want %v", v, got, want)
		}
	}
}
