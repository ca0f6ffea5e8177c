package console

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strconv"
	"strings"

	"github.com/usagemeter/usagemeter/internal/web/ui"
)

// Bar is one bar of a chart: a day and its figure. A bar with Missing set
// is a day without figures yet (later in the month): drawn as a dot on the
// axis, not as zero.
type Bar struct {
	Label   string // the tooltip's name of the bar, e.g. "2026-11-03"
	Tick    string // the label under the bar, or "" for none
	Value   float64
	Missing bool
}

// Chart is a small bar chart, drawn on the server as inline SVG: no
// script, no style attribute (the console's CSP allows neither inline),
// the bars as one path (a dashboard draws hundreds of charts), a <title>
// that says what it shows and its figures' range for screen readers and
// on hover. Its size scales with the page (viewBox).
type Chart struct {
	Title string // e.g. "vCenter vc1: average vRAM MB per day"
	Unit  string
	Bars  []Bar
}

const (
	chartW, chartH    = 320, 96
	chartLeft, chartB = 34, 14 // room for the scale on the left, the ticks below
)

// SVG renders the chart.
func (c Chart) SVG() template.HTML {
	var b strings.Builder
	max, min, last, n := 0.0, math.Inf(1), "", 0
	for _, bar := range c.Bars {
		if bar.Missing {
			continue
		}
		max, min, n = math.Max(max, bar.Value), math.Min(min, bar.Value), n+1
		last = bar.Label + " " + ui.Number(bar.Value)
	}
	title := c.Title
	if n > 0 {
		title += fmt.Sprintf(": %d days, from %s to %s %s, last %s", n, ui.Number(min), ui.Number(max), c.Unit, last)
	}
	top := niceCeil(max)
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" preserveAspectRatio="xMinYMid meet">`,
		chartW, chartH, html.EscapeString(title))
	fmt.Fprintf(&b, `<title>%s</title>`, html.EscapeString(title))
	plotH := float64(chartH - chartB - 4)
	base := float64(chartH - chartB)
	// Scale: the top value and zero, with a grid line at the top.
	fmt.Fprintf(&b, `<path class="gridline" d="M%d 4H%d"/><path class="axis" d="M%d %gH%d"/>`, chartLeft, chartW, chartLeft, base, chartW)
	fmt.Fprintf(&b, `<text class="scale" x="%d" y="10" text-anchor="end">%s</text>`, chartLeft-4, html.EscapeString(short(top)))
	fmt.Fprintf(&b, `<text class="scale" x="%d" y="%g" text-anchor="end">0</text>`, chartLeft-4, base)
	if len(c.Bars) > 0 {
		slot := float64(chartW-chartLeft) / float64(len(c.Bars))
		w := math.Max(slot*0.7, 1)
		var bars, missing, ticks strings.Builder
		for i, bar := range c.Bars {
			x := float64(chartLeft) + float64(i)*slot + (slot-w)/2
			switch {
			case bar.Missing:
				fmt.Fprintf(&missing, "M%.1f %gh%.1fv-1.5h-%.1fZ", x, base-1, w, w)
			default:
				h := 0.0
				if top > 0 {
					h = bar.Value / top * plotH
				}
				if bar.Value > 0 && h < 1 {
					h = 1
				}
				fmt.Fprintf(&bars, "M%.1f %gV%.1fh%.1fV%gZ", x, base, base-h, w, base)
			}
			if bar.Tick != "" {
				fmt.Fprintf(&ticks, `<text class="tick" x="%.1f" y="%d" text-anchor="middle">%s</text>`, x+w/2, chartH-2, html.EscapeString(bar.Tick))
			}
		}
		if bars.Len() > 0 {
			fmt.Fprintf(&b, `<path class="bar" d="%s"/>`, bars.String())
		}
		if missing.Len() > 0 {
			fmt.Fprintf(&b, `<path class="missing" d="%s"/>`, missing.String())
		}
		b.WriteString(ticks.String())
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // #nosec: every text above is escaped
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (0 stays 0).
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 0
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v*(1-1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// short writes v compactly for a scale: 1.5k, 20M.
func short(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e9:
		return strconv.FormatFloat(v/1e9, 'f', -1, 64) + "G"
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case a >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
