package config

import (
	"strings"
	"testing"
	"time"
)

func TestClusterSection(t *testing.T) {
	f, err := Load("testdata/cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := f.Cluster
	if c == nil || c.NodeID != "gw1" || len(c.Peers) != 2 || c.VIP != "10.99.0.100" || c.Lease != 800*time.Millisecond {
		t.Fatalf("cluster = %+v", c)
	}
}

func TestClusterErrors(t *testing.T) {
	base := "cluster:\n  node_id: gw1\n  raft: 10.0.0.1:7946\n  vip: 10.0.0.100\n  interface: eth0\n  peers:\n    - {id: gw2, raft: \"10.0.0.2:7946\"}\n    - {id: gw3, raft: \"10.0.0.3:7946\"}\n"
	if _, err := Parse("c.yaml", []byte(base)); err != nil {
		t.Fatalf("base config rejected: %v", err)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"bad vip", strings.Replace(base, "10.0.0.100", "fe80::1", 1), `c.yaml:4: cluster.vip: "fe80::1" is not an IPv4 address`},
		{"no interface", strings.Replace(base, "  interface: eth0\n", "", 1), "cluster.interface: missing"},
		{"two nodes", strings.Replace(base, "    - {id: gw3, raft: \"10.0.0.3:7946\"}\n", "", 1), "c.yaml:6: cluster.peers: a cluster has 3 or 5 nodes"},
		{"duplicate peer", strings.Replace(base, "id: gw3", "id: gw2", 1), "c.yaml:8: cluster.peers[1]: id \"gw2\" appears twice"},
		{"bad raft", strings.Replace(base, "raft: 10.0.0.1:7946", "raft: 10.0.0.1", 1), "c.yaml:3: cluster.raft"},
		{"lease too short", base + "  lease: 300ms\n", "c.yaml:9: cluster.lease: lease (300ms) must exceed"},
		{"unknown key", base + "  leese: 1s\n", `c.yaml:9: unknown key "leese"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
