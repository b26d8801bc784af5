package e2e

import (
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/demo"
	"github.com/bulwark-go/bulwark/proxy"
)

// startGateway runs the gateway in this process, on a free port, in front
// of the given replicas.
func startGateway(t *testing.T, backends []*proc, tune func(*proxy.Config)) (*proxy.Gateway, string) {
	t.Helper()
	cfg := proxy.Config{
		Listeners: []proxy.Listener{{Address: "127.0.0.1:0"}},
		Routes:    []proxy.Route{{Name: "r", Upstream: "u"}},
		Upstreams: []proxy.Upstream{{Name: "u"}},
	}
	for _, b := range backends {
		cfg.Upstreams[0].Endpoints = append(cfg.Upstreams[0].Endpoints, proxy.Endpoint{URL: b.url})
	}
	if tune != nil {
		tune(&cfg)
	}
	return listenGateway(t, cfg, proxy.Options{Seed: 42})
}

// listenGateway starts a gateway with cfg (its first listener on a free
// port) and returns it with its base URL; it closes with the test.
func listenGateway(t *testing.T, cfg proxy.Config, opts proxy.Options) (*proxy.Gateway, string) {
	t.Helper()
	gw, err := proxy.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	return gw, "http://" + gw.Addrs()[0].String()
}

const workers = 8

// TestKilledBackend: a replica is SIGKILLed mid-run; no idempotent request
// may fail (scenario a).
func TestKilledBackend(t *testing.T) {
	bs := startDemos(t, 3)
	_, url := startGateway(t, bs, nil)
	l := runLoad(t.Context(), workers, url+"/read", demo.Body(100), 10*time.Second)
	sleepUntil(l, time.Second)
	bs[1].kill()
	sleepUntil(l, 3*time.Second)
	rs := l.finish()
	s := summarize(rs)
	t.Logf("killed r2 at 1s: %v", s)
	if s.failed != 0 {
		t.Fatalf("%d of %d requests failed:%s", s.failed, s.total, failures(rs))
	}
	after := summarize(window(rs, 2*time.Second, 3*time.Second))
	if after.byReplica["r2"] != 0 || after.total == 0 {
		t.Fatalf("the killed replica still answered after 2s: %v", after)
	}
}

// TestHungBackend: a replica accepts connections and never answers
// (SIGSTOP); no request may fail, and the worst latency is bounded by the
// per-try timeout — far less with hedging (scenario b).
func TestHungBackend(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hedge string
		bound time.Duration
	}{
		// The per-try timeout's ceiling is 500 ms (hedging, on by default,
		// is turned off in the first case); the bounds leave room for a loaded
		// CI machine (2 cores running other packages' tests meanwhile).
		{"per-try timeout", "off", 900 * time.Millisecond},
		{"hedged", "50ms", 400 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bs := startDemos(t, 3)
			_, url := startGateway(t, bs, func(c *proxy.Config) {
				c.Routes[0].Timeouts.PerTry = 500 * time.Millisecond
				c.Routes[0].Hedge.Delay = tc.hedge
			})
			l := runLoad(t.Context(), workers, url+"/read", demo.Body(100), 10*time.Second)
			sleepUntil(l, time.Second)
			bs[2].signal(syscall.SIGSTOP)
			sleepUntil(l, 4*time.Second)
			rs := l.finish()
			bs[2].signal(syscall.SIGCONT)
			s := summarize(rs)
			t.Logf("stopped r3 at 1s: %v", s)
			if s.failed != 0 {
				t.Fatalf("%d of %d requests failed:%s", s.failed, s.total, failures(rs))
			}
			if s.max > tc.bound {
				t.Fatalf("worst latency %v exceeds %v", s.max, tc.bound)
			}
		})
	}
}

// TestSlowBackend: a replica adds 300 ms; within a second traffic shifts
// away from it and the p99 returns near the healthy level (scenario c).
func TestSlowBackend(t *testing.T) {
	bs := startDemos(t, 3)
	_, url := startGateway(t, bs, nil)
	l := runLoad(t.Context(), workers, url+"/read", demo.Body(100), 10*time.Second)
	sleepUntil(l, time.Second)
	setFault(t, bs[0], demo.Fault{Mode: demo.ModeSlow, Delay: demo.Duration(300 * time.Millisecond)})
	sleepUntil(l, 4*time.Second)
	rs := l.finish()
	before := summarize(window(rs, 0, time.Second))
	after := summarize(window(rs, 2*time.Second, 4*time.Second))
	t.Logf("healthy: %v", before)
	t.Logf("1s after r1 slowed: %v", after)
	if f := summarize(rs); f.failed != 0 {
		t.Fatalf("%d requests failed:%s", f.failed, failures(rs))
	}
	if share := float64(after.byReplica["r1"]) / float64(after.total); share > 0.02 {
		t.Errorf("the slow replica still got %.1f%% of requests a second later", share*100)
	}
	// Near the healthy level: within 50 ms or 1.5× of it (the machine may be
	// loaded), and in any case well under the slow replica's 300 ms.
	if limit := max(before.p99+50*time.Millisecond, before.p99*3/2); after.p99 > limit || after.p99 >= 300*time.Millisecond {
		t.Errorf("p99 after the shift is %v; want it near the healthy %v (at most %v)", after.p99, before.p99, limit)
	}
}

// TestFailingBackend: a replica answers 500 to half of its requests; it is
// ejected and the client sees no failure (scenario d).
func TestFailingBackend(t *testing.T) {
	bs := startDemos(t, 3)
	gw, url := startGateway(t, bs, nil)
	l := runLoad(t.Context(), workers, url+"/read", demo.Body(100), 10*time.Second)
	sleepUntil(l, 500*time.Millisecond)
	setFault(t, bs[1], demo.Fault{Mode: demo.ModeFail, Rate: 0.5})
	sleepUntil(l, 3*time.Second)
	rs := l.finish()
	s := summarize(rs)
	t.Logf("r2 failing 50%%: %v", s)
	if s.failed != 0 {
		t.Fatalf("%d of %d requests failed:%s", s.failed, s.total, failures(rs))
	}
	// Taken out of rotation: by outlier ejection or its breaker, or by the
	// balancer, whose latency estimate counts each failed try as 1 s.
	after := summarize(window(rs, 1500*time.Millisecond, 3*time.Second))
	share := float64(after.byReplica["r2"]) / float64(max(after.total, 1))
	var state []string
	for _, e := range gw.Upstreams()[0].Endpoints {
		if e.Address == bs[1].url {
			state = append(state, fmt.Sprintf("health %s, breaker %s, ejected until %v, EWMA %.1fms", e.Health, e.Breaker, e.EjectedUntil, e.EWMA))
		}
	}
	t.Logf("r2 a second after failing: %.2f%% of requests; %v", share*100, state)
	if share > 0.02 {
		t.Errorf("the failing replica still got %.1f%% of requests a second later", share*100)
	}
}

// TestCorruptingBackend: a replica corrupts 10% of its bodies (keeping the
// Content-Digest it computed for the right body); no corrupted body may
// reach the client (scenario e).
func TestCorruptingBackend(t *testing.T) {
	bs := startDemos(t, 3)
	_, url := startGateway(t, bs, nil)
	setFault(t, bs[2], demo.Fault{Mode: demo.ModeCorrupt, Rate: 0.1})
	l := runLoad(t.Context(), workers, url+"/read?size=2000", demo.Body(2000), 10*time.Second)
	sleepUntil(l, 3*time.Second)
	rs := l.finish()
	s := summarize(rs)
	t.Logf("r3 corrupting 10%%: %v", s)
	if s.corrupt != 0 {
		t.Fatalf("%d corrupted bodies reached the client", s.corrupt)
	}
	if s.failed != 0 {
		t.Fatalf("%d of %d requests failed:%s", s.failed, s.total, failures(rs))
	}
}

// TestAllDownFallback: every replica is down → the fallback answers; when
// one returns, requests succeed again (scenario g).
func TestAllDownFallback(t *testing.T) {
	bs := startDemos(t, 2)
	_, url := startGateway(t, bs, func(c *proxy.Config) {
		c.Routes[0].Fallback = proxy.Fallback{Status: 503, Body: "sorry\n"}
		c.Upstreams[0].Outlier.BaseEjection = 500 * time.Millisecond
		c.Upstreams[0].Breaker.Open = 500 * time.Millisecond
	})
	for _, b := range bs {
		setFault(t, b, demo.Fault{Mode: demo.ModeFail})
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for range 20 {
		resp, err := client.Get(url + "/read")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 && resp.StatusCode != 500 {
			t.Fatalf("status %d with every replica failing", resp.StatusCode)
		}
	}
	bs[0].kill()
	bs[1].kill()
	resp, err := client.Get(url + "/read")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("X-Bulwark-Fallback") == "" {
		t.Fatalf("all replicas dead: status %d, fallback header %q; want the fallback", resp.StatusCode, resp.Header.Get("X-Bulwark-Fallback"))
	}
	// A replica comes back: the gateway must find it again.
	setFault(t, startDemosAt(t, bs[0]), demo.Fault{Mode: demo.ModeOK})
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := client.Get(url + "/read")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery within 5s after a replica returned")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startDemosAt restarts a replica on the address of a dead one.
func startDemosAt(t *testing.T, dead *proc) *proc {
	addr := dead.url[len("http://"):]
	return start(t, "demo", "--id", "back", "--listen", addr)
}
