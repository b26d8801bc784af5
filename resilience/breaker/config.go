package breaker

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
)

// WindowKind selects how the closed state's sliding window is measured.
type WindowKind uint8

const (
	// CountWindow keeps the outcomes of the last WindowSize calls (a ring).
	// It never reads the clock, so it is the cheapest window.
	CountWindow WindowKind = iota
	// TimeWindow keeps the outcomes of the last WindowDuration, in
	// WindowBuckets slices. It reads the clock once per call.
	TimeWindow
)

// String returns "count" or "time".
func (k WindowKind) String() string {
	switch k {
	case CountWindow:
		return "count"
	case TimeWindow:
		return "time"
	}
	return fmt.Sprintf("window(%d)", uint8(k))
}

// Defaults of [Config]. They follow Resilience4j where its defaults suit a
// gateway, and depart where they do not: Resilience4j's minimum of 100
// calls in a window of 100 keeps a low-traffic endpoint from ever tripping,
// so the minimum here is Hystrix's 20; its 60 s open wait is long for
// per-endpoint breakers whose callee restarts in seconds, so it is 30 s.
const (
	DefaultWindowSize            = 100
	DefaultWindowDuration        = 10 * time.Second
	DefaultWindowBuckets         = 10
	DefaultMinimumCalls          = 20
	DefaultFailureRateThreshold  = 50.0
	DefaultSlowCallRateThreshold = 100.0
	DefaultOpenDuration          = 30 * time.Second
	DefaultHalfOpenCalls         = 3
	DefaultHalfOpenMaxWait       = 60 * time.Second

	maxWindowSize = 1 << 24 // 16M slots (64 MiB) is more than any breaker needs
	maxBuckets    = 1 << 16
)

// ErrInvalidConfig is wrapped by the errors of [Config.Validate] and [New].
var ErrInvalidConfig = errors.New("invalid circuit breaker config")

// Config configures a [Breaker]. The zero value is a working breaker with
// the defaults stated on each field.
type Config struct {
	// Name labels the breaker in errors, events and logs. Default "".
	Name string

	// Window selects the closed state's sliding window. Default CountWindow.
	Window WindowKind
	// WindowSize is the number of calls a CountWindow keeps. Default 100.
	WindowSize int
	// WindowDuration is the span a TimeWindow covers. Default 10 s.
	WindowDuration time.Duration
	// WindowBuckets is the number of slices a TimeWindow is kept in; the
	// window moves one slice (WindowDuration/WindowBuckets) at a time.
	// Default 10.
	WindowBuckets int
	// MinimumCalls is the number of calls the window must hold before any
	// rate is computed, so that one failure in one call does not trip a
	// quiet endpoint. Default 20, or WindowSize if that is smaller; for a
	// CountWindow it may not exceed WindowSize.
	MinimumCalls int

	// FailureRateThreshold is the percentage of failed calls, in (0, 100],
	// at or above which the breaker opens. Default 50.
	FailureRateThreshold float64
	// SlowCallDuration is the latency at or above which a call is slow.
	// Zero (the default) disables slow-call detection; when it is set the
	// breaker reports [resilience.LatencyObserver] and needs
	// Outcome.Latency, which a pipeline measures for it (callers of
	// [Breaker.Allow] must fill it themselves).
	SlowCallDuration time.Duration
	// SlowCallRateThreshold is the percentage of slow calls, in (0, 100],
	// at or above which the breaker opens. Default 100.
	SlowCallRateThreshold float64

	// OpenDuration is how long the breaker stays open before it lets
	// probes through. Default 30 s.
	OpenDuration time.Duration
	// OpenDurationMultiplier grows the open duration each time half-open
	// probing fails: the k-th consecutive opening waits
	// OpenDuration·Multiplier^(k-1), capped at MaxOpenDuration. The count
	// starts again when the breaker closes. Default 1 (fixed); must be ≥ 1.
	OpenDurationMultiplier float64
	// MaxOpenDuration caps a growing open duration. Default 10·OpenDuration.
	MaxOpenDuration time.Duration
	// OpenJitter spreads each open duration uniformly over ±OpenJitter of
	// it (after the cap), so that many instances' breakers do not probe
	// a recovering callee in lockstep. In [0, 1); default 0 (none).
	OpenJitter float64
	// Rand is the source of the jitter, used only under the breaker's lock;
	// do not share one Rand between breakers. Default: a PCG seeded from
	// the runtime's random source. Set it to replay a run.
	Rand *rand.Rand

	// HalfOpenCalls is the number of probe calls admitted in half-open. The
	// breaker decides only after all of them have finished (ignored calls
	// do not count and free their permit for another probe): it closes if
	// their failure and slow rates are below the thresholds, and opens
	// again otherwise. Default 3.
	HalfOpenCalls int
	// HalfOpenMaxWait bounds how long the breaker waits in half-open for
	// its probes to finish; after it, a call finding the breaker half-open
	// opens it again, so lost probes cannot leave it stuck. Default 60 s.
	HalfOpenMaxWait time.Duration

	// IsIgnored reports whether an error neither fails nor succeeds: the
	// call is not recorded, and in half-open its permit is freed. Default:
	// errors that are or wrap context.Canceled (the caller gave up) or
	// resilience.ErrRejected (an inner policy said no, which says nothing
	// about the callee). Setting it replaces the default.
	IsIgnored func(error) bool
	// IsFailure reports whether a non-ignored error counts as a failure;
	// otherwise the call counts as a success (a 404 from a healthy
	// callee, say). Called only for non-nil errors. Default: every error.
	IsFailure func(error) bool

	// Observer receives EventStateChange and EventRejected. Default none.
	Observer resilience.Observer
	// Logger logs state changes. Default: discard.
	Logger *slog.Logger
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.WindowSize == 0 {
		c.WindowSize = DefaultWindowSize
	}
	if c.WindowDuration == 0 {
		c.WindowDuration = DefaultWindowDuration
	}
	if c.WindowBuckets == 0 {
		c.WindowBuckets = DefaultWindowBuckets
	}
	if c.MinimumCalls == 0 {
		c.MinimumCalls = DefaultMinimumCalls
		if c.Window == CountWindow && c.WindowSize > 0 {
			c.MinimumCalls = min(c.MinimumCalls, c.WindowSize)
		}
	}
	if c.FailureRateThreshold == 0 {
		c.FailureRateThreshold = DefaultFailureRateThreshold
	}
	if c.SlowCallRateThreshold == 0 {
		c.SlowCallRateThreshold = DefaultSlowCallRateThreshold
	}
	if c.OpenDuration == 0 {
		c.OpenDuration = DefaultOpenDuration
	}
	if c.OpenDurationMultiplier == 0 {
		c.OpenDurationMultiplier = 1
	}
	if c.MaxOpenDuration == 0 {
		c.MaxOpenDuration = 10 * c.OpenDuration
	}
	if c.HalfOpenCalls == 0 {
		c.HalfOpenCalls = DefaultHalfOpenCalls
	}
	if c.HalfOpenMaxWait == 0 {
		c.HalfOpenMaxWait = DefaultHalfOpenMaxWait
	}
	return c
}

// Validate reports the first invalid field, after applying the defaults;
// the error wraps [ErrInvalidConfig].
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("breaker %q: %w: "+format, append([]any{c.Name, ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.Window != CountWindow && c.Window != TimeWindow:
		return bad("Window %d: want CountWindow or TimeWindow", c.Window)
	case c.WindowSize < 0 || c.WindowSize > maxWindowSize:
		return bad("WindowSize %d: want 1..%d", c.WindowSize, maxWindowSize)
	case c.WindowBuckets < 0 || c.WindowBuckets > maxBuckets:
		return bad("WindowBuckets %d: want 1..%d", c.WindowBuckets, maxBuckets)
	case c.WindowDuration < 0 || c.WindowDuration/time.Duration(c.WindowBuckets) < time.Microsecond:
		return bad("WindowDuration %v: want at least 1µs per bucket (%d buckets)", c.WindowDuration, c.WindowBuckets)
	case c.MinimumCalls < 0:
		return bad("MinimumCalls %d: want ≥ 1", c.MinimumCalls)
	case c.Window == CountWindow && c.MinimumCalls > c.WindowSize:
		return bad("MinimumCalls %d exceeds WindowSize %d: the breaker could never open", c.MinimumCalls, c.WindowSize)
	case !percent(c.FailureRateThreshold):
		return bad("FailureRateThreshold %v: want a percentage in (0, 100]", c.FailureRateThreshold)
	case !percent(c.SlowCallRateThreshold):
		return bad("SlowCallRateThreshold %v: want a percentage in (0, 100]", c.SlowCallRateThreshold)
	case c.SlowCallDuration < 0:
		return bad("SlowCallDuration %v: want ≥ 0", c.SlowCallDuration)
	case c.OpenDuration < 0:
		return bad("OpenDuration %v: want > 0", c.OpenDuration)
	case math.IsNaN(c.OpenDurationMultiplier) || math.IsInf(c.OpenDurationMultiplier, 0) || c.OpenDurationMultiplier < 1:
		return bad("OpenDurationMultiplier %v: want ≥ 1", c.OpenDurationMultiplier)
	case c.MaxOpenDuration < c.OpenDuration:
		return bad("MaxOpenDuration %v is below OpenDuration %v", c.MaxOpenDuration, c.OpenDuration)
	case math.IsNaN(c.OpenJitter) || c.OpenJitter < 0 || c.OpenJitter >= 1:
		return bad("OpenJitter %v: want a fraction in [0, 1)", c.OpenJitter)
	case c.HalfOpenCalls < 0:
		return bad("HalfOpenCalls %d: want ≥ 1", c.HalfOpenCalls)
	case c.HalfOpenMaxWait < 0:
		return bad("HalfOpenMaxWait %v: want > 0", c.HalfOpenMaxWait)
	}
	return nil
}

func percent(p float64) bool { return p > 0 && p <= 100 }
