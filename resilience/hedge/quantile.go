package hedge

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// LatencyQuantile keeps the last N latencies and a quantile of them (the
// delay an adaptive hedge waits for; the gateway's p95 hedging uses it too). Recording takes a mutex (the hedge path
// already starts goroutines, so a short critical section is noise); reading
// the delay is one atomic load. The quantile is recomputed every N/8
// samples with a linear-time selection, not on every call.
type LatencyQuantile struct {
	q          float64
	minSamples int
	every      int

	mu      sync.Mutex
	ring    []time.Duration
	scratch []time.Duration
	next    int // ring index of the next sample
	seen    int // samples recorded, capped at len(ring)
	since   int // samples since the last recomputation

	delay atomic.Int64 // the current quantile plus one; 0 until minSamples were seen
}

// NewLatencyQuantile keeps window samples and reports their q-quantile (in
// (0, 1)) once minSamples were recorded. Safe for concurrent use.
func NewLatencyQuantile(window, minSamples int, q float64) *LatencyQuantile {
	return &LatencyQuantile{
		q:          q,
		minSamples: minSamples,
		every:      max(window/8, 1),
		ring:       make([]time.Duration, window),
		scratch:    make([]time.Duration, window),
	}
}

// Value returns the quantile, or false when there are too few samples yet.
func (l *LatencyQuantile) Value() (time.Duration, bool) {
	d := l.delay.Load()
	return time.Duration(d - 1), d > 0
}

// Record adds one latency.
func (l *LatencyQuantile) Record(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ring[l.next] = d
	l.next = (l.next + 1) % len(l.ring)
	l.seen = min(l.seen+1, len(l.ring))
	l.since++
	if l.seen < l.minSamples {
		return
	}
	if l.seen == l.minSamples || l.since >= l.every {
		l.since = 0
		s := l.scratch[:l.seen]
		copy(s, l.ring[:l.seen])
		// Nearest rank: the smallest sample with at least q of them at or below it.
		k := min(max(int(math.Ceil(l.q*float64(len(s))))-1, 0), len(s)-1)
		l.delay.Store(int64(selectKth(s, k)) + 1)
	}
}

// selectKth returns the k-th smallest element of s (0-based), reordering s.
// It is Hoare's quickselect with a median-of-three pivot: linear time on
// average, and latencies are not adversarial input.
func selectKth(s []time.Duration, k int) time.Duration {
	lo, hi := 0, len(s)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		// Order s[lo], s[mid], s[hi] so that s[mid] is their median.
		if s[mid] < s[lo] {
			s[mid], s[lo] = s[lo], s[mid]
		}
		if s[hi] < s[lo] {
			s[hi], s[lo] = s[lo], s[hi]
		}
		if s[hi] < s[mid] {
			s[hi], s[mid] = s[mid], s[hi]
		}
		pivot := s[mid]
		i, j := lo, hi
		for i <= j {
			for s[i] < pivot {
				i++
			}
			for s[j] > pivot {
				j--
			}
			if i <= j {
				s[i], s[j] = s[j], s[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return s[k]
		}
	}
	return s[k]
}
