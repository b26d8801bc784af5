package balance

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
)

// unmeasuredPenalty is the cost of an endpoint that has no latency sample yet
// and already has a request in flight. Finagle's peak EWMA does the same:
// an idle, unmeasured endpoint costs 0 so it is tried at once, but piling
// more requests on it before the first answer is worse than any measured
// endpoint.
const unmeasuredPenalty = float64(1 << 62)

// params are the set-wide settings every endpoint of a [Set] shares. They
// are immutable after [NewSet].
type params struct {
	epoch       time.Time // monotonic base for the nanosecond stamps below
	tau         float64   // EWMA decay time constant, ns
	failLatency float64   // floor for a failed try's latency, ns
	failFactor  float64   // a failed try counts as ≥ failFactor × the estimate
	rampWindow  int64     // slow-start window, ns; 0 = off
	rampMin     float64   // slow-start starting weight fraction
}

// now returns nanoseconds since the set's epoch (monotonic; fake inside a
// synctest bubble).
func (p *params) now() int64 { return int64(time.Since(p.epoch)) }

// Endpoint is one upstream of a [Set], with the load state the balancer
// decides on. The proxy calls [Endpoint.Start] before a try and
// [Endpoint.Done] after it; health calls [Endpoint.SetHealth]. All methods
// are safe for concurrent use and lock-free: the state is a handful of
// atomics, and the pointer is stable for as long as the endpoint stays in
// the set, across membership updates.
type Endpoint struct {
	id   string
	addr string
	data any
	p    *params
	pool *atomic.Int64 // the set's total in-flight count; nil unless a policy needs it

	inflight atomic.Int64
	ewma     atomic.Uint64 // float64 bits of the peak-EWMA latency in ns; 0 = no sample yet
	stamp    atomic.Int64  // when ewma was last updated, ns since epoch
	weight   atomic.Uint32
	health   atomic.Uint32 // a bulwark.Health
	rampEnd  atomic.Int64  // when slow start ends, ns since epoch; 0 = not ramping
	requests atomic.Uint64
	failures atomic.Uint64

	// gone is set when the endpoint leaves its set; a picker kept across
	// the change (Config.RebuildDelay) skips it.
	gone atomic.Bool
	// pos (index in the set's membership) and mark (the last Update that
	// listed it) belong to Set.Update, under the set's lock.
	pos  int
	mark uint64
}

// ID returns the endpoint's identity within its set (the member's ID, or its
// address when the ID was empty).
func (e *Endpoint) ID() string { return e.id }

// Address returns where the endpoint serves, as given in its [Member].
func (e *Endpoint) Address() string { return e.addr }

// Data returns the [Member.Data] the endpoint was created with (the proxy's
// per-upstream state: parsed URL, transport, breaker).
func (e *Endpoint) Data() any { return e.data }

// Weight returns the configured weight (not reduced by slow start).
func (e *Endpoint) Weight() int { return int(e.weight.Load()) }

// InFlight returns the number of tries started and not yet done.
func (e *Endpoint) InFlight() int64 { return e.inflight.Load() }

// Health returns the state last set by [Endpoint.SetHealth];
// bulwark.HealthUnknown until then.
func (e *Endpoint) Health() bulwark.Health { return bulwark.Health(e.health.Load()) }

// available reports whether the endpoint may be picked outside panic
// routing: up or not yet observed.
func (e *Endpoint) available() bool { return bulwark.Health(e.health.Load()).Routable() }

// Start records the start of a try. Call [Endpoint.Done] exactly once for
// every Start.
func (e *Endpoint) Start() {
	e.inflight.Add(1)
	if e.pool != nil {
		e.pool.Add(1)
	}
}

// Done records the end of a try that took latency. failed marks a try that
// failed because of the endpoint (transport error, 502/503/504, digest
// mismatch; not a 4xx, and not an application's own 500 unless the proxy
// wants those to steer traffic too). A failed try counts as at least
// [Config.FailurePenalty] × the current estimate and at least
// [Config.FailureLatency], so that an endpoint failing fast does not look
// like the fastest one (linkerd2#11669): each failure in a row doubles its
// cost by default, while a single failure is forgotten within a few τ.
func (e *Endpoint) Done(latency time.Duration, failed bool) {
	e.inflight.Add(-1)
	if e.pool != nil {
		e.pool.Add(-1)
	}
	e.requests.Add(1)
	if failed {
		e.failures.Add(1)
	}
	e.observe(float64(latency), e.p.now(), failed)
}

// maxFailurePenalty caps the latency a failed try can be counted as, so
// that a long run of failures cannot push the estimate so high that
// decaying it back takes minutes.
const maxFailurePenalty = float64(10 * time.Second)

// observe folds one latency sample (ns) taken at now into the peak EWMA:
// a sample above the estimate replaces it at once (react to trouble now), a
// lower one is averaged in with weight 1-exp(-Δt/τ), where Δt is the time
// since the previous update (Finagle's PeakEwma, Linkerd's balancer).
func (e *Endpoint) observe(rtt float64, now int64, failed bool) {
	rtt = max(rtt, 1) // keep 0 free to mean "no sample yet"
	// Swap hands each concurrent updater a disjoint slice of time, so the
	// total decay applied matches the time that passed.
	prev := e.stamp.Swap(now)
	w := math.Exp(-float64(max(now-prev, 0)) / e.p.tau)
	for {
		old := e.ewma.Load()
		cur := math.Float64frombits(old)
		sample := rtt
		if failed {
			penalized := max(e.p.failLatency, e.p.failFactor*cur*w)
			sample = max(rtt, min(penalized, maxFailurePenalty))
		}
		next := sample
		if old != 0 && sample < cur {
			next = cur*w + sample*(1-w)
		}
		if e.ewma.CompareAndSwap(old, math.Float64bits(next)) {
			return
		}
	}
}

// latency returns the peak EWMA decayed to now, in ns (0 with no sample).
// Decaying on read, as Linkerd does, lets an endpoint that stopped getting
// traffic after a bad spell look cheap again and be retried.
func (e *Endpoint) latency(now int64) float64 {
	old := e.ewma.Load()
	if old == 0 {
		return 0
	}
	v := math.Float64frombits(old)
	if el := now - e.stamp.Load(); el > 0 {
		v *= math.Exp(-float64(el) / e.p.tau)
	}
	return v
}

// cheaperEWMA reports whether b costs strictly less than a under P2C:
// cost = peak EWMA decayed to now × (in-flight + 1) ÷ effective weight.
//
// Both estimates decay by the same factor exp(-now/τ), so it cancels:
// b is cheaper iff cost_b(stamp_b) < cost_a(stamp_a) × exp((stamp_a -
// stamp_b)/τ). The comparison needs no clock read and at most one exp,
// which halves the cost of a pick.
func cheaperEWMA(a, b *Endpoint) bool {
	ra, rb := a.ewma.Load(), b.ewma.Load()
	ia, ib := a.inflight.Load(), b.inflight.Load()
	if ra == 0 || rb == 0 {
		return unmeasuredCost(rb, ib) < unmeasuredCost(ra, ia)
	}
	ca := math.Float64frombits(ra) * float64(ia+1)
	cb := math.Float64frombits(rb) * float64(ib+1)
	wa, wb := float64(a.weight.Load()), float64(b.weight.Load())
	if a.ramping() || b.ramping() {
		now := a.p.now()
		wa *= a.rampFactor(now)
		wb *= b.rampFactor(now)
	}
	ca, cb = ca/wa, cb/wb
	if sa, sb := a.stamp.Load(), b.stamp.Load(); sa != sb {
		ca *= math.Exp(float64(sa-sb) / a.p.tau)
	}
	return cb < ca
}

// unmeasuredCost orders endpoints when at least one has no latency sample
// (raw == 0): an idle unmeasured endpoint costs 0, so it is tried at once; a
// busy one costs more than any measured endpoint, so requests do not pile
// onto it before its first answer (Finagle's penalty). A measured endpoint
// sorts between the two.
func unmeasuredCost(raw uint64, inflight int64) float64 {
	switch {
	case raw != 0:
		return 1
	case inflight <= 0:
		return 0
	}
	return unmeasuredPenalty + float64(inflight)
}

// SetHealth records the endpoint's health. An endpoint that returns to a
// routable state from an unroutable one forgets its latency estimate and
// starts slow start.
func (e *Endpoint) SetHealth(h bulwark.Health) {
	old := bulwark.Health(e.health.Swap(uint32(h)))
	if !old.Routable() && h.Routable() {
		// The estimate from before it left is stale: start afresh, so the
		// endpoint is tried again at once, with slow start bounding its share.
		e.ewma.Store(0)
		e.startRamp()
	}
}

// startRamp begins slow start now (no-op when slow start is off).
func (e *Endpoint) startRamp() {
	if e.p.rampWindow > 0 {
		e.rampEnd.Store(e.p.now() + e.p.rampWindow)
	}
}

// ramping reports whether the endpoint may be in slow start; callers read
// the clock only then.
func (e *Endpoint) ramping() bool { return e.rampEnd.Load() != 0 }

// rampFactor returns the slow-start fraction of the weight at now: rising
// linearly from [Config.SlowStartMin] to 1 over the window (Envoy's slow
// start with aggression 1, HAProxy's slowstart).
func (e *Endpoint) rampFactor(now int64) float64 {
	end := e.rampEnd.Load()
	if end == 0 {
		return 1
	}
	if now >= end {
		e.rampEnd.CompareAndSwap(end, 0)
		return 1
	}
	elapsed := now - (end - e.p.rampWindow)
	return max(float64(elapsed)/float64(e.p.rampWindow), e.p.rampMin)
}

// effWeight is the weight reduced by slow start.
func (e *Endpoint) effWeight(now int64) float64 {
	w := float64(e.weight.Load())
	if e.ramping() {
		w *= e.rampFactor(now)
	}
	return w
}

// Stats is a point-in-time view of an endpoint for dashboards and metrics.
type Stats struct {
	ID        string         `json:"id"`         // Endpoint.ID
	Address   string         `json:"address"`    // Endpoint.Address
	Weight    int            `json:"weight"`     // configured weight
	Health    bulwark.Health `json:"health"`     // as last set by health
	InFlight  int64          `json:"inflight"`   // tries started, not done
	Latency   time.Duration  `json:"latency"`    // peak EWMA decayed to now; 0 = no sample
	SlowStart float64        `json:"slow_start"` // weight fraction in effect, 1 = full
	Requests  uint64         `json:"requests"`   // tries done
	Failures  uint64         `json:"failures"`   // tries done with failed set
}

// Stats returns the endpoint's current state.
func (e *Endpoint) Stats() Stats {
	now := e.p.now()
	return Stats{
		ID:        e.id,
		Address:   e.addr,
		Weight:    e.Weight(),
		Health:    e.Health(),
		InFlight:  e.inflight.Load(),
		Latency:   time.Duration(e.latency(now)),
		SlowStart: e.rampFactor(now),
		Requests:  e.requests.Load(),
		Failures:  e.failures.Load(),
	}
}
