package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/internal/netns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if code, done := netns.Isolate(); done {
		os.Exit(code)
	}
	goleak.VerifyTestMain(m)
}

// world is the VIP as the network sees it: it records every node holding
// it, and any instant two hold it at once.
type world struct {
	mu         sync.Mutex
	holders    map[string]bool
	violations []string
	log        []string
}

func (w *world) addr(node string) Address { return &worldAddr{w: w, node: node} }

func (w *world) owners() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for n, h := range w.holders {
		if h {
			out = append(out, n)
		}
	}
	return out
}

type worldAddr struct {
	w    *world
	node string
}

func (a *worldAddr) Add() error {
	a.w.mu.Lock()
	defer a.w.mu.Unlock()
	for n, h := range a.w.holders {
		if h && n != a.node {
			a.w.violations = append(a.w.violations, fmt.Sprintf("%s added the VIP while %s held it", a.node, n))
		}
	}
	a.w.holders[a.node] = true
	a.w.log = append(a.w.log, time.Now().Format("15:04:05.000")+" +"+a.node)
	return nil
}

func (a *worldAddr) Remove() error {
	a.w.mu.Lock()
	defer a.w.mu.Unlock()
	if a.w.holders[a.node] {
		a.w.log = append(a.w.log, time.Now().Format("15:04:05.000")+" -"+a.node)
	}
	a.w.holders[a.node] = false
	return nil
}

func freePorts(t *testing.T, n int) []string {
	var out []string
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

type testCluster struct {
	w     *world
	nodes map[string]*Node
	regs  map[string]*prometheus.Registry
}

// Timing for tests under -race on a loaded machine: the same arithmetic
// as the default with wider margins, so a late timer is not a flake.
var testTiming = Timing{Lease: time.Second, Renew: 100 * time.Millisecond, Removal: 300 * time.Millisecond, Drift: 100 * time.Millisecond}

func startCluster(t *testing.T, size int) *testCluster {
	t.Helper()
	addrs := freePorts(t, size)
	c := &testCluster{w: &world{holders: map[string]bool{}}, nodes: map[string]*Node{}, regs: map[string]*prometheus.Registry{}}
	for i := range size {
		id := fmt.Sprintf("gw%d", i+1)
		var peers []Peer
		for j, a := range addrs {
			if j != i {
				peers = append(peers, Peer{ID: fmt.Sprintf("gw%d", j+1), Raft: a})
			}
		}
		reg := prometheus.NewRegistry()
		n, err := Open(Config{NodeID: id, Bind: addrs[i], Peers: peers, DataDir: t.TempDir(), Timing: testTiming},
			Options{Address: c.w.addr(id), Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		c.nodes[id], c.regs[id] = n, reg
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.Close()
		}
		c.w.mu.Lock()
		defer c.w.mu.Unlock()
		for _, v := range c.w.violations {
			t.Errorf("split brain: %s", v)
		}
		if t.Failed() {
			t.Logf("VIP log: %v", c.w.log)
		}
	})
	return c
}

// owner waits for exactly one node to hold the VIP and returns it.
func (c *testCluster) owner(t *testing.T, not string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if o := c.w.owners(); len(o) == 1 && o[0] != not {
			return o[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no single owner (other than %q) within %v: holders %v", not, within, c.w.owners())
	return ""
}

func TestClusterElectsOneOwner(t *testing.T) {
	c := startCluster(t, 3)
	o := c.owner(t, "", 15*time.Second)
	n := c.nodes[o]
	if !n.Holding() {
		t.Fatalf("%s owns the VIP in the world but not by its own account", o)
	}
	// Everyone agrees on the owner through the log.
	deadline := time.Now().Add(5 * time.Second)
	for _, m := range c.nodes {
		for m.Status().Owner != o && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if s := m.Status(); s.Owner != o {
			t.Fatalf("%s thinks the owner is %q, want %q", m.ID(), s.Owner, o)
		}
	}
	if got := testutil.ToFloat64(n.m.holding); got != 1 {
		t.Fatalf("bulwark_cluster_vip_owner on the owner = %v", got)
	}
	// The status the dashboard reads: the owner leads (only the leader
	// proposes lease entries), and reports how long it has held the VIP
	// and how old its lease is; a follower reports neither.
	if s := n.Status(); s.State != "leader" || s.Leader != o || s.Term == 0 || !s.Holding ||
		s.HeldSeconds <= 0 || s.LeaseAgeSeconds <= 0 || s.LeaseAgeSeconds > testTiming.Lease.Seconds() {
		t.Fatalf("owner's status = %+v", s)
	}
	for id, m := range c.nodes {
		if id == o {
			continue
		}
		if s := m.Status(); s.State != "follower" || s.Holding || s.HeldSeconds != 0 || s.LeaseAgeSeconds != 0 {
			t.Fatalf("follower %s's status = %+v", id, s)
		}
	}
	if cnt, err := testutil.GatherAndCount(c.regs[o], "bulwark_cluster_lease_age_seconds", "bulwark_cluster_handovers_total"); err != nil || cnt != 2 {
		t.Fatalf("metrics: %d series, %v", cnt, err)
	}
	// It keeps holding: renewals work.
	time.Sleep(3 * testTiming.Lease)
	if o2 := c.owner(t, "", time.Second); o2 != o {
		t.Fatalf("owner moved from %s to %s with no fault", o, o2)
	}
}

// TestClusterOwnerCrash: an abrupt stop of the owner (its Raft goes
// silent, as with kill -9) moves the VIP to another node, never to two.
func TestClusterOwnerCrash(t *testing.T) {
	c := startCluster(t, 3)
	o := c.owner(t, "", 15*time.Second)
	c.nodes[o].Close()
	delete(c.nodes, o)
	o2 := c.owner(t, o, 15*time.Second)
	t.Logf("VIP moved %s → %s", o, o2)
	// Two left: still a quorum; the new owner keeps it.
	time.Sleep(2 * testTiming.Lease)
	if o3 := c.owner(t, "", time.Second); o3 != o2 {
		t.Fatalf("owner moved again to %s", o3)
	}
}

// TestClusterLeaveHandsOver: Leave drains while still owning, releases the
// lease and hands over; the successor takes the VIP without waiting out
// the lease.
func TestClusterLeaveHandsOver(t *testing.T) {
	c := startCluster(t, 3)
	o := c.owner(t, "", 15*time.Second)
	drained := false
	err := c.nodes[o].Leave(context.Background(), func(context.Context) error {
		// During drain the owner must still answer for the VIP.
		if got := c.w.owners(); len(got) != 1 || got[0] != o {
			t.Errorf("during drain holders = %v, want [%s]", got, o)
		}
		drained = true
		return nil
	})
	if err != nil || !drained {
		t.Fatalf("Leave: %v (drained %v)", err, drained)
	}
	delete(c.nodes, o)
	start := time.Now()
	o2 := c.owner(t, o, 15*time.Second)
	t.Logf("handover %s → %s after %v", o, o2, time.Since(start))
	st := c.nodes[o2].Status()
	if st.Epoch < 2 {
		t.Fatalf("epoch %d after a handover", st.Epoch)
	}
}

// TestClusterNoQuorum: with two of three nodes gone, the last one must not
// hold the VIP, whoever owned it.
func TestClusterNoQuorum(t *testing.T) {
	c := startCluster(t, 3)
	o := c.owner(t, "", 15*time.Second)
	var survivor string
	for id, n := range c.nodes {
		if id != o && survivor == "" {
			survivor = id
			continue
		}
		n.Close()
		delete(c.nodes, id)
	}
	deadline := time.Now().Add(testTiming.Lease + 5*time.Second)
	for len(c.w.owners()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("holders %v with no quorum", c.w.owners())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// And it stays that way.
	time.Sleep(2 * testTiming.Lease)
	if h := c.w.owners(); len(h) > 0 {
		t.Fatalf("%v took the VIP without a quorum", h)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no id", Config{Bind: "127.0.0.1:1"}},
		{"bad bind", Config{NodeID: "a", Bind: "nope"}},
		{"dup peer", Config{NodeID: "a", Bind: "127.0.0.1:1", Peers: []Peer{{ID: "a", Raft: "127.0.0.1:2"}}}},
		{"bad timing", Config{NodeID: "a", Bind: "127.0.0.1:1", Timing: Timing{Lease: 100 * time.Millisecond}}},
		{"no vip", Config{NodeID: "a", Bind: "127.0.0.1:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Open(tc.cfg, Options{}); err == nil {
				t.Fatal("Open accepted an invalid config")
			}
		})
	}
}
