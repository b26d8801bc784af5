package balance

import (
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark"
)

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol*math.Abs(want) }

func TestPeakEWMA(t *testing.T) {
	const tau = 10 * time.Second
	ms := float64(time.Millisecond)
	tests := []struct {
		name  string
		steps []struct {
			wait    time.Duration
			latency time.Duration
		}
		after time.Duration // wait before reading
		want  float64       // ms
	}{
		{name: "first sample is taken as is", steps: steps(0, 100*time.Millisecond), want: 100},
		{name: "decays to 1/e after tau", steps: steps(0, 100*time.Millisecond), after: tau, want: 100 / math.E},
		{name: "decays to 1/e² after two tau", steps: steps(0, 100*time.Millisecond), after: 2 * tau, want: 100 / math.E / math.E},
		{name: "a peak replaces the estimate at once",
			steps: steps(0, 10*time.Millisecond, time.Second, 500*time.Millisecond), want: 500},
		{name: "a lower sample is averaged with weight 1-exp(-dt/tau)",
			steps: steps(0, 100*time.Millisecond, tau, 10*time.Millisecond), want: 100/math.E + 10*(1-1/math.E)},
		{name: "a lower sample right after has almost no weight",
			steps: steps(0, 100*time.Millisecond, time.Millisecond, 10*time.Millisecond), want: 99.991},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newSet(t, Config{DecayTime: tau}, 1)
				e := s.Get("e0")
				for _, st := range tc.steps {
					time.Sleep(st.wait)
					e.Start()
					e.Done(st.latency, false)
				}
				time.Sleep(tc.after)
				got := e.latency(e.p.now()) / ms
				if !near(got, tc.want, 0.001) {
					t.Errorf("latency %.4f ms, want %.4f ms", got, tc.want)
				}
				if e.InFlight() != 0 {
					t.Errorf("in flight %d after matched Start/Done", e.InFlight())
				}
			})
		})
	}
}

// steps builds (wait, latency) pairs from a flat list.
func steps(xs ...time.Duration) []struct {
	wait    time.Duration
	latency time.Duration
} {
	var out []struct {
		wait    time.Duration
		latency time.Duration
	}
	for i := 0; i+1 < len(xs); i += 2 {
		out = append(out, struct {
			wait    time.Duration
			latency time.Duration
		}{xs[i], xs[i+1]})
	}
	return out
}

// TestDecayLetsEndpointRecover shows why the estimate decays on read: an
// endpoint that had one very slow answer and then got no traffic becomes
// cheaper than a busy healthy one again and is retried.
func TestDecayLetsEndpointRecover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSet(t, Config{}, 2)
		bad, good := s.Get("e0"), s.Get("e1")
		bad.Start()
		bad.Done(2*time.Second, false)
		good.Start()
		good.Done(10*time.Millisecond, false)
		good.Start() // one request in flight on the good endpoint
		if e, _ := s.Pick(PickRequest{}); e != good {
			t.Fatal("right after the slow answer the good endpoint must win")
		}
		// 60 s = 6τ later the idle endpoint's 2 s has decayed to ≈ 5 ms, while
		// the busy one keeps reporting 10 ms and has a request in flight.
		time.Sleep(60 * time.Second)
		good.Done(10*time.Millisecond, false)
		good.Start()
		if e, _ := s.Pick(PickRequest{}); e != bad {
			t.Fatalf("after 60 s the idle endpoint's estimate (%v) should be below the busy one's (%v)",
				bad.Stats().Latency, good.Stats().Latency)
		}
	})
}

func TestSlowStart(t *testing.T) {
	tests := []struct {
		name  string
		at    time.Duration
		want  float64
		start func(s *Set)
	}{
		{"returns from ejection: starts at the minimum", 0, 0.1, backFromEjection},
		{"returns from ejection: halfway", 15 * time.Second, 0.5, backFromEjection},
		{"returns from ejection: done", 30 * time.Second, 1, backFromEjection},
		{"joins a running set: quarter", 7500 * time.Millisecond, 0.25, joins},
		{"suspect to up also ramps", 3 * time.Second, 0.1, func(s *Set) {
			s.SetHealth("e1", bulwark.HealthSuspect)
			s.SetHealth("e1", bulwark.HealthUp)
		}},
		{"up to up does not ramp", 0, 1, func(s *Set) { s.SetHealth("e1", bulwark.HealthUp) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newSet(t, Config{Policy: LeastRequest{}}, 2)
				tc.start(s)
				time.Sleep(tc.at)
				e := s.Get("e1")
				if got := e.Stats().SlowStart; !near(got, tc.want, 1e-9) {
					t.Errorf("slow-start factor %v, want %v", got, tc.want)
				}
			})
		})
	}
}

func backFromEjection(s *Set) {
	s.SetHealth("e1", bulwark.HealthEjected)
	s.SetHealth("e1", bulwark.HealthUp)
}

func joins(s *Set) {
	_ = s.Update([]Member{{ID: "e0", Address: "127.0.0.1:9000"}, {ID: "e1", Address: "127.0.0.1:9001"}})
	_ = s.Update([]Member{{ID: "e0", Address: "127.0.0.1:9000"}, {ID: "e1", Address: "127.0.0.1:9009"}})
}

// TestSlowStartShare checks that a ramping endpoint gets a reduced share of
// picks with every policy that honours slow start.
func TestSlowStartShare(t *testing.T) {
	for _, tc := range policies[:3] {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newSet(t, Config{Policy: tc.policy}, 2)
				backFromEjection(s)
				time.Sleep(3 * time.Second) // factor 0.1
				counts := map[string]int{}
				var queue []*Endpoint
				for range 20000 {
					e, err := s.Pick(PickRequest{})
					if err != nil {
						t.Fatal(err)
					}
					e.Start()
					counts[e.ID()]++
					if queue = append(queue, e); len(queue) > 50 {
						queue[0].Done(time.Millisecond, false)
						queue = queue[1:]
					}
				}
				got := float64(counts["e1"]) / 20000
				// Weight ratio 0.1 : 1 gives ≈ 9 %; least-loaded policies reach it
				// only with enough requests in flight (50 here).
				if got > 0.2 || got < 0.03 {
					t.Errorf("ramping endpoint share %.3f, want ≈ 0.09", got)
				}
			})
		})
	}
}

// TestCheaperEWMAMatchesDecayedCost checks the clock-free comparison
// against the definition: decayed peak EWMA × (in-flight + 1) ÷ weight.
func TestCheaperEWMAMatchesDecayedCost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSet(t, Config{}, 2, 1, 3)
		a, b := s.Get("e0"), s.Get("e1")
		rnd := NewRand(5)
		cost := func(e *Endpoint) float64 {
			now := e.p.now()
			return e.latency(now) * float64(e.inflight.Load()+1) / e.effWeight(now)
		}
		for i := range 500 {
			e := a
			if i%2 == 1 {
				e = b
			}
			time.Sleep(time.Duration(rnd.IntN(20000)) * time.Millisecond)
			e.Start()
			if rnd.IntN(3) > 0 {
				e.Done(time.Duration(1+rnd.IntN(500))*time.Millisecond, false)
			}
			if i%50 == 0 {
				backFromEjection(s) // b ramps sometimes
			}
			if a.ewma.Load() == 0 || b.ewma.Load() == 0 {
				continue // unmeasured ordering is tested in TestP2CPrefersFasterEndpoint
			}
			ca, cb := cost(a), cost(b)
			if math.Abs(ca-cb) < 1e-9*ca {
				continue // a tie within rounding may go either way
			}
			if got, want := cheaperEWMA(a, b), cb < ca; got != want {
				t.Fatalf("step %d: cheaperEWMA = %v, but costs are a=%v b=%v", i, got, ca, cb)
			}
		}
	})
}

func TestFailurePenalty(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		success  time.Duration // one successful sample first (0: none)
		failures int           // then this many failures of 1 ms, at the same instant
		want     time.Duration
	}{
		{"one failure doubles the estimate", Config{}, 10 * time.Millisecond, 1, 20 * time.Millisecond},
		{"failures in a row grow geometrically", Config{}, 10 * time.Millisecond, 3, 80 * time.Millisecond},
		{"capped at 10 s", Config{}, 10 * time.Millisecond, 20, 10 * time.Second},
		{"the floor applies to an unmeasured endpoint", Config{}, 0, 1, 10 * time.Millisecond},
		{"custom factor", Config{FailurePenalty: 3}, 10 * time.Millisecond, 2, 90 * time.Millisecond},
		{"penalty and floor off", Config{FailurePenalty: 1, FailureLatency: -1}, 10 * time.Millisecond, 3, 10 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newSet(t, tc.cfg, 1)
				e := s.Get("e0")
				if tc.success > 0 {
					e.Start()
					e.Done(tc.success, false)
				}
				for range tc.failures {
					e.Start()
					e.Done(time.Millisecond, true)
				}
				if got := e.Stats().Latency; !near(float64(got), float64(tc.want), 1e-9) {
					t.Errorf("estimate %v, want %v", got, tc.want)
				}
			})
		})
	}
}

func TestReturnToRotationForgetsEstimate(t *testing.T) {
	s := newSet(t, Config{}, 2)
	e := s.Get("e0")
	e.Start()
	e.Done(time.Second, true)
	e.SetHealth(bulwark.HealthEjected)
	if e.Stats().Latency == 0 {
		t.Fatal("estimate lost while ejected")
	}
	e.SetHealth(bulwark.HealthUp)
	if st := e.Stats(); st.Latency != 0 || st.SlowStart >= 1 {
		t.Errorf("back in rotation: %+v, want no estimate and slow start", st)
	}
}
