package resilience

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Policies names the policies of a pipeline built by [New]. The zero value
// is an empty pipeline; leave a field unset to skip that policy. New
// composes them in the fixed order documented on the package, outermost
// first: Fallback, Retry, Hedge, Breaker, RateLimit, Bulkhead, Limit,
// Timeout.
type Policies struct {
	// Fallback replaces the final error with a value; unset when Handle is nil.
	Fallback Fallback
	// Retry re-runs failed attempts (retry.New).
	Retry Retrier
	// Hedge sends extra attempts when the first is slow (hedge.New).
	Hedge Policy
	// Breaker stops calls to a failing callee (breaker.New).
	Breaker Guard
	// RateLimit caps the call rate (ratelimit.New).
	RateLimit Guard
	// Bulkhead caps concurrent calls (bulkhead.New).
	Bulkhead Guard
	// Limit caps concurrent calls adaptively (limit.New).
	Limit Guard
	// Timeout bounds each attempt; unset when Duration is zero.
	Timeout Timeout
}

// Pipeline is an immutable composition of policies, built once with [New]
// or [Compose] and safe for concurrent use by any number of goroutines.
// Run functions under it with [Do], [Run] or [Pipeline.Execute].
type Pipeline struct {
	stages []stage
}

type stageKind uint8

const (
	kindPolicy stageKind = iota
	kindGuard
	kindRetry
	kindTimeout
	kindFallback
)

type stage struct {
	kind     stageKind
	latency  bool // a guard that wants Outcome.Latency
	results  bool // a retrier with a result predicate
	guard    Guard
	retry    Retrier
	timeout  Timeout
	fallback Fallback
	policy   Policy
}

// New composes the set policies of ps in the default order.
func New(ps Policies) *Pipeline {
	var list []Policy
	if ps.Fallback.Handle != nil {
		list = append(list, ps.Fallback)
	}
	for _, p := range []Policy{ps.Retry, ps.Hedge, ps.Breaker, ps.RateLimit, ps.Bulkhead, ps.Limit} {
		if !isNil(p) {
			list = append(list, p)
		}
	}
	if ps.Timeout.Duration > 0 {
		list = append(list, ps.Timeout)
	}
	p, _ := Compose(list...) // cannot fail: nil policies were skipped
	return p
}

// isNil reports whether p is a nil interface. Interfaces holding typed nil
// pointers are not detected; constructors never return those.
func isNil(p Policy) bool { return p == nil }

// ErrNilPolicy is returned by [Compose] for a nil policy.
var ErrNilPolicy = errors.New("nil policy")

// Compose builds a pipeline from policies in the order given, outermost
// first. Any [Policy] may appear, including another Pipeline; the built-in
// ones run without allocating.
func Compose(policies ...Policy) (*Pipeline, error) {
	p := &Pipeline{stages: make([]stage, 0, len(policies))}
	for i, pol := range policies {
		if pol == nil {
			return nil, fmt.Errorf("resilience: compose: policy %d: %w", i, ErrNilPolicy)
		}
		p.stages = append(p.stages, classify(pol))
	}
	return p, nil
}

func classify(pol Policy) stage {
	switch v := pol.(type) {
	case Timeout:
		return stage{kind: kindTimeout, timeout: v}
	case *Timeout:
		return stage{kind: kindTimeout, timeout: *v}
	case Fallback:
		return stage{kind: kindFallback, fallback: v}
	case *Fallback:
		return stage{kind: kindFallback, fallback: *v}
	case Guard:
		s := stage{kind: kindGuard, guard: v}
		if lo, ok := v.(LatencyObserver); ok {
			s.latency = lo.ObservesLatency()
		}
		return s
	case Retrier:
		return stage{kind: kindRetry, retry: v, results: v.HasResultPredicate()}
	}
	return stage{kind: kindPolicy, policy: pol}
}

// Len returns the number of policies in the pipeline.
func (p *Pipeline) Len() int {
	if p == nil {
		return 0
	}
	return len(p.stages)
}

// Execute runs next under the pipeline; it makes a Pipeline a [Policy], so
// pipelines nest.
func (p *Pipeline) Execute(ctx context.Context, next Next) (any, error) {
	return Do(ctx, p, next)
}

// Do runs fn under the pipeline p and returns its result, or the error of
// the policy that stopped it. A nil or empty pipeline just calls fn. With
// the built-in policies Do allocates nothing on the success path except what
// a [Timeout] needs for its context.
//
// The policies only cancel fn's context; a function that ignores its
// context is not abandoned, and its result is returned even when late.
func Do[T any](ctx context.Context, p *Pipeline, fn func(context.Context) (T, error)) (T, error) {
	if p == nil || len(p.stages) == 0 {
		return fn(ctx)
	}
	x := execution[T]{stages: p.stages, fn: fn}
	return x.run(ctx, 0)
}

// Run is [Do] for functions that return only an error.
func Run(ctx context.Context, p *Pipeline, fn func(context.Context) error) error {
	_, err := Do(ctx, p, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}

// ErrResultType is returned when a general policy or a fallback produced a
// value that is not of the type the caller of [Do] asked for.
var ErrResultType = errors.New("policy returned a result of the wrong type")

// execution is one call of Do. It lives on Do's stack: the fast paths pass
// it only to its own methods, so it does not escape.
type execution[T any] struct {
	stages []stage
	fn     func(context.Context) (T, error)
}

func (x *execution[T]) run(ctx context.Context, i int) (T, error) {
	if i == len(x.stages) {
		return x.fn(ctx)
	}
	s := &x.stages[i]
	switch s.kind {
	case kindGuard:
		return x.guarded(ctx, i, s)
	case kindRetry:
		return x.retried(ctx, i, s)
	case kindTimeout:
		return x.timed(ctx, i, s)
	case kindFallback:
		return x.fellBack(ctx, i, s)
	}
	return x.general(ctx, i, s)
}

func (x *execution[T]) guarded(ctx context.Context, i int, s *stage) (v T, err error) {
	permit, err := s.guard.Admit(ctx)
	if err != nil {
		return v, err
	}
	var start time.Time
	if s.latency {
		start = time.Now()
	}
	released := false
	defer func() {
		if !released { // fn panicked: the permit must not leak
			permit.Release(Outcome{Err: errPanicked})
		}
	}()
	v, err = x.run(ctx, i+1)
	o := Outcome{Err: err}
	if s.latency {
		o.Latency = time.Since(start)
	}
	if err != nil {
		o.Dropped = dropped(err)
	}
	released = true
	permit.Release(o)
	return v, err
}

// dropped reports whether err is a congestion signal: a deadline, or an
// error that says so itself (an HTTP 429 or 503, for one) with a
// Dropped() bool method.
func dropped(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var d interface{ Dropped() bool }
	return errors.As(err, &d) && d.Dropped()
}

// errPanicked is the outcome guards see when the protected function panics.
var errPanicked = errors.New("resilience: call panicked")

func (x *execution[T]) retried(ctx context.Context, i int, s *stage) (T, error) {
	r := s.retry
	st := r.Begin(ctx)
	defer func() { r.End(st) }()
	for {
		st.Attempts++
		v, err := x.run(ctx, i+1)
		if err == nil && (!s.results || !r.RetryResult(v)) {
			return v, nil
		}
		var delay time.Duration
		var again bool
		var rerr error
		st, delay, again, rerr = r.Retry(ctx, st, err)
		if !again {
			return v, rerr
		}
		if werr := wait(ctx, delay); werr != nil {
			if err == nil {
				return v, werr
			}
			return v, fmt.Errorf("%w while waiting to retry; last attempt: %w", werr, err)
		}
	}
}

// wait sleeps for d or until ctx is done.
func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

func (x *execution[T]) fellBack(ctx context.Context, i int, s *stage) (T, error) {
	v, err := x.run(ctx, i+1)
	f := &s.fallback
	if err == nil || f.Handle == nil || (f.If != nil && !f.If(err)) {
		return v, err
	}
	f.Observer.Emit(Event{Kind: EventFallback, Policy: f.Name, Err: err})
	fv, ferr := f.Handle(ctx, err)
	return asResult[T](fv, ferr)
}

func (x *execution[T]) general(ctx context.Context, i int, s *stage) (T, error) {
	// The closure may outlive this call (a hedge's losing attempt), so it
	// captures a heap copy of the execution, never x itself.
	cp := *x
	next := func(ctx context.Context) (any, error) { return cp.run(ctx, i+1) }
	v, err := s.policy.Execute(ctx, next)
	return asResult[T](v, err)
}

func asResult[T any](v any, err error) (T, error) {
	var zero T
	if v == nil {
		return zero, err
	}
	t, ok := v.(T)
	if !ok {
		return zero, fmt.Errorf("resilience: got %T, want %T: %w", v, zero, ErrResultType)
	}
	return t, err
}

// Fallback replaces a failed call's error with a value (a cached answer, a
// default, a degraded response). It is a [Policy]; the zero Fallback, with
// no Handle, passes errors through.
type Fallback struct {
	// Name labels the fallback's events.
	Name string
	// Handle returns the replacement for a call that failed with err. Its
	// result must be of the type the caller of Do expects (or nil).
	Handle func(ctx context.Context, err error) (any, error)
	// If reports whether err should be replaced; nil means every error.
	If func(err error) bool
	// Observer receives an EventFallback for each replacement.
	Observer Observer
}

// FallbackTo returns a Fallback whose handler is typed: use it with Do[T].
func FallbackTo[T any](fn func(ctx context.Context, err error) (T, error)) Fallback {
	return Fallback{Handle: func(ctx context.Context, err error) (any, error) { return fn(ctx, err) }}
}

// Execute runs next and replaces its error as configured.
func (f Fallback) Execute(ctx context.Context, next Next) (any, error) {
	v, err := next(ctx)
	if err == nil || f.Handle == nil || (f.If != nil && !f.If(err)) {
		return v, err
	}
	f.Observer.Emit(Event{Kind: EventFallback, Policy: f.Name, Err: err})
	return f.Handle(ctx, err)
}
