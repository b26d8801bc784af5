package proxy

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// The adaptive per-try timeout and the default hedge delay come from the
// latency a pool's endpoints actually show (see docs/config.md, "Adaptive
// timeouts and hedging"):
//
//	per-try timeout = clamp(AdaptiveTimeoutFactor × p99, AdaptiveTimeoutFloor, ceiling)
//	hedge delay     = min(p99, per-try timeout)
//
// where p99 is over the pool's last latencyWindow successful
// tries and the ceiling is the route's per_try (default 5 s). Until the
// pool has latencyMinSamples successes, tries get the ceiling and are not
// hedged.
const (
	AdaptiveTimeoutFactor = 3
	AdaptiveTimeoutFloor  = 100 * time.Millisecond
	// DefaultHedgeBudget is the share of requests that may be hedged.
	DefaultHedgeBudget = 0.05
	// defaultHedgeReserve is the hedges per second always allowed, so that
	// a quiet route is hedged too.
	defaultHedgeReserve = 5

	latencyWindow     = 512
	latencyMinSamples = 20
	latencyEvery      = 32 // recompute the quantiles every this many samples
)

// poolLatency keeps a pool's recent successful try latencies and their
// 99th percentile. It lives on the pool, so it survives reloads
// that keep the pool, and every route to the pool shares it. Recording
// takes a mutex held for a few nanoseconds (and, every latencyEvery
// samples, for two linear-time selections over the window); reading a
// quantile is one atomic load.
type poolLatency struct {
	mu      sync.Mutex
	ring    [latencyWindow]time.Duration
	scratch [latencyWindow]time.Duration
	next    int
	seen    int
	since   int

	p99 atomic.Int64 // nanoseconds + 1; 0 until latencyMinSamples
}

// record adds one successful try's latency.
func (l *poolLatency) record(d time.Duration) {
	l.mu.Lock()
	l.ring[l.next] = d
	l.next = (l.next + 1) % latencyWindow
	l.seen = min(l.seen+1, latencyWindow)
	l.since++
	if l.seen < latencyMinSamples || (l.seen > latencyMinSamples && l.since < latencyEvery) {
		l.mu.Unlock()
		return
	}
	l.since = 0
	s := l.scratch[:l.seen]
	copy(s, l.ring[:l.seen])
	p99 := selectKth(s, rank(0.99, len(s)))
	l.mu.Unlock()
	l.p99.Store(int64(p99) + 1)
}

// rank is the nearest-rank index of quantile q in n samples.
func rank(q float64, n int) int {
	return min(max(int(math.Ceil(q*float64(n)))-1, 0), n-1)
}

// p99 returns the 99th percentile, ok false while there are too few
// samples.
func (l *poolLatency) quantile() (p99 time.Duration, ok bool) {
	v := l.p99.Load()
	return time.Duration(v - 1), v > 0
}

// perTry returns the adaptive per-try timeout under ceiling, and whether
// it is adaptive (false: not enough samples, the ceiling applies).
func (l *poolLatency) perTry(ceiling time.Duration) (time.Duration, bool) {
	p99, ok := l.quantile()
	if !ok {
		return ceiling, false
	}
	d := max(AdaptiveTimeoutFactor*p99, AdaptiveTimeoutFloor)
	if d >= ceiling {
		return ceiling, false
	}
	return d, true
}

// selectKth returns the k-th smallest element of s (0-based), reordering s
// (Hoare's quickselect, median-of-three pivot).
func selectKth(s []time.Duration, k int) time.Duration {
	lo, hi := 0, len(s)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
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
