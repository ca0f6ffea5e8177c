package console

import (
	"encoding/xml"
	"strconv"
	"strings"
	"testing"
)

type svgDoc struct {
	Label string `xml:"aria-label,attr"`
	Rects []struct {
		Y      string `xml:"y,attr"`
		Height string `xml:"height,attr"`
		Title  string `xml:"title"`
	} `xml:"rect"`
	Circles []struct {
		Title string `xml:"title"`
	} `xml:"circle"`
	Texts []string `xml:"text"`
}

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
	if doc.Label != c.Title {
		t.Errorf("aria-label %q, want %q (escaped in the markup, intact once parsed)", doc.Label, c.Title)
	}
	if len(doc.Rects) != 3 || len(doc.Circles) != 1 {
		t.Fatalf("%d bars and %d missing days, want 3 and 1", len(doc.Rects), len(doc.Circles))
	}
	h := func(i int) float64 { v, _ := strconv.ParseFloat(doc.Rects[i].Height, 64); return v }
	if h(1) <= 0 || h(0)*2 < h(1)-0.2 || h(0)*2 > h(1)+0.2 {
		t.Errorf("bar heights %v and %v: the second should be twice the first", h(0), h(1))
	}
	if h(2) != 0 {
		t.Errorf("a zero day is drawn %v high", h(2))
	}
	if doc.Rects[1].Title != "2026-11-02: 80 GB" {
		t.Errorf("tooltip %q", doc.Rects[1].Title)
	}
	if doc.Circles[0].Title != "2026-11-04: no figures yet" {
		t.Errorf("missing day's tooltip %q", doc.Circles[0].Title)
	}
	if !strings.Contains(strings.Join(doc.Texts, " "), "100") {
		t.Errorf("the scale's top should be 100 (80 rounded up), texts %q", doc.Texts)
	}
	if err := xml.Unmarshal([]byte(Chart{Title: "empty"}.SVG()), &doc); err != nil {
		t.Errorf("an empty chart is not well-formed: %v", err)
	}
}

func TestNumber(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 1234567: "1,234,567", 12.5: "12.5", 0.004: "0", -1500.256: "-1,500.26", 999.999: "1,000", 100: "100"} {
		if got := Number(v); got != want {
			t.Errorf("Number(%v) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]float64{0: 0, 0.3: 0.5, 80: 100, 101: 200, 5: 5, 7: 10, 2500: 5000} {
		if got := niceCeil(v); got != want {
			t.Errorf("niceCeil(%v) = %v, want %v", v, got, want)
		}
	}
}
