package hrsync

import "github.com/prometheus/client_golang/prometheus"

// metrics of the HR sync (registered when Config.Registerer is set).
type metrics struct {
	runs        *prometheus.CounterVec
	members     *prometheus.CounterVec
	webhooks    *prometheus.CounterVec
	webhookTime prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lanyard_hr_sync_runs_total",
			Help: "HR sync runs by kind and final status."}, []string{"kind", "status"}),
		members: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lanyard_hr_sync_members_total",
			Help: "Members handled by HR sync runs, by outcome."}, []string{"outcome"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lanyard_hr_webhooks_total",
			Help: "HR webhooks received, by result (accepted, duplicate, ignored, rejected)."}, []string{"result"}),
		webhookTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lanyard_hr_webhook_processing_seconds",
			Help: "From webhook receipt to its changes committed.", Buckets: prometheus.ExponentialBuckets(0.002, 2, 12)}),
	}
	if reg != nil {
		reg.MustRegister(m.runs, m.members, m.webhooks, m.webhookTime)
	}
	return m
}

func (m *metrics) run(kind, status string, created, updated, terminated, skipped, held int) {
	m.runs.WithLabelValues(kind, status).Inc()
	m.members.WithLabelValues("created").Add(float64(created))
	m.members.WithLabelValues("updated").Add(float64(updated))
	m.members.WithLabelValues("terminated").Add(float64(terminated))
	m.members.WithLabelValues("skipped").Add(float64(skipped))
	m.members.WithLabelValues("held").Add(float64(held))
}
