package balance

import "sync/atomic"

// Bounds on the precomputed round-robin schedule: at most maxSchedule slots,
// and at most maxScheduleWork steps to build it (the smooth algorithm costs
// slots × endpoints). Weights are scaled down to fit; the shares then round
// to the nearest slot.
const (
	maxSchedule     = 1 << 16
	maxScheduleWork = 1 << 24
)

// RoundRobin is smooth weighted round robin, the algorithm of nginx's
// upstream module (ngx_http_upstream_get_peer): over a cycle of Σweights
// picks, every endpoint gets its weight's share, and heavy endpoints are
// interleaved with light ones instead of served in a burst (weights 5,1,1
// give a a b a c a a, not a a a a a b c).
//
// nginx runs the algorithm under a lock on every pick. Here the cycle is
// computed once per membership change and a pick is one atomic increment
// and an index, so picks never contend on a lock. Unavailable and tried
// endpoints are skipped (their slots go to the next endpoint in the cycle);
// an endpoint in slow start keeps each of its slots with probability equal
// to its slow-start fraction.
type RoundRobin struct{}

// Build implements [Policy].
func (RoundRobin) Build(eps []*Endpoint, rnd *Rand) Picker {
	p := &rrPicker{eps: eps, rnd: rnd, sched: smoothSchedule(eps)}
	// Start at a random slot, so that gateways restarted together do not
	// all send their first requests to the same endpoint.
	p.next.Store(uint64(rnd.IntN(len(p.sched))))
	return p
}

// rrPicker walks a precomputed smooth weighted round-robin cycle.
type rrPicker struct {
	eps   []*Endpoint
	rnd   *Rand
	sched []uint32 // endpoint indices, one cycle
	next  atomic.Uint64
}

// Pick implements [Picker].
func (p *rrPicker) Pick(req PickRequest) (*Endpoint, error) {
	l := uint64(len(p.sched))
	start := p.next.Add(1)
	for k := range min(l, 64) {
		e := p.eps[p.sched[(start+k)%l]]
		if !req.allowed(e) {
			continue
		}
		if e.ramping() && p.rnd.Float64() >= e.rampFactor(e.p.now()) {
			continue
		}
		return e, nil
	}
	// Slow path: most of the cycle is unavailable or tried.
	if e := scanFrom(p.eps, p.rnd.IntN(len(p.eps)), &req); e != nil {
		return e, nil
	}
	return nil, noEndpoint(p.eps, &req)
}

// smoothSchedule returns one cycle of nginx's smooth weighted round robin
// over eps' weights, reduced by their gcd and scaled to the bounds above.
// Equal weights give plain round robin in membership order.
func smoothSchedule(eps []*Endpoint) []uint32 {
	n := len(eps)
	w := make([]int64, n)
	var g, total int64
	for i, e := range eps {
		w[i] = int64(e.weight.Load())
		g = gcd(g, w[i])
	}
	for i := range w {
		w[i] /= g
		total += w[i]
	}
	if total == int64(n) {
		sched := make([]uint32, n)
		for i := range sched {
			sched[i] = uint32(i)
		}
		return sched
	}
	limit := min(int64(maxSchedule), max(int64(maxScheduleWork/n), int64(n)))
	if total > limit {
		total = scaleWeights(w, limit)
	}
	sched := make([]uint32, total)
	cur := make([]int64, n)
	for s := range sched {
		best := 0
		for i := range w {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		sched[s] = uint32(best)
	}
	return sched
}

// scaleWeights scales w in place so that its sum is about limit (every
// weight stays ≥ 1) and returns the new sum.
func scaleWeights(w []int64, limit int64) int64 {
	var sum int64
	for _, x := range w {
		sum += x
	}
	var total int64
	for i, x := range w {
		w[i] = max(1, (x*limit+sum/2)/sum)
		total += w[i]
	}
	return total
}

// gcd returns the greatest common divisor of a and b (gcd(0, b) = b).
func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
