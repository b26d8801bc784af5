package cluster

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestTimingValidate(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name string
		t    Timing
		ok   bool
		hold time.Duration
	}{
		{"default", DefaultTiming, true, 450 * ms},
		{"zero drift", Timing{Lease: 600 * ms, Renew: 100 * ms, Removal: 100 * ms}, true, 500 * ms},
		{"hold shorter than two renewals", Timing{Lease: 300 * ms, Renew: 100 * ms, Removal: 50 * ms, Drift: 60 * ms}, false, 190 * ms},
		{"margins eat the lease", Timing{Lease: 100 * ms, Renew: 10 * ms, Removal: 100 * ms}, false, 0},
		{"negative drift", Timing{Lease: time.Second, Renew: 100 * ms, Removal: 100 * ms, Drift: -ms}, false, 901 * ms},
		{"no renew", Timing{Lease: time.Second, Removal: 100 * ms}, false, 900 * ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.t.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrTiming) {
				t.Fatalf("error %v is not ErrTiming", err)
			}
			if got := tc.t.Hold(); got != tc.hold {
				t.Fatalf("Hold() = %v, want %v", got, tc.hold)
			}
		})
	}
}

// TestHolderGoneBeforeAnyoneMayAcquire is the arithmetic as a property:
// whenever a renewal was proposed at p and applied by another node at
// a ≥ p, the holder has removed the address (p + Hold + Removal) before
// that node may acquire (a + Lease), with Drift to spare.
func TestHolderGoneBeforeAnyoneMayAcquire(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, tm := range []Timing{DefaultTiming, {Lease: 2 * time.Second, Renew: 200 * time.Millisecond, Removal: 300 * time.Millisecond, Drift: 100 * time.Millisecond}} {
		for _, applyDelay := range []time.Duration{0, time.Millisecond, 50 * time.Millisecond, time.Second} {
			p := t0
			a := p.Add(applyDelay)
			gone := p.Add(tm.Hold() + tm.Removal)
			st := LeaseState{Holder: "old", Epoch: 1, Lease: tm.Lease, Applied: a}
			// Probe every millisecond: never free before the holder is gone + drift.
			for now := a; now.Before(a.Add(tm.Lease + tm.Drift + time.Millisecond)); now = now.Add(time.Millisecond) {
				free, wait := st.Free(now, tm.Drift)
				if free && now.Before(gone.Add(tm.Drift)) {
					t.Fatalf("timing %+v delay %v: free at %v, holder gone only at %v", tm, applyDelay, now.Sub(t0), gone.Sub(t0))
				}
				if !free && wait <= 0 {
					t.Fatalf("not free but wait %v", wait)
				}
			}
			if free, _ := st.Free(a.Add(tm.Lease+tm.Drift), tm.Drift); !free {
				t.Fatalf("still not free after lease + drift")
			}
		}
	}
	if free, _ := (LeaseState{}).Free(t0, 0); !free {
		t.Fatal("a never-granted lease is not free")
	}
	if free, _ := (LeaseState{Epoch: 3, Lease: time.Second, Applied: t0}).Free(t0, 0); !free {
		t.Fatal("a released lease is not free")
	}
}

func TestFSM(t *testing.T) {
	clock := time.Unix(0, 0)
	f := &fsm{now: func() time.Time { clock = clock.Add(time.Second); return clock }}
	L := time.Second
	steps := []struct {
		c      command
		ok     bool
		holder string
		epoch  uint64
	}{
		{command{Op: opRenew, Node: "a", Epoch: 0, Lease: L}, false, "", 0},
		{command{Op: opAcquire, Node: "a", Lease: L}, true, "a", 1},
		{command{Op: opRenew, Node: "a", Epoch: 1, Lease: L}, true, "a", 1},
		{command{Op: opRenew, Node: "b", Epoch: 1, Lease: L}, false, "a", 1},
		{command{Op: opAcquire, Node: "b", Lease: L}, true, "b", 2},
		{command{Op: opRenew, Node: "a", Epoch: 1, Lease: L}, false, "b", 2}, // the old holder's late renewal
		{command{Op: opRelease, Node: "a", Epoch: 1}, false, "b", 2},
		{command{Op: opRelease, Node: "b", Epoch: 2}, true, "", 2},
		{command{Op: opRenew, Node: "b", Epoch: 2, Lease: L}, false, "", 2}, // released is final
		{command{Op: "bogus", Node: "b"}, false, "", 2},
	}
	for i, s := range steps {
		r := f.apply(s.c)
		st := f.state()
		if r.OK != s.ok || st.Holder != s.holder || st.Epoch != s.epoch {
			t.Fatalf("step %d %+v: ok=%v holder=%q epoch=%d, want ok=%v holder=%q epoch=%d", i, s.c, r.OK, st.Holder, st.Epoch, s.ok, s.holder, s.epoch)
		}
	}
}

type fakeAddr struct {
	mu      sync.Mutex
	up      bool
	adds    int
	removes int
	fail    error
}

func (a *fakeAddr) Add() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail != nil {
		return a.fail
	}
	a.up = true
	a.adds++
	return nil
}

func (a *fakeAddr) Remove() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.up = false
	a.removes++
	return nil
}

func (a *fakeAddr) isUp() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.up
}

// TestFenceDropsAtDeadline: the address is removed exactly when the hold
// runs out, unless a renewal extended it; a renewal after the deadline does
// not add it back late; a cancelled term never re-adds.
func TestFenceDropsAtDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := &fakeAddr{}
		var drops []string
		f := &fence{addr: a, now: time.Now, onDrop: func(r string, _ error) { drops = append(drops, r) }}
		ctx, cancel := context.WithCancel(context.Background())
		tm := DefaultTiming
		start := time.Now()
		if !f.hold(ctx, start, start.Add(tm.Hold())) || !a.isUp() {
			t.Fatal("first hold did not add the address")
		}
		// Renew at +100ms: the deadline moves to +100ms+Hold.
		time.Sleep(tm.Renew)
		f.hold(ctx, time.Now(), time.Now().Add(tm.Hold()))
		time.Sleep(tm.Hold() - time.Millisecond)
		synctest.Wait()
		if !a.isUp() {
			t.Fatal("dropped before the extended deadline")
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if a.isUp() {
			t.Fatalf("still held at the deadline (%v after start)", time.Since(start))
		}
		if len(drops) != 1 {
			t.Fatalf("drops = %v", drops)
		}
		// A renewal whose hold is already over (it committed too late).
		late := time.Now().Add(-tm.Hold())
		if f.hold(ctx, late, late.Add(tm.Hold())) || a.isUp() {
			t.Fatal("a renewal that committed after its hold re-added the address")
		}
		// A fresh one adds again (the FSM accepted it, so the lease is ours).
		f.hold(ctx, time.Now(), time.Now().Add(tm.Hold()))
		if !a.isUp() || a.adds != 2 {
			t.Fatalf("up=%v adds=%d", a.isUp(), a.adds)
		}
		cancel()
		f.drop("term over")
		if f.hold(ctx, time.Now(), time.Now().Add(tm.Hold())) || a.isUp() {
			t.Fatal("a cancelled term re-added the address")
		}
		time.Sleep(time.Second)
		if a.removes != 2 {
			t.Fatalf("removes = %d, want 2", a.removes)
		}
	})
}

func TestFenceAddFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := &fakeAddr{fail: errors.New("no permission")}
		var addErr error
		f := &fence{addr: a, now: time.Now, onAdd: func(err error) { addErr = err }}
		if f.hold(context.Background(), time.Now(), time.Now().Add(time.Second)) {
			t.Fatal("hold reported success when Add failed")
		}
		if addErr == nil || a.isUp() {
			t.Fatalf("addErr=%v up=%v", addErr, a.isUp())
		}
	})
}
