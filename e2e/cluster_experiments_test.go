package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/registry"
)

// clusterExperiments are the experiments in examples/experiments that need
// a stack of their own rather than TestOwnExperiments' three demos behind
// `bulwark proxy`; TestOwnClusterExperiments runs them.
var clusterExperiments = map[string]bool{
	"registry-leader-loss": true,
	"delivery-outage":      true,
}

// experimentResult is the part of a result JSON the tests read.
type experimentResult struct {
	Verdict string   `json:"verdict"`
	Reasons []string `json:"reasons"`
	Totals  struct {
		Requests int            `json:"requests"`
		OK       int            `json:"ok"`
		Failures map[string]int `json:"failures"`
	} `json:"totals"`
}

// runExperiment runs `bulwark chaos run` on examples/experiments/NAME.yaml
// with env added to the environment, requires the verdict "passed" and an
// HTML report, and returns the result.
func runExperiment(t *testing.T, name string, env ...string) experimentResult {
	t.Helper()
	out := t.TempDir()
	cmd := exec.CommandContext(t.Context(), binary, "chaos", "run", "--out", out,
		filepath.Join("../examples/experiments", name+".yaml"))
	cmd.Env = append(os.Environ(), env...)
	output, runErr := cmd.CombinedOutput()
	var res experimentResult
	b, err := os.ReadFile(filepath.Join(out, name+".json"))
	if err != nil {
		t.Fatalf("no result file (%v); output:\n%s", err, output)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: verdict %s, %d requests, %d good", name, res.Verdict, res.Totals.Requests, res.Totals.OK)
	if runErr != nil || res.Verdict != "passed" {
		t.Fatalf("verdict %q (exit %v), reasons %v, failures %v; output:\n%s",
			res.Verdict, runErr, res.Reasons, res.Totals.Failures, tail(string(output), 2000))
	}
	if _, err := os.Stat(filepath.Join(out, name+".html")); err != nil {
		t.Fatalf("no HTML report: %v", err)
	}
	return res
}

// TestOwnClusterExperiments runs the experiments whose faults need more
// than a proxy in front of demos: the registry's Raft leader is killed
// under a gateway that discovers its upstream there, and an async route's
// backend fails while writes keep coming.
func TestOwnClusterExperiments(t *testing.T) {
	t.Run("registry-leader-loss", testRegistryLeaderLoss)
	t.Run("delivery-outage", testDeliveryOutage)
}

// regNode is one `bulwark run -c` process running a registry node.
type regNode struct {
	id, http, raft string
	p              *proc
}

// testRegistryLeaderLoss: three `bulwark run` processes form a Raft
// registry cluster; node a also runs the gateway, with upstream "demo"
// discovered from its local node. b and c bootstrap the three-node
// cluster, start first and elect a leader between them, so a (the
// gateway, and the node the demos register with) joins as a follower and
// the leader the experiment kills is never the gateway's own process.
func testRegistryLeaderLoss(t *testing.T) {
	dir := t.TempDir()
	nodes := []*regNode{{id: "a"}, {id: "b"}, {id: "c"}}
	for _, n := range nodes {
		n.http, n.raft = freeAddr(t), freeAddr(t)
	}
	conf := func(self *regNode) string {
		var b strings.Builder
		if self.id == "a" {
			b.WriteString("listeners:\n  - address: 127.0.0.1:0\nroutes:\n  - upstream: demo\nupstreams:\n  - name: demo\n    discover: demo\n")
		}
		// b and c found the cluster of all three; a, started once they
		// have a leader, joins it instead of bootstrapping: a bootstrap
		// races the leader's first AppendEntries to a, and fails with
		// "bootstrap only works on new clusters" when the leader wins.
		fmt.Fprintf(&b, "registry:\n  node_id: %s\n  http: %s\n  raft: %s\n  data_dir: %s\n  bootstrap: %v\n  peers:\n",
			self.id, self.http, self.raft, filepath.Join(dir, self.id), self.id != "a")
		for _, n := range nodes {
			if n != self {
				fmt.Fprintf(&b, "    - {id: %s, raft: %s, http: %s}\n", n.id, n.raft, n.http)
			}
		}
		path := filepath.Join(dir, self.id+".yaml")
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, n := range nodes[1:] {
		n.p = start(t, "run", "-c", conf(n))
	}
	var leader *regNode
	waitFor(t, 15*time.Second, func() bool { leader = leaderOf(nodes[1:]); return leader != nil })
	gw := start(t, "run", "-c", conf(nodes[0]))
	nodes[0].p = gw
	for i := range 3 {
		start(t, "demo", "--id", fmt.Sprintf("r%d", i+1), "--registry", nodes[0].http, "--service", "demo")
	}
	waitFor(t, 10*time.Second, func() bool {
		resp, err := http.Get(gw.url + "/read")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200 && len(routable(t, nodes[0].http)) == 3
	})
	// Pre-vote keeps a late joiner from unseating the leader, but check:
	// killing the gateway's own process would test something else.
	if leader = leaderOf(nodes); leader == nil || leader == nodes[0] {
		t.Fatalf("leader is %v, want b or c", leader)
	}
	t.Logf("registry leader is node %s (pid %d)", leader.id, leader.p.cmd.Process.Pid)
	runExperiment(t, "registry-leader-loss", "GATEWAY="+gw.url, fmt.Sprintf("LEADER_PID=%d", leader.p.cmd.Process.Pid))

	// The survivors elected a new leader and still list every replica.
	var survivors []*regNode
	for _, n := range nodes {
		if n != leader {
			survivors = append(survivors, n)
		}
	}
	var next *regNode
	waitFor(t, 10*time.Second, func() bool { next = leaderOf(survivors); return next != nil })
	if up := routable(t, nodes[0].http); len(up) != 3 {
		t.Fatalf("after the leader loss the registry lists %v as up, want 3 replicas", up)
	}
	t.Logf("node %s took over", next.id)
}

// leaderOf returns the node among ns that says it is the leader, or nil.
func leaderOf(ns []*regNode) *regNode {
	for _, n := range ns {
		resp, err := http.Get("http://" + n.http + "/v1/status")
		if err != nil {
			continue
		}
		var st registry.StatusResponse
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err == nil && st.State == "Leader" {
			return n
		}
	}
	return nil
}

// testDeliveryOutage: writes go to an async route while its backend
// fails every request for a while; every write must be accepted, and once
// the backend is back every accepted write must arrive.
func testDeliveryOutage(t *testing.T) {
	backend := start(t, "demo", "--id", "b")
	s := newAsyncStack(t, backend.url, 1000)
	res := runExperiment(t, "delivery-outage", "GATEWAY="+s.gw.url, "BACKEND="+backend.url)
	accepted := res.Totals.OK
	if accepted == 0 {
		t.Fatal("no write was accepted")
	}
	// Requests still in flight when the load stopped are not in the
	// result but may have been accepted: allow for the load's timeout's
	// worth of them, never fewer than accepted.
	var n, dups int
	waitFor(t, 60*time.Second, func() bool { n, dups, _ = writesOf(backend.url); return n >= accepted })
	time.Sleep(500 * time.Millisecond) // let stragglers land before the upper bound is checked
	n, dups, _ = writesOf(backend.url)
	t.Logf("%d writes accepted (202), %d delivered, %d duplicate deliveries absorbed", accepted, n, dups)
	// The load is open-loop (200/s, 2 s timeout: delivery-outage.yaml), so
	// up to rate × timeout requests can be in flight when it stops, more
	// on a loaded machine where each takes longer.
	const inFlightAtStop = 200 * 2
	if slack := res.Totals.Requests - accepted + inFlightAtStop; n > accepted+slack {
		t.Fatalf("%d delivered but only %d accepted: writes were invented", n, accepted)
	}
	// The outage was real: deliveries failed and were retried, none gave up.
	retried, dead := deliveryMetric(t, s.admin, "retried_total"), deliveryMetric(t, s.admin, "dead_lettered_total")
	t.Logf("%v attempts retried during the outage, %v dead-lettered", retried, dead)
	if retried == 0 || dead != 0 {
		t.Fatalf("retried %v (want > 0: the outage must have hit deliveries), dead-lettered %v (want 0)", retried, dead)
	}
}

// deliveryMetric reads bulwark_delivery_NAME from the admin's /metrics.
func deliveryMetric(t *testing.T, admin, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "bulwark_delivery_"+name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("no metric bulwark_delivery_%s in /metrics", name)
	return 0
}
