package console

import (
	"net/http"
	"strconv"
	"time"

	"github.com/usagemeter/usagemeter/internal/web/service"
)

// dashProduct is one product's line of the dashboard.
type dashProduct struct {
	service.Product
	Metrics []service.MetricMonth
	Chart   *Chart // the first metric's daily figures this month
}

type dashboardData struct {
	Info     service.ApplianceInfo
	Products []dashProduct
	Alerts   []service.Alert
	Month    service.MonthToDate
	MonthAt  time.Time        // when the month's figures were computed
	Names    map[int64]string // product id -> name, for alerts
	Active   int
	Failing  int // products with an open alert
}

func (c *Console) dashboard(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var d dashboardData
	var err error
	if d.Info, err = c.svc.Appliance(ctx); err != nil {
		c.pageError(w, r, err)
		return
	}
	ps, err := c.svc.Products(ctx)
	if err != nil {
		c.pageError(w, r, err)
		return
	}
	if d.Alerts, err = c.svc.Alerts(ctx, true); err != nil {
		c.pageError(w, r, err)
		return
	}
	if d.Month, d.MonthAt, err = c.month.get(ctx); err != nil {
		c.pageError(w, r, err)
		return
	}
	byID := map[int64][]service.MetricMonth{}
	for _, pm := range d.Month.Products {
		byID[pm.ProductID] = pm.Metrics
	}
	days := monthDays(d.Month)
	d.Names = map[int64]string{}
	for _, p := range ps {
		d.Names[p.ID] = productName(p.Kind, p.Endpoint)
		if p.Active {
			d.Active++
		}
		if p.OpenAlerts > 0 {
			d.Failing++
		}
		dp := dashProduct{Product: p, Metrics: byID[p.ID]}
		if len(dp.Metrics) > 0 {
			dp.Chart = dayChart(d.Names[p.ID], dp.Metrics[0], days)
		}
		d.Products = append(d.Products, dp)
	}
	c.render(w, r, "dashboard", "Dashboard", d, nil)
}

// monthDays lists the days of the month of m (YYYY-MM-DD) and how many
// of them have begun.
type daySpan struct {
	Days  []string
	Begun int
}

func monthDays(m service.MonthToDate) daySpan {
	loc, err := time.LoadLocation(m.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	start := m.From.In(loc)
	var s daySpan
	for d := start; d.Month() == start.Month(); d = d.AddDate(0, 0, 1) {
		s.Days = append(s.Days, d.Format(time.DateOnly))
		if d.Before(m.To) {
			s.Begun++
		}
	}
	return s
}

// dayChart draws a metric's daily averages over the whole month: days
// not begun are marked missing, begun days without figures are zero.
func dayChart(name string, mm service.MetricMonth, days daySpan) *Chart {
	vals := map[string]float64{}
	for _, d := range mm.Days {
		vals[d.Day] = d.Average
	}
	ch := &Chart{Title: name + ": " + mm.Metric + " per day (average, " + mm.Unit + ")", Unit: mm.Unit}
	for i, day := range days.Days {
		b := Bar{Label: day, Value: vals[day], Missing: i >= days.Begun}
		if n := i + 1; n == 1 || n%5 == 0 {
			b.Tick = strconv.Itoa(n)
		}
		ch.Bars = append(ch.Bars, b)
	}
	return ch
}

func (c *Console) monthCSV(w http.ResponseWriter, r *http.Request) {
	m, err := c.svc.MonthToDate(r.Context())
	if err != nil {
		c.pageError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="usage-`+m.Month+`-to-date.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	if err := service.WriteMonthToDateCSV(w, m); err != nil {
		c.log.Error("console: writing the month's CSV", "err", err)
	}
}
