package registry

import (
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector returns a Prometheus collector of the node's state, read at
// scrape time so the API and lease paths maintain nothing for it: whether
// this node leads, the cluster's voters, how long since the leader was
// heard from, the catalog index, and the leases by service and health.
// Register it on the process's registry (cmd/bulwark does); the names are
// the ones deploy/'s dashboard and alert rules use.
func (n *Node) Collector() prometheus.Collector { return &nodeCollector{n: n} }

var (
	descLeader    = prometheus.NewDesc("bulwark_registry_leader", "1 when this node is the Raft leader.", nil, nil)
	descHasLeader = prometheus.NewDesc("bulwark_registry_has_leader", "1 when this node knows a leader.", nil, nil)
	descVoters    = prometheus.NewDesc("bulwark_registry_voters", "Voting members in the Raft configuration.", nil, nil)
	descContact   = prometheus.NewDesc("bulwark_registry_last_contact_seconds", "Time since this node last heard from the leader (0 on the leader).", nil, nil)
	descIndex     = prometheus.NewDesc("bulwark_registry_catalog_index", "The catalog's Raft index.", nil, nil)
	descStale     = prometheus.NewDesc("bulwark_registry_stale", "1 when this follower's reads may be stale (no recent leader contact).", nil, nil)
	descLeases    = prometheus.NewDesc("bulwark_registry_leases", "Registered instances (leases), by service and health.", []string{"service", "health"}, nil)
)

type nodeCollector struct{ n *Node }

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLeader, descHasLeader, descVoters, descContact, descIndex, descStale, descLeases} {
		ch <- d
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	leader := n.raft.State() == raft.Leader
	gauge(descLeader, b2f(leader))
	addr, _ := n.raft.LeaderWithID()
	gauge(descHasLeader, b2f(addr != ""))
	contact := 0.0
	if !leader {
		if lc := n.raft.LastContact(); !lc.IsZero() {
			contact = time.Since(lc).Seconds()
		}
	}
	gauge(descContact, contact)
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		voters := 0
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				voters++
			}
		}
		gauge(descVoters, float64(voters))
	}
	gauge(descIndex, float64(n.fsm.index()))
	gauge(descStale, b2f(n.stale()))
	type key struct {
		service string
		health  bulwark.Health
	}
	counts := map[key]int{}
	for _, l := range n.fsm.leases(nil) {
		counts[key{l.service, l.health}]++
	}
	for k, v := range counts {
		gauge(descLeases, float64(v), k.service, k.health.String())
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
