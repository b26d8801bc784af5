package registry

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
)

// benchRaftTimeouts uses Raft's default 1 s timeouts: on a loaded machine
// the tests' 250 ms ones cause leader changes that would dominate the
// measurement.
func benchRaftTimeouts(_ int, c *Config) {
	c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = time.Second, time.Second, 500*time.Millisecond
}

// BenchmarkRegister measures a registration through the leader of a 3-node
// cluster: one Raft commit (replication to a quorum plus a bbolt fsync)
// per operation.
func BenchmarkRegister(b *testing.B) {
	tc := newCluster(b, 3, benchRaftTimeouts)
	c, err := NewClient(ClientConfig{Addrs: tc.addrs(tc.leader())})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := b.Context()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req := RegisterRequest{Service: "bench", ID: fmt.Sprint("i", i), Address: "h:1", TTL: Duration(time.Hour)}
		if err := c.write(ctx, http.MethodPut, "/v1/instances", req, nil); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkRenew measures a lease renewal on the leader: no Raft entry, only
// the in-memory deadline (plus the HTTP round trip, which dominates).
func BenchmarkRenew(b *testing.B) {
	tc := newCluster(b, 3, benchRaftTimeouts)
	c, err := NewClient(ClientConfig{Addrs: tc.addrs(tc.leader())})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	reg, err := c.Register(b.Context(), bulwark.Instance{Service: "bench", ID: "r", Address: "h:1"}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	defer reg.abandon()
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if err := c.write(ctx, http.MethodPut, "/v1/instances/bench/r/renew", nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLeaseScan measures the leader's periodic scan over 10,000
// leases (run every LeaseCheckInterval).
func BenchmarkLeaseScan(b *testing.B) {
	tab := newLeaseTable()
	views := make([]leaseView, 10000)
	for i := range views {
		views[i] = leaseView{service: fmt.Sprint("s", i%100), id: fmt.Sprint("i", i), health: bulwark.HealthUp, ttl: time.Hour, registerIndex: uint64(i + 1)}
	}
	now := time.Now()
	tab.scan(views, now, time.Second)
	b.ReportAllocs()
	for b.Loop() {
		tab.scan(views, now, time.Second)
	}
}

// BenchmarkRead compares a default (local) read with a ?consistent one on
// the leader (a Raft barrier, shared by concurrent readers) and on a
// follower (forwarded to the leader), each over HTTP.
func BenchmarkRead(b *testing.B) {
	tc := newCluster(b, 3, benchRaftTimeouts)
	l := tc.leader()
	f := tc.follower()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	for _, bc := range []struct {
		name, addr, query string
	}{
		{"local/leader", tc.nodes[l].HTTPAddr(), ""},
		{"consistent/leader", tc.nodes[l].HTTPAddr(), "?consistent"},
		{"consistent/follower", tc.nodes[f].HTTPAddr(), "?consistent"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			url := "http://" + bc.addr + "/v1/services/bench" + bc.query
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := hc.Get(url)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
		})
	}
}
