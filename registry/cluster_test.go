package registry

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"
)

// cutLayer is a raft.StreamLayer whose traffic a test can cut in both
// directions: while cut, dials fail, accepted connections are dropped and
// open ones are closed. It models a network partition around one node.
type cutLayer struct {
	ln   net.Listener
	cut  atomic.Bool
	mu   sync.Mutex
	conn map[net.Conn]struct{}
}

func (l *cutLayer) track(c net.Conn) net.Conn {
	l.mu.Lock()
	l.conn[c] = struct{}{}
	l.mu.Unlock()
	return c
}

func (l *cutLayer) Accept() (net.Conn, error) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return nil, err
		}
		if l.cut.Load() {
			c.Close()
			continue
		}
		return l.track(c), nil
	}
}

func (l *cutLayer) Close() error   { return l.ln.Close() }
func (l *cutLayer) Addr() net.Addr { return l.ln.Addr() }

func (l *cutLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if l.cut.Load() {
		return nil, errors.New("cutLayer: partitioned")
	}
	c, err := net.DialTimeout("tcp", string(addr), timeout)
	if err != nil {
		return nil, err
	}
	return l.track(c), nil
}

// setCut partitions (true) or heals (false) the node.
func (l *cutLayer) setCut(v bool) {
	l.cut.Store(v)
	if v {
		l.mu.Lock()
		for c := range l.conn {
			c.Close()
		}
		clear(l.conn)
		l.mu.Unlock()
	}
}

// testCluster is n registry nodes in this process on loopback.
type testCluster struct {
	t      testing.TB
	cfgs   []Config
	nodes  []*Node
	layers []*cutLayer
}

// testLogger logs to stderr when REGISTRY_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("REGISTRY_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fastConfig has the short Raft timeouts the integration tests use; lease
// settings (TTL, SuspectTimeout, scan interval) stay at their defaults so
// the measured detection times are those of a default deployment.
func fastConfig(id, dir string) Config {
	return Config{
		NodeID: id, DataDir: dir,
		HeartbeatTimeout: 250 * time.Millisecond, ElectionTimeout: 250 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond,
		Logger:             testLogger(),
	}
}

// newCluster starts n nodes: node 0 bootstraps, the others join through it.
func newCluster(t testing.TB, n int, mod func(i int, c *Config)) *testCluster {
	t.Helper()
	tc := &testCluster{t: t}
	for i := range n {
		cfg := fastConfig("n"+string(rune('0'+i)), t.TempDir())
		layer := &cutLayer{conn: map[net.Conn]struct{}{}}
		cfg.newTransport = func(bind string, w io.Writer) (*raft.NetworkTransport, error) {
			ln, err := net.Listen("tcp", bind)
			if err != nil {
				return nil, err
			}
			layer.ln = ln
			return raft.NewNetworkTransport(layer, 3, 2*time.Second, w), nil
		}
		if i == 0 {
			cfg.Bootstrap = true
		} else {
			first := tc.nodes[0]
			cfg.Peers = []Peer{{ID: first.ID(), RaftAddr: first.RaftAddr(), HTTPAddr: first.HTTPAddr()}}
		}
		if mod != nil {
			mod(i, &cfg)
		}
		node, err := Open(t.Context(), cfg)
		if err != nil {
			t.Fatalf("open node %d: %v", i, err)
		}
		// Restarts reuse the ports.
		cfg.HTTPAddr, cfg.RaftAddr = node.HTTPAddr(), node.RaftAddr()
		tc.cfgs = append(tc.cfgs, cfg)
		tc.nodes = append(tc.nodes, node)
		tc.layers = append(tc.layers, layer)
		if i == 0 {
			tc.waitFor("node 0 leads", 5*time.Second, node.IsLeader)
		}
	}
	t.Cleanup(tc.close)
	tc.waitFor("all nodes joined", 10*time.Second, func() bool {
		for _, nd := range tc.nodes {
			if nd == nil || !nd.isMember() || len(nd.Status().Nodes) != n {
				return false
			}
		}
		return true
	})
	return tc
}

func (tc *testCluster) close() {
	for i, n := range tc.nodes {
		if n != nil {
			n.Close()
			tc.nodes[i] = nil
		}
	}
}

// waitFor polls cond every 10 ms until it holds or the timeout fails the
// test. Polling (not sleeping a fixed time) keeps these real-network tests
// as fast as the cluster allows.
func (tc *testCluster) waitFor(what string, timeout time.Duration, cond func() bool) time.Duration {
	tc.t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			tc.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// leader returns the index of the current leader (waiting for one).
func (tc *testCluster) leader() int {
	tc.t.Helper()
	idx := -1
	tc.waitFor("a leader", 5*time.Second, func() bool {
		for i, n := range tc.nodes {
			if n != nil && n.IsLeader() && n.leaseReady.Load() {
				idx = i
				return true
			}
		}
		return false
	})
	return idx
}

// follower returns the index of some live non-leader.
func (tc *testCluster) follower() int {
	l := tc.leader()
	for i, n := range tc.nodes {
		if n != nil && i != l {
			return i
		}
	}
	tc.t.Fatal("no follower")
	return -1
}

// addrs returns the HTTP addresses of the given nodes (all when empty).
func (tc *testCluster) addrs(idx ...int) []string {
	if len(idx) == 0 {
		for i := range tc.cfgs {
			idx = append(idx, i)
		}
	}
	var out []string
	for _, i := range idx {
		out = append(out, tc.cfgs[i].HTTPAddr)
	}
	return out
}

// stop closes node i (as a crash would, minus the disk: Raft state stays).
func (tc *testCluster) stop(i int) {
	tc.nodes[i].Close()
	tc.nodes[i] = nil
}

// restart reopens node i on its old addresses and data directory.
func (tc *testCluster) restart(i int) {
	tc.t.Helper()
	cfg := tc.cfgs[i]
	cfg.Bootstrap, cfg.Peers = false, nil
	layer := &cutLayer{conn: map[net.Conn]struct{}{}}
	cfg.newTransport = func(bind string, w io.Writer) (*raft.NetworkTransport, error) {
		ln, err := net.Listen("tcp", bind)
		if err != nil {
			return nil, err
		}
		layer.ln = ln
		return raft.NewNetworkTransport(layer, 3, 2*time.Second, w), nil
	}
	n, err := Open(context.Background(), cfg)
	if err != nil {
		tc.t.Fatalf("restart node %d: %v", i, err)
	}
	tc.nodes[i], tc.layers[i] = n, layer
}

// checkLeaks verifies, after every other cleanup (cluster, clients) has
// run, that the test left no goroutines behind. Register it first.
func checkLeaks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
}
