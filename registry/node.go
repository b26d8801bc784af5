package registry

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/bulwark-go/bulwark/internal/raftbolt"

	"github.com/bulwark-go/bulwark/internal/diskspace"
)

// Node is one registry server: a Raft member holding the catalog, its
// leases (when leader) and its HTTP API.
//
// Goroutines owned by a Node: the HTTP server, the leadership watcher
// (which runs the lease loop while this node leads) and the membership
// loop (join / address refresh). Close stops all of them and waits.
type Node struct {
	cfg      Config
	id       string
	log      *slog.Logger
	fsm      *fsm
	leases   *leaseTable
	raft     *raft.Raft
	store    *raftbolt.Store
	trans    *raft.NetworkTransport
	raftAddr string
	httpAddr string
	httpSrv  *http.Server
	fwd      *http.Client // forwarding and join requests to other nodes

	leaseReady atomic.Bool // leader's lease loop has caught up
	renewBufs  sync.Pool   // *renewScratch for batch renewals
	barrier    readBarrier // coalesces consistent reads' barriers
	disk       diskspace.Guard
	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	closeOnce  sync.Once
	closeErr   error
}

// Open starts a registry node: it opens (or creates) the Raft state in
// cfg.DataDir, binds the Raft transport and the HTTP API, and bootstraps or
// joins the cluster as the configuration says. Open returns once the node
// is serving; joining continues in the background (see Node.Status). ctx
// bounds only the start-up work.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("registry: data dir: %w", err)
	}
	n := &Node{cfg: cfg, log: cfg.Logger, fsm: newFSM(), leases: newLeaseTable(),
		disk: diskspace.Guard{Path: cfg.DataDir, Min: minFreeDisk},
		fwd:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second, TLSClientConfig: cfg.ClientTLS}}}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	ok := false
	var closers []func()
	defer func() {
		if !ok {
			n.cancel()
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()

	raftLog := &slogWriter{log: n.log}
	trans, err := n.openTransport(raftLog)
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { trans.Close() })
	n.trans = trans
	n.raftAddr = string(trans.LocalAddr())
	n.id = cfg.NodeID
	if n.id == "" {
		n.id = "node-" + strings.NewReplacer(":", "-", "[", "", "]", "").Replace(n.raftAddr)
	}

	snaps, existing, err := n.openStores(raftLog)
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { n.store.Close() })

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("registry: listen HTTP: %w", err)
	}
	closers = append(closers, func() { ln.Close() })
	n.httpAddr = ln.Addr().String()
	if cfg.ServerTLS != nil {
		ln = tls.NewListener(ln, cfg.ServerTLS)
	}

	notify := make(chan bool, 8)
	n.raft, err = raft.NewRaft(n.raftConfig(notify, raftLog), n.fsm, n.store, n.store, snaps, trans)
	if err != nil {
		return nil, fmt.Errorf("registry: start raft: %w", err)
	}
	closers = append(closers, func() { n.raft.Shutdown().Error() })
	if !existing && (cfg.Bootstrap || len(cfg.Peers) == 0) {
		// ErrCantBootstrap here means a peer that bootstrapped the same
		// cluster reached us between NewRaft starting the transport and this
		// call, and we already hold its configuration: that is success.
		if err := n.raft.BootstrapCluster(n.bootstrapConfig()).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return nil, fmt.Errorf("registry: bootstrap: %w", err)
		}
	}

	n.serve(ln, notify)
	ok = true
	n.log.Info("registry: node started", "id", n.id, "raft", n.raftAddr, "http", n.httpAddr, "existing_state", existing)
	return n, nil
}

// openStores opens the Raft log/stable store and the snapshot store, and
// reports whether they hold state from an earlier run.
func (n *Node) openStores(w io.Writer) (raft.SnapshotStore, bool, error) {
	var err error
	n.store, err = raftbolt.Open(filepath.Join(n.cfg.DataDir, "raft.db"))
	if err != nil {
		return nil, false, fmt.Errorf("registry: open raft log: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStore(n.cfg.DataDir, 2, w)
	if err != nil {
		n.store.Close()
		return nil, false, fmt.Errorf("registry: snapshot store: %w", err)
	}
	existing, err := raft.HasExistingState(n.store, n.store, snaps)
	if err != nil {
		n.store.Close()
		return nil, false, fmt.Errorf("registry: read raft state: %w", err)
	}
	return snaps, existing, nil
}

// serve starts the node's goroutines: HTTP API, leadership watcher and
// membership loop.
func (n *Node) serve(ln net.Listener, notify <-chan bool) {
	h := n.Handler()
	if n.cfg.Middleware != nil {
		h = n.cfg.Middleware(h)
	}
	n.httpSrv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return n.ctx }}
	n.goFunc(func() {
		if err := n.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("registry: HTTP server stopped", "err", err)
		}
	})
	n.goFunc(func() { n.watchLeadership(notify) })
	n.goFunc(n.maintainMembership)
}

func (n *Node) openTransport(w io.Writer) (*raft.NetworkTransport, error) {
	if n.cfg.newTransport != nil {
		return n.cfg.newTransport(n.cfg.RaftAddr, w)
	}
	if n.cfg.ServerTLS != nil {
		return newTLSTransport(n.cfg.RaftAddr, n.cfg.ServerTLS, n.cfg.ClientTLS, w)
	}
	t, err := raft.NewTCPTransport(n.cfg.RaftAddr, nil, 3, 10*time.Second, w)
	if err != nil {
		return nil, fmt.Errorf("registry: raft transport: %w", err)
	}
	return t, nil
}

func (n *Node) raftConfig(notify chan bool, w io.Writer) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.id)
	rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	rc.CommitTimeout = min(rc.CommitTimeout, n.cfg.HeartbeatTimeout/4)
	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	rc.SnapshotInterval = n.cfg.SnapshotInterval
	rc.TrailingLogs = n.cfg.TrailingLogs
	rc.NotifyCh = notify
	rc.LogOutput = w
	rc.LogLevel = "INFO"
	return rc
}

func (n *Node) bootstrapConfig() raft.Configuration {
	c := raft.Configuration{Servers: []raft.Server{{ID: raft.ServerID(n.id), Address: raft.ServerAddress(n.raftAddr), Suffrage: raft.Voter}}}
	if n.cfg.Bootstrap {
		for _, p := range n.cfg.Peers {
			c.Servers = append(c.Servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr), Suffrage: raft.Voter})
		}
	}
	return c
}

// goFunc runs f in a goroutine that Close waits for.
func (n *Node) goFunc(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// watchLeadership runs the lease loop for as long as this node leads.
func (n *Node) watchLeadership(notify <-chan bool) {
	var term *leaderTerm
	defer func() { term.end() }()
	for {
		select {
		case <-n.ctx.Done():
			return
		case leader := <-notify:
			term.end()
			term = nil
			if leader {
				n.log.Info("registry: became leader", "id", n.id)
				term = n.startTerm()
			}
		}
	}
}

// leaderTerm is one stretch of leadership: the lease loop's stop switch.
type leaderTerm struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (n *Node) startTerm() *leaderTerm {
	ctx, cancel := context.WithCancel(n.ctx)
	t := &leaderTerm{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		if n.cfg.Run == nil {
			n.runLeases(ctx)
			return
		}
		n.cfg.Run(ctx, "registry leases", func(ctx context.Context) error { n.runLeases(ctx); return nil })
	}()
	return t
}

// end stops the term's lease loop and waits for it; nil is a no-op.
func (t *leaderTerm) end() {
	if t != nil {
		t.cancel()
		<-t.done
	}
}

// recordSelf commits this (leading) node's HTTP address to the catalog so
// followers can forward writes here.
func (n *Node) recordSelf() {
	if a, ok := n.fsm.member(n.id); ok && a == n.httpAddr {
		return
	}
	if _, err := n.apply(&command{Op: opMember, NodeID: n.id, HTTPAddr: n.httpAddr}); err != nil {
		n.log.Warn("registry: record own address", "err", err)
	}
}

// maintainMembership makes sure this node is in the Raft configuration and
// its HTTP address is in the catalog: a fresh node asks its peers to add it
// (POST /v1/join, forwarded to the leader), and a restarted node whose HTTP
// port changed re-announces itself the same way.
func (n *Node) maintainMembership() {
	backoff := 100 * time.Millisecond
	for {
		wait := 2 * time.Second
		if !n.isMember() {
			if err := n.join(); err != nil {
				n.log.Debug("registry: join attempt failed", "err", err)
				wait, backoff = backoff, min(backoff*2, 2*time.Second)
			} else {
				backoff = 100 * time.Millisecond
			}
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// isMember reports whether the catalog records this node's current HTTP
// address (implying that it is part of the replicated configuration).
func (n *Node) isMember() bool {
	a, ok := n.fsm.member(n.id)
	return ok && a == n.httpAddr
}

// joinRequest is the body of POST /v1/join.
type joinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

// join asks the leader (or, if unknown, each configured peer in turn) to add
// this node.
func (n *Node) join() error {
	if n.raft.State() == raft.Leader {
		return n.addMember(joinRequest{ID: n.id, RaftAddr: n.raftAddr, HTTPAddr: n.httpAddr})
	}
	var targets []string
	if a, ok := n.leaderHTTP(); ok {
		targets = append(targets, a)
	}
	for _, p := range n.cfg.Peers {
		targets = append(targets, p.HTTPAddr)
	}
	if len(targets) == 0 {
		return fmt.Errorf("%w: no leader and no peers to join through", ErrNotLeader)
	}
	body, _ := json.Marshal(joinRequest{ID: n.id, RaftAddr: n.raftAddr, HTTPAddr: n.httpAddr})
	var errs []error
	for _, t := range targets {
		ctx, cancel := context.WithTimeout(n.ctx, 3*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.scheme()+"://"+t+"/v1/join", bytes.NewReader(body))
		if n.cfg.Token != "" {
			req.Header.Set("Authorization", "Bearer "+n.cfg.Token)
		}
		resp, err := n.fwd.Do(req)
		if err == nil {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				cancel()
				return nil
			}
			err = fmt.Errorf("%s: %s: %s", t, resp.Status, bytes.TrimSpace(msg))
		}
		cancel()
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// addMember runs on the leader: add (or re-address) a voter and record its
// HTTP address. AddVoter is idempotent for an unchanged server.
func (n *Node) addMember(j joinRequest) error {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	present := false
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == j.ID && string(s.Address) == j.RaftAddr && s.Suffrage == raft.Voter {
			present = true
		}
	}
	if !present {
		if err := n.raft.AddVoter(raft.ServerID(j.ID), raft.ServerAddress(j.RaftAddr), 0, 10*time.Second).Error(); err != nil {
			return fmt.Errorf("registry: add voter %s: %w", j.ID, err)
		}
		n.log.Info("registry: added voter", "id", j.ID, "raft", j.RaftAddr)
	}
	_, err := n.apply(&command{Op: opMember, NodeID: j.ID, HTTPAddr: j.HTTPAddr})
	return err
}

// minFreeDisk is the free space under DataDir below which the node refuses
// writes (ErrDiskFull) rather than have Raft's log store fail half-way
// through an append, which makes the leader step down.
const minFreeDisk = 8 << 20

// apply commits a command through Raft (leader only) and returns the FSM's
// result.
func (n *Node) apply(c *command) (applyResult, error) {
	if err := n.disk.Check(); err != nil {
		return applyResult{}, fmt.Errorf("%w: %w", ErrDiskFull, err)
	}
	b, err := json.Marshal(c)
	if err != nil {
		return applyResult{}, err
	}
	f := n.raft.Apply(b, 5*time.Second)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrEnqueueTimeout) {
			return applyResult{}, fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		if errors.Is(err, raft.ErrRaftShutdown) {
			return applyResult{}, ErrClosed
		}
		return applyResult{}, err
	}
	switch r := f.Response().(type) {
	case applyResult:
		return r, nil
	case error:
		return applyResult{}, r
	}
	return applyResult{}, fmt.Errorf("registry: unexpected apply result %T", f.Response())
}

// leaderHTTP returns the leader's HTTP address, from the catalog or the
// configured peers.
func (n *Node) leaderHTTP() (string, bool) {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return "", false
	}
	if string(id) == n.id {
		return n.httpAddr, true
	}
	if a, ok := n.fsm.member(string(id)); ok {
		return a, true
	}
	for _, p := range n.cfg.Peers {
		if p.ID == string(id) {
			return p.HTTPAddr, true
		}
	}
	return "", false
}

// stale reports whether this node's reads may be out of date: it is not the
// leader and has heard from no leader within two heartbeat timeouts. A
// leader that loses its quorum steps down after LeaderLeaseTimeout, so a
// leader is never stale for long.
func (n *Node) stale() bool {
	switch n.raft.State() {
	case raft.Leader:
		return false
	case raft.Shutdown:
		return true
	}
	if _, id := n.raft.LeaderWithID(); id == "" {
		return true
	}
	return time.Since(n.raft.LastContact()) > 2*n.cfg.HeartbeatTimeout
}

// WaitReady blocks until the cluster has a leader that this node knows and
// the catalog records this node as a member (so writes through it work).
func (n *Node) WaitReady(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if _, ok := n.leaderHTTP(); ok && n.isMember() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.ctx.Done():
			return ErrClosed
		case <-t.C:
		}
	}
}

// ID returns the node's Raft server ID.
func (n *Node) ID() string { return n.id }

// HTTPAddr returns the host:port the HTTP API listens on.
func (n *Node) HTTPAddr() string { return n.httpAddr }

// RaftAddr returns the host:port of the Raft transport.
func (n *Node) RaftAddr() string { return n.raftAddr }

// IsLeader reports whether this node currently leads the cluster.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Snapshot forces a Raft snapshot now (compacting the log).
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }

// Close stops the HTTP API, leaves Raft (without removing itself from the
// configuration: a restart with the same DataDir rejoins), and waits for
// every goroutine. It is safe to call more than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.cancel() // ends blocking queries, watches and loops
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := n.httpSrv.Shutdown(ctx); err != nil {
			n.httpSrv.Close()
		}
		errs := []error{n.raft.Shutdown().Error()}
		// Shutdown closes the listener but not pooled connections; close
		// them so peers' connection handlers (and ours) end now.
		n.trans.CloseStreams()
		n.wg.Wait()
		errs = append(errs, n.store.Close())
		n.fwd.CloseIdleConnections()
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// slogWriter turns Raft's hclog lines into Debug records.
type slogWriter struct{ log *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	if !w.log.Enabled(context.Background(), slog.LevelDebug) {
		return len(p), nil
	}
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		w.log.Debug(sc.Text(), "component", "raft")
	}
	return len(p), nil
}
