package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/bulwark-go/bulwark/cluster"
)

func TestHAUnavailable(t *testing.T) {
	all := func(string) (string, error) { return "/usr/sbin/x", nil }
	noNft := func(name string) (string, error) {
		if name == "nft" {
			return "", errors.New("not found")
		}
		return "/usr/sbin/" + name, nil
	}
	tests := []struct {
		name, status string
		look         func(string) (string, error)
		want         string // substring; "" means usable
	}{
		{"root", "Name:\tbulwark\nCapEff:\t000001ffffffffff\n", all, ""},
		{"only the two capabilities", "CapEff:\t0000000000201000\n", all, ""},
		{"unprivileged", "CapEff:\t0000000000000000\n", all, "not root: --ha needs CAP_SYS_ADMIN (ip netns) and CAP_NET_ADMIN"},
		{"net admin only", "CapEff:\t0000000000001000\n", all, "needs CAP_SYS_ADMIN"},
		{"no nft", "CapEff:\t000001ffffffffff\n", noNft, "nft not found"},
		{"no CapEff line", "Name:\tbulwark\n", all, "cannot read"},
		{"garbage", "CapEff:\tzz\n", all, "cannot read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := haUnavailable(tt.status, tt.look)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Fatalf("haUnavailable = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDashboardCluster(t *testing.T) {
	ids := []string{"g1", "g2", "g3"}
	st := map[string]cluster.Status{
		"g1": {Node: "g1", State: "follower", Leader: "g2", Term: 3, Epoch: 2, VIP: "10.98.0.100"},
		"g2": {Node: "g2", State: "leader", Leader: "g2", Term: 4, Epoch: 3, Holding: true, LeaseAgeSeconds: 0.05, HeldSeconds: 7, VIP: "10.98.0.100"},
	}
	c := dashboardCluster("", ids, st, map[string]error{"g3": errors.New("connection refused")})
	if c.VIP != "10.98.0.100" || c.Owner != "g2" || c.Leader != "g2" || c.Term != 4 || c.Epoch != 3 || c.Handovers != 2 ||
		c.LeaseAgeSeconds != 0.05 || c.HeldSeconds != 7 || len(c.Nodes) != 3 {
		t.Fatalf("cluster = %+v", c)
	}
	if n := c.Nodes[2]; n.State != "down" || n.Error != "connection refused" || n.Holding {
		t.Errorf("g3 = %+v, want down with the error", n)
	}
	// Nobody holds the VIP (between a crash and the next acquisition).
	delete(st, "g2")
	if c := dashboardCluster("", ids, st, nil); c.Owner != "" || c.Leader != "g2" || c.Nodes[1].State != "down" {
		t.Errorf("without g2: %+v", c)
	}
}
