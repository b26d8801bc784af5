package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/demo"
)

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// runWithRegistry starts `bulwark run` as a registry node (bootstrapping a
// cluster of one) whose gateway routes everything to service, discovered
// from that registry, and returns the process and the registry's and the
// admin listener's addresses.
func runWithRegistry(t *testing.T, service string) (gw *proc, regAddr, adminAddr string) {
	t.Helper()
	dir := t.TempDir()
	regAddr, adminAddr = freeAddr(t), freeAddr(t)
	conf := fmt.Sprintf(`listeners:
  - address: 127.0.0.1:0
routes:
  - upstream: %[1]s
upstreams:
  - name: %[1]s
    discover: %[1]s
registry:
  http: %[2]s
  raft: %[3]s
  data_dir: %[4]s
  bootstrap: true
admin:
  address: %[5]s
`, service, regAddr, freeAddr(t), filepath.Join(dir, "registry"), adminAddr)
	path := filepath.Join(dir, "bulwark.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return start(t, "run", "-c", path), regAddr, adminAddr
}

// TestGatewayFollowsRegistry: `bulwark run` with a registry node and an
// upstream discovered from it. Replicas register themselves; one is
// killed and the gateway stops sending to it before its lease would
// expire; a new replica is routed to within a second of registering.
func TestGatewayFollowsRegistry(t *testing.T) {
	gw, regAddr, adminAddr := runWithRegistry(t, "demo")
	var reps []*proc
	for i := range 3 {
		reps = append(reps, start(t, "demo", "--id", fmt.Sprintf("r%d", i+1), "--registry", regAddr, "--service", "demo"))
	}
	waitFor(t, 5*time.Second, func() bool { return len(routable(t, regAddr)) == 3 && gatewayEndpoints(adminAddr) == 3 })
	l := runLoad(t.Context(), 4, gw.url+"/read", demo.Body(100), 10*time.Second)
	sleepUntil(l, time.Second)
	killedAt := l.since()
	reps[0].kill()
	// The registry marks it suspect when its lease (1 s) lapses, before it
	// expires (a further 2 s): the gateway must have left it long before.
	waitFor(t, 3*time.Second, func() bool { return len(routable(t, regAddr)) == 2 })
	suspectAfter := l.since() - killedAt
	sleepUntil(l, 2500*time.Millisecond)
	joinedAt := l.since()
	start(t, "demo", "--id", "r4", "--registry", regAddr, "--service", "demo")
	sleepUntil(l, joinedAt+1500*time.Millisecond)
	rs := l.finish()
	t.Logf("suspect %v after the kill; %v", suspectAfter.Round(time.Millisecond), summarize(rs))
	if s := summarize(rs); s.failed != 0 {
		t.Fatalf("%d requests failed:%s", s.failed, failures(rs))
	}
	gone := summarize(window(rs, killedAt+500*time.Millisecond, joinedAt))
	if gone.byReplica["r1"] != 0 {
		t.Fatalf("the killed replica still answered 0.5 s after its kill: %v", gone)
	}
	fresh := summarize(window(rs, joinedAt+time.Second, joinedAt+1500*time.Millisecond))
	if fresh.byReplica["r4"] == 0 {
		t.Fatalf("the new replica got no traffic a second after it registered: %v", fresh)
	}
}

// routable lists the instances the registry reports as up.
func routable(t *testing.T, regAddr string) []string {
	resp, err := http.Get("http://" + regAddr + "/v1/services/demo")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var body struct {
		Instances []struct {
			ID     string `json:"id"`
			Health string `json:"health"`
		} `json:"instances"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil
	}
	var out []string
	for _, in := range body.Instances {
		if strings.EqualFold(in.Health, "up") {
			out = append(out, in.ID)
		}
	}
	return out
}

// gatewayEndpoints counts the routable endpoints the gateway's admin API
// shows.
func gatewayEndpoints(adminAddr string) int {
	resp, err := http.Get("http://" + adminAddr + "/api/upstreams")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var ups []struct {
		Endpoints []struct {
			Health string `json:"health"`
		} `json:"endpoints"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ups); err != nil {
		return 0
	}
	n := 0
	for _, u := range ups {
		for _, e := range u.Endpoints {
			if e.Health == "up" || e.Health == "unknown" {
				n++
			}
		}
	}
	return n
}
