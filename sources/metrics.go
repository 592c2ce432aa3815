package sources

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are shared by every source of a daemon, one series per source.
type metrics struct {
	up             *prometheus.GaugeVec
	fetchDuration  *prometheus.HistogramVec
	lastSuccess    *prometheus.GaugeVec
	verifyFailures *prometheus.CounterVec
	headRefused    *prometheus.GaugeVec
}

// newMetrics registers the source metrics on reg (nil: not registered). A
// second source registering on the same registerer reuses the collectors
// the first one registered.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "driftless_source_up",
			Help: "1 when the source's last fetch or read succeeded, 0 when it failed.",
		}, []string{"source"}),
		fetchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "driftless_source_fetch_duration_seconds",
			Help:    "Duration of a source's fetch (Git) or read (local folder), failed ones included.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"source"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "driftless_source_last_success_timestamp_seconds",
			Help: "Unix time of the source's last successful fetch or read.",
		}, []string{"source"}),
		verifyFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftless_source_verify_failures_total",
			Help: "Commits refused because they were unsigned or signed by a key not listed in signing_keys.",
		}, []string{"source"}),
		headRefused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "driftless_source_head_refused",
			Help: "1 while the head commit of a Git source is refused by signing_keys (the last good revision stays in use), 0 otherwise.",
		}, []string{"source"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.up, err = register(reg, m.up); err != nil {
		return nil, err
	}
	if m.fetchDuration, err = register(reg, m.fetchDuration); err != nil {
		return nil, err
	}
	if m.lastSuccess, err = register(reg, m.lastSuccess); err != nil {
		return nil, err
	}
	if m.verifyFailures, err = register(reg, m.verifyFailures); err != nil {
		return nil, err
	}
	if m.headRefused, err = register(reg, m.headRefused); err != nil {
		return nil, err
	}
	return m, nil
}

func register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(T); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("register source metrics: %w", err)
}
