package resilience

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Timeout bounds one attempt: the call's context is cancelled when Duration
// has passed, and the error the call then returns is wrapped with
// [ErrTimeout] (and context.DeadlineExceeded). A zero Duration disables it.
//
// Cancellation is cooperative: Go cannot stop a goroutine, so a call that
// ignores its context runs to the end and its result is returned.
type Timeout struct {
	// Duration is the time limit of one attempt.
	Duration time.Duration
	// Name labels the timeout's events.
	Name string
	// Observer receives an EventTimeout for each expiry.
	Observer Observer
}

// Execute runs next with a context that expires after t.Duration.
func (t Timeout) Execute(ctx context.Context, next Next) (any, error) {
	if t.Duration <= 0 {
		return next(ctx)
	}
	tc := newTimeoutContext(ctx, t.Duration)
	v, err := next(tc)
	return v, t.finish(tc, err)
}

func (x *execution[T]) timed(ctx context.Context, i int, s *stage) (T, error) {
	t := &s.timeout
	if t.Duration <= 0 {
		return x.run(ctx, i+1)
	}
	tc := newTimeoutContext(ctx, t.Duration)
	v, err := x.run(tc, i+1)
	return v, t.finish(tc, err)
}

func (t *Timeout) finish(tc *timeoutContext, err error) error {
	expired := tc.finish(err != nil)
	if err == nil || !expired {
		return err
	}
	t.Observer.Emit(Event{Kind: EventTimeout, Policy: t.Name, Err: err})
	return &timeoutError{d: t.Duration, err: err}
}

type timeoutError struct {
	d   time.Duration
	err error
}

func (e *timeoutError) Error() string {
	return "call timed out after " + e.d.String() + ": " + e.err.Error()
}

func (e *timeoutError) Unwrap() []error {
	return []error{ErrTimeout, context.DeadlineExceeded, e.err}
}

// timeoutContext is a context with a deadline that creates its timer only
// when someone waits on Done. Most calls finish without waiting (or wait in
// code that only checks Err), and context.WithTimeout costs a timer, three
// allocations and a lock even then; this costs one allocation and one clock
// read. When Done is called it materializes a real context.WithDeadline,
// so cancellation and propagation to children behave exactly as usual.
type timeoutContext struct {
	context.Context // the parent
	deadline        time.Time
	own             bool // the deadline is ours, not an earlier parent's

	inner atomic.Pointer[innerContext]
	mu    sync.Mutex // guards materialization and finished
	ended bool
}

type innerContext struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func newTimeoutContext(parent context.Context, d time.Duration) *timeoutContext {
	c := &timeoutContext{Context: parent, deadline: time.Now().Add(d), own: true}
	if pd, ok := parent.Deadline(); ok && pd.Before(c.deadline) {
		c.deadline, c.own = pd, false
	}
	return c
}

func (c *timeoutContext) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *timeoutContext) Done() <-chan struct{} { return c.materialize().Done() }

func (c *timeoutContext) Err() error {
	if in := c.inner.Load(); in != nil {
		return in.ctx.Err()
	}
	if err := c.Context.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *timeoutContext) Value(key any) any {
	if in := c.inner.Load(); in != nil {
		return in.ctx.Value(key) // lets context.Cause and children find the real cancelCtx
	}
	return c.Context.Value(key)
}

func (c *timeoutContext) String() string { return "resilience.Timeout" }

func (c *timeoutContext) materialize() context.Context {
	if in := c.inner.Load(); in != nil {
		return in.ctx
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if in := c.inner.Load(); in != nil {
		return in.ctx
	}
	ctx, cancel := context.WithDeadline(c.Context, c.deadline)
	if c.ended {
		cancel() // the call is over: anyone still holding its context sees it done
	}
	c.inner.Store(&innerContext{ctx: ctx, cancel: cancel})
	return ctx
}

// finish ends the context's life when the call returns and, when check is
// set, reports whether our own deadline (not the parent's cancellation) had
// passed; a successful call does not need to know, so it skips the clock.
func (c *timeoutContext) finish(check bool) bool {
	c.mu.Lock()
	c.ended = true
	in := c.inner.Load()
	c.mu.Unlock()
	if in != nil {
		expired := errors.Is(in.ctx.Err(), context.DeadlineExceeded) && c.Context.Err() == nil
		in.cancel()
		return expired && c.own
	}
	return check && c.own && c.Context.Err() == nil && !time.Now().Before(c.deadline)
}
