package scheduler

import (
	"context"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics exports collection results to Prometheus. It is an Observer.
type Metrics struct {
	lastSuccess *prometheus.GaugeVec
	duration    *prometheus.GaugeVec
	failures    *prometheus.CounterVec
	success     *prometheus.GaugeVec
	objects     *prometheus.GaugeVec
}

// NewMetrics registers the collection metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "usagemeter_collection_last_success_hour_seconds", Help: "Unix time of the last hour collected successfully, per product."}, []string{"product", "kind"}),
		duration:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "usagemeter_collection_duration_seconds", Help: "Duration of the last collection attempt, per product."}, []string{"product", "kind"}),
		failures:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "usagemeter_collection_failures_total", Help: "Failed collection hours, per product."}, []string{"product", "kind"}),
		success:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "usagemeter_collection_success", Help: "1 if the last collection of the product succeeded, 0 if it failed."}, []string{"product", "kind"}),
		objects:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "usagemeter_collection_objects", Help: "Observations in the last successful collection, per product and metric."}, []string{"product", "kind", "metric"}),
	}
	reg.MustRegister(m.lastSuccess, m.duration, m.failures, m.success, m.objects)
	return m
}

// Observe implements Observer.
func (m *Metrics) Observe(_ context.Context, r Result) {
	if r.Skipped != "" {
		return
	}
	id, kind := strconv.FormatInt(r.Product.ID, 10), r.Product.Kind
	m.duration.WithLabelValues(id, kind).Set(r.Duration.Seconds())
	if r.Err != nil {
		m.failures.WithLabelValues(id, kind).Inc()
		m.success.WithLabelValues(id, kind).Set(0)
		return
	}
	m.success.WithLabelValues(id, kind).Set(1)
	m.lastSuccess.WithLabelValues(id, kind).Set(float64(r.Hour.Unix()))
	for metric, n := range r.Objects {
		m.objects.WithLabelValues(id, kind, metric).Set(float64(n))
	}
}
