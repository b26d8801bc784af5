package proxy

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-go/bulwark/proxy/vote"
)

// metrics are the gateway's Prometheus metrics. Per-request series are
// resolved once per route and status code and cached, because a
// CounterVec lookup hashes its labels on every call.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	tries     *prometheus.CounterVec
	tryDur    *prometheus.HistogramVec
	retries   *prometheus.CounterVec
	hedges    *prometheus.CounterVec
	exhausted *prometheus.CounterVec
	ejections *prometheus.CounterVec
	votes     *prometheus.CounterVec
	byzantine *prometheus.CounterVec

	mu     sync.Mutex
	routes map[string]*routeMetrics
	pools  map[string]*poolMetrics
}

// poolMetrics are an upstream's series, resolved once when the pool is
// built so that a try costs no label hashing. A nil *poolMetrics records
// nothing.
type poolMetrics struct {
	name      string
	tries     [len(failNames)]prometheus.Counter
	duration  prometheus.Observer
	ejections prometheus.Counter
	byz       prometheus.Counter
}

type routeMetrics struct {
	m        *metrics
	name     string
	duration prometheus.Observer
	codes    [600]atomic.Pointer[prometheus.Counter]
	inflight atomic.Int64
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{reg: reg, routes: map[string]*routeMetrics{}, pools: map[string]*poolMetrics{}}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "bulwark", Subsystem: "gateway",
		Name: "requests_total", Help: "Requests answered, by route and status code."}, []string{"route", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "bulwark", Subsystem: "gateway",
		Name: "request_duration_seconds", Help: "Time to answer a request, retries included.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"route"})
	m.tries = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "bulwark", Subsystem: "gateway",
		Name: "tries_total", Help: "Tries sent to endpoints, by upstream and outcome."}, []string{"upstream", "outcome"})
	m.tryDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "bulwark", Subsystem: "gateway",
		Name: "try_duration_seconds", Help: "Time of one try to an endpoint.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"upstream"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "bulwark", Subsystem: "gateway",
		Name: "retries_total", Help: "Retries on another endpoint, by route and the failure retried."}, []string{"route", "reason"})
	m.hedges = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "bulwark", Subsystem: "gateway",
		Name: "hedges_total", Help: "Hedged tries sent, by route."}, []string{"route"})
	m.exhausted = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "bulwark", Subsystem: "gateway",
		Name: "retry_budget_exhausted_total", Help: "Retries not sent because the route's retry budget was spent."}, []string{"route"})
	m.ejections = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "bulwark", Subsystem: "gateway",
		Name: "ejections_total", Help: "Endpoints ejected by outlier detection, by upstream and reason."}, []string{"upstream", "reason"})
	m.votes = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "bulwark", Subsystem: "gateway",
		Name: "votes_total", Help: "Voted requests, by route and result: unanimous, majority (some replica outvoted), no_majority, and for quorum all (strict) disagreement (answers differed) or incomplete (not every replica answered)."}, []string{"route", "result"})
	m.byzantine = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "bulwark", Subsystem: "gateway",
		Name: "byzantine_total", Help: "Answers outvoted by the other replicas (Byzantine outcomes), by upstream."}, []string{"upstream"})
	reg.MustRegister(m.requests, m.duration, m.tries, m.tryDur, m.retries, m.hedges, m.exhausted, m.ejections, m.votes, m.byzantine)
	return m
}

func (m *metrics) route(name string) *routeMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	rm := m.routes[name]
	if rm == nil {
		rm = &routeMetrics{m: m, name: name, duration: m.duration.WithLabelValues(name)}
		m.routes[name] = rm
		// Export the route's retry series at zero from the start, so that
		// rate() and the alert rules in deploy/ see them before the first
		// retry (Prometheus' advice for known label values).
		m.hedges.WithLabelValues(name)
		m.exhausted.WithLabelValues(name)
		for k := failConnect; k < failOther; k++ {
			m.retries.WithLabelValues(name, k.String())
		}
	}
	return rm
}

// pool returns the upstream's series, creating them once.
func (m *metrics) pool(name string) *poolMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	pm := m.pools[name]
	if pm == nil {
		pm = &poolMetrics{name: name, duration: m.tryDur.WithLabelValues(name),
			ejections: m.ejections.WithLabelValues(name, "outlier"), byz: m.byzantine.WithLabelValues(name)}
		for k := range failNames {
			pm.tries[k] = m.tries.WithLabelValues(name, failKind(k).String())
		}
		m.pools[name] = pm
	}
	return pm
}

// begin starts the accounting of one request on the route.
func (rm *routeMetrics) begin() *routeMetrics {
	rm.inflight.Add(1)
	return rm
}

func (rm *routeMetrics) end(code int, start time.Time) {
	rm.inflight.Add(-1)
	rm.duration.Observe(time.Since(start).Seconds())
	if code < 100 || code >= len(rm.codes) {
		code = 599
	}
	c := rm.codes[code].Load()
	if c == nil {
		cnt := rm.m.requests.WithLabelValues(rm.name, strconv.Itoa(code))
		rm.codes[code].Store(&cnt)
		c = &cnt
	}
	(*c).Inc()
}

func (pm *poolMetrics) try(k failKind, d time.Duration) {
	if pm == nil {
		return
	}
	pm.tries[k].Inc()
	pm.duration.Observe(d.Seconds())
}

func (pm *poolMetrics) ejected() {
	if pm != nil {
		pm.ejections.Inc()
	}
}

func (pm *poolMetrics) byzantine() {
	if pm != nil {
		pm.byz.Inc()
	}
}

// vote counts a voted request by its result.
func (m *metrics) vote(route string, out vote.Outcome, tl *vote.Tally) {
	result := "no_majority"
	switch {
	case errors.Is(out.Err, vote.ErrDisagree):
		result = "disagreement"
	case errors.Is(out.Err, vote.ErrIncomplete):
		result = "incomplete"
	}
	if out.Winner >= 0 {
		result = "unanimous"
		tl.Dissenters(func(vote.Ballot) { result = "majority" })
	}
	m.votes.WithLabelValues(route, result).Inc()
}

func (m *metrics) retry(route string, k failKind) { m.retries.WithLabelValues(route, k.String()).Inc() }
func (m *metrics) hedge(route string)             { m.hedges.WithLabelValues(route).Inc() }
func (m *metrics) budgetExhausted(route string)   { m.exhausted.WithLabelValues(route).Inc() }
