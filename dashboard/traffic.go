package dashboard

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// The latency histogram is log-linear over microseconds, like HDR
// histograms: values below 8 µs have a bucket each, and every power of two
// above is split into 8 equal buckets, so a quantile read from it is within
// 1/16 (6.25 %) of the truth when reported at the bucket's midpoint. Values
// of 2^32 µs (71 minutes) and above share the last bucket.
const (
	subBits    = 3
	subBuckets = 1 << subBits
	maxExp     = 32
	numBuckets = (maxExp - subBits + 1) * subBuckets
)

// bucketOf returns the histogram bucket for a latency in microseconds.
func bucketOf(us uint64) int {
	if us < subBuckets {
		return int(us)
	}
	e := bits.Len64(us) - 1 // us in [2^e, 2^(e+1))
	if e >= maxExp {
		return numBuckets - 1
	}
	sub := int(us>>(e-subBits)) & (subBuckets - 1)
	return (e-subBits+1)*subBuckets + sub
}

// bucketRange returns a bucket's lower bound and width in microseconds.
func bucketRange(i int) (lo, width float64) {
	if i < subBuckets {
		return float64(i), 1
	}
	e := i/subBuckets + subBits - 1
	sub := i % subBuckets
	w := math.Ldexp(1, e-subBits)
	return float64(subBuckets+sub) * w, w
}

// Traffic counts the requests a gateway serves, for the dashboard's
// charts. Record is cheap enough for the request path: no lock, no
// allocation, no clock read; one atomic add per request and one more per
// failure. The zero value is ready to use; a nil *Traffic ignores Record.
type Traffic struct {
	failures atomic.Uint64
	// buckets count every request by latency; their sum is the request
	// count, so success costs a single atomic add.
	buckets [numBuckets]atomic.Uint64
}

// NewTraffic returns an empty Traffic.
func NewTraffic() *Traffic { return new(Traffic) }

// Record counts one request that took latency and succeeded when ok.
// Negative latencies count as zero. Safe for concurrent use.
func (t *Traffic) Record(latency time.Duration, ok bool) {
	if t == nil {
		return
	}
	var us uint64
	if latency > 0 {
		us = uint64(latency / time.Microsecond)
	}
	t.buckets[bucketOf(us)].Add(1)
	if !ok {
		t.failures.Add(1)
	}
}

// Totals returns the number of requests and failures recorded so far.
func (t *Traffic) Totals() (requests, failures uint64) {
	var c counts
	t.load(&c)
	return c.requests, c.failures
}

// counts is a copy of Traffic's counters at one moment. The copy is not
// atomic as a whole; a request recorded during it may show in the next
// point instead, which a per-second chart does not notice.
type counts struct {
	requests, failures uint64
	buckets            [numBuckets]uint64
}

func (t *Traffic) load(c *counts) {
	c.requests = 0
	for i := range t.buckets {
		n := t.buckets[i].Load()
		c.buckets[i] = n
		c.requests += n
	}
	c.failures = t.failures.Load()
}

// Point is one sampling interval of traffic, as the charts draw it.
type Point struct {
	// Seq numbers points from 1, so a client can ask for those after the
	// last one it has.
	Seq uint64 `json:"seq"`
	// T is the end of the interval, in Unix milliseconds.
	T int64 `json:"t"`
	// Requests and Failures were recorded during the interval.
	Requests uint64 `json:"requests"`
	Failures uint64 `json:"failures"`
	// RPS is Requests per second of the interval.
	RPS float64 `json:"rps"`
	// Success is the ratio of successful requests, 0..1; 0 when there were
	// no requests (the page draws no ratio or latency for such points).
	Success float64 `json:"success"`
	// P50ms and P99ms are latency quantiles in milliseconds, 0 when there
	// were no requests.
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
}

// series turns the Traffic's cumulative counters into per-interval points
// and keeps the last few. Only the sampler calls sample; readers call
// since from HTTP handlers.
type series struct {
	traffic *Traffic

	mu       sync.Mutex
	prev     counts
	prevTime time.Time
	cur      counts // scratch, kept to avoid a 2 KiB allocation per sample
	points   []Point
	first    int // index of the oldest point in the ring
	n        int // points held
	seq      uint64
}

func newSeries(t *Traffic, capacity int, start time.Time) *series {
	s := &series{traffic: t, points: make([]Point, capacity), prevTime: start}
	t.load(&s.prev)
	return s
}

// sample closes the interval ending at now and returns its point.
func (s *series) sample(now time.Time) Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.traffic.load(&s.cur)
	p := pointOf(&s.prev, &s.cur, now.Sub(s.prevTime))
	s.prev, s.prevTime = s.cur, now
	s.seq++
	p.Seq, p.T = s.seq, now.UnixMilli()
	if s.n < len(s.points) {
		s.points[(s.first+s.n)%len(s.points)] = p
		s.n++
	} else {
		s.points[s.first] = p
		s.first = (s.first + 1) % len(s.points)
	}
	return p
}

// since returns the points after seq, oldest first.
func (s *series) since(seq uint64) []Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Point{}
	for i := range s.n {
		p := s.points[(s.first+i)%len(s.points)]
		if p.Seq > seq {
			out = append(out, p)
		}
	}
	return out
}

// pointOf computes one interval's point from the counters at its start
// and end.
func pointOf(prev, cur *counts, dt time.Duration) Point {
	var p Point
	p.Requests = cur.requests - prev.requests
	p.Failures = min(cur.failures-prev.failures, p.Requests)
	if p.Requests == 0 {
		return p
	}
	if dt > 0 {
		p.RPS = float64(p.Requests) / dt.Seconds()
	}
	p.Success = float64(p.Requests-p.Failures) / float64(p.Requests)
	p.P50ms = quantile(prev, cur, p.Requests, 0.50) / 1e3
	p.P99ms = quantile(prev, cur, p.Requests, 0.99) / 1e3
	return p
}

// quantile returns the q-quantile in microseconds of the n requests
// counted between prev and cur: the midpoint of the bucket holding the
// request of rank ceil(q·n).
func quantile(prev, cur *counts, n uint64, q float64) float64 {
	rank := uint64(math.Ceil(q * float64(n)))
	rank = max(rank, 1)
	var seen uint64
	for i := range numBuckets {
		seen += cur.buckets[i] - prev.buckets[i]
		if seen >= rank {
			lo, w := bucketRange(i)
			if i < subBuckets {
				return lo // exact below 8 µs
			}
			return lo + w/2
		}
	}
	lo, w := bucketRange(numBuckets - 1)
	return lo + w/2
}
