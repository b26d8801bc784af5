package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
)

// ErrLimited is wrapped by every rejection of a [Limiter] or [Keyed]. It
// wraps [resilience.ErrRejected].
var ErrLimited = fmt.Errorf("rate limit exceeded: %w", resilience.ErrRejected)

// Preallocated rejections, so that rejecting allocates nothing.
var (
	errLimited = fmt.Errorf("ratelimit: %w", ErrLimited)
	errTooLong = fmt.Errorf("ratelimit: next token later than MaxWait or the deadline: %w", ErrLimited)
	errInvalid = errors.New("ratelimit: invalid config")
)

// Config configures [New]. The zero value allows 100 calls per second with
// bursts of 100, rejecting beyond that.
type Config struct {
	// Name labels the limiter's events.
	Name string
	// Rate is the sustained rate in calls per second; default 100. At most
	// 1e9 (one per nanosecond).
	Rate float64
	// Burst is how many calls may start at once after an idle period (the
	// bucket's size); default max(1, ⌊Rate⌋), one second's worth.
	Burst int
	// MaxWait is how long a call may wait for its token; 0 (the default)
	// rejects at once when the bucket is empty.
	MaxWait time.Duration
	// Observer receives an EventRejected for each rejection.
	Observer resilience.Observer
}

// Validate reports whether the config is usable.
func (c Config) Validate() error {
	switch {
	case c.Rate < 0 || c.Rate > 1e9 || math.IsNaN(c.Rate):
		return fmt.Errorf("%w: Rate %v outside [0, 1e9]", errInvalid, c.Rate)
	case c.Burst < 0 || c.MaxWait < 0:
		return fmt.Errorf("%w: negative Burst or MaxWait", errInvalid)
	}
	return nil
}

// gcra holds the parameters shared by [Limiter] and [Keyed]: the emission
// interval T = 1/Rate and the burst tolerance tau = Burst·T, in nanoseconds.
type gcra struct {
	interval int64
	tau      int64
	maxWait  int64
	name     string
	obs      resilience.Observer
}

func newGCRA(cfg Config) (gcra, error) {
	if err := cfg.Validate(); err != nil {
		return gcra{}, err
	}
	if cfg.Rate == 0 {
		cfg.Rate = 100
	}
	if cfg.Burst == 0 {
		cfg.Burst = max(1, int(cfg.Rate))
	}
	interval := int64(math.Round(float64(time.Second) / cfg.Rate))
	return gcra{
		interval: max(1, interval),
		tau:      int64(cfg.Burst) * max(1, interval),
		maxWait:  int64(cfg.MaxWait),
		name:     cfg.Name,
		obs:      cfg.Observer,
	}, nil
}

// next computes, for a bucket whose theoretical arrival time is tat, the
// new tat if one more call is admitted at now and how long that call must
// wait for its token (≤ 0: none).
func (g *gcra) next(tat, now int64) (newTAT, wait int64) {
	newTAT = max(tat, now) + g.interval
	return newTAT, newTAT - g.tau - now
}

func (g *gcra) reject(err error) error {
	g.obs.Emit(resilience.Event{Kind: resilience.EventRejected, Policy: g.name, Err: err})
	return err
}

// budget is how long a call may wait: MaxWait, cut to ctx's deadline.
func (g *gcra) budget(ctx context.Context, start time.Time, now int64) int64 {
	b := g.maxWait
	if b > 0 {
		if d, ok := ctx.Deadline(); ok {
			b = max(0, min(b, int64(d.Sub(start))-now))
		}
	}
	return b
}

// sleep waits d nanoseconds or until ctx ends.
func sleep(ctx context.Context, d int64) error {
	t := time.NewTimer(time.Duration(d))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ratelimit: gave up waiting for a token: %w: %w", ErrLimited, context.Cause(ctx))
	}
}

// Limiter is a token bucket implemented as GCRA on one atomic word. It is a
// [resilience.Guard] and safe for concurrent use.
type Limiter struct {
	_     [64]byte
	tat   atomic.Int64 // theoretical arrival time, ns since start
	_     [56]byte
	start time.Time // monotonic origin of tat
	g     gcra
}

// New returns a limiter for cfg; its bucket starts full.
func New(cfg Config) (*Limiter, error) {
	g, err := newGCRA(cfg)
	if err != nil {
		return nil, err
	}
	return &Limiter{start: time.Now(), g: g}, nil
}

// now reads the monotonic clock only (time.Since of a monotonic time skips
// the wall clock), in ns since the limiter was made.
func (l *Limiter) now() int64 { return int64(time.Since(l.start)) }

// reserve takes a token if one is free now or within budget ns; it returns
// the wait and whether the token was taken.
func (l *Limiter) reserve(now, budget int64) (int64, int64, bool) {
	for {
		old := l.tat.Load()
		tat, wait := l.g.next(old, now)
		if wait > budget {
			return 0, wait, false
		}
		if l.tat.CompareAndSwap(old, tat) {
			return tat, wait, true
		}
	}
}

// Allow reports whether a call may start now, and if so takes its token.
func (l *Limiter) Allow() bool {
	_, _, ok := l.reserve(l.now(), 0)
	return ok
}

// Wait takes a token, waiting for it up to MaxWait (and ctx's deadline).
// It returns an error wrapping [ErrLimited] when the token would come too
// late; then it waits not at all.
func (l *Limiter) Wait(ctx context.Context) error {
	now := l.now()
	tat, wait, ok := l.reserve(now, l.g.budget(ctx, l.start, now))
	if !ok {
		if l.g.maxWait <= 0 {
			return l.g.reject(errLimited)
		}
		return l.g.reject(errTooLong)
	}
	if wait <= 0 {
		return nil
	}
	if err := sleep(ctx, wait); err != nil {
		// Give the token back if nobody reserved after us (best effort).
		l.tat.CompareAndSwap(tat, tat-l.g.interval)
		return err
	}
	return nil
}

// Admit implements [resilience.Guard]. The permit's Release does nothing.
func (l *Limiter) Admit(ctx context.Context) (resilience.Permit, error) {
	if l.Allow() {
		return resilience.Permit{}, nil
	}
	if l.g.maxWait <= 0 {
		return resilience.Permit{}, l.g.reject(errLimited)
	}
	return resilience.Permit{}, l.Wait(ctx)
}

// Release implements [resilience.Releaser]; a rate limiter ignores outcomes.
func (l *Limiter) Release(uint64, resilience.Outcome) {}

// Execute runs next once a token is taken: the general [resilience.Policy]
// path.
func (l *Limiter) Execute(ctx context.Context, next resilience.Next) (any, error) {
	if _, err := l.Admit(ctx); err != nil {
		return nil, err
	}
	return next(ctx)
}

// Tokens returns the tokens available now (possibly fractional; negative
// when callers are waiting for reserved tokens).
func (l *Limiter) Tokens() float64 {
	now := l.now()
	tat := max(l.tat.Load(), now)
	return float64(l.g.tau-(tat-now)) / float64(l.g.interval)
}
