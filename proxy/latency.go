package proxy

import (
	"time"

	"github.com/bulwark-go/bulwark/resilience/hedge"
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
)

// poolLatency keeps a pool's recent successful try latencies and their
// 99th percentile (resilience/hedge's LatencyQuantile: recording takes a
// short mutex, reading one atomic load). It lives on the pool, so it
// survives reloads that keep the pool, and every route to the pool shares
// it.
type poolLatency struct {
	q *hedge.LatencyQuantile
}

func newPoolLatency() *poolLatency {
	return &poolLatency{q: hedge.NewLatencyQuantile(latencyWindow, latencyMinSamples, 0.99)}
}

// record adds one successful try's latency.
func (l *poolLatency) record(d time.Duration) { l.q.Record(d) }

// quantile returns the 99th percentile, ok false while there are too few
// samples.
func (l *poolLatency) quantile() (p99 time.Duration, ok bool) { return l.q.Value() }

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
