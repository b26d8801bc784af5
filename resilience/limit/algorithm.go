package limit

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Sample is what a [Limiter] tells its [Algorithm] at the end of a sampling
// window: the window's average RTT, the highest in-flight count seen at
// admission, and whether any call in the window was dropped.
type Sample struct {
	// RTT is the window's average round-trip time.
	RTT time.Duration
	// Inflight is the largest number of calls in flight when a call of the
	// window was admitted (that call included).
	Inflight int
	// Dropped reports that a call of the window was shed or timed out.
	Dropped bool
}

// Algorithm computes a concurrency limit from window samples. The
// [Limiter] calls Update from one goroutine at a time, so implementations
// need no locking; an Algorithm value must not be shared between limiters.
type Algorithm interface {
	// Update folds one window's sample into the estimate and returns the
	// new limit.
	Update(s Sample) int
	// Limit returns the current limit.
	Limit() int
}

// log10Root is Netflix's Log10RootFunction: max(1, ⌊log10 n⌋). Vegas
// scales its thresholds and steps with it, so growth slows as the limit
// grows.
func log10Root(n int) int {
	if n < 10 {
		return 1
	}
	return int(math.Log10(float64(n)))
}

// errInvalid is wrapped by every configuration error of this package.
var errInvalid = errors.New("limit: invalid config")

// AIMDConfig configures [NewAIMD]. The zero value uses the defaults of
// Netflix's AIMDLimit.
type AIMDConfig struct {
	// InitialLimit is the starting limit; default 20.
	InitialLimit int
	// MinLimit is the floor; default 20.
	MinLimit int
	// MaxLimit is the ceiling; default 200.
	MaxLimit int
	// BackoffRatio multiplies the limit on a drop; default 0.9, must be in
	// [0.5, 1).
	BackoffRatio float64
	// Timeout is the RTT above which a window counts as a drop; default 5 s.
	Timeout time.Duration
}

// AIMD is additive-increase/multiplicative-decrease (Netflix AIMDLimit): on
// a drop, or an RTT above Timeout, the limit is multiplied by BackoffRatio;
// otherwise it grows by one, but only when the limit is in use (inflight·2
// ≥ limit), so an idle service does not inflate it.
type AIMD struct {
	cfg   AIMDConfig
	limit int
}

// NewAIMD returns an AIMD algorithm.
func NewAIMD(cfg AIMDConfig) (*AIMD, error) {
	if cfg.MinLimit == 0 {
		cfg.MinLimit = 20
	}
	if cfg.InitialLimit == 0 {
		cfg.InitialLimit = max(20, cfg.MinLimit)
	}
	if cfg.MaxLimit == 0 {
		cfg.MaxLimit = max(200, cfg.InitialLimit)
	}
	if cfg.BackoffRatio == 0 {
		cfg.BackoffRatio = 0.9
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	switch {
	case cfg.MinLimit < 1 || cfg.MaxLimit < cfg.MinLimit:
		return nil, fmt.Errorf("%w: aimd: need 1 ≤ MinLimit ≤ MaxLimit, got %d, %d", errInvalid, cfg.MinLimit, cfg.MaxLimit)
	case cfg.InitialLimit < 1 || cfg.InitialLimit > cfg.MaxLimit:
		return nil, fmt.Errorf("%w: aimd: InitialLimit %d outside [1, %d]", errInvalid, cfg.InitialLimit, cfg.MaxLimit)
	case cfg.BackoffRatio < 0.5 || cfg.BackoffRatio >= 1:
		return nil, fmt.Errorf("%w: aimd: BackoffRatio %v outside [0.5, 1)", errInvalid, cfg.BackoffRatio)
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("%w: aimd: negative Timeout", errInvalid)
	}
	return &AIMD{cfg: cfg, limit: cfg.InitialLimit}, nil
}

// Update applies the AIMD rule to one window.
func (a *AIMD) Update(s Sample) int {
	cur := a.limit
	if s.Dropped || s.RTT > a.cfg.Timeout {
		cur = int(float64(cur) * a.cfg.BackoffRatio)
	} else if s.Inflight*2 >= cur {
		cur++
	}
	a.limit = min(a.cfg.MaxLimit, max(a.cfg.MinLimit, cur))
	return a.limit
}

// Limit returns the current limit.
func (a *AIMD) Limit() int { return a.limit }

// VegasConfig configures [NewVegas]. The zero value uses the defaults of
// Netflix's VegasLimit.
type VegasConfig struct {
	// InitialLimit is the starting limit; default 20.
	InitialLimit int
	// MaxLimit is the ceiling; default 1000.
	MaxLimit int
	// Smoothing weighs the new estimate against the old one, in (0, 1];
	// default 1 (no smoothing).
	Smoothing float64
	// ProbeMultiplier sets how often the no-load RTT is re-probed: every
	// ProbeMultiplier·limit·U(0.5, 1) windows; default 30.
	ProbeMultiplier int
	// Rand draws the probe jitter; nil uses a generator seeded at random, so
	// that instances do not probe in lockstep. Set it for reproducible runs.
	Rand *rand.Rand
}

// Vegas is TCP Vegas applied to concurrency (Netflix VegasLimit): it
// estimates the queue as limit·(1 − rtt_noload/rtt), grows the limit while
// the queue is short and shrinks it when the queue is long.
//
// Thresholds follow the Java code, not its class comment: alpha = 3·L,
// beta = 6·L and threshold = L with L = max(1, ⌊log10 limit⌋). The
// no-load RTT is the minimum seen, reset to the current RTT every
// ProbeMultiplier·limit·U(0.5, 1) windows so that it can rise again.
type Vegas struct {
	cfg        VegasConfig
	estimate   float64
	rttNoLoad  time.Duration
	probeCount int
	probeJit   float64
}

// NewVegas returns a Vegas algorithm.
func NewVegas(cfg VegasConfig) (*Vegas, error) {
	if cfg.InitialLimit == 0 {
		cfg.InitialLimit = 20
	}
	if cfg.MaxLimit == 0 {
		cfg.MaxLimit = max(1000, cfg.InitialLimit)
	}
	if cfg.Smoothing == 0 {
		cfg.Smoothing = 1
	}
	if cfg.ProbeMultiplier == 0 {
		cfg.ProbeMultiplier = 30
	}
	switch {
	case cfg.InitialLimit < 1 || cfg.MaxLimit < cfg.InitialLimit:
		return nil, fmt.Errorf("%w: vegas: need 1 ≤ InitialLimit ≤ MaxLimit, got %d, %d", errInvalid, cfg.InitialLimit, cfg.MaxLimit)
	case cfg.Smoothing < 0 || cfg.Smoothing > 1:
		return nil, fmt.Errorf("%w: vegas: Smoothing %v outside (0, 1]", errInvalid, cfg.Smoothing)
	case cfg.ProbeMultiplier < 1:
		return nil, fmt.Errorf("%w: vegas: ProbeMultiplier %d < 1", errInvalid, cfg.ProbeMultiplier)
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	v := &Vegas{cfg: cfg, estimate: float64(cfg.InitialLimit)}
	v.resetProbeJitter()
	return v, nil
}

func (v *Vegas) resetProbeJitter() { v.probeJit = 0.5 + 0.5*v.cfg.Rand.Float64() }

// Update applies the Vegas rule to one window.
func (v *Vegas) Update(s Sample) int {
	if s.RTT <= 0 {
		return int(v.estimate) // the Java rejects rtt ≤ 0; nothing to learn
	}
	v.probeCount++
	if v.probeJit*float64(v.cfg.ProbeMultiplier)*v.estimate <= float64(v.probeCount) {
		// Probe: forget the minimum so a baseline that really rose is seen.
		v.resetProbeJitter()
		v.probeCount = 0
		v.rttNoLoad = s.RTT
		return int(v.estimate)
	}
	if v.rttNoLoad == 0 || s.RTT < v.rttNoLoad {
		v.rttNoLoad = s.RTT
		return int(v.estimate)
	}
	queue := int(math.Ceil(v.estimate * (1 - float64(v.rttNoLoad)/float64(s.RTT))))
	cur := int(v.estimate)
	var next float64
	switch {
	case s.Dropped:
		next = v.estimate - float64(log10Root(cur))
	case float64(s.Inflight*2) < v.estimate:
		return cur // app-limited: no evidence the limit is too low
	case queue <= log10Root(cur):
		next = v.estimate + float64(6*log10Root(cur)) // no queueing: grow by beta
	case queue < 3*log10Root(cur):
		next = v.estimate + float64(log10Root(cur))
	case queue > 6*log10Root(cur):
		next = v.estimate - float64(log10Root(cur))
	default:
		return cur
	}
	next = max(1, min(float64(v.cfg.MaxLimit), next))
	v.estimate = (1-v.cfg.Smoothing)*v.estimate + v.cfg.Smoothing*next
	return int(v.estimate)
}

// Limit returns the current limit.
func (v *Vegas) Limit() int { return int(v.estimate) }

// Gradient2Config configures [NewGradient2]. The zero value uses the
// defaults of Netflix's Gradient2Limit.
type Gradient2Config struct {
	// InitialLimit is the starting limit; default 20.
	InitialLimit int
	// MinLimit is the floor; default 20.
	MinLimit int
	// MaxLimit is the ceiling; default 200.
	MaxLimit int
	// Smoothing weighs the new estimate against the old, in (0, 1];
	// default 0.2.
	Smoothing float64
	// QueueSize is how much the limit may grow per window while RTT is
	// stable; default 4.
	QueueSize int
	// LongWindow is the span, in windows, of the long-term RTT average;
	// default 600.
	LongWindow int
	// RTTTolerance is how much the short RTT may exceed the long one before
	// the limit shrinks; default 1.5, at least 1.
	RTTTolerance float64
}

// Gradient2 compares each window's RTT with a long-term exponential
// average (Netflix Gradient2Limit): gradient = clamp(tolerance·long/short,
// 0.5, 1), new = limit·gradient + queueSize, smoothed by Smoothing.
//
// This follows the Java code, including rttTolerance (absent from its
// javadoc and from platinummonkey's Go port) and the 0.95 decay of the long
// RTT when it exceeds twice the short one (the Go port uses 0.9). Like the
// Java, it ignores the drop flag.
type Gradient2 struct {
	cfg      Gradient2Config
	estimate float64
	long     expAvg
}

// NewGradient2 returns a Gradient2 algorithm.
func NewGradient2(cfg Gradient2Config) (*Gradient2, error) {
	if cfg.MinLimit == 0 {
		cfg.MinLimit = 20
	}
	if cfg.InitialLimit == 0 {
		cfg.InitialLimit = max(20, cfg.MinLimit)
	}
	if cfg.MaxLimit == 0 {
		cfg.MaxLimit = max(200, cfg.InitialLimit)
	}
	if cfg.Smoothing == 0 {
		cfg.Smoothing = 0.2
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = 4
	}
	if cfg.LongWindow == 0 {
		cfg.LongWindow = 600
	}
	if cfg.RTTTolerance == 0 {
		cfg.RTTTolerance = 1.5
	}
	switch {
	case cfg.MinLimit < 1 || cfg.MaxLimit < cfg.MinLimit:
		return nil, fmt.Errorf("%w: gradient2: need 1 ≤ MinLimit ≤ MaxLimit, got %d, %d", errInvalid, cfg.MinLimit, cfg.MaxLimit)
	case cfg.InitialLimit < 1 || cfg.InitialLimit > cfg.MaxLimit:
		return nil, fmt.Errorf("%w: gradient2: InitialLimit %d outside [1, %d]", errInvalid, cfg.InitialLimit, cfg.MaxLimit)
	case cfg.Smoothing < 0 || cfg.Smoothing > 1:
		return nil, fmt.Errorf("%w: gradient2: Smoothing %v outside (0, 1]", errInvalid, cfg.Smoothing)
	case cfg.QueueSize < 0 || cfg.LongWindow < 1:
		return nil, fmt.Errorf("%w: gradient2: need QueueSize ≥ 0 and LongWindow ≥ 1", errInvalid)
	case cfg.RTTTolerance < 1:
		return nil, fmt.Errorf("%w: gradient2: RTTTolerance %v < 1", errInvalid, cfg.RTTTolerance)
	}
	return &Gradient2{
		cfg:      cfg,
		estimate: float64(cfg.InitialLimit),
		long:     expAvg{window: cfg.LongWindow, warmup: 10},
	}, nil
}

// Update applies the Gradient2 rule to one window.
func (g *Gradient2) Update(s Sample) int {
	if s.RTT <= 0 {
		return int(g.estimate)
	}
	queue := float64(g.cfg.QueueSize)
	short := float64(s.RTT)
	long := g.long.add(short)
	if long/short > 2 {
		// Recover faster after a long overload: do not wait for the EWMA.
		g.long.value *= 0.95
	}
	if float64(s.Inflight) < g.estimate/2 {
		return int(g.estimate) // app-limited
	}
	gradient := max(0.5, min(1.0, g.cfg.RTTTolerance*long/short))
	next := g.estimate*gradient + queue
	next = g.estimate*(1-g.cfg.Smoothing) + next*g.cfg.Smoothing
	g.estimate = max(float64(g.cfg.MinLimit), min(float64(g.cfg.MaxLimit), next))
	return int(g.estimate)
}

// Limit returns the current limit.
func (g *Gradient2) Limit() int { return int(g.estimate) }

// LongRTT returns the long-term average RTT (for tests and dashboards; not
// safe to call while the limiter updates).
func (g *Gradient2) LongRTT() time.Duration { return time.Duration(g.long.value) }

// expAvg is Netflix's ExpAvgMeasurement: the plain average of the first
// warmup samples, then an EWMA with factor 2/(window+1).
type expAvg struct {
	window, warmup, count int
	sum, value            float64
}

func (m *expAvg) add(x float64) float64 {
	if m.count < m.warmup {
		m.count++
		m.sum += x
		m.value = m.sum / float64(m.count)
	} else {
		f := 2 / float64(m.window+1)
		m.value = m.value*(1-f) + x*f
	}
	return m.value
}

// Fixed is a constant limit: with it a [Limiter] is a plain semaphore
// that still reports samples (useful as a baseline in tests).
type Fixed int

// Update returns the fixed limit.
func (f Fixed) Update(Sample) int { return int(f) }

// Limit returns the fixed limit.
func (f Fixed) Limit() int { return int(f) }
