package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/demo"
)

// registeredPid is the pid the registry holds for a demo replica (its
// registration's metadata), 0 when it is not registered.
func registeredPid(registry, id string) int {
	resp, err := http.Get(registry + "/v1/services/demo")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var body struct {
		Instances []struct {
			ID       string            `json:"id"`
			Metadata map[string]string `json:"metadata"`
		} `json:"instances"`
	}
	if json.NewDecoder(resp.Body).Decode(&body) != nil {
		return 0
	}
	for _, in := range body.Instances {
		if in.ID == id {
			pid, _ := strconv.Atoi(in.Metadata["pid"])
			return pid
		}
	}
	return 0
}

var registryLineRE = regexp.MustCompile(`registry\s+(http://\S+)`)

// events reads the dashboard's event log.
func eventsOf(dash string) []struct{ Kind, Text string } {
	var evs []struct{ Kind, Text string }
	resp, err := http.Get(dash + "/api/events")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&evs)
	return evs
}

func hasEvent(dash, kind, text string) bool {
	for _, e := range eventsOf(dash) {
		if e.Kind == kind && strings.Contains(e.Text, text) {
			return true
		}
	}
	return false
}

// TestUpReplicaRestarts: `bulwark up` supervises its demo replicas. One is
// SIGKILLed five times; each time its supervisor starts a new process on
// the same address, which registers again, and traffic through the
// gateway stays ≥ 99.9 % successful.
func TestUpReplicaRestarts(t *testing.T) {
	up, gw, dash := startUp(t, t.TempDir())
	m := registryLineRE.FindStringSubmatch(up.out.String())
	if m == nil {
		t.Fatalf("no registry URL in the output:\n%s", up.out.String())
	}
	registry := m[1]
	bound := time.Second
	if raceEnabled {
		bound = 5 * time.Second // a -race build starts several times slower
	}
	l := runLoad(t.Context(), 4, gw+"/read", demo.Body(100), 10*time.Second)
	sleepUntil(l, time.Second)
	var took []time.Duration
	for i := range 5 {
		pid := registeredPid(registry, "demo-2")
		if pid == 0 || !alive(pid) {
			t.Fatalf("kill %d: demo-2 is not registered with a live pid (%d)", i+1, pid)
		}
		killed := time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		var back time.Duration
		waitFor(t, 20*time.Second, func() bool {
			np := registeredPid(registry, "demo-2")
			if np != 0 && np != pid && alive(np) {
				back = time.Since(killed)
				return true
			}
			return false
		})
		took = append(took, back)
		if back > bound {
			t.Errorf("kill %d: demo-2 back and registered after %v, want ≤ %v", i+1, back, bound)
		}
		time.Sleep(time.Second)
	}
	rs := l.finish()
	s := summarize(rs)
	t.Logf("demo-2 SIGKILLed 5 times; back and registered after %v; traffic %v", took, s)
	if ok := float64(s.total-s.failed) / float64(s.total); ok < 0.999 {
		t.Fatalf("success ratio %.4f < 0.999:%s", ok, failures(rs))
	}
	if kids := children(up.cmd.Process.Pid); len(kids) != 3 {
		t.Fatalf("want 3 demo replicas after the restarts, got %v", kids)
	}
	if !hasEvent(dash, "supervise", "demo-2/process restarted") {
		t.Fatalf("no restart event in /api/events: %v", eventsOf(dash))
	}
}

// TestUpStopKeepsDown: the dashboard's stop keeps a replica down (its
// supervisor does not restart it) until restart.
func TestUpStopKeepsDown(t *testing.T) {
	_, _, dash := startUp(t, t.TempDir())
	post := func(path string) {
		resp, err := http.Post(dash+path, "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("POST %s: %s", path, resp.Status)
		}
	}
	post("/api/instances/demo-3/stop")
	waitFor(t, 5*time.Second, func() bool { return healthOf(snapshotOf(t, dash), "demo-3") == "down" })
	time.Sleep(time.Second) // longer than any restart backoff
	if h := healthOf(snapshotOf(t, dash), "demo-3"); h != "down" {
		t.Fatalf("a stopped replica came back: %s", h)
	}
	post("/api/instances/demo-3/restart")
	waitFor(t, 20*time.Second, func() bool { return healthOf(snapshotOf(t, dash), "demo-3") == "up" })
}

// TestUpComponentPanic: a component of `bulwark up` (the traffic
// generator) made to panic through the test-only BULWARK_TEST_PANIC hook
// is restarted by its supervisor, the gateway keeps serving, and the
// event shows in /api/events and the supervision tree.
func TestUpComponentPanic(t *testing.T) {
	t.Setenv("BULWARK_TEST_PANIC", "traffic@3s")
	up, gw, dash := startUp(t, t.TempDir())
	l := runLoad(t.Context(), 2, gw+"/read", demo.Body(100), 10*time.Second)
	waitFor(t, 20*time.Second, func() bool { return hasEvent(dash, "supervise", "bulwark/traffic restarted") })
	sleepUntil(l, l.since()+time.Second)
	rs := l.finish()
	s := summarize(rs)
	t.Logf("traffic generator panicked and was restarted; gateway traffic meanwhile: %v", s)
	if s.total == 0 || s.failed > 0 {
		t.Fatalf("gateway traffic around the panic: %v%s", s, failures(rs))
	}
	if !hasEvent(dash, "supervise", "bulwark/traffic failed: panic: BULWARK_TEST_PANIC=traffic") {
		t.Fatalf("no failure event with the panic: %v", eventsOf(dash))
	}
	var snap struct {
		Supervision struct {
			Children []struct {
				Name        string `json:"name"`
				State       string `json:"state"`
				Restarts    int    `json:"restarts"`
				LastFailure string `json:"last_failure"`
			} `json:"children"`
		} `json:"supervision"`
	}
	resp, err := http.Get(dash + "/api/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&snap)
	resp.Body.Close()
	found := false
	for _, c := range snap.Supervision.Children {
		if c.Name == "traffic" {
			found = true
			if c.State != "running" || c.Restarts != 1 || !strings.Contains(c.LastFailure, "panic") {
				t.Fatalf("traffic in the tree: %+v", c)
			}
		}
	}
	if !found {
		t.Fatalf("no traffic node in the tree: %+v", snap.Supervision)
	}
	if !alive(up.cmd.Process.Pid) {
		t.Fatal("bulwark up died")
	}
	resp, err = http.Get(dash + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `bulwark_supervise_events_total{child="traffic",event="failed",supervisor="bulwark"} 1`; !strings.Contains(string(metrics), want) {
		t.Fatalf("/metrics lacks %s", want)
	}
}

// TestUpGatewayLoopPanic: one of the gateway's internal loops (the demo
// pool's registry watch, supervised through proxy.Options.Run) panics
// through the test-only hook; the tree restarts it, the gateway keeps
// serving and the pool keeps following the registry.
func TestUpGatewayLoopPanic(t *testing.T) {
	t.Setenv("BULWARK_TEST_PANIC", "discovery demo@3s")
	up, gw, dash := startUp(t, t.TempDir())
	l := runLoad(t.Context(), 2, gw+"/read", demo.Body(100), 10*time.Second)
	waitFor(t, 20*time.Second, func() bool { return hasEvent(dash, "supervise", "bulwark/loops/discovery demo restarted") })
	if !hasEvent(dash, "supervise", "bulwark/loops/discovery demo failed: panic: BULWARK_TEST_PANIC=discovery demo") {
		t.Fatalf("no failure event with the panic: %v", eventsOf(dash))
	}
	// The restarted watch still follows the registry: a stopped replica
	// (deregistered) leaves the gateway's pool and joins it again on
	// restart.
	post := func(path string) {
		resp, err := http.Post(dash+path, "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	inPool := func(id string) bool {
		resp, err := http.Get(dash + "/api/upstreams")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var ups []struct {
			Name      string `json:"name"`
			Endpoints []struct {
				ID string `json:"id"`
			} `json:"endpoints"`
		}
		json.NewDecoder(resp.Body).Decode(&ups)
		for _, u := range ups {
			for _, e := range u.Endpoints {
				if u.Name == "demo" && e.ID == id {
					return true
				}
			}
		}
		return false
	}
	post("/api/instances/demo-1/stop")
	waitFor(t, 10*time.Second, func() bool { return !inPool("demo-1") })
	post("/api/instances/demo-1/restart")
	waitFor(t, 20*time.Second, func() bool { return inPool("demo-1") })
	rs := l.finish()
	s := summarize(rs)
	t.Logf("registry watch panicked and was restarted; gateway traffic meanwhile: %v", s)
	if ok := float64(s.total-s.failed) / float64(s.total); s.total == 0 || ok < 0.999 {
		t.Fatalf("gateway traffic around the panic: %v%s", s, failures(rs))
	}
	if !alive(up.cmd.Process.Pid) {
		t.Fatal("bulwark up died")
	}
}
