package breaker

import (
	"math/rand/v2"
	"sync"
	"testing"
)

// kinds maps a fuzz byte to an outcome: success, failure, slow success,
// slow failure.
var kinds = [4]uint32{bitRecorded, bitRecorded | bitFailure, bitRecorded | bitSlow, bitRecorded | bitFailure | bitSlow}

// recount counts outcomes naively.
func recount(ks []uint32) counts {
	var c counts
	for _, k := range ks {
		c.calls++
		if k&bitFailure != 0 {
			c.failures++
		}
		if k&bitSlow != 0 {
			c.slow++
		}
	}
	return c
}

// FuzzCountWindow feeds random outcome streams to a count window of random
// size and checks, after every call, that its totals equal a recount of
// the last size calls.
func FuzzCountWindow(f *testing.F) {
	f.Add(uint8(1), []byte{0, 1, 2, 3})
	f.Add(uint8(3), []byte{1, 1, 1, 0, 0, 0, 0, 2, 3, 0, 1})
	f.Add(uint8(10), []byte("a long stream of mostly successes with a failure here and there............"))
	f.Add(uint8(4), []byte{0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, size uint8, stream []byte) {
		n := int(size%64) + 1
		w := newCountWindow(n)
		var all []uint32
		for i, x := range stream {
			k := kinds[x%4]
			all = append(all, k)
			w.record(k)
			want := recount(all[max(0, len(all)-n):])
			if got := w.counts(); got != want {
				t.Fatalf("size %d, after call %d: window %+v, recount %+v", n, i+1, got, want)
			}
		}
	})
}

// FuzzTimeWindow feeds random outcome streams at random times (steps from
// none to several windows) to a time window of random shape and checks,
// after every step, that its totals equal a recount of the calls made in
// the current bucket and the buckets-1 before it.
func FuzzTimeWindow(f *testing.F) {
	f.Add(uint8(10), uint8(5), []byte{0, 0, 1, 0, 2, 3, 3, 200, 1, 1})
	f.Add(uint8(1), uint8(1), []byte{1, 1, 1, 9, 0, 9, 1, 0})
	f.Add(uint8(3), uint8(100), []byte{0, 255, 1, 255, 2, 255, 3, 40, 0, 1, 0, 1})
	f.Fuzz(func(t *testing.T, buckets, widthMS uint8, stream []byte) {
		n := int(buckets%32) + 1
		width := int64(widthMS%200+1) * 1e6
		w := newTimeWindow(width, n)
		type call struct {
			at   int64
			kind uint32
		}
		var all []call
		var now int64
		for i := 0; i+1 < len(stream); i += 2 {
			op, step := stream[i], stream[i+1]
			now += int64(step) * width / 8 // up to ~32 buckets per step
			if op%5 != 4 {                 // one op in five only moves time
				k := kinds[op%4]
				all = append(all, call{now, k})
				w.record(now, k)
			}
			var live []uint32
			for _, c := range all {
				if c.at/width > now/width-int64(n) {
					live = append(live, c.kind)
				}
			}
			if got, want := w.counts(now), recount(live); got != want {
				t.Fatalf("%d buckets of %dms, step %d at %dms: window %+v, recount %+v", n, width/1e6, i/2+1, now/1e6, got, want)
			}
		}
	})
}

// TestCountWindowConcurrent checks that concurrent writers leave totals
// that equal the ring's contents.
func TestCountWindowConcurrent(t *testing.T) {
	for _, size := range []int{1, 7, 100} {
		w := newCountWindow(size)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(g), 1))
				for range 5000 {
					k := bitRecorded
					if r.IntN(10) == 0 { // mostly successes, so the clean shortcut is taken and left
						k = kinds[r.IntN(4)]
					}
					w.record(k)
				}
			})
		}
		wg.Wait()
		var slots []uint32
		for i := range w.slots {
			if k := w.slots[i].Load(); k != 0 {
				slots = append(slots, k)
			}
		}
		if got, want := w.counts(), recount(slots); got != want || got.calls != int64(size) {
			t.Fatalf("size %d: totals %+v, slots hold %+v", size, got, want)
		}
	}
}

// TestTimeWindowConcurrent checks that concurrent writers, racing with
// the window advancing, leave totals that equal the buckets' sums.
func TestTimeWindowConcurrent(t *testing.T) {
	w := newTimeWindow(1000, 5)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 2))
			for i := range 5000 {
				w.record(int64(i*3+r.IntN(50)), kinds[r.IntN(4)])
			}
		})
	}
	wg.Wait()
	var sum counts
	for i := range w.buckets {
		b := &w.buckets[i]
		sum.calls += b.calls.Load()
		sum.failures += b.failures.Load()
		sum.slow += b.slow.Load()
	}
	if got := w.totals(); got != sum || got.calls == 0 {
		t.Fatalf("totals %+v, buckets sum to %+v", got, sum)
	}
}

func TestFastmod(t *testing.T) {
	for _, size := range []int{1, 2, 3, 7, 100, 1000, maxWindowSize} {
		w := &countWindow{size: uint32(size), magic: ^uint64(0)/uint64(size) + 1} // as newCountWindow, without the slots
		for _, s := range []uint64{0, 1, 2, 99, 100, 101, 12345, 1<<32 - 1, 1 << 32, 1<<32 + 5} {
			if got, want := w.index(s), uint32(uint32(s)%uint32(size)); got != want {
				t.Fatalf("index(%d) mod %d = %d, want %d", s, size, got, want)
			}
		}
	}
}
