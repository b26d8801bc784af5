package cluster

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	reg           prometheus.Registerer
	holding       prometheus.Gauge
	leader        prometheus.Gauge
	epoch         prometheus.Gauge
	handovers     prometheus.Counter
	renewFailures prometheus.Counter
	age           prometheus.GaugeFunc
	cs            []prometheus.Collector
}

func newMetrics(reg prometheus.Registerer, node string) *metrics {
	l := prometheus.Labels{"node": node}
	m := &metrics{reg: reg,
		holding: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bulwark_cluster_vip_owner", Help: "1 while this node answers for the virtual IP.", ConstLabels: l}),
		leader:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "bulwark_cluster_raft_leader", Help: "1 while this node is the cluster's Raft leader.", ConstLabels: l}),
		epoch:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "bulwark_cluster_lease_epoch", Help: "Acquisitions of the VIP lease so far (replicated).", ConstLabels: l}),
		handovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_cluster_handovers_total",
			Help: "VIP lease acquisitions this node has applied since it started.", ConstLabels: l}),
		renewFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_cluster_renew_failures_total",
			Help: "Lease renewals this node proposed that did not commit.", ConstLabels: l}),
	}
	m.cs = []prometheus.Collector{m.holding, m.leader, m.epoch, m.handovers, m.renewFailures}
	return m
}

// setAge registers the lease-age gauge, which reads the fence.
func (m *metrics) setAge(node string, f func() (bool, time.Time)) {
	m.age = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "bulwark_cluster_lease_age_seconds",
		Help: "On the VIP owner: seconds since its last committed lease renewal was proposed (0 elsewhere).", ConstLabels: prometheus.Labels{"node": node}},
		func() float64 {
			held, since := f()
			if !held {
				return 0
			}
			return time.Since(since).Seconds()
		})
	m.cs = append(m.cs, m.age)
}

func (m *metrics) register() {
	if m.reg == nil {
		return
	}
	for _, c := range m.cs {
		m.reg.Register(c)
	}
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.cs {
		m.reg.Unregister(c)
	}
}
