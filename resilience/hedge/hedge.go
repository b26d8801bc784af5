package hedge

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
)

// ErrLost is the cause (context.Cause) with which a losing attempt's context
// is cancelled once another attempt has succeeded.
var ErrLost = errors.New("hedge: another attempt won")

// Budget is what the hedge needs of a retry budget shared with retries:
// retry.RateBudget and retry.ConcurrencyBudget implement it. A hedge is sent
// only when TryRetry allows it, and RetryDone is called when that hedged
// attempt ends; Request and Done bracket each execution (see
// [Config.SkipRequestCounting]).
type Budget interface {
	// Request records the start of an execution.
	Request()
	// Done records the end of an execution started with Request.
	Done()
	// TryRetry reserves one hedge and reports whether the budget allowed it.
	TryRetry() bool
	// RetryDone releases a hedge that TryRetry allowed, once it has ended.
	RetryDone()
}

// Defaults of [Config].
const (
	DefaultDelay      = 50 * time.Millisecond
	DefaultQuantile   = 0.95
	DefaultMinSamples = 50
	DefaultWindow     = 256
	DefaultMaxHedges  = 1
	maxMaxHedges      = 16
)

// Config configures a [Policy]. The zero value sends one hedge after a
// fixed 50 ms without a response, with no budget.
type Config struct {
	// Name labels the policy's events.
	Name string
	// Delay is how long to wait for a response before each hedge; default
	// 50 ms. With Adaptive it is the delay used until enough latencies
	// have been observed. Must not be negative.
	Delay time.Duration
	// Adaptive makes the delay the Quantile of recent attempt latencies
	// (failsafe-go's delay quantile; Dean and Barroso's "The Tail at
	// Scale" hedges at the 95th percentile). Default false: fixed Delay.
	Adaptive bool
	// Quantile is the latency quantile an adaptive hedge waits for, in
	// (0, 1); default 0.95.
	Quantile float64
	// MinSamples is the number of latencies an adaptive hedge needs
	// before it trusts their quantile; default 50. At most Window.
	MinSamples int
	// Window is the number of recent latencies an adaptive hedge keeps;
	// default 256.
	Window int
	// MaxHedges is the number of extra attempts, each sent Delay after the
	// previous one; default 1, at most 16.
	MaxHedges int
	// Budget, when set, must allow each hedge (TryRetry); a spent budget
	// means no hedge, never an error. Share it with the retry policy so
	// that retries and hedges together stay within it. Default nil:
	// unlimited.
	Budget Budget
	// SkipRequestCounting stops the hedge calling Budget.Request and Done.
	// Set it when a retry policy outside this hedge shares the Budget: the
	// retry already counts the execution once, and counting each attempt
	// again would inflate the budget. Default false.
	SkipRequestCounting bool
	// Observer receives an EventHedge (Attempt: 2 for the first hedge)
	// each time a hedge is sent.
	Observer resilience.Observer
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Delay < 0:
		return fmt.Errorf("hedge: delay %v: must not be negative", c.Delay)
	case c.Quantile < 0 || c.Quantile >= 1 || math.IsNaN(c.Quantile):
		return fmt.Errorf("hedge: quantile %v: must be in (0, 1)", c.Quantile)
	case c.MinSamples < 0 || c.Window < 0:
		return fmt.Errorf("hedge: min samples %d and window %d must not be negative", c.MinSamples, c.Window)
	case c.MaxHedges < 0 || c.MaxHedges > maxMaxHedges:
		return fmt.Errorf("hedge: max hedges %d: must be in [0, %d]", c.MaxHedges, maxMaxHedges)
	}
	d := c.withDefaults()
	if d.MinSamples > d.Window {
		return fmt.Errorf("hedge: min samples %d exceeds window %d", d.MinSamples, d.Window)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Delay == 0 {
		c.Delay = DefaultDelay
	}
	if c.Quantile == 0 {
		c.Quantile = DefaultQuantile
	}
	if c.MinSamples == 0 {
		c.MinSamples = DefaultMinSamples
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.MaxHedges == 0 {
		c.MaxHedges = DefaultMaxHedges
	}
	return c
}

// Policy sends hedged attempts. It implements [resilience.Policy] and is
// safe for concurrent use.
type Policy struct {
	name          string
	delay         time.Duration
	maxHedges     int
	budget        Budget
	countRequests bool
	observer      resilience.Observer
	lat           *LatencyQuantile // nil unless adaptive
}

// New returns a hedging policy configured by cfg.
func New(cfg Config) (*Policy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	p := &Policy{
		name:          c.Name,
		delay:         c.Delay,
		maxHedges:     c.MaxHedges,
		budget:        c.Budget,
		countRequests: c.Budget != nil && !c.SkipRequestCounting,
		observer:      c.Observer,
	}
	if c.Adaptive {
		p.lat = NewLatencyQuantile(c.Window, c.MinSamples, c.Quantile)
	}
	return p, nil
}

// Delay returns how long the next execution will wait before hedging: the
// observed quantile when adaptive and warmed up, the configured Delay
// otherwise.
func (p *Policy) Delay() time.Duration {
	if p.lat != nil {
		if d, ok := p.lat.Value(); ok {
			return d
		}
	}
	return p.delay
}

// Execute runs next at once and, each Delay without a response, again in
// parallel, up to MaxHedges more times. The first success is returned and
// the other attempts' contexts are cancelled with cause [ErrLost]. When
// every attempt sent has failed, Execute returns the first error received
// (the others are dropped: they are usually the same failure, and a
// joined error would make an outer retry see, say, one attempt's
// rejection as the whole call's). A failure does not trigger a hedge:
// hedging is for latency, and errors are the retry policy's business.
//
// Every attempt runs in its own goroutine with its own child context, and
// every one of those contexts is cancelled when Execute returns. An
// attempt that ignores its context runs to completion after Execute has
// returned; it is owned by the call, never blocks (its result goes to a
// buffered channel) and then exits. Once the caller's context is done no
// hedge is sent, but Execute still waits for a result: like the rest of
// the pipeline, it never abandons every attempt of a call. As with
// [resilience.Timeout], the winner's context is cancelled when Execute
// returns, so read a response body inside next.
func (p *Policy) Execute(ctx context.Context, next resilience.Next) (any, error) {
	if p.countRequests {
		p.budget.Request()
		defer p.budget.Done()
	}
	c := &call{p: p, next: next, ctx: ctx, results: make(chan result, p.maxHedges+1)}
	c.cancels = c.buf[:0]
	defer c.end()
	c.launch(false)
	return c.wait()
}

// call is one execution: the attempts in flight and how to stop them.
type call struct {
	p       *Policy
	next    resilience.Next
	ctx     context.Context // the caller's: parent of every attempt's context
	results chan result     // buffered for every attempt: senders never block
	cancels []context.CancelCauseFunc
	buf     [2]context.CancelCauseFunc // cancels' storage for the default MaxHedges
	over    atomic.Bool                // Execute has returned
}

// end runs when Execute returns: it ends every attempt's context, the
// winner's included (its cancel would otherwise keep it registered with the
// caller's context), without resetting the losers' cause.
func (c *call) end() {
	c.over.Store(true)
	for _, cancel := range c.cancels {
		cancel(context.Canceled)
	}
}

type result struct {
	v        any
	err      error
	n        int // the attempt's index, 0 for the first
	panicked bool
	panicVal any
}

// launch starts attempt len(c.cancels) in its own goroutine.
func (c *call) launch(hedged bool) {
	n := len(c.cancels)
	actx, cancel := context.WithCancelCause(c.ctx)
	c.cancels = append(c.cancels, cancel)
	go c.attempt(actx, n, hedged)
}

func (c *call) attempt(ctx context.Context, n int, hedged bool) {
	var start time.Time
	if c.p.lat != nil {
		start = time.Now()
	}
	r := result{n: n}
	defer func() {
		if hedged && c.p.budget != nil {
			c.p.budget.RetryDone() // before the result, so a hedge that decided the call is returned by then
		}
		if v := recover(); v != nil {
			if c.over.Load() {
				panic(v) // nobody is waiting to re-panic it: fail loudly, as without hedging
			}
			r.panicked, r.panicVal = true, v
		}
		c.results <- r
	}()
	r.v, r.err = c.next(ctx)
	if r.err == nil && c.p.lat != nil {
		c.p.lat.Record(time.Since(start))
	}
}

// wait collects results and sends hedges until one attempt succeeds or
// all that were sent have failed.
func (c *call) wait() (any, error) {
	delay := c.p.Delay()
	timer := time.NewTimer(delay)
	defer timer.Stop()
	pending, hedging := 1, true
	var first result
	failed := false
	for {
		var tick <-chan time.Time
		if hedging {
			tick = timer.C
		}
		select {
		case r := <-c.results:
			pending--
			switch {
			case r.panicked:
				panic(r.panicVal) // on the caller's goroutine, where the pipeline's guards see it
			case r.err == nil:
				c.cancelLosers(r.n)
				return r.v, nil
			case !failed:
				first, failed = r, true
			}
			if pending == 0 {
				return first.v, first.err
			}
		case <-tick:
			if !c.hedge() {
				hedging = false
				continue
			}
			pending++
			if hedging = len(c.cancels) <= c.p.maxHedges; hedging {
				timer.Reset(delay)
			}
		}
	}
}

// hedge sends one more attempt if the caller is still waiting and the
// budget allows it.
func (c *call) hedge() bool {
	if c.ctx.Err() != nil {
		return false
	}
	if c.p.budget != nil && !c.p.budget.TryRetry() {
		return false
	}
	c.p.observer.Emit(resilience.Event{Kind: resilience.EventHedge, Policy: c.p.name, Attempt: len(c.cancels) + 1})
	c.launch(true)
	return true
}

func (c *call) cancelLosers(winner int) {
	for i, cancel := range c.cancels {
		if i != winner {
			cancel(ErrLost)
		}
	}
}
