package delivery

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// openCluster3 opens three Services, each embedding a nats-server, joined
// by routes into one JetStream cluster "bulwark-test" with Replicas 3
// (mod adjusts each node's config), and closes them with the test.
func openCluster3(t *testing.T, b *backend, mod func(i int, cfg *Config)) []*Service {
	t.Helper()
	ports := []int{freePort(t), freePort(t), freePort(t)}
	svcs := make([]*Service, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, "nats://127.0.0.1:"+strconv.Itoa(p))
			}
		}
		cfg := testConfig(t, t.TempDir())
		cfg.ServerName = "n" + strconv.Itoa(i)
		cfg.Cluster = &ClusterConfig{Name: "bulwark-test", Port: ports[i], Routes: routes}
		cfg.Replicas = 3
		if mod != nil {
			mod(i, &cfg)
		}
		fwd := newForwarder(t, b)
		// All three open at once: each blocks in CreateStream until the
		// cluster has a meta leader, which needs a quorum of servers up.
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
			defer cancel()
			svcs[i], errs[i] = Open(ctx, cfg, fwd)
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, s := range svcs {
			if s != nil {
				_ = s.Close() // idempotent: a test may have closed one already
			}
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open n%d: %v", i, err)
		}
	}
	return svcs
}

// TestCluster3 runs three Services, each embedding a nats-server, joined by
// routes into one JetStream cluster with Replicas 3. Messages acknowledged
// while the backend is down are still delivered after the work stream's
// leader is shut down.
func TestCluster3(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster")
	}
	b := newBackend(t)
	b.failing.Store(true)
	svcs := openCluster3(t, b, func(i int, cfg *Config) {
		cfg.Partitions = 2
		cfg.Backoff = []time.Duration{100 * time.Millisecond}
	})

	info, err := svcs[0].work.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	leader := -1
	for i := range svcs {
		if info.Cluster != nil && info.Cluster.Leader == "n"+strconv.Itoa(i) {
			leader = i
		}
	}
	if leader < 0 || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("work stream cluster info %+v", info.Cluster)
	}
	via := svcs[(leader+1)%3]
	const n = 100
	ids := make([]string, 0, n)
	for i := range n {
		orderKey := ""
		if i%2 == 0 {
			orderKey = "k"
		}
		id, err := via.Enqueue(t.Context(), msg("up", "c"+strconv.Itoa(i), orderKey, strconv.Itoa(i/2)))
		if err != nil {
			t.Fatalf("Enqueue %d: %v", i, err)
		}
		ids = append(ids, id)
	}
	// Shut the stream leader's node down while nothing is delivered yet.
	if err := svcs[leader].Close(); err != nil {
		t.Fatalf("Close leader n%d: %v", leader, err)
	}
	t.Logf("shut down work stream leader n%d; enqueued via n%d", leader, (leader+1)%3)
	b.failing.Store(false)

	waitFor(t, 40*time.Second, fmt.Sprintf("%d deliveries after losing the leader", n), func() bool { return b.unique() == n })
	for _, id := range ids {
		waitState(t, via, id, bulwark.DeliveryDelivered)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, v := range b.order["k"] {
		if v != strconv.Itoa(i) {
			t.Fatalf("ordered key in cluster: position %d holds %s", i, v)
		}
	}
}
