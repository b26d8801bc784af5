package breaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
)

// ErrOpen is wrapped by every rejection of a [Breaker]: open, forced open,
// or half-open with all probe permits taken. It wraps
// [resilience.ErrRejected].
var ErrOpen = fmt.Errorf("circuit breaker open: %w", resilience.ErrRejected)

// errPanicked is the outcome recorded for a call that panicked under
// [Breaker.Execute] or [Do]; it counts as a failure by default.
var errPanicked = errors.New("breaker: call panicked")

// rejection is the error a breaker returns when it refuses a call. The
// breaker builds one per rejecting state in New, so rejecting allocates
// nothing.
type rejection struct{ msg string }

func (e *rejection) Error() string { return e.msg }
func (e *rejection) Unwrap() error { return ErrOpen }

// Breaker is a circuit breaker. It is a [resilience.Guard]: put it in a
// pipeline (resilience.Policies.Breaker), call [Breaker.Execute] or [Do],
// or take the two steps yourself with [Breaker.Allow] or [Breaker.Admit].
// All methods are safe for concurrent use.
//
// Concurrency contract: the current state lives in an immutable record
// behind one atomic pointer, together with its generation, its window and
// its done func. Admitting and recording in the closed state are lock-free
// (the window is atomics); every state change takes mu, builds a new
// record with the next generation and a fresh window, and publishes it.
// Outcomes carry the generation they were admitted under and are dropped
// if it is no longer current, so a call started before a transition never
// counts after it. Observer and Logger are called after mu is released.
type Breaker struct {
	cur atomic.Pointer[stateRec]
	_   cacheLine

	// Read-only after New.
	name          string
	kind          WindowKind
	size          int
	width         int64 // time-window bucket width, ns
	buckets       int
	minCalls      int64
	failRate      float64
	slowRate      float64
	slowDur       time.Duration
	openDur       time.Duration
	mult          float64
	maxOpen       time.Duration
	jitter        float64
	halfOpenCalls int
	halfOpenWait  int64 // ns
	isIgnored     func(error) bool
	isFailure     func(error) bool
	observer      resilience.Observer
	log           *slog.Logger
	base          time.Time // the breaker's clock starts here (monotonic)
	errOpen       error
	errHalfOpen   error
	errForcedOpen error
	noop          func(resilience.Outcome)

	mu    sync.Mutex // serializes transitions and half-open bookkeeping
	rng   *rand.Rand // guarded by mu
	opens int        // consecutive openings since the breaker last closed; guarded by mu
}

// stateRec is one generation of the breaker's state. Its fields are
// immutable once published, except probes, which mu guards.
type stateRec struct {
	state     State
	gen       uint64
	count     *countWindow // closed, count-based
	timed     *timeWindow  // closed, time-based
	openUntil int64        // open: ns since base when probes may start
	since     int64        // ns since base when this state began
	done      func(resilience.Outcome)
	probes    probes // half-open; guarded by Breaker.mu
}

// probes is the half-open bookkeeping.
type probes struct {
	issued   int // permits taken and not freed by an ignored outcome
	finished int // probes that finished with a recorded outcome
	failures int
	slow     int
}

// New returns a closed breaker configured by cfg, or an error wrapping
// [ErrInvalidConfig].
func New(cfg Config) (*Breaker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	b := &Breaker{
		name:          c.Name,
		kind:          c.Window,
		size:          c.WindowSize,
		width:         int64(c.WindowDuration) / int64(c.WindowBuckets),
		buckets:       c.WindowBuckets,
		minCalls:      int64(c.MinimumCalls),
		failRate:      c.FailureRateThreshold,
		slowRate:      c.SlowCallRateThreshold,
		slowDur:       c.SlowCallDuration,
		openDur:       c.OpenDuration,
		mult:          c.OpenDurationMultiplier,
		maxOpen:       c.MaxOpenDuration,
		jitter:        c.OpenJitter,
		halfOpenCalls: c.HalfOpenCalls,
		halfOpenWait:  int64(c.HalfOpenMaxWait),
		isIgnored:     c.IsIgnored,
		isFailure:     c.IsFailure,
		observer:      c.Observer,
		log:           c.Logger,
		base:          time.Now(),
		rng:           c.Rand,
		noop:          func(resilience.Outcome) {},
	}
	if b.isIgnored == nil {
		b.isIgnored = ignoredByDefault
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.rng == nil {
		b.rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	label := "circuit breaker"
	if b.name != "" {
		label = fmt.Sprintf("circuit breaker %q", b.name)
	}
	b.errOpen = &rejection{msg: label + " is open"}
	b.errHalfOpen = &rejection{msg: label + " is half-open and all probe calls are taken"}
	b.errForcedOpen = &rejection{msg: label + " is forced open"}
	b.cur.Store(b.newRec(StateClosed, 1, 0))
	return b, nil
}

// ignoredByDefault: a caller that gave up, or an inner policy that said no,
// tells nothing about the callee's health.
func ignoredByDefault(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, resilience.ErrRejected)
}

// now is the breaker's clock: nanoseconds since New, from the monotonic
// clock (one read, cheaper than time.Now, and faked inside synctest).
func (b *Breaker) now() int64 { return int64(time.Since(b.base)) }

// Name returns the name the breaker was configured with.
func (b *Breaker) Name() string { return b.name }

// ObservesLatency reports whether slow-call detection is on, so that a
// pipeline measures Outcome.Latency for the breaker only when it is needed.
func (b *Breaker) ObservesLatency() bool { return b.slowDur > 0 }

// Admit admits a call or rejects it with an error wrapping [ErrOpen]. The
// permit must be released exactly once with the call's outcome. In the
// closed state it takes no lock, reads no clock and allocates nothing.
func (b *Breaker) Admit(ctx context.Context) (resilience.Permit, error) {
	rec := b.cur.Load()
	if rec.state != StateClosed {
		var err error
		if rec, err = b.admitSlow(rec); err != nil {
			return resilience.Permit{}, err
		}
		if rec.state == StateDisabled {
			return resilience.Permit{}, nil // nothing to learn
		}
	}
	return resilience.NewPermit(b, rec.gen), nil
}

// Allow is the two-step form of [Breaker.Admit] for callers that learn the
// outcome elsewhere (a proxy's response path): it returns a func to call
// exactly once with the outcome, or an error wrapping [ErrOpen]. The func
// is built once per generation, so the closed-state path allocates nothing.
// When slow-call detection is on, fill Outcome.Latency.
func (b *Breaker) Allow() (done func(resilience.Outcome), err error) {
	rec := b.cur.Load()
	if rec.state != StateClosed {
		if rec, err = b.admitSlow(rec); err != nil {
			return nil, err
		}
	}
	return rec.done, nil
}

// Release records the outcome of a call admitted with generation token. It
// implements [resilience.Releaser]; outcomes of an older generation are
// dropped.
func (b *Breaker) Release(token uint64, o resilience.Outcome) {
	if rec := b.cur.Load(); rec.gen == token {
		b.record(rec, o)
	}
}

// Execute runs next if the breaker admits it and records its outcome. It
// implements [resilience.Policy]; pipelines use Admit and Release instead.
func (b *Breaker) Execute(ctx context.Context, next resilience.Next) (any, error) {
	return Do[any](ctx, b, next)
}

// Do runs fn under b and returns its result, or a rejection wrapping
// [ErrOpen]. If fn panics, the panic is recorded as a failure, the permit
// is released, and the panic continues.
func Do[T any](ctx context.Context, b *Breaker, fn func(context.Context) (T, error)) (v T, err error) {
	rec := b.cur.Load()
	if rec.state != StateClosed {
		if rec, err = b.admitSlow(rec); err != nil {
			return v, err
		}
		if rec.state == StateDisabled {
			return fn(ctx)
		}
	}
	var start time.Time
	if b.slowDur > 0 {
		start = time.Now()
	}
	finished := false
	defer func() {
		if !finished { // fn panicked (or called runtime.Goexit)
			b.Release(rec.gen, b.outcome(errPanicked, start))
		}
	}()
	v, err = fn(ctx)
	finished = true
	b.Release(rec.gen, b.outcome(err, start))
	return v, err
}

func (b *Breaker) outcome(err error, start time.Time) resilience.Outcome {
	o := resilience.Outcome{Err: err}
	if b.slowDur > 0 {
		o.Latency = time.Since(start)
	}
	return o
}

// classify turns an outcome into window bits; ok is false for an ignored
// outcome.
func (b *Breaker) classify(o resilience.Outcome) (kind uint32, ok bool) {
	kind = bitRecorded
	if o.Err != nil {
		if b.isIgnored(o.Err) {
			return 0, false
		}
		if b.isFailure == nil || b.isFailure(o.Err) {
			kind |= bitFailure
		}
	}
	if b.slowDur > 0 && o.Latency >= b.slowDur {
		kind |= bitSlow
	}
	return kind, true
}

// record applies an outcome of generation rec.
func (b *Breaker) record(rec *stateRec, o resilience.Outcome) {
	kind, ok := b.classify(o)
	switch rec.state {
	case StateClosed:
		if !ok {
			return
		}
		var c counts
		if rec.count != nil {
			var check bool
			if c, check = rec.count.record(kind); !check {
				return
			}
		} else {
			c = rec.timed.record(b.now(), kind)
		}
		if b.tripped(c) {
			b.trip(rec)
		}
	case StateHalfOpen:
		b.probeDone(rec, kind, ok)
	}
}

// tripped reports whether counts c cross a threshold.
func (b *Breaker) tripped(c counts) bool {
	if c.calls < b.minCalls || c.calls == 0 {
		return false
	}
	return b.overThreshold(c)
}

func (b *Breaker) overThreshold(c counts) bool {
	calls := float64(c.calls)
	if float64(c.failures)*100 >= b.failRate*calls {
		return true
	}
	return b.slowDur > 0 && float64(c.slow)*100 >= b.slowRate*calls
}

// reject reports a rejection to the observer and returns err.
func (b *Breaker) reject(err error) error {
	if b.observer != nil {
		b.observer(resilience.Event{Kind: resilience.EventRejected, Policy: b.name, Err: err})
	}
	return err
}

// admitSlow handles admission in every state but closed (and closed, when
// a transition raced). It returns the record the call was admitted under.
func (b *Breaker) admitSlow(rec *stateRec) (*stateRec, error) {
	for {
		switch rec.state {
		case StateClosed, StateDisabled:
			return rec, nil
		case StateForcedOpen:
			return nil, b.reject(b.errForcedOpen)
		case StateOpen:
			if b.now() < rec.openUntil {
				return nil, b.reject(b.errOpen)
			}
			rec = b.openElapsed(rec)
		case StateHalfOpen:
			next, admitted := b.takeProbe(rec)
			if admitted {
				return rec, nil
			}
			if next == rec {
				return nil, b.reject(b.errHalfOpen)
			}
			rec = next
		}
	}
}
