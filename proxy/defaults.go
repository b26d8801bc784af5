package proxy

import (
	"fmt"
	"net/http"
	"time"

	"github.com/bulwark-go/bulwark/resilience/limit"
)

// The gateway's defaults: what a user who lists only endpoints gets.
const (
	DefaultConnectTimeout = time.Second
	DefaultPerTryTimeout  = 5 * time.Second
	DefaultTotalTimeout   = 15 * time.Second
	// DefaultAttempts caps the tries of one request. It is high on
	// purpose: the retry budget is the real limit, so that with errors
	// spread over every replica a request keeps trying while the budget
	// allows, instead of failing after a fixed small count.
	DefaultAttempts        = 10
	DefaultMaxReplayBody   = 64 << 10
	DefaultMaxVerifyBody   = 4 << 20
	DefaultSlowStart       = 10 * time.Second
	DefaultFallbackStatus  = http.StatusServiceUnavailable
	DefaultFallbackBody    = "no healthy upstream\n"
	defaultFallbackCType   = "text/plain; charset=utf-8"
	DefaultBreakerRate     = 50
	DefaultBreakerWindow   = 20
	DefaultBreakerMinCalls = 10
	DefaultBreakerOpen     = 5 * time.Second
)

// DefaultRetryOn is the retry condition list when a route sets none. 5xx
// is retried for idempotent requests because another replica answering
// well is exactly what redundancy is for.
var DefaultRetryOn = []string{"connect-error", "reset", "timeout", "digest", "5xx"}

func routeDefaults(r Route, i int) Route {
	if r.Name == "" {
		r.Name = fmt.Sprintf("route-%d", i)
	}
	if r.Match.PathPrefix == "" {
		r.Match.PathPrefix = "/"
	}
	t := &r.Timeouts
	t.PerTry = orDur(t.PerTry, DefaultPerTryTimeout)
	t.Total = orDur(t.Total, DefaultTotalTimeout)
	rr := &r.Retries
	if rr.Attempts == 0 {
		rr.Attempts = DefaultAttempts
	}
	if len(rr.On) == 0 {
		rr.On = DefaultRetryOn
	}
	if rr.MaxBody == 0 {
		rr.MaxBody = DefaultMaxReplayBody
	}
	if r.Fallback.Status == 0 {
		r.Fallback.Status = DefaultFallbackStatus
	}
	if r.Fallback.Body == "" {
		r.Fallback.Body = DefaultFallbackBody
	}
	if r.Fallback.ContentType == "" {
		r.Fallback.ContentType = defaultFallbackCType
	}
	return r
}

func upstreamDefaults(u Upstream) Upstream {
	if u.SlowStart == 0 {
		u.SlowStart = DefaultSlowStart
	}
	if u.MaxVerifyBody == 0 {
		u.MaxVerifyBody = DefaultMaxVerifyBody
	}
	b := &u.Breaker
	if b.FailureRate == 0 {
		b.FailureRate = DefaultBreakerRate
	}
	if b.Window == 0 {
		b.Window = DefaultBreakerWindow
	}
	if b.MinCalls == 0 {
		b.MinCalls = min(DefaultBreakerMinCalls, b.Window)
	}
	b.Open = orDur(b.Open, DefaultBreakerOpen)
	h := &u.Health
	h.Interval = orDur(h.Interval, time.Second)
	h.Timeout = orDur(h.Timeout, 500*time.Millisecond)
	if h.Rise == 0 {
		h.Rise = 2
	}
	if h.Fall == 0 {
		h.Fall = 2
	}
	if h.ExpectStatus == "" {
		h.ExpectStatus = "200-399"
	}
	for i := range u.Endpoints {
		if u.Endpoints[i].Weight == 0 {
			u.Endpoints[i].Weight = 1
		}
	}
	return u
}

func orDur(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

// The default concurrency limit (limit.algorithm ""): Gradient2, which
// shrinks the limit when a window's average latency rises above 1.25 × its
// long-term average and the limit is in use, and otherwise grows it by 4
// per window. It starts high (200) so that it never sheds a workload that
// has not yet been seen to queue: Gradient2 holds the limit while fewer
// than half of it are in flight, so below 100 concurrent requests nothing
// is shed until an overload has been seen (at 100 a busy benchmark on a
// loaded host was seen shedding on CPU noise). It reacts without smoothing over short
// windows (2 × the fastest RTT, within 100-250 ms), so that an overload is
// brought under control within about a second.
const (
	defaultLimitInitial   = 200
	defaultLimitMin       = 20
	defaultLimitMax       = 2000
	defaultLimitMinWindow = 100 * time.Millisecond
	defaultLimitMaxWindow = 250 * time.Millisecond
	// defaultLimitTolerance is how far a window's latency may exceed the
	// long-term average before the limit shrinks: 1.25 rather than
	// Netflix's 1.5, because the long-term average itself creeps up
	// during an overload, and 1.5 let admitted latency settle near 2.5 ×
	// the unloaded one.
	defaultLimitTolerance = 1.25
)

func newLimiter(rc Route) (*limit.Limiter, error) {
	l := rc.Limit
	var alg limit.Algorithm
	var err error
	cfg := limit.Config{Name: rc.Name}
	switch l.Algorithm {
	case "":
		alg, err = limit.NewGradient2(limit.Gradient2Config{
			InitialLimit: orInt(l.Initial, defaultLimitInitial), MinLimit: orInt(l.Min, defaultLimitMin),
			MaxLimit: orInt(l.Max, defaultLimitMax), Smoothing: 1, RTTTolerance: defaultLimitTolerance,
		})
		cfg.MinWindow, cfg.MaxWindow = defaultLimitMinWindow, defaultLimitMaxWindow
	case "gradient2":
		alg, err = limit.NewGradient2(limit.Gradient2Config{InitialLimit: l.Initial, MinLimit: l.Min, MaxLimit: l.Max})
	case "vegas":
		alg, err = limit.NewVegas(limit.VegasConfig{InitialLimit: l.Initial, MaxLimit: l.Max})
	case "aimd":
		alg, err = limit.NewAIMD(limit.AIMDConfig{InitialLimit: l.Initial, MinLimit: l.Min, MaxLimit: l.Max})
	default:
		return nil, fmt.Errorf("unknown algorithm %q", l.Algorithm)
	}
	if err != nil {
		return nil, err
	}
	cfg.Algorithm = alg
	return limit.New(cfg)
}

func orInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}
