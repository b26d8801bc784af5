package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bulwark-go/bulwark/internal/raftbolt"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is one gateway node of the cluster. The zero value of each
// optional field is a working default.
type Config struct {
	// NodeID names this node; it must be unique and stable. Required.
	NodeID string
	// Bind is the Raft transport's host:port (a concrete IP the peers can
	// reach). Required.
	Bind string
	// Peers are the other members. Every member lists the same set, and
	// the first start founds the cluster from it.
	Peers []Peer
	// DataDir keeps the Raft log and term across restarts. Empty keeps
	// them in memory: simpler, but a restarted node has forgotten its
	// vote, which Raft's safety assumes it cannot (see docs/ha.md).
	DataDir string
	// VIP is the virtual IPv4 address. Required unless Address is set.
	VIP netip.Addr
	// Interface is the LAN interface the VIP is announced on.
	Interface string
	// Device names the TUN device that carries the VIP; default bwvip0.
	Device string
	// Timing is the lease arithmetic; zero fields take DefaultTiming's.
	Timing Timing
	// HeartbeatTimeout is Raft's (and the election timeout); default
	// 300 ms. A follower starts an election between one and two of these
	// after the leader falls silent.
	HeartbeatTimeout time.Duration
}

// Peer is another member of the cluster.
type Peer struct {
	ID   string `yaml:"id"`
	Raft string `yaml:"raft"`
}

// Options are a Node's collaborators; all optional.
type Options struct {
	// Address overrides the VIP's implementation (tests).
	Address Address
	// Logger; nil discards.
	Logger *slog.Logger
	// Registry receives the node's metrics.
	Registry prometheus.Registerer
	// OnEvent is told when the VIP moves. It must not block.
	OnEvent func(Event)
}

// Event is a change of VIP ownership, seen from this node.
type Event struct {
	Time time.Time `json:"time"`
	// Kind is "acquired" (this node took the VIP), "released" (it gave it
	// up gracefully), "dropped" (it gave it up because it could not renew
	// or lost leadership), or "owner" (the replicated owner changed).
	Kind   string `json:"kind"`
	Node   string `json:"node"`
	Detail string `json:"detail"`
}

// Status is what a node knows of the cluster.
type Status struct {
	Node   string `json:"node"`
	Leader string `json:"leader"`
	// State is this node's Raft state: leader, follower, candidate or
	// shutdown.
	State string `json:"state"`
	// Term is this node's Raft term.
	Term    uint64 `json:"term"`
	Owner   string `json:"owner"` // the lease holder per the replicated log
	Epoch   uint64 `json:"epoch"` // acquisitions so far
	Holding bool   `json:"holding"`
	// LeaseAge (text) and LeaseAgeSeconds: on the holder, the time since
	// its last committed renewal was proposed.
	LeaseAge        string  `json:"lease_age,omitempty"`
	LeaseAgeSeconds float64 `json:"lease_age_seconds,omitempty"`
	// HeldSeconds is, on the holder, how long it has answered for the VIP
	// without a break.
	HeldSeconds float64 `json:"held_seconds,omitempty"`
	VIP         string  `json:"vip,omitempty"`
}

// handshakeGrace is how long Leave waits, once new SYNs are dropped, for
// handshakes already under way to complete (many round trips on a LAN).
const handshakeGrace = 50 * time.Millisecond

// ErrConfig wraps configuration problems.
var ErrConfig = errors.New("cluster: invalid config")

func (c *Config) validate() error {
	var errs []error
	if c.NodeID == "" {
		errs = append(errs, errors.New("node_id is required"))
	}
	if _, _, err := net.SplitHostPort(c.Bind); err != nil {
		errs = append(errs, fmt.Errorf("raft %q is not host:port", c.Bind))
	}
	seen := map[string]bool{c.NodeID: true}
	for _, p := range c.Peers {
		if p.ID == "" || p.Raft == "" {
			errs = append(errs, errors.New("each peer needs id and raft"))
		} else if seen[p.ID] {
			errs = append(errs, fmt.Errorf("peer id %q appears twice", p.ID))
		}
		seen[p.ID] = true
	}
	if err := c.Timing.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	return nil
}

// Node is one member of the gateway cluster. It competes for the VIP for
// as long as it runs.
type Node struct {
	cfg    Config
	t      Timing
	logger *slog.Logger
	opts   Options
	fsm    *fsm
	fence  *fence
	lns    listeners
	raft   *raft.Raft
	trans  *raft.NetworkTransport
	closer []func() error
	m      *metrics

	notify chan bool
	stop   chan struct{}
	done   chan struct{}

	mu      sync.Mutex
	cancel  context.CancelFunc // the current leadership term
	termEnd chan struct{}
	leaving bool
	closed  bool
}

// Open starts the node: Raft (founding the cluster on the first start),
// and the loop that takes the VIP whenever this node leads.
func Open(cfg Config, opts Options) (*Node, error) {
	cfg.Timing = cfg.Timing.withDefaults()
	if cfg.HeartbeatTimeout == 0 {
		cfg.HeartbeatTimeout = 300 * time.Millisecond
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, t: cfg.Timing, opts: opts, logger: opts.Logger, notify: make(chan bool, 64),
		stop: make(chan struct{}), done: make(chan struct{})}
	if n.logger == nil {
		n.logger = slog.New(slog.DiscardHandler)
	}
	addr := opts.Address
	if addr == nil {
		if !cfg.VIP.Is4() {
			return nil, fmt.Errorf("%w: vip %v is not an IPv4 address", ErrConfig, cfg.VIP)
		}
		na := &NetAddress{VIP: cfg.VIP, Interface: cfg.Interface, Device: cfg.Device, Logger: n.logger}
		na.Clean()
		addr = na
	}
	n.m = newMetrics(opts.Registry, cfg.NodeID)
	n.fsm = &fsm{now: time.Now, onChange: n.ownerChanged}
	n.fence = &fence{addr: addr, now: time.Now,
		onAdd: func(err error) {
			if err != nil {
				n.logger.Error("cluster: could not add the VIP", "err", err)
				return
			}
			n.m.holding.Set(1)
			n.event("acquired", "this node answers for the VIP")
		},
		onDrop: func(reason string, err error) {
			n.m.holding.Set(0)
			if err != nil {
				n.logger.Error("cluster: removing the VIP failed", "err", err)
			}
			n.event("dropped", reason)
		}}
	n.m.setAge(cfg.NodeID, n.fence.status)
	n.m.register()
	if err := n.openRaft(); err != nil {
		n.m.unregister()
		n.closeAll()
		return nil, err
	}
	go n.run()
	return n, nil
}

func (n *Node) openRaft() error {
	logw := &slogWriter{l: n.logger}
	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
	)
	if n.cfg.DataDir == "" {
		s := raft.NewInmemStore()
		logs, stable, snaps = s, s, raft.NewInmemSnapshotStore()
	} else {
		if err := os.MkdirAll(n.cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("cluster: data dir: %w", err)
		}
		s, err := raftbolt.Open(filepath.Join(n.cfg.DataDir, "raft.db"))
		if err != nil {
			return fmt.Errorf("cluster: opening %s: %w", n.cfg.DataDir, err)
		}
		n.closer = append(n.closer, s.Close)
		fs, err := raft.NewFileSnapshotStore(n.cfg.DataDir, 2, logw)
		if err != nil {
			return fmt.Errorf("cluster: snapshots: %w", err)
		}
		logs, stable, snaps = s, s, fs
	}
	adv, err := net.ResolveTCPAddr("tcp", n.cfg.Bind)
	if err != nil {
		return fmt.Errorf("cluster: raft address: %w", err)
	}
	n.trans, err = raft.NewTCPTransport(n.cfg.Bind, adv, 3, 2*time.Second, logw)
	if err != nil {
		return fmt.Errorf("cluster: raft transport on %s: %w", n.cfg.Bind, err)
	}
	n.closer = append(n.closer, func() error { n.trans.CloseStreams(); return n.trans.Close() })
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.NodeID)
	rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.HeartbeatTimeout
	// A leader that hears from no quorum for this long steps down. The
	// lease does not depend on it (Hold does); shorter would only make
	// a busy leader step down for nothing.
	rc.LeaderLeaseTimeout = n.cfg.HeartbeatTimeout
	rc.CommitTimeout = 10 * time.Millisecond
	rc.SnapshotThreshold = 1024
	rc.SnapshotInterval = 30 * time.Second
	rc.TrailingLogs = 1024
	rc.NotifyCh = n.notify
	rc.LogOutput = logw
	rc.LogLevel = "WARN"
	n.raft, err = raft.NewRaft(rc, n.fsm, logs, stable, snaps, n.trans)
	if err != nil {
		return fmt.Errorf("cluster: raft: %w", err)
	}
	n.closer = append(n.closer, func() error { return n.raft.Shutdown().Error() })
	servers := []raft.Server{{ID: raft.ServerID(n.cfg.NodeID), Address: raft.ServerAddress(n.cfg.Bind), Suffrage: raft.Voter}}
	for _, p := range n.cfg.Peers {
		servers = append(servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Raft), Suffrage: raft.Voter})
	}
	if err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("cluster: bootstrap: %w", err)
	}
	return nil
}

// run follows leadership: each term as leader runs lead; losing it ends
// the term and drops the address at once.
func (n *Node) run() {
	defer close(n.done)
	for {
		select {
		case <-n.stop:
			n.endTerm("node stopping")
			return
		case leader := <-n.notify:
			// Only the latest state matters.
			for more := true; more; {
				select {
				case leader = <-n.notify:
				default:
					more = false
				}
			}
			n.m.leader.Set(b2f(leader))
			if leader {
				n.startTerm()
			} else {
				n.endTerm("lost Raft leadership")
			}
		}
	}
}

func (n *Node) startTerm() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cancel != nil || n.leaving {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	end := make(chan struct{})
	n.cancel, n.termEnd = cancel, end
	go func() {
		defer close(end)
		n.lead(ctx)
	}()
}

func (n *Node) endTerm(reason string) {
	n.mu.Lock()
	cancel, end := n.cancel, n.termEnd
	n.cancel, n.termEnd = nil, nil
	n.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	// After cancel no hold can add the address again (hold checks ctx
	// under the fence's lock), so this drop is final for the term.
	n.fence.drop(reason)
	<-end
}

// lead is one leadership term: wait out any earlier lease, acquire, and
// renew until the term ends. The fence drops the address by itself if
// renewals stop succeeding in time.
func (n *Node) lead(ctx context.Context) {
	termStart := time.Now()
	// A failed acquisition or a refused renewal (a transient Raft error)
	// must not leave a leader that holds nothing: start over, waiting
	// out the lease again, until the term ends.
	for ctx.Err() == nil {
		n.leadOnce(ctx, termStart)
		if ctx.Err() != nil {
			return
		}
		n.fence.drop("restarting the lease")
		select {
		case <-ctx.Done():
		case <-time.After(n.t.Renew):
		}
	}
}

func (n *Node) leadOnce(ctx context.Context, termStart time.Time) {
	// Apply everything committed by earlier leaders (a renewal the old
	// holder got committed must be seen, or we would not wait for it).
	for {
		if err := n.raft.Barrier(n.t.Lease).Error(); err == nil {
			break
		} else if ctx.Err() != nil || errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrRaftShutdown) {
			return
		}
	}
	st := n.fsm.state()
	if st.Applied.After(termStart) {
		// The last lease entry came from an earlier term but was only
		// committed (so applied) in ours. It was in our log before we
		// became leader, received by an AppendEntries call no later than
		// Raft's LastContact (set after each successful one), and it was
		// proposed before it was received: counting from LastContact
		// is safe, and spares the wait a failure-detection delay.
		if lc := n.raft.LastContact(); !lc.IsZero() && lc.Before(st.Applied) {
			st.Applied = lc
		}
	}
	if free, wait := st.Free(time.Now(), n.t.Drift); !free {
		n.logger.Info("cluster: leader; waiting for the previous lease to run out", "holder", st.Holder, "wait", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
	start := time.Now()
	r, err := n.propose(command{Op: opAcquire, Node: n.cfg.NodeID, Lease: n.t.Lease})
	if err != nil || !r.OK {
		n.logger.Warn("cluster: could not acquire the lease", "err", err)
		return
	}
	epoch := r.Epoch
	n.fence.hold(ctx, start, start.Add(n.t.Hold()))
	tick := time.NewTicker(n.t.Renew)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		start := time.Now()
		r, err := n.propose(command{Op: opRenew, Node: n.cfg.NodeID, Epoch: epoch, Lease: n.t.Lease})
		if err != nil {
			n.m.renewFailures.Inc()
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrRaftShutdown) {
				return
			}
			continue
		}
		if !r.OK {
			return // someone else's epoch: never ours again this term
		}
		n.fence.hold(ctx, start, start.Add(n.t.Hold()))
	}
}

func (n *Node) propose(c command) (result, error) {
	b, _ := json.Marshal(c)
	f := n.raft.Apply(b, n.t.Lease)
	if err := f.Error(); err != nil {
		return result{}, err
	}
	r, _ := f.Response().(result)
	return r, nil
}

func (n *Node) ownerChanged(old, st LeaseState) {
	n.m.epoch.Set(float64(st.Epoch))
	if st.Epoch != old.Epoch {
		n.m.handovers.Inc()
	}
	owner := st.Holder
	if owner == "" {
		owner = "(none)"
	}
	n.event("owner", "lease holder "+owner+fmt.Sprintf(" (epoch %d)", st.Epoch))
}

func (n *Node) event(kind, detail string) {
	n.logger.Info("cluster: "+kind, "node", n.cfg.NodeID, "detail", detail)
	if n.opts.OnEvent != nil {
		n.opts.OnEvent(Event{Time: time.Now(), Kind: kind, Node: n.cfg.NodeID, Detail: detail})
	}
}

// ListenControl is a net.ListenConfig.Control function for the gateway's
// listeners: it lets Leave fence them (see Leave). Prefer ListenConfig,
// which also turns off MPTCP (Go's default for listeners), whose sockets
// take no socket filter.
func (n *Node) ListenControl(network, address string, c syscall.RawConn) error {
	return n.lns.control(network, address, c)
}

// ListenConfig opens the gateway's listeners so that Leave can fence them:
// plain TCP (not MPTCP) with ListenControl.
func (n *Node) ListenConfig() *net.ListenConfig { return n.listenConfigFor(&n.lns) }

func (n *Node) listenConfigFor(l *listeners) *net.ListenConfig {
	lc := &net.ListenConfig{Control: l.control}
	lc.SetMultipathTCP(false)
	return lc
}

// Leave stops the node gracefully. If it holds the VIP, it first fences
// its listeners (new SYNs are dropped silently and retransmitted by
// clients), runs drain (the gateway's Shutdown: in-flight requests
// finish), removes the address, releases the lease through the log and
// hands Raft leadership to a peer, which takes the address without
// waiting. Without the VIP it just drains. Then it closes the node.
func (n *Node) Leave(ctx context.Context, drain func(context.Context) error) error {
	n.mu.Lock()
	n.leaving = true
	n.mu.Unlock()
	held, _ := n.fence.status()
	var errs []error
	if held {
		if k, err := n.lns.fence(); err != nil {
			n.logger.Warn("cluster: fencing listeners failed; new connections may be reset during the handover", "err", err)
		} else {
			n.logger.Info("cluster: handing over: new connections are held back", "listeners", k)
		}
		// Let handshakes that were under way complete and be accepted
		// before drain closes the gateway's listeners.
		select {
		case <-time.After(handshakeGrace):
		case <-ctx.Done():
		}
	}
	if drain != nil {
		errs = append(errs, drain(ctx))
	}
	if held || n.raft.State() == raft.Leader {
		errs = append(errs, n.release())
	}
	errs = append(errs, n.Close())
	return errors.Join(errs...)
}

// release ends this node's term with the lease released and leadership
// moved to a peer.
func (n *Node) release() error {
	n.mu.Lock()
	cancel, end := n.cancel, n.termEnd
	n.cancel, n.termEnd = nil, nil
	n.mu.Unlock()
	if cancel != nil {
		cancel()
		n.fence.drop("handing over")
		<-end
	}
	st := n.fsm.state()
	if st.Holder == n.cfg.NodeID {
		if r, err := n.propose(command{Op: opRelease, Node: n.cfg.NodeID, Epoch: st.Epoch, Lease: n.t.Lease}); err != nil || !r.OK {
			// The successor then waits out the lease: slower, still safe.
			n.logger.Warn("cluster: could not release the lease; the next owner will wait for it to expire", "err", err)
		} else {
			n.event("released", "lease released for a peer")
		}
	}
	if n.raft.State() == raft.Leader {
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			n.logger.Warn("cluster: leadership transfer failed; the peers will elect a leader", "err", err)
		}
	}
	return nil
}

// Close stops the node abruptly: the address goes at once, and the peers
// take over after the lease (as after a crash, without the wait for
// failure detection if Raft notices the shutdown).
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.leaving = true
	n.mu.Unlock()
	close(n.stop)
	<-n.done
	n.fence.drop("node closed")
	err := n.closeAll()
	n.lns.close()
	n.m.unregister()
	return err
}

func (n *Node) closeAll() error {
	var errs []error
	for i := len(n.closer) - 1; i >= 0; i-- {
		errs = append(errs, n.closer[i]())
	}
	n.closer = nil
	return errors.Join(errs...)
}

// Status reports this node's view.
func (n *Node) Status() Status {
	st := n.fsm.state()
	held, since := n.fence.status()
	s := Status{Node: n.cfg.NodeID, Owner: st.Holder, Epoch: st.Epoch, Holding: held,
		State: strings.ToLower(n.raft.State().String()), Term: n.raft.CurrentTerm()}
	if n.cfg.VIP.IsValid() {
		s.VIP = n.cfg.VIP.String()
	}
	if _, id := n.raft.LeaderWithID(); id != "" {
		s.Leader = string(id)
	}
	if held {
		age := time.Since(since)
		s.LeaseAge = age.Round(time.Millisecond).String()
		s.LeaseAgeSeconds = age.Seconds()
		s.HeldSeconds = time.Since(n.fence.addedAt()).Seconds()
	}
	return s
}

// ID is the node's ID.
func (n *Node) ID() string { return n.cfg.NodeID }

// Holding reports whether this node answers for the VIP now.
func (n *Node) Holding() bool {
	held, _ := n.fence.status()
	return held
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// slogWriter turns raft's log lines into debug logs.
type slogWriter struct{ l *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	w.l.Debug(string(p), "component", "cluster-raft")
	return len(p), nil
}

var _ io.Writer = (*slogWriter)(nil)
