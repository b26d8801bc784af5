package resilience

import (
	"context"
	"errors"
	"time"
)

// ErrRejected is wrapped by every error a policy returns when it decides not
// to run a call (an open breaker, a full bulkhead, a spent rate limit). Map it
// to "service unavailable" at the edge; branch on the specific sentinel
// (breaker.ErrOpen, limit.ErrLimited, ...) when the reason matters.
var ErrRejected = errors.New("rejected by policy")

// ErrTimeout is wrapped, together with context.DeadlineExceeded, by the
// error a [Timeout] returns when the call did not finish in time.
var ErrTimeout = errors.New("call timed out")

// Next is the rest of a pipeline as a policy sees it: calling it runs the
// inner policies and finally the protected function.
type Next func(ctx context.Context) (any, error)

// Policy is one layer of a [Pipeline]. Execute runs next under the policy
// and returns its result, or an error wrapping the policy's sentinel when the
// policy decides not to run it. Execute must be safe for concurrent use.
//
// This is the general, allocating path; the built-in policies also implement
// [Guard] or [Retrier], which the pipeline uses instead.
type Policy interface {
	Execute(ctx context.Context, next Next) (any, error)
}

// PolicyFunc adapts a function to a [Policy].
type PolicyFunc func(ctx context.Context, next Next) (any, error)

// Execute calls f(ctx, next).
func (f PolicyFunc) Execute(ctx context.Context, next Next) (any, error) { return f(ctx, next) }

// Outcome is what a [Guard] learns about a call it admitted.
type Outcome struct {
	// Err is the call's error; nil means success.
	Err error
	// Latency is how long the call took. The pipeline measures it only when
	// a guard in it reports [LatencyObserver]; zero means unknown.
	Latency time.Duration
	// Dropped marks a call that the callee shed or that timed out: the
	// congestion signal adaptive limiters back off on. The pipeline sets
	// it for errors wrapping context.DeadlineExceeded and for errors with
	// a Dropped() bool method that returns true (an HTTP 429 or 503).
	Dropped bool
}

// Guard is a policy that admits or rejects a call before it starts and
// learns its outcome after it ends: a circuit breaker, a bulkhead, a
// concurrency limiter, a rate limiter. Admit must not block longer than ctx
// allows; on rejection it returns an error wrapping [ErrRejected].
type Guard interface {
	Policy
	Admit(ctx context.Context) (Permit, error)
}

// LatencyObserver is implemented by guards that need [Outcome.Latency]
// (slow-call detection, adaptive limits). A pipeline reads the clock around
// a call only when one of its guards reports true, because a clock read
// costs as much as the rest of a guard's success path.
type LatencyObserver interface {
	ObservesLatency() bool
}

// Releaser receives the outcome of a call admitted by a [Permit]. Guards
// implement it; token is the value they put in the permit (a breaker's
// generation, a limiter's in-flight count at admission).
type Releaser interface {
	Release(token uint64, o Outcome)
}

// Permit is a guard's admission of one call. It is a small value, so taking
// one does not allocate. Release it exactly once, on every path, including
// panics and cancellation; the zero Permit's Release does nothing.
type Permit struct {
	r     Releaser
	token uint64
}

// NewPermit returns a permit that passes token and the outcome to r on
// release. Guards call it; callers of a guard only release permits.
func NewPermit(r Releaser, token uint64) Permit { return Permit{r: r, token: token} }

// Release reports the call's outcome to the guard that admitted it.
func (p Permit) Release(o Outcome) {
	if p.r != nil {
		p.r.Release(p.token, o)
	}
}

// Token returns the guard-private value the permit carries.
func (p Permit) Token() uint64 { return p.token }

// RetryState is the per-execution state of a [Retrier]. The pipeline keeps
// it on the stack and passes it to the policy; its fields belong to the
// policy.
type RetryState struct {
	// Attempts is the number of attempts made so far.
	Attempts int
	// Start is when the execution started, when the policy needs it (a
	// maximum duration); zero otherwise.
	Start time.Time
	// AttemptStart is when the current attempt started, when known.
	AttemptStart time.Time
	// Delay is the previous backoff delay (decorrelated jitter needs it).
	Delay time.Duration
	// Token is policy-private (a retry budget's bookkeeping).
	Token uint64
}

// Retrier is the fast path of a retry policy: the pipeline runs the attempt
// loop and asks the policy after each attempt. The state travels by value so
// that it stays on the caller's stack.
type Retrier interface {
	Policy
	// Begin is called once per execution, before the first attempt.
	Begin(ctx context.Context) RetryState
	// Retry is called after an attempt (st.Attempts counts it) that failed
	// with err; err is nil when RetryResult asked for a retry of a result.
	// It returns the updated state, the delay before the next attempt and
	// true; or false when the execution must end, with the error to return
	// (err itself, or err wrapped with the reason retries stopped).
	Retry(ctx context.Context, st RetryState, err error) (RetryState, time.Duration, bool, error)
	// HasResultPredicate reports whether RetryResult must be consulted on
	// successful attempts; pipelines box the result only then.
	HasResultPredicate() bool
	// RetryResult reports whether a successful attempt's result must be
	// retried.
	RetryResult(result any) bool
	// End is called once when the execution ends, however it ends.
	End(st RetryState)
}

// EventKind says what happened in an [Event].
type EventKind uint8

// The kinds of [Event]. The values are stable: new kinds are appended.
const (
	EventStateChange      EventKind = iota + 1 // a breaker changed state: From → To
	EventRejected                              // a policy rejected a call: Err
	EventRetry                                 // a retry is scheduled: Attempt, Delay, Err
	EventLimitChanged                          // an adaptive limit moved: Limit
	EventTimeout                               // a call hit its timeout
	EventFallback                              // a fallback replaced an error: Err
	EventHedge                                 // a hedged attempt was sent: Attempt
	EventRetriesExhausted                      // retries ended without success: Attempt, Err
)

// String returns the kind's name, as used in metric labels.
func (k EventKind) String() string {
	switch k {
	case EventStateChange:
		return "state_change"
	case EventRejected:
		return "rejected"
	case EventRetry:
		return "retry"
	case EventLimitChanged:
		return "limit_changed"
	case EventTimeout:
		return "timeout"
	case EventFallback:
		return "fallback"
	case EventHedge:
		return "hedge"
	case EventRetriesExhausted:
		return "retries_exhausted"
	}
	return "unknown"
}

// Event is something a policy reports to its [Observer]. Only the fields
// that its Kind names are set.
type Event struct {
	Kind EventKind
	// Policy is the name given in the policy's config ("" if none).
	Policy string
	// From and To are breaker states for EventStateChange.
	From, To string
	// Attempt counts attempts (1 is the first) for retries and hedges.
	Attempt int
	// Delay is the backoff before the next attempt.
	Delay time.Duration
	// Limit is the new concurrency limit.
	Limit int
	// Err is the error behind a rejection, retry or fallback.
	Err error
}

// Observer receives policy events. It is called synchronously on the
// goroutine that caused the event, so it must be fast and must not block;
// a nil Observer discards events.
type Observer func(Event)

// Emit calls o(e) when o is not nil.
func (o Observer) Emit(e Event) {
	if o != nil {
		o(e)
	}
}
