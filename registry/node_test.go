package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
)

func newTestClient(t *testing.T, addrs []string) *Client {
	t.Helper()
	c, err := NewClient(ClientConfig{Addrs: addrs, RequestTimeout: time.Second, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestClusterLeaderFailover(t *testing.T) {
	checkLeaks(t)
	tc := newCluster(t, 3, nil)
	c := newTestClient(t, tc.addrs())
	ctx := t.Context()

	// Acknowledged registrations, sent through every node (followers forward).
	var acked []string
	for i := range 12 {
		id := fmt.Sprintf("i%d", i)
		cc := newTestClient(t, tc.addrs(i%3))
		reg, err := cc.Register(ctx, bulwark.Instance{Service: "svc", ID: id, Address: "http://127.0.0.1:1"}, time.Hour)
		if err != nil {
			t.Fatalf("register %s via node %d: %v", id, i%3, err)
		}
		reg.abandon() // keep the entry; a 1 h TTL never expires in this test
		acked = append(acked, id)
	}

	// A watcher preferring the node about to die must fail over.
	old := tc.leader()
	wc := newTestClient(t, append(tc.addrs(old), tc.addrs((old+1)%3, (old+2)%3)...))
	rec := startWatch(t, wc, "svc")
	tc.waitFor("watcher sees the 12", 3*time.Second, func() bool { insts, _ := rec.last(); return len(insts) == 12 })
	killed := time.Now()
	tc.stop(old)
	// A write through the surviving nodes must be accepted within 3 s.
	var reg *Registration
	for reg == nil {
		wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		r, err := c.Register(wctx, bulwark.Instance{Service: "svc", ID: "after", Address: "http://127.0.0.1:2"}, time.Hour)
		cancel()
		if err == nil {
			reg = r
		} else if time.Since(killed) > 3*time.Second {
			t.Fatalf("no write accepted within 3 s of killing the leader: %v", err)
		}
	}
	t.Logf("leader %d killed: write accepted again after %v", old, time.Since(killed).Round(time.Millisecond))
	defer reg.abandon()

	tc.waitFor("watcher fails over and sees the new write", 5*time.Second, func() bool { return rec.present("after") })
	t.Logf("watcher saw the post-failover write %v after the kill", time.Since(killed).Round(time.Millisecond))

	got, err := c.Instances(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, in := range got {
		have[in.ID] = true
	}
	for _, id := range append(acked, "after") {
		if !have[id] {
			t.Errorf("acknowledged registration %s lost after failover", id)
		}
	}
}

func TestFollowerRestartCatchesUp(t *testing.T) {
	checkLeaks(t)
	tc := newCluster(t, 3, func(_ int, c *Config) {
		c.SnapshotThreshold, c.TrailingLogs, c.SnapshotInterval = 8, 4, 100*time.Millisecond
	})
	f := tc.follower()
	tc.stop(f)
	c := newTestClient(t, tc.addrs(tc.leader()))
	for i := range 40 {
		r, err := c.Register(t.Context(), bulwark.Instance{Service: "cat", ID: fmt.Sprintf("i%d", i), Address: "10.0.0.1:80"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		r.abandon()
	}
	ln := tc.nodes[tc.leader()]
	if err := ln.Snapshot(); err != nil {
		t.Fatalf("forced snapshot: %v", err)
	}
	snapIndex, _ := strconv.ParseUint(ln.raft.Stats()["last_snapshot_index"], 10, 64)
	tc.restart(f)
	// The leader's snapshot covers writes made while the follower was down
	// and the leader kept only 4 trailing entries, so the follower can only
	// catch up by installing it (its snapshot index reaching the leader's).
	took := tc.waitFor("restarted follower installs the leader's snapshot and catches up", 10*time.Second, func() bool {
		got, _ := strconv.ParseUint(tc.nodes[f].raft.Stats()["last_snapshot_index"], 10, 64)
		return got >= snapIndex && len(tc.nodes[f].fsm.service("cat").instances) == 40
	})
	t.Logf("follower caught up (snapshot at %d + log) in %v", snapIndex, took.Round(time.Millisecond))
	// And keeps following new writes.
	r, err := c.Register(t.Context(), bulwark.Instance{Service: "cat", ID: "late", Address: "10.0.0.2:80"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r.abandon()
	tc.waitFor("new write reaches restarted follower", 5*time.Second, func() bool {
		_, ok := tc.nodes[f].fsm.lookup("cat", "late")
		return ok
	})
}

// freeAddr reserves a loopback port and releases it for a node to take.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestBootstrapAllPeers(t *testing.T) {
	checkLeaks(t)
	var peers []Peer
	for i := range 3 {
		peers = append(peers, Peer{ID: fmt.Sprint("b", i), RaftAddr: freeAddr(t), HTTPAddr: freeAddr(t)})
	}
	var nodes []*Node
	for i, p := range peers {
		cfg := fastConfig(p.ID, t.TempDir())
		cfg.HTTPAddr, cfg.RaftAddr, cfg.Bootstrap = p.HTTPAddr, p.RaftAddr, true
		cfg.Peers = append(append([]Peer{}, peers[:i]...), peers[i+1:]...)
		n, err := Open(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, n := range nodes {
		if err := n.WaitReady(ctx); err != nil {
			t.Fatalf("node %s not ready: %v", n.ID(), err)
		}
	}
	// A write through each node lands in every catalog.
	addrs := []string{nodes[0].HTTPAddr(), nodes[1].HTTPAddr(), nodes[2].HTTPAddr()}
	for i := range nodes {
		c := newTestClient(t, addrs[i:i+1])
		r, err := c.Register(ctx, bulwark.Instance{Service: "b", ID: fmt.Sprint("x", i), Address: "h:1"}, time.Hour)
		if err != nil {
			t.Fatalf("write via %s: %v", nodes[i].ID(), err)
		}
		r.abandon()
	}
	for _, n := range nodes {
		for n.fsm.service("b").instances == nil || len(n.fsm.service("b").instances) != 3 {
			if ctx.Err() != nil {
				t.Fatalf("node %s sees %d instances", n.ID(), len(n.fsm.service("b").instances))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	checkLeaks(t)
	if _, err := Open(t.Context(), Config{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Open without DataDir: %v, want ErrInvalid", err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := fastConfig("e", t.TempDir())
	cfg.HTTPAddr = busy.Addr().String()
	if n, err := Open(t.Context(), cfg); err == nil {
		n.Close()
		t.Fatal("Open on a busy HTTP port succeeded")
	}
	// Everything opened before the failure was released: the same data
	// directory opens fine now (the bolt file lock is free).
	cfg.HTTPAddr = ""
	n, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("reopen after failed Open: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
