package registry

import (
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/prometheus/client_golang/prometheus"
)

// gauges gathers n's collector into name{labels} → value.
func gauges(t *testing.T, n *Node) map[string]float64 {
	t.Helper()
	r := prometheus.NewPedanticRegistry()
	r.MustRegister(n.Collector())
	mfs, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
}

// TestCollector: on a three-node cluster exactly one node reports
// leadership, every node counts three voters and knows the leader, and
// each counts the registered instance's lease under its service and health.
func TestCollector(t *testing.T) {
	tc := newCluster(t, 3, nil)
	c, err := NewClient(ClientConfig{Addrs: []string{tc.nodes[0].HTTPAddr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reg, err := c.Register(t.Context(), bulwark.Instance{Service: "app", ID: "a1", Address: "http://127.0.0.1:1"}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	leaders := 0.0
	for i, n := range tc.nodes {
		tc.waitFor("lease replicated", 5*time.Second, func() bool { return gauges(t, n)["bulwark_registry_leases,health=up,service=app"] == 1 })
		g := gauges(t, n)
		if g["bulwark_registry_voters"] != 3 || g["bulwark_registry_has_leader"] != 1 || g["bulwark_registry_catalog_index"] < 1 {
			t.Errorf("node %d: %v", i, g)
		}
		leaders += g["bulwark_registry_leader"]
	}
	if leaders != 1 {
		t.Fatalf("%v nodes report leading, want 1", leaders)
	}
}
