package balance

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestUpdateIncremental: membership changes of every shape (insertions,
// removals, both at once, reordering, an address change under the same ID,
// weight changes) leave the set exactly as a fresh set given the same list
// would be, keep the state of endpoints that stay, and drop the ones that
// left from Get.
func TestUpdateIncremental(t *testing.T) {
	ids := func(eps []*Endpoint) []string {
		var out []string
		for _, e := range eps {
			out = append(out, fmt.Sprintf("%s@%s/%d", e.ID(), e.Address(), e.Weight()))
		}
		return out
	}
	m := func(spec ...string) []Member { // "id", "id@addr" or "id@addr/w"
		var ms []Member
		for _, s := range spec {
			var mb Member
			mb.ID, mb.Address, mb.Weight = s, "http://"+s, 1
			if n, _ := fmt.Sscanf(s, "%1s@%s", new(string), new(string)); n == 2 {
				mb.ID = s[:1]
				rest := s[2:]
				if k := len(rest) - 2; k > 0 && rest[k] == '/' {
					mb.Weight = int(rest[k+1] - '0')
					rest = rest[:k]
				}
				mb.Address = "http://" + rest
			}
			ms = append(ms, mb)
		}
		return ms
	}
	steps := [][]Member{
		m("a", "b", "c", "d", "e"),
		m("a", "b", "x", "c", "d", "e"),   // insertion in the middle
		m("a", "b", "c", "d", "e"),        // and its removal
		m("b", "c", "d"),                  // both ends removed
		m("a", "b", "c", "d", "e", "f"),   // both ends added
		m("f", "e", "d", "c", "b", "a"),   // reversed
		m("a", "c", "e", "g"),             // several at once
		m("a", "c@moved", "e", "g"),       // c moves: a new endpoint
		m("a", "c@moved/3", "e", "g@g/2"), // weights only
		m("c@moved/3", "g@g/2", "a", "e"), // reordered with weights
		m(),                               // empty
		m("q", "r"),                       // from empty
	}
	for _, pol := range []Policy{P2C{}, RoundRobin{}, Maglev{}} {
		s, _ := NewSet(Config{Policy: pol, Seed: 1})
		var prev []*Endpoint
		for i, ms := range steps {
			if err := s.Update(ms); err != nil {
				t.Fatalf("%T step %d: %v", pol, i, err)
			}
			fresh, _ := NewSet(Config{Policy: pol, Seed: 1})
			fresh.Update(ms)
			if got, want := ids(s.Endpoints()), ids(fresh.Endpoints()); !slices.Equal(got, want) {
				t.Fatalf("%T step %d: endpoints %v, want %v", pol, i, got, want)
			}
			for _, e := range prev {
				now := s.Get(e.ID())
				listed := slices.ContainsFunc(ms, func(x Member) bool { return x.ID == e.ID() && x.Address == e.Address() })
				switch {
				case listed && now != e:
					t.Fatalf("%T step %d: %s was replaced though it stayed", pol, i, e.ID())
				case !listed && now == e:
					t.Fatalf("%T step %d: %s left but Get still returns it", pol, i, e.ID())
				}
			}
			if s.Len() > 0 && s.snap.Load().picker == nil {
				t.Fatalf("%T step %d: no picker", pol, i)
			}
			if pol == (Maglev{}) && s.Len() > 0 {
				for k := range 200 {
					key := fmt.Sprint("key-", k)
					a, _ := s.Pick(PickRequest{Key: key})
					b, _ := fresh.Pick(PickRequest{Key: key})
					if a.ID() != b.ID() {
						t.Fatalf("step %d: key %s → %s, a fresh set says %s", i, key, a.ID(), b.ID())
					}
				}
			}
			prev = s.Endpoints()
		}
	}
}

// TestUpdateRejectsLeaveNothingChanged: a duplicate ID (among kept or among
// new endpoints) or a bad weight is refused and the set stays as it was.
func TestUpdateRejectsLeaveNothingChanged(t *testing.T) {
	s, _ := NewSet(Config{Seed: 1})
	if err := s.Update(members(0, 1, 2)); err != nil {
		t.Fatal(err)
	}
	before := s.Endpoints()
	for _, bad := range [][]Member{
		append(members(0, 1, 2), members(1)...),
		append(members(0, 1, 2), Member{ID: "n", Address: "x"}, Member{ID: "n", Address: "y"}),
		{{ID: "e0", Address: "127.0.0.1:9000", Weight: 3}, {ID: "e9", Address: "z", Weight: -1}},
	} {
		if err := s.Update(bad); err == nil {
			t.Fatalf("accepted %v", bad)
		}
		if got := s.Endpoints(); !slices.Equal(got, before) || got[0].Weight() != 1 {
			t.Fatalf("rejected update changed the set: %v", got)
		}
	}
	if err := s.Update(members(0, 2)); err != nil || s.Get("e1") != nil || s.Get("e2") != before[2] {
		t.Fatalf("valid update after rejections: %v", err)
	}
}

// TestMaglevDeferredRebuild: with a RebuildDelay, an endpoint that leaves
// gets no key from the moment Update returns, its keys go where the table's
// next slots send them, a newcomer gets keys only once the table is rebuilt
// (one rebuild for all the changes of the delay), and then placement is the
// same as a fresh table's.
func TestMaglevDeferredRebuild(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const delay = 100 * time.Millisecond
		s, _ := NewSet(Config{Policy: Maglev{}, Seed: 1, RebuildDelay: delay})
		defer s.Close()
		if err := s.Update(members(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)); err != nil {
			t.Fatal(err)
		}
		before := placements(t, s, 5000)
		table := s.snap.Load().picker.(*maglevPicker).table
		// e3 leaves and e10 joins, in two updates.
		if err := s.Update(members(0, 1, 2, 4, 5, 6, 7, 8, 9)); err != nil {
			t.Fatal(err)
		}
		if err := s.Update(members(0, 1, 2, 4, 5, 6, 7, 8, 9, 10)); err != nil {
			t.Fatal(err)
		}
		stale := placements(t, s, 5000)
		for i := range stale {
			switch {
			case stale[i] == "e3" || stale[i] == "e10":
				t.Fatalf("key %d → %s before the rebuild", i, stale[i])
			case before[i] != "e3" && stale[i] != before[i]:
				t.Fatalf("key %d moved from %s to %s though its endpoint stayed", i, before[i], stale[i])
			}
		}
		if got := s.snap.Load().picker.(*maglevPicker); &got.table[0] != &table[0] {
			t.Fatal("the table was rebuilt within the delay")
		}
		time.Sleep(delay)
		synctest.Wait()
		fresh, _ := NewSet(Config{Policy: Maglev{}})
		fresh.Update(members(0, 1, 2, 4, 5, 6, 7, 8, 9, 10))
		if got, want := placements(t, s, 5000), placements(t, fresh, 5000); !slices.Equal(got, want) {
			t.Fatal("after the rebuild, placement differs from a fresh table's")
		}
		if p := s.snap.Load().picker.(*maglevPicker); p.cur != nil {
			t.Fatal("rebuilt picker still marked as kept")
		}
		// Half the endpoints leaving at once: rebuilt within Update.
		if err := s.Update(members(0, 1, 2, 4)); err != nil {
			t.Fatal(err)
		}
		if p := s.snap.Load().picker.(*maglevPicker); p.cur != nil || len(p.eps) != 4 {
			t.Fatal("a kept table after most endpoints left")
		}
		// Every endpoint of the table gone, the newcomers not in it yet:
		// picks still find one (the slow path scans the membership).
		s2, _ := NewSet(Config{Policy: Maglev{}, Seed: 1, RebuildDelay: time.Hour})
		defer s2.Close()
		s2.Update(members(0, 1, 2))
		s2.Update(members(0, 1, 2, 3, 4, 5, 6))
		s2.Update(members(3, 4, 5, 6))
		if e, err := s2.Pick(PickRequest{Key: "k"}); err != nil || e.ID() == "e0" || e.ID() == "e1" || e.ID() == "e2" {
			t.Fatalf("pick from a kept table with its endpoints gone: %v %v", e, err)
		}
	})
}

// TestUpdateRandomSequences: many seeded random membership sequences
// (mostly sorted lists with a few joins and leaves, sometimes shuffled,
// with address and weight changes) keep the set equal to a fresh set of
// the same list, keep every endpoint that stayed, and keep Get in step.
func TestUpdateRandomSequences(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for seq := range 120 {
		cfg := []Config{{Policy: P2C{}}, {Policy: RoundRobin{}}, {Policy: Maglev{TableSize: 257}},
			{Policy: Maglev{TableSize: 257}, RebuildDelay: time.Hour}}[seq%4] // the last keeps its table
		cfg.Seed = 1
		s, _ := NewSet(cfg)
		defer s.Close()
		cur := map[string]Member{}
		for step := range 20 {
			for range rng.IntN(4) { // joins
				id := fmt.Sprintf("e%02d", rng.IntN(40))
				cur[id] = Member{ID: id, Address: "http://" + id, Weight: 1 + rng.IntN(2)}
			}
			for id := range cur { // leaves, address and weight changes
				switch rng.IntN(12) {
				case 0:
					delete(cur, id)
				case 1:
					m := cur[id]
					m.Address += "x"
					cur[id] = m
				case 2:
					m := cur[id]
					m.Weight = 1 + rng.IntN(3)
					cur[id] = m
				}
			}
			ms := slices.Collect(maps.Values(cur))
			slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
			if rng.IntN(5) == 0 {
				rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
			}
			before := map[string]*Endpoint{}
			for _, e := range s.Endpoints() {
				before[e.ID()] = e
			}
			if err := s.Update(ms); err != nil {
				t.Fatalf("seq %d step %d: %v", seq, step, err)
			}
			fresh, _ := NewSet(Config{Seed: 1})
			fresh.Update(ms)
			got, want := s.Endpoints(), fresh.Endpoints()
			if len(got) != len(want) {
				t.Fatalf("seq %d step %d: %d endpoints, want %d", seq, step, len(got), len(want))
			}
			for i, e := range got {
				w := want[i]
				if e.ID() != w.ID() || e.Address() != w.Address() || e.Weight() != w.Weight() {
					t.Fatalf("seq %d step %d: endpoint %d is %s@%s/%d, want %s@%s/%d", seq, step, i, e.ID(), e.Address(), e.Weight(), w.ID(), w.Address(), w.Weight())
				}
				if s.Get(e.ID()) != e {
					t.Fatalf("seq %d step %d: Get(%s) out of step", seq, step, e.ID())
				}
				if old := before[e.ID()]; old != nil && old.Address() == e.Address() && old != e {
					t.Fatalf("seq %d step %d: %s stayed but was replaced", seq, step, e.ID())
				}
				if e.gone.Load() {
					t.Fatalf("seq %d step %d: %s listed but marked gone", seq, step, e.ID())
				}
			}
			for id, old := range before {
				if m, ok := cur[id]; (!ok || m.Address != old.Address()) && !old.gone.Load() {
					t.Fatalf("seq %d step %d: %s left but is not marked gone", seq, step, id)
				}
			}
			if _, err := s.Pick(PickRequest{Key: "k"}); (err == nil) != (len(ms) > 0) {
				t.Fatalf("seq %d step %d: pick: %v with %d members", seq, step, err, len(ms))
			}
		}
	}
}
