// Package regtest starts real registry nodes on loopback for the tests of
// the API translations (registry/consulapi, registry/eureka).
package regtest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/registry"
)

// Config returns a node config with fast Raft timings for loopback tests.
func Config(t testing.TB, id string, mount func(*registry.Node, *http.ServeMux)) registry.Config {
	level := slog.LevelWarn
	if os.Getenv("REGISTRY_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return registry.Config{
		NodeID: id, DataDir: t.TempDir(), Mount: mount,
		HeartbeatTimeout: 250 * time.Millisecond, ElectionTimeout: 250 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond,
		Logger:             slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
}

// Cluster starts n nodes (node 0 bootstraps, the others join through it),
// each with mod applied to its config, waits until every node is ready, and
// closes them at the end of the test.
func Cluster(t testing.TB, n int, mod func(i int, c *registry.Config)) []*registry.Node {
	t.Helper()
	var nodes []*registry.Node
	for i := range n {
		cfg := Config(t, fmt.Sprintf("n%d", i), nil)
		if i == 0 {
			cfg.Bootstrap = true
		} else {
			cfg.Peers = []registry.Peer{{ID: "n0", RaftAddr: nodes[0].RaftAddr(), HTTPAddr: nodes[0].HTTPAddr()}}
		}
		if mod != nil {
			mod(i, &cfg)
		}
		nd, err := registry.Open(context.Background(), cfg)
		if err != nil {
			t.Fatalf("open node %d: %v", i, err)
		}
		t.Cleanup(func() { nd.Close() })
		nodes = append(nodes, nd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, nd := range nodes {
		if err := nd.WaitReady(ctx); err != nil {
			t.Fatalf("node %d not ready: %v", i, err)
		}
	}
	return nodes
}

// Eventually polls cond every 20 ms until it holds or 15 s pass.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Leader returns the node that leads, waiting for one.
func Leader(t testing.TB, nodes []*registry.Node) *registry.Node {
	t.Helper()
	var l *registry.Node
	Eventually(t, "a leader", func() bool {
		for _, n := range nodes {
			if n.IsLeader() {
				l = n
				return true
			}
		}
		return false
	})
	return l
}
