package balance

import "math/bits"

// P2C is the default policy: power of two choices over peak-EWMA latency.
// Each pick draws two distinct endpoints at random and takes the one with
// the lower cost = decayed peak-EWMA latency × (in-flight + 1) ÷ weight.
// This is Finagle's and Linkerd's balancer: it reacts to a slow endpoint
// within one request (the EWMA jumps to a new peak), needs no global view,
// and two random choices avoid the herd behaviour of always picking the
// single best endpoint (Mitzenmacher, "The Power of Two Choices in
// Randomized Load Balancing", 2001).
type P2C struct{}

// Build implements [Policy].
func (P2C) Build(eps []*Endpoint, rnd *Rand) Picker {
	return &p2cPicker{eps: eps, rnd: rnd, ewma: true}
}

// LeastRequest is power of two choices over in-flight requests ÷ weight:
// Envoy's weighted least request with choice_count 2, HAProxy's
// random(2), nginx's "random two least_conn". It ignores latency.
type LeastRequest struct{}

// Build implements [Policy].
func (LeastRequest) Build(eps []*Endpoint, rnd *Rand) Picker {
	return &p2cPicker{eps: eps, rnd: rnd}
}

// p2cPicker serves both P2C (ewma) and LeastRequest.
type p2cPicker struct {
	eps  []*Endpoint
	rnd  *Rand
	ewma bool
}

// Pick implements [Picker].
func (p *p2cPicker) Pick(req PickRequest) (*Endpoint, error) {
	a, b := p.choose(&req)
	switch {
	case a == nil:
		return nil, noEndpoint(p.eps, &req)
	case b == nil:
		return a, nil
	}
	if p.ewma {
		if cheaperEWMA(a, b) {
			return b, nil
		}
		return a, nil
	}
	if loadCost(b) < loadCost(a) {
		return b, nil
	}
	return a, nil
}

// loadCost is the least-request cost: (in-flight + 1) ÷ effective weight.
// It reads the clock only for an endpoint in slow start.
func loadCost(e *Endpoint) float64 {
	w := float64(e.weight.Load())
	if e.ramping() {
		w *= e.rampFactor(e.p.now())
	}
	return float64(e.inflight.Load()+1) / w
}

// pair draws two distinct indices in [0, n), n ≥ 2, from one random
// value (Lemire's multiply-shift on each 32-bit half).
func (p *p2cPicker) pair() (int, int) {
	n := uint64(len(p.eps))
	r := p.rnd.Uint64()
	i, _ := bits.Mul64(r&0xffffffff00000000, n)
	j, _ := bits.Mul64(r<<32, n-1)
	if j >= i {
		j++
	}
	return int(i), int(j)
}

// choose returns two distinct allowed endpoints, or one when only one is
// allowed, or none. The fast path is one random draw; a few more draws
// follow when it meets unavailable or tried endpoints, and a scan from a
// random offset ends the search so that a pick always succeeds when any
// endpoint is allowed.
func (p *p2cPicker) choose(req *PickRequest) (a, b *Endpoint) {
	eps := p.eps
	n := len(eps)
	if n == 1 {
		if req.allowed(eps[0]) {
			return eps[0], nil
		}
		return nil, nil
	}
	for range 3 {
		i, j := p.pair()
		for _, e := range [2]*Endpoint{eps[i], eps[j]} {
			if e == a || !req.allowed(e) {
				continue
			}
			if a == nil {
				a = e
				continue
			}
			return a, e
		}
	}
	start := p.rnd.IntN(n)
	for k := range n {
		e := eps[(start+k)%n]
		if e == a || !req.allowed(e) {
			continue
		}
		if a == nil {
			a = e
			continue
		}
		return a, e
	}
	return a, nil
}
