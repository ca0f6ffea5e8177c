package scheduler

import (
	"context"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/store"
)

// Metrics exports collection results to Prometheus. It is an Observer.
type Metrics struct {
	lastSuccess *prometheus.GaugeVec
	duration    *prometheus.GaugeVec
	failures    *prometheus.CounterVec
	success     *prometheus.GaugeVec
	objects     *prometheus.GaugeVec
}

// ProductLabels are the labels of every per-product metric: the product id,
// its kind and its host, so a dashboard names the product without a lookup.
var ProductLabels = []string{"product", "kind", "host"}

// ProductLabelValues are p's values of ProductLabels.
func ProductLabelValues(p store.Product) []string {
	return []string{strconv.FormatInt(p.ID, 10), p.Kind, collectors.EndpointHost(p.Endpoint)}
}

// NewMetrics registers the collection metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "usagemeter_collection_last_success_hour_timestamp_seconds", Help: "Start of the last hour collected successfully (Unix time), per product."}, ProductLabels),
		duration:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "usagemeter_collection_duration_seconds", Help: "Duration of the last collection attempt, per product."}, ProductLabels),
		failures:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "usagemeter_collection_failures_total", Help: "Failed collection hours, per product."}, ProductLabels),
		success:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "usagemeter_collection_success", Help: "1 if the last collection of the product succeeded, 0 if it failed."}, ProductLabels),
		objects:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "usagemeter_collection_objects", Help: "Observations in the last successful collection, per product and metric."}, append(ProductLabels[:3:3], "metric")),
	}
	reg.MustRegister(m.lastSuccess, m.duration, m.failures, m.success, m.objects)
	return m
}

// Observe implements Observer.
func (m *Metrics) Observe(_ context.Context, r Result) {
	if r.Skipped != "" {
		return
	}
	lv := ProductLabelValues(r.Product)
	m.duration.WithLabelValues(lv...).Set(r.Duration.Seconds())
	if r.Err != nil {
		m.failures.WithLabelValues(lv...).Inc()
		m.success.WithLabelValues(lv...).Set(0)
		return
	}
	m.success.WithLabelValues(lv...).Set(1)
	m.lastSuccess.WithLabelValues(lv...).Set(float64(r.Hour.Unix()))
	for metric, n := range r.Objects {
		m.objects.WithLabelValues(append(lv, metric)...).Set(float64(n))
	}
}
