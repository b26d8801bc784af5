package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark"

	"github.com/bulwark-go/bulwark/cluster"
	"github.com/bulwark-go/bulwark/config"
	"github.com/bulwark-go/bulwark/dashboard"
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

// gatewayService is the registry service gateway-cluster nodes register
// under, for clients that prefer client-side failover over the VIP.
const gatewayService = "bulwark-gateway"

// registerGateway lists this gateway node in the registry (when the
// process has a registry client): its own address (the cluster's Raft
// host with the first listener's port), the VIP in metadata. The returned
// function deregisters it.
func registerGateway(ctx context.Context, c *components, f *config.File, logger *slog.Logger) func() {
	if c.cluster == nil || c.client == nil || len(c.gateway.Addrs()) == 0 {
		return func() {}
	}
	host, _, _ := net.SplitHostPort(f.Cluster.Raft)
	_, port, _ := net.SplitHostPort(c.gateway.Addrs()[0].String())
	inst := bulwark.Instance{Service: gatewayService, ID: f.Cluster.NodeID, Address: "http://" + net.JoinHostPort(host, port),
		Metadata: map[string]string{"vip": f.Cluster.VIP, "role": "gateway"}}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	reg, err := c.client.Register(rctx, inst, 0)
	if err != nil {
		logger.Warn("cluster: could not list this gateway in the registry", "err", err)
		return func() {}
	}
	var once sync.Once
	return func() { once.Do(func() { reg.Close() }) }
}

// dashboardCluster is the dashboard's cluster section built from the
// nodes' statuses (GET /api/cluster of each, or the local node's): the
// owner is the node that says it holds the VIP, the leader the one that
// says it leads, term and epoch the highest reported. A node whose status
// could not be read shows as down with err's text.
func dashboardCluster(vip string, ids []string, statuses map[string]cluster.Status, errs map[string]error) *dashboard.Cluster {
	out := &dashboard.Cluster{VIP: vip}
	for _, id := range ids {
		n := dashboard.ClusterNode{ID: id, State: "down"}
		if err := errs[id]; err != nil {
			n.Error = err.Error()
			out.Nodes = append(out.Nodes, n)
			continue
		}
		st, ok := statuses[id]
		if !ok {
			out.Nodes = append(out.Nodes, n)
			continue
		}
		n.State, n.Holding = st.State, st.Holding
		if st.Holding {
			out.Owner, out.LeaseAgeSeconds, out.HeldSeconds = id, st.LeaseAgeSeconds, st.HeldSeconds
		}
		if st.State == "leader" {
			out.Leader = id
		} else if out.Leader == "" && st.Leader != "" {
			out.Leader = st.Leader
		}
		if out.VIP == "" {
			out.VIP = st.VIP
		}
		out.Term, out.Epoch = max(out.Term, st.Term), max(out.Epoch, st.Epoch)
		out.Nodes = append(out.Nodes, n)
	}
	if out.Epoch > 0 {
		out.Handovers = out.Epoch - 1
	}
	return out
}
