package balance

import (
	"fmt"
	"math"
	"strconv"
	"testing"
)

// placements maps keys 0..n-1 to endpoint IDs.
func placements(t *testing.T, s *Set, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		e, err := s.Pick(keyed(i))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = e.ID()
	}
	return out
}

func members(ids ...int) []Member {
	ms := make([]Member, len(ids))
	for i, id := range ids {
		ms[i] = Member{ID: "e" + strconv.Itoa(id), Address: fmt.Sprintf("127.0.0.1:%d", 9000+id)}
	}
	return ms
}

func TestMaglevStability(t *testing.T) {
	const keys = 20000
	tests := []struct {
		name        string
		before      []int
		after       []int
		wantMoved   float64 // expected fraction of keys that move
		changedID   string  // the endpoint added or removed
		wantToOrOut float64 // minimum fraction of moves that involve it
	}{
		{"add one to ten", []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 1.0 / 11, "e10", 0.9},
		{"remove one of ten", []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, []int{0, 1, 2, 3, 4, 6, 7, 8, 9}, 1.0 / 10, "e5", 0.9},
		{"add one to three", []int{0, 1, 2}, []int{0, 1, 2, 3}, 1.0 / 4, "e3", 0.9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSet(Config{Policy: Maglev{}, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Update(members(tc.before...)); err != nil {
				t.Fatal(err)
			}
			before := placements(t, s, keys)
			if err := s.Update(members(tc.after...)); err != nil {
				t.Fatal(err)
			}
			after := placements(t, s, keys)
			moved, involving := 0, 0
			for i := range before {
				if before[i] != after[i] {
					moved++
					if before[i] == tc.changedID || after[i] == tc.changedID {
						involving++
					}
				}
			}
			frac := float64(moved) / keys
			if frac < tc.wantMoved*0.8 || frac > tc.wantMoved*1.3 {
				t.Errorf("moved %.4f of keys, want ≈ %.4f", frac, tc.wantMoved)
			}
			if got := float64(involving) / float64(moved); got < tc.wantToOrOut {
				t.Errorf("only %.3f of moved keys involve %s, want ≥ %.2f", got, tc.changedID, tc.wantToOrOut)
			}
		})
	}
}

// TestMaglevSameAcrossGateways checks that two independent sets (two
// gateways, different seeds) place every key identically.
func TestMaglevSameAcrossGateways(t *testing.T) {
	a := newSet(t, Config{Policy: Maglev{}, Seed: 1}, 7)
	b := newSet(t, Config{Policy: Maglev{}, Seed: 99}, 7)
	pa, pb := placements(t, a, 5000), placements(t, b, 5000)
	for i := range pa {
		if pa[i] != pb[i] {
			t.Fatalf("key %d: %s on one gateway, %s on the other", i, pa[i], pb[i])
		}
	}
}

// TestMaglevMembershipOrder checks that the order in which a membership
// source lists endpoints does not change key placement.
func TestMaglevMembershipOrder(t *testing.T) {
	a, _ := NewSet(Config{Policy: Maglev{}})
	b, _ := NewSet(Config{Policy: Maglev{}})
	if err := a.Update(members(0, 1, 2, 3, 4, 5)); err != nil {
		t.Fatal(err)
	}
	if err := b.Update(members(5, 3, 1, 0, 4, 2)); err != nil {
		t.Fatal(err)
	}
	pa, pb := placements(t, a, 5000), placements(t, b, 5000)
	for i := range pa {
		if pa[i] != pb[i] {
			t.Fatalf("key %d: %s with one order, %s with another", i, pa[i], pb[i])
		}
	}
}

func TestMaglevWeightedTable(t *testing.T) {
	s := newSet(t, Config{Policy: Maglev{}}, 3, 1, 2, 5)
	p := s.snap.Load().picker.(*maglevPicker)
	counts := make([]int, 3)
	for _, i := range p.table {
		counts[i]++
	}
	for i, w := range []float64{1, 2, 5} {
		got := float64(counts[i]) / float64(len(p.table))
		if math.Abs(got-w/8) > 0.01 {
			t.Errorf("endpoint %d owns %.4f of the table, want %.4f", i, got, w/8)
		}
	}
}

func TestMaglevTableSize(t *testing.T) {
	tests := []struct {
		cfg       Maglev
		endpoints int
		want      int
	}{
		{Maglev{}, 3, 65537},
		{Maglev{}, 1000, 100003},
		{Maglev{TableSize: 251}, 3, 251},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.cfg.TableSize, "/", tc.endpoints), func(t *testing.T) {
			s := newSet(t, Config{Policy: tc.cfg}, tc.endpoints)
			if got := len(s.snap.Load().picker.(*maglevPicker).table); got != tc.want {
				t.Errorf("table size %d, want %d", got, tc.want)
			}
		})
	}
}

// TestMaglevBoundedLoad sends one hot key many times with every try still
// in flight: without a bound all land on one endpoint; with factor c no
// endpoint holds more than ⌈c × total ÷ N⌉.
func TestMaglevBoundedLoad(t *testing.T) {
	tests := []struct {
		factor  float64
		maxLoad int64
	}{
		{0, 200},
		{1.25, 63}, // ⌈1.25 × 200 ÷ 4⌉
		{2, 100},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.factor), func(t *testing.T) {
			s := newSet(t, Config{Policy: Maglev{LoadFactor: tc.factor}}, 4)
			home, _ := s.Pick(PickRequest{Key: "hot"})
			for range 200 {
				e, err := s.Pick(PickRequest{Key: "hot"})
				if err != nil {
					t.Fatal(err)
				}
				e.Start()
			}
			var peak int64
			for _, e := range s.Endpoints() {
				peak = max(peak, e.InFlight())
			}
			if tc.factor == 0 && peak != tc.maxLoad {
				t.Errorf("unbounded: busiest endpoint has %d in flight, want all %d", peak, tc.maxLoad)
			}
			if peak > tc.maxLoad {
				t.Errorf("busiest endpoint has %d in flight, want ≤ %d", peak, tc.maxLoad)
			}
			if home.InFlight() != peak {
				t.Errorf("the key's own endpoint should be the busiest (%d vs %d)", home.InFlight(), peak)
			}
			for _, e := range s.Endpoints() {
				for e.InFlight() > 0 {
					e.Done(0, false)
				}
			}
			if got, _ := s.Pick(PickRequest{Key: "hot"}); got != home {
				t.Errorf("with load gone the key should return to %s, got %s", home.ID(), got.ID())
			}
		})
	}
}

func TestMaglevValidate(t *testing.T) {
	tests := []struct {
		m  Maglev
		ok bool
	}{
		{Maglev{}, true},
		{Maglev{TableSize: 65537, LoadFactor: 1.25}, true},
		{Maglev{TableSize: 65536}, false},
		{Maglev{TableSize: 1}, false},
		{Maglev{LoadFactor: 1}, false},
		{Maglev{LoadFactor: math.NaN()}, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.m), func(t *testing.T) {
			_, err := NewSet(Config{Policy: tc.m})
			if (err == nil) != tc.ok {
				t.Errorf("NewSet err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestHashStringStable pins hashString's output: gateways of different
// versions must place keys alike, so a change here is a breaking change.
func TestHashStringStable(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
	}{
		{"", 0xb78a799a6be29066},
		{"a", 0xdd73e19fb86b0eb0},
		{"client-12345678", 0x7142dbd72f3d3c0e},
	}
	for _, tc := range tests {
		if got := hashString(tc.in, 0); got != tc.want {
			t.Errorf("hashString(%q) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
}
