package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/raft"

	"github.com/bulwark-go/bulwark/internal/writeauth"
)

// Peer names another registry node: its Raft identity and the two addresses
// it listens on.
type Peer struct {
	// ID is the peer's Raft server ID (its Config.NodeID).
	ID string `json:"id"`
	// RaftAddr is the host:port the peer's Raft transport listens on.
	RaftAddr string `json:"raft_addr"`
	// HTTPAddr is the host:port of the peer's HTTP API.
	HTTPAddr string `json:"http_addr"`
}

// Config configures one registry node. The zero value is usable except for
// DataDir, which must be set: a single node on 127.0.0.1 with random ports
// that bootstraps a one-node cluster.
type Config struct {
	// Run runs the leader's lease loop (expiry of unrenewed instances)
	// until ctx ends, and returns once loop has returned for the last
	// time. Nil calls loop(ctx) directly. cmd/bulwark passes one that runs
	// it under the process's supervision tree, so a panic in it is
	// recovered and the loop restarted (with a fresh grace period).
	Run func(ctx context.Context, name string, loop func(ctx context.Context) error)
	// NodeID is this node's Raft server ID. Default: "node-" followed by the
	// Raft bind address.
	NodeID string
	// HTTPAddr is the host:port the HTTP API listens on. Default
	// "127.0.0.1:0" (a random port; see Node.HTTPAddr).
	HTTPAddr string
	// RaftAddr is the host:port the Raft transport binds to and advertises.
	// It must be a concrete IP address (raft refuses to advertise an
	// unspecified one). Default "127.0.0.1:0".
	RaftAddr string
	// DataDir holds the Raft log (raft.db) and snapshots. Required.
	DataDir string

	// Bootstrap makes a node without existing state found a new cluster:
	// with Peers empty a one-node cluster, otherwise a cluster of this node
	// plus every peer (each peer must then be started with Bootstrap and the
	// same peer set). Ignored when DataDir already holds Raft state.
	Bootstrap bool
	// Peers are the other nodes. Without Bootstrap, a node with no state
	// joins the cluster by asking these peers (whoever is leader, directly
	// or through forwarding) to add it as a voter. Peers' HTTPAddr is also
	// used to find the leader before the catalog knows it.
	Peers []Peer

	// Token, when set, is required as "Authorization: Bearer <Token>" on
	// every write (register, renew, deregister, join): 401 without it, 403
	// when wrong. Default: no auth, which Validate allows only when
	// HTTPAddr is a loopback address.
	Token string

	// ServerTLS, when set, serves the HTTP API and the Raft transport over
	// TLS; it must require client certificates (pki.Files.ServerConfig
	// makes such a config). ClientTLS is then what the node presents to
	// its peers (Raft, write forwarding, join). Both or neither. Default:
	// plain TCP.
	ServerTLS, ClientTLS *tls.Config

	// DefaultTTL is the lease TTL for registrations that give none.
	// Default 1 s.
	DefaultTTL time.Duration
	// MinTTL and MaxTTL bound the TTL a registration may ask for.
	// Defaults 100 ms and 1 h.
	MinTTL, MaxTTL time.Duration
	// SuspectTimeout is how long an instance stays suspect (not routable,
	// still registered) before the leader removes it. Default 2 s.
	SuspectTimeout time.Duration
	// LeaseCheckInterval is how often the leader scans lease deadlines.
	// Default 100 ms.
	LeaseCheckInterval time.Duration

	// HeartbeatTimeout, ElectionTimeout and LeaderLeaseTimeout tune Raft
	// (see raft.Config). Defaults 1 s, 1 s and 500 ms.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout time.Duration
	// SnapshotThreshold is how many log entries since the last snapshot
	// trigger a new one; SnapshotInterval is how often that is checked.
	// Defaults 8192 and 120 s.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// TrailingLogs is how many entries are kept after a snapshot. Default
	// 10240.
	TrailingLogs uint64

	// Mount, when set, adds further HTTP APIs to the node's listener
	// beside its own: the Consul and Eureka translations
	// (registry/consulapi, registry/eureka). Handler calls it with the node
	// and the mux it is building; the mounted handlers write through the
	// node's exported methods, so through the same Raft path.
	Mount func(n *Node, mux *http.ServeMux)

	// Logger receives the node's logs (Raft's own at Debug). nil discards.
	Logger *slog.Logger
	// Middleware, when set, wraps the HTTP API's handler (cmd/bulwark
	// traces the API with it).
	Middleware func(http.Handler) http.Handler

	// newTransport, when set (tests only), replaces raft.NewTCPTransport so
	// a test can cut the node's Raft traffic.
	newTransport func(bind string, logOutput io.Writer) (*raft.NetworkTransport, error)
}

// Sentinel errors callers branch on.
var (
	// ErrNotLeader is returned when a write reaches a node that is not the
	// leader and cannot forward it.
	ErrNotLeader = errors.New("registry: not the leader")
	// ErrNotFound is returned for an unknown service or instance.
	ErrNotFound = errors.New("registry: instance not found")
	// ErrUnauthorized is returned when a write lacks the configured token.
	ErrUnauthorized = errors.New("registry: missing or wrong bearer token")
	// ErrInvalid wraps every rejection of malformed input.
	ErrInvalid = errors.New("registry: invalid request")
	// ErrClosed is returned by a Node or Client after Close.
	ErrClosed = errors.New("registry: closed")
	// ErrUnavailable is returned by the Client when no node answered.
	ErrUnavailable = errors.New("registry: no registry node reachable")
	// ErrDiskFull is returned by writes while the node's DataDir has less
	// than minFreeDisk free: nothing was written; the node accepts writes
	// again by itself once space returns.
	ErrDiskFull = errors.New("registry: disk full, write refused")
)

// withDefaults returns a copy of c with every zero field set to its default.
func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1:0"
	}
	if c.RaftAddr == "" {
		c.RaftAddr = "127.0.0.1:0"
	}
	def(&c.DefaultTTL, time.Second)
	def(&c.MinTTL, 100*time.Millisecond)
	def(&c.MaxTTL, time.Hour)
	def(&c.SuspectTimeout, 2*time.Second)
	def(&c.LeaseCheckInterval, 100*time.Millisecond)
	def(&c.HeartbeatTimeout, time.Second)
	def(&c.ElectionTimeout, time.Second)
	def(&c.LeaderLeaseTimeout, 500*time.Millisecond)
	def(&c.SnapshotInterval, 120*time.Second)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first problem with the configuration, naming the
// field. It checks the configuration as Open would use it, defaults
// applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.DataDir == "" {
		return fmt.Errorf("%w: DataDir is required", ErrInvalid)
	}
	if err := c.validateTLS(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c.NodeID != "" && !validName(c.NodeID) {
		return fmt.Errorf("%w: NodeID %q: want 1-%d of [A-Za-z0-9._-]", ErrInvalid, c.NodeID, maxNameLen)
	}
	for name, a := range map[string]string{"HTTPAddr": c.HTTPAddr, "RaftAddr": c.RaftAddr} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("%w: %s %q: %v", ErrInvalid, name, a, err)
		}
	}
	if err := writeauth.CheckListener(c.HTTPAddr, writeauth.Config{Token: c.Token}, "registry: HTTPAddr",
		"a Token (registry.token in bulwark.yaml, or BULWARK_REGISTRY_TOKEN)"); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if c.MinTTL <= 0 || c.MaxTTL < c.MinTTL {
		return fmt.Errorf("%w: MinTTL %v / MaxTTL %v: want 0 < MinTTL <= MaxTTL", ErrInvalid, c.MinTTL, c.MaxTTL)
	}
	if c.DefaultTTL < c.MinTTL || c.DefaultTTL > c.MaxTTL {
		return fmt.Errorf("%w: DefaultTTL %v: want within [MinTTL, MaxTTL]", ErrInvalid, c.DefaultTTL)
	}
	for name, d := range map[string]time.Duration{
		"SuspectTimeout": c.SuspectTimeout, "LeaseCheckInterval": c.LeaseCheckInterval,
		"HeartbeatTimeout": c.HeartbeatTimeout, "ElectionTimeout": c.ElectionTimeout,
		"LeaderLeaseTimeout": c.LeaderLeaseTimeout, "SnapshotInterval": c.SnapshotInterval,
	} {
		if d < 0 {
			return fmt.Errorf("%w: %s %v: must not be negative", ErrInvalid, name, d)
		}
	}
	seen := map[string]bool{}
	for i, p := range c.Peers {
		if !validName(p.ID) {
			return fmt.Errorf("%w: Peers[%d].ID %q: want 1-%d of [A-Za-z0-9._-]", ErrInvalid, i, p.ID, maxNameLen)
		}
		if p.ID == c.NodeID || seen[p.ID] {
			return fmt.Errorf("%w: Peers[%d].ID %q: duplicate", ErrInvalid, i, p.ID)
		}
		seen[p.ID] = true
		if _, _, err := net.SplitHostPort(p.RaftAddr); c.Bootstrap && err != nil {
			return fmt.Errorf("%w: Peers[%d].RaftAddr %q: %v", ErrInvalid, i, p.RaftAddr, err)
		}
		if _, _, err := net.SplitHostPort(p.HTTPAddr); err != nil {
			return fmt.Errorf("%w: Peers[%d].HTTPAddr %q: %v", ErrInvalid, i, p.HTTPAddr, err)
		}
	}
	return nil
}
