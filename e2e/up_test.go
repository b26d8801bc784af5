package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/demo"
)

// upSnapshot reads the dashboard's snapshot.
type upSnapshot struct {
	Services []struct {
		Instances []struct {
			ID     string `json:"id"`
			Health string `json:"health"`
		} `json:"instances"`
	} `json:"services"`
	Registry *struct {
		Leader string `json:"leader"`
		Index  uint64 `json:"index"`
	} `json:"registry"`
	Delivery *struct {
		Queued    int64 `json:"queued"`
		Delivered int64 `json:"delivered"`
	} `json:"delivery"`
}

func snapshotOf(t *testing.T, dash string) upSnapshot {
	t.Helper()
	var s upSnapshot
	resp, err := http.Get(dash + "/api/snapshot")
	if err != nil {
		return s
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&s)
	return s
}

func healthOf(s upSnapshot, id string) string {
	for _, svc := range s.Services {
		for _, in := range svc.Instances {
			if in.ID == id {
				return in.Health
			}
		}
	}
	return ""
}

// children lists the pids of pid's child processes (a child belongs to
// the thread that forked it, so every task is read).
func children(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

func alive(pid int) bool {
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return false
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return !strings.Contains(string(b), ") Z ") // a zombie is gone for our purpose
}

// startUp runs `bulwark up` on free ports with dir and waits for its
// readiness line.
func startUp(t *testing.T, dir string) (p *proc, gateway, dash string) {
	gateway, dash = freeAddr(t), freeAddr(t)
	p = start(t, "up", "--dir", dir, "--listen", gateway, "--dashboard", dash, "--traffic=false")
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(p.out.String(), "bulwark is up") })
	return p, "http://" + gateway, "http://" + dash
}

// TestUp runs `bulwark up` as a real process: traffic through its gateway
// keeps ≥ 99.9 % success while a demo replica is killed from the
// dashboard's API, the replica is restarted by its supervisor, and SIGTERM leaves no child
// behind. A second run on the same dir recovers the registry's state and
// delivers what was pending.
func TestUp(t *testing.T) {
	dir := t.TempDir()
	up, gw, dash := startUp(t, dir)
	kids := children(up.cmd.Process.Pid)
	if len(kids) != 3 {
		t.Fatalf("want 3 demo replicas as children, got %v", kids)
	}
	l := runLoad(t.Context(), 4, gw+"/read", demo.Body(100), 10*time.Second)
	sleepUntil(l, time.Second)
	resp, err := http.Post(dash+"/api/instances/demo-2/kill", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("kill through the dashboard: %s", resp.Status)
	}
	// Its supervisor starts a new process (the dashboard shows it die and
	// come back).
	waitFor(t, 10*time.Second, func() bool {
		now := children(up.cmd.Process.Pid)
		return len(now) == 3 && !slices.Equal(now, kids) && healthOf(snapshotOf(t, dash), "demo-2") == "up"
	})
	kids = children(up.cmd.Process.Pid)
	sleepUntil(l, 3*time.Second)
	rs := l.finish()
	s := summarize(rs)
	t.Logf("through bulwark up, demo-2 killed at 1s: %v", s)
	if ok := float64(s.total-s.failed) / float64(s.total); ok < 0.999 {
		t.Fatalf("success ratio %.4f < 0.999:%s", ok, failures(rs))
	}
	// Async writes accepted while no replica can take them must survive a
	// restart: partition every replica first (demo-2 is back), so
	// deliveries stay pending.
	for _, id := range []string{"demo-1", "demo-2", "demo-3"} {
		resp, err := http.Post(dash+"/api/instances/"+id+"/fault", "application/json", strings.NewReader(`{"fault": "partition"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("partition %s: %s", id, resp.Status)
		}
	}
	var accepted int
	for i := range 20 {
		req, _ := http.NewRequest("POST", gw+"/write", strings.NewReader("x"))
		req.Header.Set("Idempotency-Key", fmt.Sprintf("k-%d", i))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted {
				accepted++
			}
		}
	}
	if accepted != 20 {
		t.Fatalf("%d of 20 async writes accepted", accepted)
	}
	waitFor(t, 5*time.Second, func() bool {
		s := snapshotOf(t, dash)
		return s.Delivery != nil && s.Delivery.Queued > 0
	})
	before := snapshotOf(t, dash)
	up.signal(syscall.SIGTERM)
	select {
	case <-up.done:
	case <-time.After(10 * time.Second):
		t.Fatal("bulwark up did not stop within 10s of SIGTERM")
	}
	for _, k := range kids {
		if alive(k) {
			t.Errorf("child %d still running after SIGTERM", k)
		}
	}
	// Second run, same dir: the registry's log is recovered (its index does
	// not start over) and nothing accepted is lost.
	_, _, dash2 := startUp(t, dir)
	after := snapshotOf(t, dash2)
	if before.Registry == nil || after.Registry == nil || after.Registry.Index < before.Registry.Index {
		t.Fatalf("registry state not recovered: before %+v, after %+v", before.Registry, after.Registry)
	}
	// What matters is that nothing accepted is lost. A delivery that was
	// still in flight when the first run stopped on a loaded machine is
	// handed back only after AckWait (30 s), so the bound allows for one.
	var last upSnapshot
	deadline := time.Now().Add(45 * time.Second)
	for {
		last = snapshotOf(t, dash2)
		if last.Delivery != nil && last.Delivery.Queued == 0 && last.Delivery.Delivered >= before.Delivery.Queued {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending deliveries not delivered within 45 s of the restart: before %+v, now %+v", before.Delivery, last.Delivery)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("registry index %d → %d; delivery before %+v, after restart %+v", before.Registry.Index, after.Registry.Index, before.Delivery, snapshotOf(t, dash2).Delivery)
}

// TestUpWithConfig: `bulwark up --config FILE` runs the user's own config
// with the dashboard and no demo system.
func TestUpWithConfig(t *testing.T) {
	b := start(t, "demo", "--id", "mine")
	dir := t.TempDir()
	gwAddr, dashAddr := freeAddr(t), freeAddr(t)
	conf := fmt.Sprintf("listeners:\n  - address: %s\nroutes:\n  - upstream: mine\nupstreams:\n  - name: mine\n    endpoints: [{url: %s}]\n", gwAddr, b.url)
	path := filepath.Join(dir, "bulwark.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, "up", "--config", path, "--dashboard", dashAddr)
	waitFor(t, 20*time.Second, func() bool { return strings.Contains(p.out.String(), "bulwark is up") })
	resp, err := http.Get("http://" + gwAddr + "/read")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Replica") != "mine" {
		t.Fatalf("through the user's gateway: %s from %q", resp.Status, resp.Header.Get("X-Replica"))
	}
	if h := healthOf(snapshotOf(t, "http://"+dashAddr), b.url); h != "up" {
		t.Fatalf("the dashboard shows the user's endpoint as %q", h)
	}
	if kids := children(p.cmd.Process.Pid); len(kids) != 0 {
		t.Fatalf("--config must not start demo replicas; children %v", kids)
	}
}
