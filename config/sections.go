package config

import (
	"fmt"
	"net"
	"time"

	"github.com/bulwark-go/bulwark/pki"
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
	// TLS puts the node's HTTP API and Raft transport under mutual TLS
	// with `bulwark ca` files: peers and clients must present a
	// certificate the CA signed. Default off.
	TLS pki.Files `yaml:"tls"`
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
	// TLS talks to registry nodes that require mutual TLS; default the
	// registry section's, when this process runs a node.
	TLS pki.Files `yaml:"tls"`
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
	// TLS puts delivery's network hops under mutual TLS with `bulwark ca`
	// files: the connection to external nats servers, and the routes
	// between the members of an embedded cluster. Default off.
	TLS pki.Files `yaml:"tls"`
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

// Tracing exports OpenTelemetry traces over OTLP (package tracing). The
// standard OTEL_* environment variables apply where a field is empty; with
// neither, tracing is off and costs nothing.
type Tracing struct {
	// Exporter is "otlp-http", "otlp-grpc", "none", or empty: on only if
	// OTEL_TRACES_EXPORTER=otlp or OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT is set.
	Exporter string `yaml:"exporter"`
	// Endpoint is the collector, a URL (http://collector:4318) or
	// host:port; default from OTEL_EXPORTER_OTLP_ENDPOINT, else
	// localhost:4318 (HTTP) or localhost:4317 (gRPC).
	Endpoint string `yaml:"endpoint"`
	// Insecure sends to a host:port endpoint without TLS.
	Insecure bool `yaml:"insecure"`
	// Headers are sent with every export (an API key).
	Headers map[string]string `yaml:"headers"`
	// SampleRatio is the fraction of new traces kept (a client's sampled
	// trace is always continued); default OTEL_TRACES_SAMPLER, else 1.
	SampleRatio float64 `yaml:"sample_ratio"`
	// ServiceName is service.name; default OTEL_SERVICE_NAME, else bulwark.
	ServiceName string `yaml:"service_name"`
}

func (f *File) validateSections(add func(path, format string, args ...any)) {
	switch f.Tracing.Exporter {
	case "", "none", "otlp-http", "otlp-grpc":
	default:
		add("tracing.exporter", "unknown %q: use otlp-http, otlp-grpc or none", f.Tracing.Exporter)
	}
	if r := f.Tracing.SampleRatio; r < 0 || r > 1 {
		add("tracing.sample_ratio", "%v: use a fraction between 0 and 1", r)
	}
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
		if r.TLS != (pki.Files{}) {
			if _, err := r.TLS.ServerConfig(); err != nil {
				add("registry.tls", "%v", err)
			}
		}
	}
	if d := f.Delivery; d != nil {
		if d.DataDir == "" && len(d.NATS) == 0 {
			add("delivery.data_dir", "missing: set data_dir for the embedded server, or nats: [URL] for an external one")
		}
		if d.TLS != (pki.Files{}) {
			if _, err := d.TLS.MutualConfig(); err != nil {
				add("delivery.tls", "%v", err)
			}
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
	if f.Cluster != nil {
		f.Cluster.validate(add)
	}
	needsDiscovery := false
	for _, u := range f.Upstreams {
		if u.Discover != "" {
			needsDiscovery = true
		}
	}
	if t := f.Discovery.TLS; t != (pki.Files{}) {
		if _, err := t.ClientConfig(); err != nil {
			add("discovery.tls", "%v", err)
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

// Cluster makes this gateway one node of a gateway cluster (package
// cluster): 3 or 5 `bulwark run` nodes with the same routes, one of which
// owns a virtual IP by a lease decided through Raft.
type Cluster struct {
	// NodeID names this node, unique in the cluster. Required.
	NodeID string `yaml:"node_id"`
	// Raft is the cluster transport's host:port, a concrete IP the peers
	// reach. Required.
	Raft string `yaml:"raft"`
	// Peers are the other nodes (2 or 4 of them).
	Peers []ClusterPeer `yaml:"peers"`
	// DataDir keeps the Raft log across restarts; empty keeps it in
	// memory (see docs/ha.md).
	DataDir string `yaml:"data_dir"`
	// VIP is the virtual IPv4 address clients use. Required.
	VIP string `yaml:"vip"`
	// Interface is the LAN interface the VIP is announced on. Required.
	Interface string `yaml:"interface"`
	// Device names the TUN device that carries the VIP; default bwvip0.
	Device string `yaml:"device"`
	// Lease, Renew, Removal and Drift are the lease arithmetic; defaults
	// 600ms, 100ms, 100ms, 50ms (docs/ha.md).
	Lease   time.Duration `yaml:"lease"`
	Renew   time.Duration `yaml:"renew"`
	Removal time.Duration `yaml:"removal"`
	Drift   time.Duration `yaml:"drift"`
	// HeartbeatTimeout is Raft's; default 300ms.
	HeartbeatTimeout time.Duration `yaml:"heartbeat_timeout"`
}

// ClusterPeer is another node of the gateway cluster.
type ClusterPeer struct {
	ID   string `yaml:"id"`
	Raft string `yaml:"raft"`
}

func (c *Cluster) validate(add func(path, format string, args ...any)) {
	if c.NodeID == "" {
		add("cluster.node_id", "missing: each gateway node needs a unique id")
	}
	if _, _, err := net.SplitHostPort(c.Raft); err != nil {
		add("cluster.raft", "%q is not host:port", c.Raft)
	}
	if ip := net.ParseIP(c.VIP); ip == nil || ip.To4() == nil {
		add("cluster.vip", "%q is not an IPv4 address", c.VIP)
	}
	if c.Interface == "" {
		add("cluster.interface", "missing: name the LAN interface the VIP is announced on (e.g. eth0)")
	}
	if n := len(c.Peers) + 1; n != 3 && n != 5 {
		add("cluster.peers", "a cluster has 3 or 5 nodes (this one and 2 or 4 peers), not %d: with 2 or 4 a failure stops it as surely as with one fewer", n)
	}
	seen := map[string]bool{c.NodeID: true}
	for i, p := range c.Peers {
		path := fmt.Sprintf("cluster.peers[%d]", i)
		if p.ID == "" || p.Raft == "" {
			add(path, "a peer needs id and raft")
			continue
		}
		if seen[p.ID] {
			add(path, "id %q appears twice", p.ID)
		}
		seen[p.ID] = true
		if _, _, err := net.SplitHostPort(p.Raft); err != nil {
			add(path+".raft", "%q is not host:port", p.Raft)
		}
	}
	for _, d := range []struct {
		path string
		v    time.Duration
	}{{"cluster.lease", c.Lease}, {"cluster.renew", c.Renew}, {"cluster.removal", c.Removal}, {"cluster.drift", c.Drift}, {"cluster.heartbeat_timeout", c.HeartbeatTimeout}} {
		if d.v < 0 {
			add(d.path, "must not be negative")
		}
	}
	lease, renew, removal, drift := or0(c.Lease, 600*time.Millisecond), or0(c.Renew, 100*time.Millisecond), or0(c.Removal, 100*time.Millisecond), or0(c.Drift, 50*time.Millisecond)
	if lease-removal-drift < 2*renew {
		add("cluster.lease", "lease (%v) must exceed removal (%v) + drift (%v) + two renewals (%v), or the owner drops the VIP between renewals", lease, removal, drift, 2*renew)
	}
}

func or0(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}
