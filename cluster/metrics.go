package cluster

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the cluster's series (DESIGN.md's table).
type metrics struct {
	members prometheus.Gauge
	// owned is the one series of ownedVec, labelled with this replica.
	owned    prometheus.Gauge
	ownedVec *prometheus.GaugeVec
	changes  prometheus.Counter
	etcdUp   prometheus.Gauge
	unowned  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, replica string) (*metrics, error) {
	ownedVec := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "driftless_cluster_owned_environments", Help: "Environments this replica owns.",
	}, []string{"replica"})
	m := &metrics{
		ownedVec: ownedVec, owned: ownedVec.WithLabelValues(replica),
		members: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "driftless_cluster_members", Help: "Live replicas this replica sees registered in etcd.",
		}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftless_cluster_ownership_changes_total", Help: "Environments this replica took ownership of (summed over replicas: every change of owner).",
		}),
		unowned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "driftless_cluster_unowned_environments", Help: "Environments this replica declares that no replica owns, as this replica sees etcd (0 while it holds no lease).",
		}),
		etcdUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "driftless_cluster_etcd_up", Help: "1 while this replica holds a lease it renewed recently enough to own environments, else 0.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.members, m.ownedVec, m.changes, m.etcdUp, m.unowned} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register cluster metrics: %w", err)
		}
	}
	return m, nil
}
