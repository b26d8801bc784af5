package config

import (
	"fmt"
	"net"
	"time"

	"github.com/bulwark-go/bulwark/proxy"
)

// Registry runs a registry node in this process (package registry).
type Registry struct {
	// NodeID is the node's Raft ID; default derived from Raft.
	NodeID string `yaml:"node_id"`
	// HTTP is the API's host:port; default 127.0.0.1:8500.
	HTTP string `yaml:"http"`
	// Raft is the Raft transport's host:port (a concrete IP); default
	// 127.0.0.1:8501.
	Raft string `yaml:"raft"`
	// DataDir holds the Raft log and snapshots. Required.
	DataDir string `yaml:"data_dir"`
	// Bootstrap founds a new cluster (with Peers, if any) when DataDir is
	// empty; without it the node joins Peers.
	Bootstrap bool `yaml:"bootstrap"`
	// Peers are the other nodes.
	Peers []Peer `yaml:"peers"`
	// Token, when set, is required on writes.
	Token string `yaml:"token"`
	// TTL is the default lease; default 1s.
	TTL time.Duration `yaml:"ttl"`
	// SuspectTimeout is how long a lapsed instance stays suspect before
	// removal; default 2s.
	SuspectTimeout time.Duration `yaml:"suspect_timeout"`
}

// Peer is another registry node.
type Peer struct {
	ID   string `yaml:"id"`
	Raft string `yaml:"raft"`
	HTTP string `yaml:"http"`
}

// Discovery says where upstreams with `discover: SERVICE` find their
// instances.
type Discovery struct {
	// Registries are registry nodes' host:port; default: the registry
	// node this process runs, if any.
	Registries []string `yaml:"registries"`
	// Token is sent on writes.
	Token string `yaml:"token"`
}

// Delivery stores async routes' requests durably (package delivery) on an
// embedded NATS JetStream server, or on an external NATS cluster.
type Delivery struct {
	// DataDir holds the embedded server's file store; required unless
	// NATS is set.
	DataDir string `yaml:"data_dir"`
	// NATS are external NATS server URLs, instead of the embedded server.
	NATS []string `yaml:"nats"`
	// Replicas is the streams' replication (3 on a NATS cluster); default 1.
	Replicas int `yaml:"replicas"`
	// MaxAttempts before a message is dead-lettered; default 5.
	MaxAttempts int `yaml:"max_attempts"`
	// Backoff between attempts, the last repeating; default 1s, 2s, 5s, 10s, 30s.
	Backoff []time.Duration `yaml:"backoff"`
	// MaxBody is the largest accepted request body; default 1MiB.
	MaxBody proxy.ByteSize `yaml:"max_body"`
	// SyncAlways fsyncs every message before acknowledging it (survives
	// power loss, not only process crashes); default false.
	SyncAlways bool `yaml:"sync_always"`
	// MaxBacklog bounds the undelivered messages; beyond it requests get
	// 503 + Retry-After instead of filling the disk. Default 1000000; -1
	// for no bound.
	MaxBacklog int `yaml:"max_backlog"`
	// Cluster joins the embedded server to a JetStream cluster of
	// embedded servers (set replicas: 3 with three members).
	Cluster *DeliveryCluster `yaml:"cluster"`
}

// DeliveryCluster is the embedded server's JetStream cluster membership.
type DeliveryCluster struct {
	// Name is the cluster's name, the same on every member. Required.
	Name string `yaml:"name"`
	// ServerName is this member's name, distinct per member. Required.
	ServerName string `yaml:"server_name"`
	// Listen is the route listener's host:port. Required.
	Listen string `yaml:"listen"`
	// Routes are the other members' route URLs (nats://host:port).
	Routes []string `yaml:"routes"`
}

func (f *File) validateSections(add func(path, format string, args ...any)) {
	if r := f.Registry; r != nil {
		if r.DataDir == "" {
			add("registry.data_dir", "missing: the registry needs a directory for its Raft log")
		}
		for _, a := range []struct{ path, v string }{{"registry.http", r.HTTP}, {"registry.raft", r.Raft}} {
			if a.v != "" {
				if _, _, err := net.SplitHostPort(a.v); err != nil {
					add(a.path, "%q is not host:port", a.v)
				}
			}
		}
		for i, p := range r.Peers {
			if p.ID == "" || p.Raft == "" || p.HTTP == "" {
				add(fmt.Sprintf("registry.peers[%d]", i), "a peer needs id, raft and http")
			}
		}
		if !r.Bootstrap && len(r.Peers) == 0 {
			add("registry.bootstrap", "a node that does not bootstrap needs peers to join")
		}
	}
	if d := f.Delivery; d != nil {
		if d.DataDir == "" && len(d.NATS) == 0 {
			add("delivery.data_dir", "missing: set data_dir for the embedded server, or nats: [URL] for an external one")
		}
		if d.MaxBacklog < -1 {
			add("delivery.max_backlog", "use -1 (no bound) or a positive count")
		}
		if d.MaxAttempts < 0 {
			add("delivery.max_attempts", "must not be negative")
		}
		if d.MaxBody > 4<<20 {
			add("delivery.max_body", "at most 4MiB")
		}
		if d.Replicas != 0 && d.Replicas != 1 && d.Replicas != 3 && d.Replicas != 5 {
			add("delivery.replicas", "use 1, 3 or 5")
		}
		if c := d.Cluster; c != nil {
			if c.Name == "" || c.ServerName == "" {
				add("delivery.cluster", "a cluster member needs name (the same on every member) and server_name (distinct)")
			}
			if _, _, err := net.SplitHostPort(c.Listen); err != nil {
				add("delivery.cluster.listen", "%q is not host:port (the route listener)", c.Listen)
			}
		}
	}
	needsDiscovery := false
	for _, u := range f.Upstreams {
		if u.Discover != "" {
			needsDiscovery = true
		}
	}
	if needsDiscovery && f.Registry == nil && len(f.Discovery.Registries) == 0 {
		add("discovery.registries", "an upstream uses discover: but no registry is configured: add discovery.registries or a registry section")
	}
	needsDelivery := false
	for _, r := range f.Routes {
		if r.Async {
			needsDelivery = true
		}
	}
	if needsDelivery && f.Delivery == nil {
		add("delivery", "a route is async: add a delivery section (data_dir for the embedded store)")
	}
}
