package proxy

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPoolLatencyPerTry(t *testing.T) {
	for _, tc := range []struct {
		name     string
		sample   time.Duration
		n        int
		ceiling  time.Duration
		want     time.Duration
		adaptive bool
	}{
		{"too few samples: the ceiling", time.Millisecond, latencyMinSamples - 1, 5 * time.Second, 5 * time.Second, false},
		{"fast pool: the floor", time.Millisecond, 100, 5 * time.Second, AdaptiveTimeoutFloor, true},
		{"3 × p99", 200 * time.Millisecond, 100, 5 * time.Second, 600 * time.Millisecond, true},
		{"slow pool: capped at the ceiling", 2 * time.Second, 100, 5 * time.Second, 5 * time.Second, false},
		{"explicit per_try is a hard ceiling", 200 * time.Millisecond, 100, 300 * time.Millisecond, 300 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newPoolLatency()
			for range tc.n {
				l.record(tc.sample)
			}
			got, adaptive := l.perTry(tc.ceiling)
			if got != tc.want || adaptive != tc.adaptive {
				t.Fatalf("perTry = %v, %v; want %v, %v", got, adaptive, tc.want, tc.adaptive)
			}
		})
	}
}

func TestPoolLatencyQuantiles(t *testing.T) {
	l := newPoolLatency()
	// Recomputed at latencyMinSamples and every latencyWindow/8 after
	// (hedge.LatencyQuantile): 468 samples is one such point.
	for i := range latencyMinSamples + 7*latencyWindow/8 {
		l.record(time.Duration(i+1) * time.Millisecond) // 1..468 ms
	}
	p99, ok := l.quantile()
	if !ok || p99 != 464*time.Millisecond { // nearest rank: ceil(0.99 × 468) = 464
		t.Fatalf("p99 %v ok %v; want 464ms", p99, ok)
	}
}

// hang makes a backend accept requests and answer only when the client
// gives up.
func hang(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// warmGateway sends n requests so that the pool has latency samples.
func warmGateway(t *testing.T, gw http.Handler, n int) {
	t.Helper()
	for i := range n {
		if w := do(gw, "GET", "http://gw/", nil); w.Code != 200 {
			t.Fatalf("warm-up request %d: %d", i, w.Code)
		}
	}
}

// TestAdaptiveTimeoutAbandonsHungTry: with hedging off, a try on a hung
// endpoint is abandoned after the adaptive timeout (100 ms floor here,
// the pool being fast), not the 5 s ceiling, and retried elsewhere.
func TestAdaptiveTimeoutAbandonsHungTry(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	gw := gateway(t, func(c *Config) {
		c.Routes[0].Hedge.Delay = "off"
		c.Upstreams[0].Balance = "round-robin"
		c.Upstreams[0].Outlier.Disabled = true
		c.Upstreams[0].Breaker.Disabled = true
	}, a, b)
	warmGateway(t, gw, 2*latencyMinSamples)
	a.set(hang)
	for i := range 4 {
		start := time.Now()
		w := do(gw, "GET", "http://gw/", nil)
		d := time.Since(start)
		if w.Code != 200 || w.Header().Get("X-Backend") != "b" {
			t.Fatalf("request %d: %d from %q", i, w.Code, w.Header().Get("X-Backend"))
		}
		if d > 2*time.Second {
			t.Fatalf("request %d took %v: the hung try waited for the ceiling", i, d)
		}
	}
}

// TestSlowPoolNotCutOff: when every endpoint turns slow, beyond the
// adaptive timeout, requests still succeed: the last endpoint a request
// can try runs to the ceiling, and the pool's latency learns the new
// normal so that later requests are not cut at all.
func TestSlowPoolNotCutOff(t *testing.T) {
	const slow = 300 * time.Millisecond
	bs := []*backend{newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")}
	gw := gateway(t, nil, bs...)
	warmGateway(t, gw, 2*latencyMinSamples)
	for _, b := range bs {
		b.set(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(slow):
			case <-r.Context().Done():
				return
			}
			io.WriteString(w, "slow")
		})
	}
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range 8 {
				if w := do(gw, "GET", "http://gw/", nil); w.Code != 200 {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of 64 requests to a uniformly slow pool failed", n)
	}
	if d, adaptive := gw.state.Load().pools["u"].latency.perTry(DefaultPerTryTimeout); adaptive && d < slow {
		t.Fatalf("the adaptive timeout is still %v, below the pool's new latency %v", d, slow)
	}
}

// TestRetriesGoRoundEveryEndpoint: with errors on every endpoint, a
// request keeps trying while the budget allows, and never tries an
// endpoint twice while another is untried.
func TestRetriesGoRoundEveryEndpoint(t *testing.T) {
	var mu sync.Mutex
	var order []string
	var fails atomic.Int64
	fails.Store(4) // the first four tries fail, wherever they go
	mk := func(name string) *backend {
		b := newBackend(t, name)
		b.set(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			if fails.Add(-1) >= 0 {
				http.Error(w, "boom", 503)
				return
			}
			io.WriteString(w, "ok")
		})
		return b
	}
	gw := gateway(t, func(c *Config) {
		c.Upstreams[0].Outlier.Disabled = true
		c.Upstreams[0].Breaker.Disabled = true
	}, mk("a"), mk("b"), mk("c"))
	w := do(gw, "GET", "http://gw/", nil)
	if w.Code != 200 {
		t.Fatalf("status %d after %v; want a success on the fifth try", w.Code, order)
	}
	if len(order) != 5 {
		t.Fatalf("tries %v; want 5", order)
	}
	if seen := map[string]bool{order[0]: true, order[1]: true, order[2]: true}; len(seen) != 3 {
		t.Fatalf("tries %v: an endpoint was tried twice before every endpoint had been tried", order)
	}
}

// TestDefaultHedgeRescuesHungTry: hedging is on by default; a request on
// a hung endpoint is answered by a hedge after the pool's p99, and the
// endpoint that lost the race is penalized in the balancer's estimate.
func TestDefaultHedgeRescuesHungTry(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	gw := gateway(t, func(c *Config) {
		c.Upstreams[0].Balance = "round-robin" // so that a keeps being tried
		c.Upstreams[0].Outlier.Disabled = true
		c.Upstreams[0].Breaker.Disabled = true
	}, a, b)
	warmGateway(t, gw, 2*latencyMinSamples)
	a.set(hang)
	before := a.hits.Load()
	for i := range 20 {
		start := time.Now()
		w := do(gw, "GET", "http://gw/", nil)
		if w.Code != 200 || w.Header().Get("X-Backend") != "b" {
			t.Fatalf("request %d: %d from %q", i, w.Code, w.Header().Get("X-Backend"))
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("request %d took %v: no hedge rescued it", i, d)
		}
	}
	if a.hits.Load() == before {
		t.Fatal("the hung endpoint was never tried")
	}
	for _, e := range gw.Upstreams()[0].Endpoints {
		if e.Address == a.URL && e.EWMA < 10 {
			t.Fatalf("the endpoint that kept losing races has an EWMA of %.2fms; want it penalized (≥ 10ms)", e.EWMA)
		}
	}
}

func TestDefaultLimitAndOff(t *testing.T) {
	b := newBackend(t, "b")
	gw := gateway(t, func(c *Config) {
		c.Routes = append(c.Routes, Route{Name: "off", Upstream: "u", Limit: Limit{Algorithm: "off"}, Match: Match{PathPrefix: "/off"}})
		c.Routes[0], c.Routes[1] = c.Routes[1], c.Routes[0]
	}, b)
	st := gw.state.Load()
	if st.routes[0].limiter != nil {
		t.Fatal(`limit.algorithm "off" left a limiter`)
	}
	l := st.routes[1].limiter
	if l == nil || l.Snapshot().Limit != defaultLimitInitial {
		t.Fatalf("default route limiter %v; want Gradient2 starting at %d", l, defaultLimitInitial)
	}
}

// TestTwoHedges: with hedge.max 2, a second hedge follows the first one
// delay later, so a request whose first two endpoints hang is answered by
// the third.
func TestTwoHedges(t *testing.T) {
	a, b, c := newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")
	a.set(hang)
	b.set(hang)
	gw := gateway(t, func(cfg *Config) {
		cfg.Routes[0].Hedge = Hedge{Delay: "20ms", Max: 2}
		cfg.Upstreams[0].Balance = "round-robin"
		cfg.Upstreams[0].Outlier.Disabled = true
		cfg.Upstreams[0].Breaker.Disabled = true
	}, a, b, c)
	for i := range 6 {
		start := time.Now()
		w := do(gw, "GET", "http://gw/", nil)
		if w.Code != 200 || w.Header().Get("X-Backend") != "c" {
			t.Fatalf("request %d: %d from %q", i, w.Code, w.Header().Get("X-Backend"))
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("request %d took %v", i, d)
		}
	}
}
