package breaker

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// The bits of a recorded outcome. A count-window slot holds one of these
// combinations; zero means the slot has not been written yet.
const (
	bitRecorded uint32 = 1 << iota // the slot holds a call
	bitFailure                     // the call failed
	bitSlow                        // the call was slow
)

// counts is what a window holds: calls recorded, and how many of them
// failed or were slow (a call can be both).
type counts struct {
	calls, failures, slow int64
}

// cacheLine pads hot fields apart so that the contended sequence counter
// does not share a line with read-mostly fields (false sharing doubles the
// cost of the parallel success path).
type cacheLine [64]byte

// countWindow is a ring of the last size outcomes plus running totals.
//
// Concurrency: a writer claims a position with one atomic add on seq and
// swaps its outcome into that slot; the outcome it displaces is subtracted
// from the totals by exactly that writer, so the totals equal the slots'
// contents whenever no write is in progress. While writes are in flight a
// reader may see the totals off by the writes in progress (a rate off by a
// call or two), which a breaker tolerates.
//
// The success path, once the ring is full of successes, is one contended
// add and one shared load: a success written over a success changes
// nothing, so the writer skips the store and the slots stay read-shared in
// every core's cache. Skipping is safe: it is the same as a store at the
// moment of the load.
type countWindow struct {
	size  uint32
	magic uint64 // for fastmod by size
	slots []atomic.Uint32

	_   cacheLine
	seq atomic.Uint64 // positions claimed so far

	_                     cacheLine
	calls, failures, slow atomic.Int64
	_                     cacheLine
}

func newCountWindow(size int) *countWindow {
	return &countWindow{
		size:  uint32(size),
		magic: ^uint64(0)/uint64(size) + 1,
		slots: make([]atomic.Uint32, size),
	}
}

// index returns seq mod size without a divide instruction (a 64-bit DIV
// costs 10 ns or more here, half the success-path budget), by Lemire's
// "fastmod" (Lemire, Kaser, Kurz, "Faster Remainder by Direct Computation",
// 2019). It reduces the low 32 bits of seq, so the ring's order skips once
// every 2^32 calls; a breaker does not notice one misplaced slot.
func (w *countWindow) index(seq uint64) uint32 {
	low := w.magic * uint64(uint32(seq))
	hi, _ := bits.Mul64(low, uint64(w.size))
	return uint32(hi)
}

// record writes one outcome and reports the totals afterwards, and whether
// the caller must evaluate them: only when the call failed or was slow, or
// when the number of calls grew (it may have reached the minimum), can the
// rates have risen.
func (w *countWindow) record(kind uint32) (counts, bool) {
	bad := kind&(bitFailure|bitSlow) != 0
	if !bad && w.clean() {
		return counts{}, false
	}
	slot := &w.slots[w.index(w.seq.Add(1)-1)]
	if !bad && slot.Load() == kind {
		return counts{}, false
	}
	old := slot.Swap(kind)
	grew := old == 0
	if grew {
		w.calls.Add(1)
	}
	if d := int64(kind&bitFailure>>1) - int64(old&bitFailure>>1); d != 0 {
		w.failures.Add(d)
	}
	if d := int64(kind&bitSlow>>2) - int64(old&bitSlow>>2); d != 0 {
		w.slow.Add(d)
	}
	if !bad && !grew {
		return counts{}, false
	}
	return w.counts(), true
}

// clean reports whether the ring is full of successes. Then a success can
// be recorded without claiming a position: every slot holds the same
// outcome, so where the ring stands no longer matters, and the last size
// calls are successes either way. This keeps a healthy callee's calls from
// contending on seq at all; a single failure or slow call in the window
// brings the contended path back until it is evicted.
func (w *countWindow) clean() bool {
	return w.failures.Load() == 0 && w.slow.Load() == 0 && w.calls.Load() == int64(w.size)
}

// counts returns the totals.
func (w *countWindow) counts() counts {
	return loadCounts(&w.calls, &w.failures, &w.slow)
}

// loadCounts reads running totals that writers update one at a time, so
// the three loads are not one snapshot: it reads failures and slow calls
// before calls (writers add a call before its failure, and evictors remove
// failures before calls), reads a transiently negative total (a
// subtraction that landed before its addition) as zero, and caps failures
// and slow calls at calls, so a rate never exceeds 100%.
func loadCounts(calls, failures, slow *atomic.Int64) counts {
	f, s := failures.Load(), slow.Load()
	c := max(calls.Load(), 0)
	return counts{calls: c, failures: min(max(f, 0), c), slow: min(max(s, 0), c)}
}

// bucket holds the outcomes of one slice of a time window.
type bucket struct {
	calls, failures, slow atomic.Int64
}

// timeWindow is n buckets of width nanoseconds each, plus running totals;
// it covers the current bucket and the n-1 before it. When time moves into
// a new bucket, the buckets that fall out of the window are subtracted from
// the totals and cleared ("subtract-on-evict", as Resilience4j's
// SlidingTimeWindowMetrics), so reading the totals costs O(1).
//
// Concurrency: recording is lock-free (atomic adds to a bucket and to the
// totals, bucket first); advancing the window takes mu, once per bucket
// width. The evictor clears a bucket by swapping its counters to zero and
// subtracts what it took, so the totals equal the sum of the buckets
// whenever nothing is in flight. A writer stalled for a whole window may add
// its call to a bucket already reused for a newer slice; the call then
// counts as recent, which is harmless.
type timeWindow struct {
	width   int64 // bucket width, ns
	n       int64
	buckets []bucket

	_    cacheLine
	head atomic.Int64 // the newest slice (now/width) the buckets were advanced to

	_                     cacheLine
	calls, failures, slow atomic.Int64
	_                     cacheLine

	mu sync.Mutex // serializes advancing
}

func newTimeWindow(width int64, n int) *timeWindow {
	return &timeWindow{width: width, n: int64(n), buckets: make([]bucket, n)}
}

// advance moves the window to the slice that holds now (ns since the
// breaker's start) and returns the slice a call made at now belongs to.
func (w *timeWindow) advance(now int64) int64 {
	e := now / w.width
	h := w.head.Load()
	if e <= h {
		if e <= h-w.n { // older than the window (a late clock read): count it as recent
			return h
		}
		return e
	}
	w.mu.Lock()
	if h = w.head.Load(); e > h {
		from := h + 1
		if e-h > w.n { // every bucket is stale
			from = e - w.n + 1
		}
		for s := from; s <= e; s++ {
			w.evict(&w.buckets[s%w.n])
		}
		w.head.Store(e)
	}
	w.mu.Unlock()
	return e
}

func (w *timeWindow) evict(b *bucket) {
	if f := b.failures.Swap(0); f != 0 {
		w.failures.Add(-f)
	}
	if s := b.slow.Swap(0); s != 0 {
		w.slow.Add(-s)
	}
	if c := b.calls.Swap(0); c != 0 {
		w.calls.Add(-c)
	}
}

// record adds one outcome at now and returns the totals afterwards.
func (w *timeWindow) record(now int64, kind uint32) counts {
	b := &w.buckets[w.advance(now)%w.n]
	b.calls.Add(1)
	w.calls.Add(1)
	if kind&bitFailure != 0 {
		b.failures.Add(1)
		w.failures.Add(1)
	}
	if kind&bitSlow != 0 {
		b.slow.Add(1)
		w.slow.Add(1)
	}
	return w.totals()
}

// counts returns the totals as of now.
func (w *timeWindow) counts(now int64) counts {
	w.advance(now)
	return w.totals()
}

func (w *timeWindow) totals() counts {
	return loadCounts(&w.calls, &w.failures, &w.slow)
}
