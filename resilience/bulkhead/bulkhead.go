package bulkhead

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
)

// ErrFull is wrapped by every rejection of a [Bulkhead]. It wraps
// [resilience.ErrRejected].
var ErrFull = fmt.Errorf("bulkhead full: %w", resilience.ErrRejected)

// Preallocated rejections, so that rejecting under overload allocates
// nothing.
var (
	errFull        = fmt.Errorf("bulkhead: %w", ErrFull)
	errQueueFull   = fmt.Errorf("bulkhead: wait queue full: %w", ErrFull)
	errWaitTimeout = fmt.Errorf("bulkhead: no slot within MaxWait: %w", ErrFull)
	errInvalid     = errors.New("bulkhead: invalid config")
)

// Config configures [New]. The zero value admits 25 concurrent calls and
// rejects the 26th at once.
type Config struct {
	// Name labels the bulkhead's events.
	Name string
	// MaxConcurrent is the number of calls allowed in flight; default 25
	// (Resilience4j's default).
	MaxConcurrent int
	// MaxWait is how long a caller may wait for a slot when all are taken;
	// 0 (the default) rejects at once.
	MaxWait time.Duration
	// MaxQueue bounds the callers waiting when MaxWait > 0; default
	// MaxConcurrent.
	MaxQueue int
	// Observer receives an EventRejected for each rejection.
	Observer resilience.Observer
}

// Validate reports whether the config is usable.
func (c Config) Validate() error {
	if c.MaxConcurrent < 0 || c.MaxWait < 0 || c.MaxQueue < 0 {
		return fmt.Errorf("%w: MaxConcurrent, MaxWait and MaxQueue must not be negative", errInvalid)
	}
	return nil
}

// Bulkhead admits at most MaxConcurrent calls at a time. It is a
// [resilience.Guard] and safe for concurrent use.
type Bulkhead struct {
	_        [64]byte
	inflight atomic.Int64 // the only word the fast path writes
	_        [56]byte
	waiters  atomic.Int64 // read on every release; written only when full

	name     string
	obs      resilience.Observer
	max      int64
	maxWait  time.Duration
	maxQueue int

	mu      sync.Mutex
	queue   []*waiter // FIFO
	waiterP sync.Pool
}

type waiter struct{ ch chan struct{} }

// New returns a bulkhead for cfg.
func New(cfg Config) (*Bulkhead, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = 25
	}
	if cfg.MaxQueue == 0 {
		cfg.MaxQueue = cfg.MaxConcurrent
	}
	b := &Bulkhead{
		name: cfg.Name, obs: cfg.Observer, max: int64(cfg.MaxConcurrent),
		maxWait: cfg.MaxWait, maxQueue: cfg.MaxQueue,
	}
	b.waiterP.New = func() any { return &waiter{ch: make(chan struct{}, 1)} }
	return b, nil
}

// tryAcquire takes a slot if one is free. It adds first and undoes on
// overshoot: one atomic read-modify-write on the success path.
func (b *Bulkhead) tryAcquire() bool {
	if b.inflight.Add(1) <= b.max {
		return true
	}
	b.inflight.Add(-1)
	return false
}

// Admit implements [resilience.Guard]: it takes a slot, waiting for one up
// to MaxWait when configured. Waiters are served in arrival order, and a
// newcomer does not overtake them.
func (b *Bulkhead) Admit(ctx context.Context) (resilience.Permit, error) {
	if b.waiters.Load() == 0 && b.tryAcquire() {
		return resilience.NewPermit(b, 0), nil
	}
	if b.maxWait <= 0 {
		return resilience.Permit{}, b.reject(errFull)
	}
	if err := b.wait(ctx); err != nil {
		return resilience.Permit{}, err
	}
	return resilience.NewPermit(b, 0), nil
}

// Release implements [resilience.Releaser]: it frees the slot, handing it
// to the longest waiter if there is one.
func (b *Bulkhead) Release(uint64, resilience.Outcome) {
	b.inflight.Add(-1)
	if b.waiters.Load() > 0 {
		b.mu.Lock()
		b.drainLocked()
		b.mu.Unlock()
	}
}

func (b *Bulkhead) reject(err error) error {
	b.obs.Emit(resilience.Event{Kind: resilience.EventRejected, Policy: b.name, Err: err})
	return err
}

// wait queues the caller. Queueing and draining happen under one lock, and
// the waiter count is raised before the drain, so a slot released while we
// queue is never missed: the releaser either sees the waiter and drains,
// or released before our own drain looks.
func (b *Bulkhead) wait(ctx context.Context) error {
	if ctx.Err() != nil {
		return fmt.Errorf("bulkhead: not waiting for a slot: %w: %w", ErrFull, context.Cause(ctx))
	}
	w := b.waiterP.Get().(*waiter)
	b.mu.Lock()
	if len(b.queue) >= b.maxQueue {
		b.mu.Unlock()
		b.waiterP.Put(w)
		return b.reject(errQueueFull)
	}
	b.queue = append(b.queue, w)
	b.waiters.Add(1)
	b.drainLocked()
	b.mu.Unlock()

	t := time.NewTimer(b.maxWait)
	defer t.Stop()
	select {
	case <-w.ch:
		b.waiterP.Put(w)
		return nil
	case <-t.C:
		return b.abandon(w, b.reject(errWaitTimeout))
	case <-ctx.Done():
		return b.abandon(w, fmt.Errorf("bulkhead: gave up waiting for a slot: %w: %w", ErrFull, context.Cause(ctx)))
	}
}

// abandon takes w out of the queue; a slot granted meanwhile is released.
func (b *Bulkhead) abandon(w *waiter, err error) error {
	b.mu.Lock()
	i := slices.Index(b.queue, w)
	if i >= 0 {
		b.queue = slices.Delete(b.queue, i, i+1)
		b.waiters.Add(-1)
	}
	b.mu.Unlock()
	if i < 0 {
		<-w.ch
		b.Release(0, resilience.Outcome{})
	}
	b.waiterP.Put(w)
	return err
}

// drainLocked hands free slots to waiters, oldest first.
func (b *Bulkhead) drainLocked() {
	for len(b.queue) > 0 && b.tryAcquire() {
		w := b.queue[0]
		b.queue = slices.Delete(b.queue, 0, 1)
		b.waiters.Add(-1)
		w.ch <- struct{}{}
	}
}

// Execute runs next in a slot: the general [resilience.Policy] path.
func (b *Bulkhead) Execute(ctx context.Context, next resilience.Next) (any, error) {
	p, err := b.Admit(ctx)
	if err != nil {
		return nil, err
	}
	defer p.Release(resilience.Outcome{})
	return next(ctx)
}

// Snapshot is a point-in-time view of a [Bulkhead].
type Snapshot struct {
	MaxConcurrent int // the configured cap
	Inflight      int // calls holding a slot
	Queued        int // callers waiting for one
}

// Snapshot returns the bulkhead's current state.
func (b *Bulkhead) Snapshot() Snapshot {
	// A failed fast-path add may briefly count one over the cap; clamp it.
	return Snapshot{MaxConcurrent: int(b.max), Inflight: int(min(b.inflight.Load(), b.max)), Queued: int(b.waiters.Load())}
}

var (
	_ resilience.Guard    = (*Bulkhead)(nil)
	_ resilience.Releaser = (*Bulkhead)(nil)
)
