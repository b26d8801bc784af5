package limit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
)

// ErrLimited is wrapped by every rejection of a [Limiter]. It wraps
// [resilience.ErrRejected].
var ErrLimited = fmt.Errorf("concurrency limit reached: %w", resilience.ErrRejected)

// Preallocated rejections: rejecting is the overload path, and allocating
// there would make overload worse.
var (
	errAtLimit     = fmt.Errorf("limit: %w", ErrLimited)
	errQueueFull   = fmt.Errorf("limit: wait queue full: %w", ErrLimited)
	errWaitTimeout = fmt.Errorf("limit: no slot within MaxWait: %w", ErrLimited)
	errPanicked    = errors.New("limit: call panicked")
)

// Order is the order in which queued callers get freed slots.
type Order uint8

// The queue orders.
const (
	// FIFO serves the longest waiter first: fair, but under sustained
	// overload every waiter waits nearly MaxWait.
	FIFO Order = iota
	// LIFO serves the newest waiter first (Netflix LifoBlockingLimiter):
	// under overload the old waiters time out and the new ones, whose
	// callers are still waiting for an answer, get through quickly.
	LIFO
)

// Partition reserves a share of the limit for one class of traffic.
type Partition struct {
	// Name selects the partition ([Limiter.AcquirePartition], [WithPartition]).
	Name string
	// Share is the fraction of the limit guaranteed to the partition, in
	// (0, 1]; shares must sum to at most 1.
	Share float64
}

// Config configures [New]. The zero value is a Vegas limiter with Netflix's
// default windowing and no queue.
type Config struct {
	// Name labels the limiter's events.
	Name string
	// Algorithm computes the limit; nil means NewVegas(VegasConfig{}), the
	// Java library's default. It must not be shared with another Limiter.
	Algorithm Algorithm
	// MinRTT is the RTT below which a sample is ignored (too fast to say
	// anything about queueing: a cache hit, an early error); default
	// 100 µs, negative means no threshold.
	MinRTT time.Duration
	// MinWindow and MaxWindow bound a sampling window, whose length is
	// 2·(the window's minimum RTT); both default to 1 s.
	MinWindow, MaxWindow time.Duration
	// WindowSize is the fewest samples a window needs; default 10.
	WindowSize int
	// MaxWait is how long a caller may wait for a slot; 0 (the default)
	// rejects at once when the limit is reached.
	MaxWait time.Duration
	// MaxQueue bounds the number of waiting callers when MaxWait > 0;
	// default 100.
	MaxQueue int
	// Order is the queue's order; default FIFO.
	Order Order
	// Partitions split the limit between traffic classes (for example live
	// 0.9 and batch 0.1). A partition may exceed its share only while the
	// total in flight is below the limit, as in Netflix's
	// AbstractPartitionedLimiter; calls naming no known partition are
	// admitted only below the limit. None by default.
	Partitions []Partition
	// Observer receives EventLimitChanged and EventRejected.
	Observer resilience.Observer
}

// Validate reports whether the config is usable.
func (c Config) Validate() error {
	switch {
	case c.MinWindow < 0 || c.MaxWindow < 0 || (c.MinWindow > 0 && c.MaxWindow > 0 && c.MaxWindow < c.MinWindow):
		return fmt.Errorf("%w: need 0 < MinWindow ≤ MaxWindow", errInvalid)
	case c.WindowSize < 0:
		return fmt.Errorf("%w: negative WindowSize", errInvalid)
	case c.MaxWait < 0 || c.MaxQueue < 0:
		return fmt.Errorf("%w: negative MaxWait or MaxQueue", errInvalid)
	case c.Order > LIFO:
		return fmt.Errorf("%w: unknown Order %d", errInvalid, c.Order)
	case len(c.Partitions) > math.MaxUint16:
		return fmt.Errorf("%w: too many partitions", errInvalid)
	}
	sum := 0.0
	seen := make(map[string]bool, len(c.Partitions))
	for _, p := range c.Partitions {
		if p.Name == "" || seen[p.Name] {
			return fmt.Errorf("%w: partition names must be unique and not empty (%q)", errInvalid, p.Name)
		}
		if !(p.Share > 0 && p.Share <= 1) {
			return fmt.Errorf("%w: partition %q: Share %v outside (0, 1]", errInvalid, p.Name, p.Share)
		}
		seen[p.Name] = true
		sum += p.Share
	}
	if sum > 1+1e-9 {
		return fmt.Errorf("%w: partition shares sum to %v > 1", errInvalid, sum)
	}
	return nil
}

// Window accounting: a stripe's sample count and RTT sum (in microseconds)
// share one word, so recording a sample is one atomic add and the two never
// disagree.
const (
	stripes    = 8
	countBits  = 24
	countMask  = 1<<countBits - 1
	forceCount = 1 << 22 // close a window this full whatever the clock says
	// A release checks whether the window has ended when its stripe's
	// count reaches firstCheck and then every 2^k samples, where k is chosen
	// at each window's close, from that window's sample rate, to give about
	// checksPerWindow checks per window, within [0, maxCheckShift]. Checking reads the clock (and takes
	// the updater's TryLock), which costs more than the rest of the release,
	// so at high rates almost no release pays for it; at low rates every
	// release may, which costs nothing that matters. The price is that a
	// window may run about 1/checksPerWindow of its length past its end, or
	// up to stripes·2^maxCheckShift samples after a sudden drop in traffic.
	initialCheckShift = 3
	maxCheckShift     = 6
	checksPerWindow   = 16
)

type stripe struct {
	v atomic.Uint64 // count | sumµs<<countBits
	_ [56]byte
}

// Limiter caps the calls in flight at a limit that an [Algorithm] adapts
// from observed RTTs (Netflix concurrency-limits). It is a
// [resilience.Guard]; use it server-side to shed load, or client-side to
// stop queueing on a slow dependency. Safe for concurrent use.
type Limiter struct {
	// inflight is the one word every call must share. Samples go to
	// stripes picked by the sample's admission count (calls in flight
	// together mostly have distinct counts), so concurrent releases rarely
	// write the same line. The words after them are written only when a
	// window closes or the limit moves; on their own lines they stay shared
	// in every core's cache.
	_         [64]byte
	inflight  atomic.Int64 // written by every acquire and release
	_         [56]byte
	win       [stripes]stripe
	minRTT    atomic.Int64 // window's candidate (minimum) RTT in ns
	maxIn     atomic.Int64 // window's max in-flight
	dropped   atomic.Bool
	_         [47]byte
	limit     atomic.Int64 // read-mostly from here on
	waiters   atomic.Int64
	checkMask atomic.Uint64 // 2^k − 1: see maxCheckShift

	name       string
	obs        resilience.Observer
	threshold  time.Duration
	minWindow  time.Duration
	maxWindow  time.Duration
	windowSize uint64
	firstCheck uint64 // a stripe's count at its first check
	maxWait    time.Duration
	maxQueue   int
	order      Order
	parts      []*partition
	partIndex  map[string]int // name → index+1

	mu         sync.Mutex // the updater; taken with TryLock
	alg        Algorithm
	nextUpdate time.Time
	lastClose  time.Time // when the last window closed (or the limiter was made)

	qmu   sync.Mutex
	queue []*waiter

	fns       []atomic.Pointer[releaseFn] // Acquire's release functions by token
	releasers sync.Pool                   // *releaser, for tokens beyond fns
	waiterP   sync.Pool                   // *waiter
}

type partition struct {
	name  string
	share float64
	busy  atomic.Int64
	limit atomic.Int64
}

func (p *partition) setLimit(total int64) {
	p.limit.Store(max(1, int64(math.Ceil(float64(total)*p.share))))
}

func (p *partition) tryAcquire() bool {
	for {
		b := p.busy.Load()
		if b >= p.limit.Load() {
			return false
		}
		if p.busy.CompareAndSwap(b, b+1) {
			return true
		}
	}
}

// New returns a limiter for cfg.
func New(cfg Config) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Algorithm == nil {
		v, err := NewVegas(VegasConfig{})
		if err != nil {
			return nil, err
		}
		cfg.Algorithm = v
	}
	if cfg.Algorithm.Limit() < 1 {
		return nil, fmt.Errorf("%w: algorithm's initial limit %d < 1", errInvalid, cfg.Algorithm.Limit())
	}
	l := &Limiter{
		name: cfg.Name, obs: cfg.Observer, alg: cfg.Algorithm,
		threshold: cfg.MinRTT, minWindow: cfg.MinWindow, maxWindow: cfg.MaxWindow,
		windowSize: uint64(cfg.WindowSize), maxWait: cfg.MaxWait, maxQueue: cfg.MaxQueue, order: cfg.Order,
	}
	if l.threshold == 0 {
		l.threshold = 100 * time.Microsecond
	}
	if l.minWindow == 0 {
		l.minWindow = time.Second
		if l.maxWindow > 0 {
			l.minWindow = min(time.Second, l.maxWindow)
		}
	}
	if l.maxWindow == 0 {
		l.maxWindow = max(time.Second, l.minWindow)
	}
	if l.windowSize == 0 {
		l.windowSize = 10
	}
	if l.maxQueue == 0 {
		l.maxQueue = 100
	}
	l.firstCheck = max(1, (l.windowSize+stripes-1)/stripes)
	l.checkMask.Store(1<<initialCheckShift - 1)
	l.lastClose = time.Now()
	l.limit.Store(int64(l.alg.Limit()))
	l.minRTT.Store(math.MaxInt64)
	if len(cfg.Partitions) > 0 {
		l.partIndex = make(map[string]int, len(cfg.Partitions))
		for i, p := range cfg.Partitions {
			part := &partition{name: p.Name, share: p.Share}
			part.setLimit(l.limit.Load())
			l.parts = append(l.parts, part)
			l.partIndex[p.Name] = i + 1
		}
	}
	l.fns = make([]atomic.Pointer[releaseFn], (len(l.parts)+1)*fnSlots)
	l.releasers.New = func() any {
		r := &releaser{l: l}
		r.fn = r.release // bound once, so Acquire returns it without allocating
		return r
	}
	l.waiterP.New = func() any { return &waiter{ch: make(chan uint64, 1)} }
	return l, nil
}

// ObservesLatency reports true: the limiter learns from RTTs.
func (l *Limiter) ObservesLatency() bool { return true }

// token packs the in-flight count at admission and the partition (index+1,
// 0 for none) into a permit's token.
func token(inflight int64, part int) uint64 {
	return uint64(uint32(inflight)) | uint64(part)<<32
}

// tryAcquire takes a slot for partition part (0 = none) if the rules allow.
func (l *Limiter) tryAcquire(part int) (int64, bool) {
	if part != 0 {
		p := l.parts[part-1]
		if l.inflight.Load() >= l.limit.Load() {
			if !p.tryAcquire() {
				return 0, false
			}
		} else {
			p.busy.Add(1)
		}
		return l.inflight.Add(1), true
	}
	// Add, then undo on overshoot: one read-modify-write on the success path
	// instead of a load and a CAS (two cache-line transactions when another
	// core holds the line). An overshoot can make a concurrent caller see
	// the limit reached a moment early; that is the over-limit path anyway.
	n := l.inflight.Add(1)
	if n > l.limit.Load() {
		l.inflight.Add(-1)
		return n - 1, false
	}
	return n, true
}

// acquire admits a call or rejects it; queued callers are served before
// newcomers, so a newcomer goes straight to the queue when anyone waits.
func (l *Limiter) acquire(ctx context.Context, part int) (uint64, error) {
	if l.waiters.Load() == 0 {
		if n, ok := l.tryAcquire(part); ok {
			return token(n, part), nil
		}
	}
	if l.maxWait <= 0 {
		return 0, l.reject(errAtLimit)
	}
	return l.wait(ctx, part)
}

func (l *Limiter) reject(err error) error {
	l.obs.Emit(resilience.Event{Kind: resilience.EventRejected, Policy: l.name, Err: err})
	return err
}

// Admit implements [resilience.Guard]. With partitions, the partition is
// the one named by [WithPartition] on ctx.
func (l *Limiter) Admit(ctx context.Context) (resilience.Permit, error) {
	part := 0
	if l.parts != nil {
		part = l.partitionOf(ctx)
	}
	tok, err := l.acquire(ctx, part)
	if err != nil {
		return resilience.Permit{}, err
	}
	return resilience.NewPermit(l, tok), nil
}

// Acquire admits a call and returns the function that ends it; call it
// exactly once with the call's outcome (Latency = the RTT, Dropped when the
// callee shed the call or it timed out). With partitions, the partition is
// the one named by [WithPartition] on ctx.
func (l *Limiter) Acquire(ctx context.Context) (release func(resilience.Outcome), err error) {
	part := 0
	if l.parts != nil {
		part = l.partitionOf(ctx)
	}
	return l.acquireFunc(ctx, part)
}

// AcquirePartition is [Limiter.Acquire] for the named partition; an unknown
// name is treated as no partition.
func (l *Limiter) AcquirePartition(ctx context.Context, name string) (release func(resilience.Outcome), err error) {
	return l.acquireFunc(ctx, l.partIndex[name])
}

func (l *Limiter) acquireFunc(ctx context.Context, part int) (func(resilience.Outcome), error) {
	tok, err := l.acquire(ctx, part)
	if err != nil {
		return nil, err
	}
	return l.releaseFunc(tok), nil
}

// fnSlots is how many admission counts per partition get a cached release
// function.
const fnSlots = 1024

// releaseFn boxes a release function so that it can sit in an atomic slot.
type releaseFn struct{ fn func(resilience.Outcome) }

// releaseFunc returns a function that releases tok. A token is just an
// admission count and a partition, so the functions are made once per
// token value and reused: handing one out costs an atomic load. Counts
// beyond fnSlots use pooled releasers instead.
func (l *Limiter) releaseFunc(tok uint64) func(resilience.Outcome) {
	if n, part := uint64(uint32(tok)), tok>>32; n < fnSlots {
		slot := &l.fns[part*fnSlots+n]
		if f := slot.Load(); f != nil {
			return f.fn
		}
		slot.CompareAndSwap(nil, &releaseFn{fn: func(o resilience.Outcome) { l.Release(tok, o) }})
		return slot.Load().fn
	}
	r := l.releasers.Get().(*releaser)
	r.tok = tok
	return r.fn
}

// releaser carries a token for a release function. Pooled: the function
// value is bound once per releaser, so handing it out is free.
type releaser struct {
	l   *Limiter
	tok uint64
	fn  func(resilience.Outcome)
}

func (r *releaser) release(o resilience.Outcome) {
	l, tok := r.l, r.tok
	l.releasers.Put(r)
	l.Release(tok, o)
}

// Release implements [resilience.Releaser]: it frees the slot and records
// the outcome. Successes and drops are samples; other errors are ignored
// (Netflix's onIgnore), since a fast failure says nothing about queueing.
func (l *Limiter) Release(tok uint64, o resilience.Outcome) {
	l.inflight.Add(-1)
	if part := tok >> 32; part != 0 {
		l.parts[part-1].busy.Add(-1)
	}
	if l.waiters.Load() > 0 {
		l.drain()
	}
	if o.Err == nil || o.Dropped {
		l.record(o.Latency, int64(uint32(tok)), o.Dropped)
	}
}

// Execute runs next under the limiter: the general [resilience.Policy] path.
func (l *Limiter) Execute(ctx context.Context, next resilience.Next) (v any, err error) {
	p, err := l.Admit(ctx)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	done := false
	defer func() {
		if !done {
			p.Release(resilience.Outcome{Err: errPanicked})
		}
	}()
	v, err = next(ctx)
	o := resilience.Outcome{Err: err, Latency: time.Since(start)}
	if err != nil {
		o.Dropped = errors.Is(err, context.DeadlineExceeded)
	}
	done = true
	p.Release(o)
	return v, err
}

// Snapshot is a point-in-time view of a [Limiter].
type Snapshot struct {
	Limit    int // current limit
	Inflight int // calls admitted and not yet released
	Queued   int // callers waiting for a slot
}

// Snapshot returns the limiter's current state.
func (l *Limiter) Snapshot() Snapshot {
	return Snapshot{
		Limit:    int(l.limit.Load()),
		Inflight: int(l.inflight.Load()),
		Queued:   int(l.waiters.Load()),
	}
}

// PartitionSnapshot returns the named partition's current limit and calls
// in flight; ok is false for an unknown name.
func (l *Limiter) PartitionSnapshot(name string) (limit, inflight int, ok bool) {
	i := l.partIndex[name]
	if i == 0 {
		return 0, 0, false
	}
	p := l.parts[i-1]
	return int(p.limit.Load()), int(p.busy.Load()), true
}

type partitionKey struct{}

// WithPartition returns a context that makes [Limiter.Admit] and
// [Limiter.Acquire] count the call against the named partition.
func WithPartition(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, partitionKey{}, name)
}

func (l *Limiter) partitionOf(ctx context.Context) int {
	name, _ := ctx.Value(partitionKey{}).(string)
	return l.partIndex[name]
}

var (
	_ resilience.Guard           = (*Limiter)(nil)
	_ resilience.Releaser        = (*Limiter)(nil)
	_ resilience.LatencyObserver = (*Limiter)(nil)
)
