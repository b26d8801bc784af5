package retry

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Budget caps retries across every caller that shares it, so that a
// failing callee sees a bounded amount of extra load instead of a retry
// storm (each layer of a call graph that retries 3 times multiplies the
// load by 3). A spent budget never blocks: the caller just does not retry.
//
// The protocol, for one execution:
//
//	Request()              once when the execution starts
//	TryRetry() → RetryDone()   around each retry (or hedge) that TryRetry allowed
//	Done()                 once when the execution ends
//
// [hedge] declares an interface with the same method set, so one budget can
// be shared by retries and hedges. Implementations must be safe for
// concurrent use, and Request and Done must be cheap: they are on the
// success path of every call.
//
// [hedge]: https://pkg.go.dev/github.com/bulwark-go/bulwark/resilience/hedge
type Budget interface {
	// Request records the start of an execution.
	Request()
	// Done records the end of an execution started with Request.
	Done()
	// TryRetry reserves one retry and reports whether the budget allowed it.
	TryRetry() bool
	// RetryDone releases a retry that TryRetry allowed, once it has ended.
	RetryDone()
}

// RateBudgetConfig configures a [RateBudget]. The zero value is Finagle's
// default: 20% of recent requests plus 10 retries per second, over 10 s.
type RateBudgetConfig struct {
	// Ratio is how many retries each request earns; default 0.2 (retries
	// may add 20% to the load). Must not be negative.
	Ratio float64
	// MinPerSecond is a reserve of retries per second that low-traffic
	// callers may always spend; default 10. Set a negative value for no
	// reserve.
	MinPerSecond float64
	// TTL is how long a request's deposit (and a retry's withdrawal) counts;
	// default 10 s. Must be between 100 ms and 1 h.
	TTL time.Duration
}

// Rate budget defaults (Finagle's RetryBudget).
const (
	DefaultRatio        = 0.2
	DefaultMinPerSecond = 10.0
	DefaultTTL          = 10 * time.Second
)

// Validate reports the first invalid field.
func (c RateBudgetConfig) Validate() error {
	switch {
	case c.Ratio < 0 || math.IsNaN(c.Ratio) || math.IsInf(c.Ratio, 0):
		return fmt.Errorf("retry: rate budget ratio %v: must be a non-negative number", c.Ratio)
	case math.IsNaN(c.MinPerSecond) || math.IsInf(c.MinPerSecond, 0):
		return fmt.Errorf("retry: rate budget min per second %v: must be a number", c.MinPerSecond)
	case c.TTL != 0 && (c.TTL < 100*time.Millisecond || c.TTL > time.Hour):
		return fmt.Errorf("retry: rate budget ttl %v: must be between 100ms and 1h", c.TTL)
	}
	return nil
}

// slices is how many time slices a RateBudget's window has: deposits
// expire one slice (TTL/10) at a time.
const slices = 10

// rollEvery is how many deposits go into a slice between two clock reads
// on the deposit path; a power of two.
const rollEvery = 32

// RateBudget is a retry budget of the rate family (Finagle's RetryBudget,
// tower's Budget, gRPC's retryThrottling in spirit): within any TTL, the
// retries spent may not exceed Ratio times the requests seen plus
// MinPerSecond·TTL. It is a token bucket whose deposits expire.
//
// The deposit path (Request) is one atomic add and, every 32 deposits, a
// clock read; it takes no lock and never waits (the window is advanced by
// whoever gets the lock, with TryLock). The price is precision: the
// deposits made since the window last moved (fewer than 32, or the window
// would have moved) are dated from that move, or from the next one if the
// window moved a whole TTL on. So up to 31 deposits may expire early, or
// count up to one quiet spell too long: at most 31·Ratio retries, small
// next to the MinPerSecond reserve. Withdrawals are dated exactly.
//
// Done and RetryDone do nothing: the rate family does not track
// concurrency.
type RateBudget struct {
	ratio   float64
	reserve float64 // MinPerSecond·TTL
	slice   time.Duration
	origin  time.Time // epochs count slices since origin

	cur atomic.Uint32 // index of the current slice

	mu      sync.Mutex // guards epoch, retries and the zeroing of slices
	epoch   int64      // epoch of the current slice
	buckets [slices]rateSlice
}

type rateSlice struct {
	requests atomic.Int64
	retries  int64 // guarded by RateBudget.mu
	_        [48]byte
}

// NewRateBudget returns a rate budget configured by cfg.
func NewRateBudget(cfg RateBudgetConfig) (*RateBudget, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Ratio == 0 {
		cfg.Ratio = DefaultRatio
	}
	if cfg.MinPerSecond == 0 {
		cfg.MinPerSecond = DefaultMinPerSecond
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	return &RateBudget{
		ratio:   cfg.Ratio,
		reserve: max(cfg.MinPerSecond, 0) * cfg.TTL.Seconds(),
		slice:   cfg.TTL / slices,
		origin:  time.Now(),
	}, nil
}

// Request deposits one request's worth of retries.
func (b *RateBudget) Request() {
	s := &b.buckets[b.cur.Load()]
	if s.requests.Add(1)&(rollEvery-1) == 0 && b.mu.TryLock() {
		b.advance(time.Now())
		b.mu.Unlock()
	}
}

// Done does nothing; it completes the [Budget] protocol.
func (b *RateBudget) Done() {}

// TryRetry withdraws one retry if the window's balance allows it.
func (b *RateBudget) TryRetry() bool {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance(now)
	if b.balance() < 1 {
		return false
	}
	b.buckets[b.cur.Load()].retries++
	return true
}

// RetryDone does nothing; it completes the [Budget] protocol.
func (b *RateBudget) RetryDone() {}

// Available returns how many retries the budget would allow now.
func (b *RateBudget) Available() int {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance(now)
	return int(max(b.balance(), 0))
}

// balance returns the retries left in the window; b.mu must be held.
func (b *RateBudget) balance() float64 {
	var requests, retries int64
	for i := range b.buckets {
		requests += b.buckets[i].requests.Load()
		retries += b.buckets[i].retries
	}
	return b.ratio*float64(requests) + b.reserve - float64(retries)
}

// advance moves the window to now, emptying the slices that expired;
// b.mu must be held. Slice i holds the epochs congruent to i modulo slices.
func (b *RateBudget) advance(now time.Time) {
	e := int64(now.Sub(b.origin) / b.slice)
	if e <= b.epoch {
		return
	}
	// The current slice holds the deposits made since the window last
	// moved. If it is about to expire, they move to the new slice rather
	// than being lost: they may be recent (see the type's doc).
	var carried int64
	if e-b.epoch >= slices {
		carried = b.buckets[b.epoch%slices].requests.Load()
	}
	from := max(b.epoch+1, e-slices+1)
	for k := from; k <= e; k++ {
		s := &b.buckets[k%slices]
		s.requests.Store(0) // a deposit racing with this is lost: harmless
		s.retries = 0
	}
	b.buckets[e%slices].requests.Add(carried)
	b.epoch = e
	b.cur.Store(uint32(e % slices))
}

// ConcurrencyBudgetConfig configures a [ConcurrencyBudget]. The zero value
// is Envoy's default: 20% of active requests, never below 3.
type ConcurrencyBudgetConfig struct {
	// Percent is the share of active requests that may be retrying at
	// once, in percent; default 20. Must be in [0, 100].
	Percent float64
	// MinConcurrency is the number of concurrent retries always allowed;
	// default 3. Must not be negative.
	MinConcurrency int
}

// Concurrency budget defaults (Envoy's retry_budget).
const (
	DefaultPercent        = 20.0
	DefaultMinConcurrency = 3
)

// Validate reports the first invalid field.
func (c ConcurrencyBudgetConfig) Validate() error {
	switch {
	case c.Percent < 0 || c.Percent > 100 || math.IsNaN(c.Percent):
		return fmt.Errorf("retry: concurrency budget percent %v: must be in [0, 100]", c.Percent)
	case c.MinConcurrency < 0:
		return fmt.Errorf("retry: concurrency budget min concurrency %d: must not be negative", c.MinConcurrency)
	}
	return nil
}

// ConcurrencyBudget is a retry budget of the concurrency family (Envoy's
// retry_budget, failsafe-go's budget): the retries in progress may not
// exceed Percent of the executions in progress, and are always allowed up
// to MinConcurrency. A retry is in progress from TryRetry, through its
// backoff, to RetryDone.
//
// Every method is one or two atomic operations; none takes a lock.
type ConcurrencyBudget struct {
	share float64 // Percent/100
	min   int64

	active  atomic.Int64
	_       [56]byte // keep the hot request counter off the retry counter's line
	retries atomic.Int64
}

// NewConcurrencyBudget returns a concurrency budget configured by cfg.
func NewConcurrencyBudget(cfg ConcurrencyBudgetConfig) (*ConcurrencyBudget, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Percent == 0 {
		cfg.Percent = DefaultPercent
	}
	if cfg.MinConcurrency == 0 {
		cfg.MinConcurrency = DefaultMinConcurrency
	}
	return &ConcurrencyBudget{share: cfg.Percent / 100, min: int64(cfg.MinConcurrency)}, nil
}

// Request counts an execution as active.
func (b *ConcurrencyBudget) Request() { b.active.Add(1) }

// Done counts an execution as ended.
func (b *ConcurrencyBudget) Done() { b.active.Add(-1) }

// TryRetry counts a retry as active if the budget allows one more.
func (b *ConcurrencyBudget) TryRetry() bool {
	for {
		r := b.retries.Load()
		if r >= b.limit() {
			return false
		}
		if b.retries.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

// RetryDone counts a retry as ended.
func (b *ConcurrencyBudget) RetryDone() { b.retries.Add(-1) }

// Available returns how many more retries the budget would allow now.
func (b *ConcurrencyBudget) Available() int {
	return int(max(b.limit()-b.retries.Load(), 0))
}

func (b *ConcurrencyBudget) limit() int64 {
	return max(b.min, int64(b.share*float64(b.active.Load())))
}
