package balance

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero value", Config{}, true},
		{"all set", Config{Policy: RoundRobin{}, Seed: 7, DecayTime: time.Second, FailureLatency: -1, SlowStart: -1, SlowStartMin: 0.5}, true},
		{"negative decay", Config{DecayTime: -time.Second}, false},
		{"slow-start min above 1", Config{SlowStartMin: 1.5}, false},
		{"slow-start min negative", Config{SlowStartMin: -0.1}, false},
		{"invalid policy", Config{Policy: Maglev{TableSize: 100}}, false},
		{"failure penalty below 1", Config{FailurePenalty: 0.5}, false},
		{"failure penalty NaN", Config{FailurePenalty: math.NaN()}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSet(tc.cfg)
			if (err == nil) != tc.ok || (s == nil) == tc.ok {
				t.Errorf("NewSet = %v, %v; want ok=%v", s, err, tc.ok)
			}
		})
	}
}

func TestUpdateRejectsInvalidMembers(t *testing.T) {
	tests := []struct {
		name    string
		members []Member
	}{
		{"no ID or address", []Member{{Weight: 1}}},
		{"duplicate ID", []Member{{ID: "a", Address: "x"}, {ID: "a", Address: "y"}}},
		{"duplicate address as ID", []Member{{Address: "x"}, {Address: "x"}}},
		{"negative weight", []Member{{ID: "a", Weight: -1}}},
		{"weight too large", []Member{{ID: "a", Weight: MaxWeight + 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSet(t, Config{}, 2, 3, 4)
			if err := s.Update(tc.members); err == nil {
				t.Fatal("Update accepted invalid members")
			}
			if s.Len() != 2 || s.Get("e0").Weight() != 3 || s.Get("e1").Weight() != 4 {
				t.Errorf("a rejected update changed the set: %+v", s.Stats())
			}
		})
	}
}

func TestUpdateKeepsState(t *testing.T) {
	s := newSet(t, Config{}, 3)
	e0, e1 := s.Get("e0"), s.Get("e1")
	e0.Start()
	e0.Start()
	e1.Start()
	e1.Done(40*time.Millisecond, false)
	e1.SetHealth(bulwark.HealthEjected)

	err := s.Update([]Member{
		{ID: "e0", Address: "127.0.0.1:9000", Weight: 5}, // stays, new weight
		{ID: "e1", Address: "127.0.0.1:9001"},            // stays
		{ID: "e3", Address: "127.0.0.1:9003"},            // new
		{ID: "e2", Address: "127.0.0.1:9999"},            // same ID, new address: a new endpoint
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Get("e0") != e0 || e0.InFlight() != 2 || e0.Weight() != 5 {
		t.Errorf("e0 lost its state: same=%v %+v", s.Get("e0") == e0, e0.Stats())
	}
	if st := s.Get("e1").Stats(); st.Health != bulwark.HealthEjected || st.Latency == 0 || st.Requests != 1 {
		t.Errorf("e1 lost its state: %+v", st)
	}
	if st := s.Get("e3").Stats(); st.SlowStart >= 1 || st.Health != bulwark.HealthUnknown {
		t.Errorf("a member added to a running set should slow-start: %+v", st)
	}
	if s.Get("e2").Address() != "127.0.0.1:9999" || s.Get("e2").Stats().Requests != 0 {
		t.Errorf("e2 with a new address should be a fresh endpoint: %+v", s.Get("e2").Stats())
	}
	// A try that outlives its endpoint's removal still completes cleanly.
	if err := s.Update(nil); err != nil {
		t.Fatal(err)
	}
	e0.Done(time.Millisecond, false)
	if e0.InFlight() != 1 || s.Get("e0") != nil {
		t.Errorf("removed endpoint: in flight %d, still in set %v", e0.InFlight(), s.Get("e0") != nil)
	}
}

func TestFirstUpdateDoesNotSlowStart(t *testing.T) {
	s := newSet(t, Config{}, 2)
	for _, st := range s.Stats() {
		if st.SlowStart != 1 {
			t.Errorf("%s: slow start %v on the first membership", st.ID, st.SlowStart)
		}
	}
}

func TestMemberData(t *testing.T) {
	s, _ := NewSet(Config{})
	type upstream struct{ name string }
	u := &upstream{"a"}
	if err := s.Update([]Member{{Address: "http://127.0.0.1:1", Data: u}}); err != nil {
		t.Fatal(err)
	}
	e, err := s.Pick(PickRequest{})
	if err != nil || e.Data() != u || e.ID() != "http://127.0.0.1:1" {
		t.Fatalf("pick %v %v: data %v id %q", e, err, e.Data(), e.ID())
	}
}

// TestConcurrentPickAndUpdate runs picks, outcomes, health changes and
// membership updates at once; run with -race.
func TestConcurrentPickAndUpdate(t *testing.T) {
	for _, tc := range policies {
		t.Run(tc.name, func(t *testing.T) {
			policy := tc.policy
			if m, ok := policy.(Maglev); ok {
				m.TableSize = 1009 // keep 50 rebuilds cheap under -race
				policy = m
			}
			s := newSet(t, Config{Policy: policy}, 4)
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for g := range 4 {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						req := keyed(g*1000 + i)
						e, err := s.Pick(req)
						if errors.Is(err, ErrNoEndpoint) {
							continue
						} else if err != nil {
							t.Error(err)
							return
						}
						e.Start()
						e.Done(time.Duration(i%7)*time.Millisecond, i%5 == 0)
					}
				})
			}
			for i := range 50 {
				n := 1 + i%5
				ms := make([]Member, n)
				for j := range ms {
					ms[j] = Member{ID: fmt.Sprint("e", j), Address: fmt.Sprint("127.0.0.1:", 9000+j), Weight: 1 + j}
				}
				if err := s.Update(ms); err != nil {
					t.Fatal(err)
				}
				s.SetHealth("e0", bulwark.Health(i%5))
			}
			close(stop)
			wg.Wait()
			for _, e := range s.Endpoints() {
				if e.InFlight() != 0 {
					t.Errorf("%s: %d in flight after all tries finished", e.ID(), e.InFlight())
				}
			}
		})
	}
}

func TestRandDeterministicAndInRange(t *testing.T) {
	a, b := NewRand(42), NewRand(42)
	counts := make([]int, 7)
	for range 70000 {
		x := a.IntN(7)
		if y := b.IntN(7); x != y {
			t.Fatal("same seed, different sequence")
		}
		counts[x]++
		if f := a.Float64(); f < 0 || f >= 1 {
			t.Fatalf("Float64 %v outside [0, 1)", f)
		}
		b.Float64()
	}
	for i, c := range counts {
		if c < 9000 || c > 11000 {
			t.Errorf("IntN(7) gave %d %d times of 70000, want ≈ 10000", i, c)
		}
	}
	if NewRand(1).Uint64() == NewRand(2).Uint64() {
		t.Error("different seeds, same first value")
	}
}

func TestTried(t *testing.T) {
	eps := make([]*Endpoint, MaxTried+2)
	for i := range eps {
		eps[i] = &Endpoint{id: fmt.Sprint(i)}
	}
	var tr Tried
	tr.Add(nil)
	tr.Add(eps[0])
	tr.Add(eps[0])
	if tr.Len() != 1 || !tr.Has(eps[0]) || tr.Has(eps[1]) {
		t.Fatalf("after adding e0 twice: len %d", tr.Len())
	}
	for _, e := range eps[1:] {
		tr.Add(e)
	}
	if tr.Len() != MaxTried || tr.Has(eps[0]) || tr.Has(eps[1]) || !tr.Has(eps[MaxTried+1]) {
		t.Errorf("a full set must forget the oldest: len %d", tr.Len())
	}
	tr.Reset()
	if tr.Len() != 0 || tr.Has(eps[5]) {
		t.Error("Reset left entries")
	}
}
