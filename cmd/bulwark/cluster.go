package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"

	"github.com/bulwark-go/bulwark/cluster"
	"github.com/bulwark-go/bulwark/config"
	"github.com/bulwark-go/bulwark/proxy"
	"github.com/prometheus/client_golang/prometheus"
)

// openCluster starts the gateway-cluster node a config's cluster section
// describes. Its VIP events go to onEvent as gateway events of kind "vip"
// (the dashboard's event log shows them).
func openCluster(c *config.Cluster, logger *slog.Logger, reg prometheus.Registerer, onEvent func(proxy.Event)) (*cluster.Node, error) {
	vip, err := netip.ParseAddr(c.VIP)
	if err != nil {
		return nil, fmt.Errorf("cluster: vip: %w", err)
	}
	cfg := cluster.Config{NodeID: c.NodeID, Bind: c.Raft, DataDir: c.DataDir, VIP: vip, Interface: c.Interface, Device: c.Device,
		Timing:           cluster.Timing{Lease: c.Lease, Renew: c.Renew, Removal: c.Removal, Drift: c.Drift},
		HeartbeatTimeout: c.HeartbeatTimeout}
	for _, p := range c.Peers {
		cfg.Peers = append(cfg.Peers, cluster.Peer{ID: p.ID, Raft: p.Raft})
	}
	opts := cluster.Options{Logger: logger.With("component", "cluster"), Registry: reg}
	if onEvent != nil {
		opts.OnEvent = func(e cluster.Event) {
			onEvent(proxy.Event{Time: e.Time, Kind: "vip", Upstream: "cluster", Endpoint: e.Node, Detail: e.Kind + ": " + e.Detail})
		}
	}
	return cluster.Open(cfg, opts)
}

// clusterHandler serves GET /api/cluster: this node's view of the VIP.
func clusterHandler(n *cluster.Node) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { writeJSONTo(w, http.StatusOK, n.Status()) }
}
