package balance

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
)

// policies lists every built-in policy under test.
var policies = []struct {
	name   string
	policy Policy
}{
	{"p2c", P2C{}},
	{"least_request", LeastRequest{}},
	{"round_robin", RoundRobin{}},
	{"maglev", Maglev{}},
	{"maglev_bounded", Maglev{LoadFactor: 1.25}},
}

// newSet returns a seeded set over endpoints e0..e(n-1) with the given
// weights (all 1 when weights is empty).
func newSet(t testing.TB, cfg Config, n int, weights ...int) *Set {
	t.Helper()
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	s, err := NewSet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = Member{ID: "e" + strconv.Itoa(i), Address: fmt.Sprintf("127.0.0.1:%d", 9000+i)}
		if i < len(weights) {
			ms[i].Weight = weights[i]
		}
	}
	if err := s.Update(ms); err != nil {
		t.Fatal(err)
	}
	return s
}

// keyed returns a request whose Key is distinct for every i (Maglev needs
// keys to spread; the others ignore it).
func keyed(i int) PickRequest { return PickRequest{Key: "client-" + strconv.Itoa(i)} }

// shares picks n times with every try completing at once with the same
// latency and returns each endpoint's share of picks.
func shares(t *testing.T, s *Set, n int) map[string]float64 {
	t.Helper()
	counts := map[string]int{}
	for i := range n {
		e, err := s.Pick(keyed(i))
		if err != nil {
			t.Fatalf("pick %d: %v", i, err)
		}
		e.Start()
		e.Done(time.Millisecond, false)
		counts[e.ID()]++
	}
	out := map[string]float64{}
	for id, c := range counts {
		out[id] = float64(c) / float64(n)
	}
	return out
}

func TestDistributionEqualWeights(t *testing.T) {
	for _, tc := range policies {
		t.Run(tc.name, func(t *testing.T) {
			s := newSet(t, Config{Policy: tc.policy}, 5)
			got := shares(t, s, 20000)
			if len(got) != 5 {
				t.Fatalf("picked %d endpoints, want 5: %v", len(got), got)
			}
			for id, sh := range got {
				if math.Abs(sh-0.2) > 0.03 {
					t.Errorf("%s share %.3f, want 0.20±0.03", id, sh)
				}
			}
		})
	}
}

// TestWeightsUnderLoad keeps a fixed number of tries in flight (the oldest
// finishes as a new one starts), which is when load-aware policies honour
// weights, and checks the shares follow weights 3:1.
func TestWeightsUnderLoad(t *testing.T) {
	for _, tc := range policies {
		t.Run(tc.name, func(t *testing.T) {
			s := newSet(t, Config{Policy: tc.policy}, 2, 3, 1)
			const inflight, picks = 16, 40000
			var queue []*Endpoint
			counts := map[string]int{}
			for i := range picks {
				e, err := s.Pick(keyed(i))
				if err != nil {
					t.Fatal(err)
				}
				e.Start()
				counts[e.ID()]++
				queue = append(queue, e)
				if len(queue) > inflight {
					queue[0].Done(time.Millisecond, false)
					queue = queue[1:]
				}
			}
			got := float64(counts["e0"]) / picks
			if math.Abs(got-0.75) > 0.05 {
				t.Errorf("weight-3 endpoint share %.3f, want 0.75±0.05 (counts %v)", got, counts)
			}
		})
	}
}

func TestRoundRobinSmoothSequence(t *testing.T) {
	tests := []struct {
		weights []int
		want    string // one cycle, as endpoint letters
	}{
		{[]int{5, 1, 1}, "aabacaa"}, // the example in nginx's commit 52327e0627f4
		{[]int{1, 1, 1}, "abc"},
		{[]int{2, 2, 4}, "cabc"},
		{[]int{3, 1}, "aaba"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.weights), func(t *testing.T) {
			s := newSet(t, Config{Policy: RoundRobin{}}, len(tc.weights), tc.weights...)
			p := s.snap.Load().picker.(*rrPicker)
			var got []byte
			for _, i := range p.sched {
				got = append(got, 'a'+byte(i))
			}
			if string(got) != tc.want {
				t.Errorf("cycle %q, want %q", got, tc.want)
			}
			// Three cycles of picks give each endpoint exactly three times
			// its reduced weight.
			counts := map[byte]int{}
			for range 3 * len(tc.want) {
				e, err := s.Pick(PickRequest{})
				if err != nil {
					t.Fatal(err)
				}
				counts['a'+e.ID()[1]-'0']++
			}
			for _, c := range []byte(tc.want) {
				if want := 3 * strings.Count(tc.want, string(c)); counts[c] != want {
					t.Errorf("endpoint %c picked %d times in 3 cycles, want %d", c, counts[c], want)
				}
			}
		})
	}
}

func TestRoundRobinLargeWeightsScaled(t *testing.T) {
	s := newSet(t, Config{Policy: RoundRobin{}}, 3, MaxWeight, MaxWeight-1, 7)
	p := s.snap.Load().picker.(*rrPicker)
	if len(p.sched) > maxSchedule {
		t.Fatalf("schedule has %d slots, want ≤ %d", len(p.sched), maxSchedule)
	}
	got := shares(t, s, 20000)
	if math.Abs(got["e0"]-got["e1"]) > 0.02 || got["e2"] > 0.01 {
		t.Errorf("shares %v, want e0≈e1 and e2 < 1%%", got)
	}
}

func TestExclusion(t *testing.T) {
	for _, tc := range policies {
		t.Run(tc.name, func(t *testing.T) {
			s := newSet(t, Config{Policy: tc.policy}, 4)
			for i := range 200 {
				req := keyed(i)
				seen := map[*Endpoint]bool{}
				for try := range 4 {
					e, err := s.Pick(req)
					if err != nil {
						t.Fatalf("key %d try %d: %v", i, try, err)
					}
					if seen[e] {
						t.Fatalf("key %d try %d: %s picked again", i, try, e.ID())
					}
					seen[e] = true
					req.Tried.Add(e)
				}
				_, err := s.Pick(req)
				if !errors.Is(err, ErrAllTried) || !errors.Is(err, ErrNoEndpoint) {
					t.Fatalf("all tried: err %v, want ErrAllTried wrapping ErrNoEndpoint", err)
				}
			}
		})
	}
}

func TestUnavailableSkipped(t *testing.T) {
	for _, tc := range policies {
		t.Run(tc.name, func(t *testing.T) {
			s := newSet(t, Config{Policy: tc.policy, SlowStart: -1}, 4)
			s.SetHealth("e1", bulwark.HealthEjected)
			s.SetHealth("e3", bulwark.HealthDown)
			got := shares(t, s, 4000)
			if got["e1"] != 0 || got["e3"] != 0 {
				t.Fatalf("unavailable endpoints picked: %v", got)
			}
			if got["e0"] < 0.35 || got["e2"] < 0.35 {
				t.Errorf("available endpoints should share the load: %v", got)
			}
			s.SetHealth("e0", bulwark.HealthSuspect)
			s.SetHealth("e2", bulwark.HealthDown)
			if _, err := s.Pick(keyed(1)); !errors.Is(err, ErrNoEndpoint) || errors.Is(err, ErrAllTried) {
				t.Fatalf("all unavailable: err %v, want ErrNoEndpoint only", err)
			}
			if e, err := s.Pick(PickRequest{Key: "k", AnyHealth: true}); err != nil || e == nil {
				t.Fatalf("AnyHealth: %v, %v", e, err)
			}
		})
	}
}

func TestPanicRoutesToAll(t *testing.T) {
	panicking := false
	s := newSet(t, Config{Panic: func() bool { return panicking }}, 3)
	for _, id := range []string{"e0", "e1", "e2"} {
		s.SetHealth(id, bulwark.HealthEjected)
	}
	if _, err := s.Pick(PickRequest{}); !errors.Is(err, ErrNoEndpoint) {
		t.Fatalf("before panic: err %v, want ErrNoEndpoint", err)
	}
	panicking = true
	if got := shares(t, s, 3000); len(got) != 3 {
		t.Fatalf("in panic all endpoints should be used: %v", got)
	}
}

func TestEmptySet(t *testing.T) {
	s, err := NewSet(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pick(PickRequest{}); !errors.Is(err, ErrNoEndpoint) {
		t.Fatalf("empty set: %v", err)
	}
	if err := s.Update(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pick(PickRequest{}); !errors.Is(err, ErrNoEndpoint) {
		t.Fatalf("emptied set: %v", err)
	}
}

func TestSingleEndpoint(t *testing.T) {
	for _, tc := range policies {
		t.Run(tc.name, func(t *testing.T) {
			s := newSet(t, Config{Policy: tc.policy}, 1)
			e, err := s.Pick(keyed(1))
			if err != nil || e.ID() != "e0" {
				t.Fatalf("pick: %v, %v", e, err)
			}
			var req PickRequest
			req.Tried.Add(e)
			if _, err := s.Pick(req); !errors.Is(err, ErrAllTried) {
				t.Fatalf("tried: %v", err)
			}
		})
	}
}

func TestP2CPrefersFasterEndpoint(t *testing.T) {
	s := newSet(t, Config{}, 2)
	fast, slow := s.Get("e0"), s.Get("e1")
	// An unmeasured idle endpoint beats a measured one, so it gets tried;
	// once it has a request in flight and still no answer, it loses.
	fast.Start()
	fast.Done(time.Millisecond, false)
	if !cheaperEWMA(fast, slow) {
		t.Fatal("an idle unmeasured endpoint must be cheaper than a measured one")
	}
	slow.Start()
	if cheaperEWMA(fast, slow) {
		t.Fatal("a busy unmeasured endpoint must cost more than a measured one")
	}
	slow.Done(time.Millisecond, false)
	fast.ewma.Store(0)
	slow.ewma.Store(0)
	fast.Start()
	fast.Done(5*time.Millisecond, false)
	slow.Start()
	slow.Done(50*time.Millisecond, false)
	for range 100 {
		if e, _ := s.Pick(PickRequest{}); e != fast {
			t.Fatalf("picked %s, want the faster e0", e.ID())
		}
	}
	// Load counts: 10 in flight on the fast one make it costlier than the
	// idle slow one (5 ms × 11 > 50 ms × 1).
	for range 10 {
		fast.Start()
	}
	if e, _ := s.Pick(PickRequest{}); e != slow {
		t.Fatalf("picked %s with e0 loaded, want e1", e.ID())
	}
}

func TestFailuresCountAsSlow(t *testing.T) {
	s := newSet(t, Config{FailureLatency: 500 * time.Millisecond}, 2)
	failing, healthy := s.Get("e0"), s.Get("e1")
	failing.Start()
	failing.Done(time.Microsecond, true) // a fast 503
	healthy.Start()
	healthy.Done(20*time.Millisecond, false)
	if e, _ := s.Pick(PickRequest{}); e != healthy {
		t.Fatalf("picked %s, want the healthy endpoint over the fast-failing one", e.ID())
	}
	st := failing.Stats()
	if st.Failures != 1 || st.Requests != 1 || st.Latency < 400*time.Millisecond {
		t.Errorf("failing stats %+v", st)
	}
}

// firstPolicy is a custom policy (Caddy's "first": primary, then backups)
// written against the exported API only.
type firstPolicy struct{}

func (firstPolicy) Build(eps []*Endpoint, _ *Rand) Picker { return firstPicker(eps) }

type firstPicker []*Endpoint

func (p firstPicker) Pick(req PickRequest) (*Endpoint, error) {
	for _, e := range p {
		if req.Allows(e) {
			return e, nil
		}
	}
	return nil, ErrNoEndpoint
}

func TestCustomPolicy(t *testing.T) {
	s := newSet(t, Config{Policy: firstPolicy{}}, 3)
	want := []string{"e0", "e1", "e2"}
	for i, id := range want {
		e, err := s.Pick(PickRequest{})
		if err != nil || e.ID() != id {
			t.Fatalf("step %d: picked %v (%v), want %s", i, e, err, id)
		}
		e.SetHealth(bulwark.HealthDown)
	}
	if _, err := s.Pick(PickRequest{}); !errors.Is(err, ErrNoEndpoint) {
		t.Fatalf("all down: %v", err)
	}
}
