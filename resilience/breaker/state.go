package breaker

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
)

// State is where a breaker stands. The values are stable: new states are
// appended.
type State uint8

// The states of a [Breaker].
const (
	StateClosed     State = iota // calls flow; outcomes fill the window
	StateOpen                    // calls are rejected until the open duration passes
	StateHalfOpen                // a few probe calls decide between closed and open
	StateForcedOpen              // rejected by ForceOpen until Reset or Disable
	StateDisabled                // Disable: every call is admitted, nothing is recorded
)

var stateNames = [...]string{"closed", "open", "half_open", "forced_open", "disabled"}

// String returns the state's name as used in events and metric labels:
// "closed", "open", "half_open", "forced_open" or "disabled".
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Snapshot is a breaker's state and window at one moment, for dashboards
// and metrics. The counts are read without a lock, so under concurrent
// calls they may be off by the calls in flight.
type Snapshot struct {
	Name       string
	State      State
	Generation uint64 // bumped by every state change and Reset
	// Calls, Failures and SlowCalls are the closed state's window, or the
	// probes that have finished in half-open; zero otherwise.
	Calls, Failures, SlowCalls int64
	// FailureRate and SlowCallRate are percentages of Calls (0 when Calls
	// is 0), whether or not Calls has reached the minimum.
	FailureRate, SlowCallRate float64
	// ProbesInFlight is the number of admitted half-open probes that have
	// not finished.
	ProbesInFlight int
	// RetryAfter is, when open, how long until probes are admitted: a
	// gateway can send it as Retry-After.
	RetryAfter time.Duration
}

// State returns the breaker's current state. Timed transitions (open to
// half-open, the half-open wait running out) happen when a call arrives,
// so an idle open breaker reports open after its open duration passed.
func (b *Breaker) State() State { return b.cur.Load().state }

// Snapshot returns the breaker's state and window counts.
func (b *Breaker) Snapshot() Snapshot {
	rec := b.cur.Load()
	s := Snapshot{Name: b.name, State: rec.state, Generation: rec.gen}
	var c counts
	switch rec.state {
	case StateClosed:
		if rec.count != nil {
			c = rec.count.counts()
		} else {
			c = rec.timed.counts(b.now())
		}
	case StateHalfOpen:
		b.mu.Lock()
		p := rec.probes
		b.mu.Unlock()
		c = counts{calls: int64(p.finished), failures: int64(p.failures), slow: int64(p.slow)}
		s.ProbesInFlight = max(p.issued-p.finished, 0)
	case StateOpen:
		s.RetryAfter = time.Duration(max(rec.openUntil-b.now(), 0))
	}
	s.Calls, s.Failures, s.SlowCalls = c.calls, c.failures, c.slow
	if c.calls > 0 {
		s.FailureRate = 100 * float64(c.failures) / float64(c.calls)
		s.SlowCallRate = 100 * float64(c.slow) / float64(c.calls)
	}
	return s
}

// ForceOpen rejects every call until Reset or Disable. Calls in flight are
// not recorded.
func (b *Breaker) ForceOpen() { b.manual(StateForcedOpen) }

// Disable admits every call and records nothing until Reset or ForceOpen.
func (b *Breaker) Disable() { b.manual(StateDisabled) }

// Reset closes the breaker with an empty window and starts the open
// duration's growth over. Calls in flight are not recorded.
func (b *Breaker) Reset() { b.manual(StateClosed) }

func (b *Breaker) manual(s State) {
	now := b.now()
	b.mu.Lock()
	b.opens = 0
	_, ch := b.toLocked(b.cur.Load(), s, now)
	b.mu.Unlock()
	b.announce(ch)
}

// change describes a transition, announced after mu is released.
type change struct {
	from, to State
	gen      uint64
	wait     time.Duration // open: the open duration chosen
}

// newRec builds the record of generation gen in state s, begun at now.
func (b *Breaker) newRec(s State, gen uint64, now int64) *stateRec {
	rec := &stateRec{state: s, gen: gen, since: now}
	switch s {
	case StateClosed:
		if b.kind == CountWindow {
			rec.count = newCountWindow(b.size)
		} else {
			rec.timed = newTimeWindow(b.width, b.buckets)
			rec.timed.head.Store(now / b.width)
		}
		rec.done = func(o resilience.Outcome) { b.Release(gen, o) }
	case StateHalfOpen:
		rec.done = func(o resilience.Outcome) { b.Release(gen, o) }
	case StateDisabled:
		rec.done = b.noop
	}
	return rec
}

// toLocked publishes the generation after from, in state s. b.mu must be
// held and from must be current.
func (b *Breaker) toLocked(from *stateRec, s State, now int64) (*stateRec, change) {
	rec := b.newRec(s, from.gen+1, now)
	ch := change{from: from.state, to: s, gen: rec.gen}
	switch s {
	case StateOpen:
		ch.wait = b.openDurationLocked()
		rec.openUntil = now + int64(ch.wait)
	case StateClosed:
		b.opens = 0
	}
	b.cur.Store(rec)
	return rec, ch
}

// openDurationLocked returns the duration of the next opening: it grows
// by the multiplier with each consecutive opening, is capped, then
// jittered.
func (b *Breaker) openDurationLocked() time.Duration {
	b.opens++
	d := float64(b.openDur)
	if b.mult > 1 {
		d = min(d*math.Pow(b.mult, float64(b.opens-1)), float64(b.maxOpen))
	}
	if b.jitter > 0 {
		d *= 1 + b.jitter*(2*b.rng.Float64()-1)
	}
	return time.Duration(d)
}

// announce reports a transition to the observer and the log.
func (b *Breaker) announce(c change) {
	if c.from == c.to {
		return
	}
	b.observer.Emit(resilience.Event{
		Kind: resilience.EventStateChange, Policy: b.name,
		From: c.from.String(), To: c.to.String(),
	})
	level := slog.LevelInfo
	if c.to == StateOpen || c.to == StateForcedOpen {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("breaker", b.name), slog.String("from", c.from.String()),
		slog.String("to", c.to.String()), slog.Uint64("generation", c.gen),
	}
	if c.to == StateOpen {
		attrs = append(attrs, slog.Duration("open_for", c.wait))
	}
	b.log.LogAttrs(context.Background(), level, "circuit breaker state change", attrs...)
}

// trip opens the breaker from the closed generation rec, unless another
// call already moved it on.
func (b *Breaker) trip(rec *stateRec) {
	now := b.now()
	b.mu.Lock()
	if b.cur.Load() != rec {
		b.mu.Unlock()
		return
	}
	_, ch := b.toLocked(rec, StateOpen, now)
	b.mu.Unlock()
	b.announce(ch)
}

// openElapsed moves the open generation rec, whose duration has passed, to
// half-open, and returns the current record.
func (b *Breaker) openElapsed(rec *stateRec) *stateRec {
	now := b.now()
	b.mu.Lock()
	if cur := b.cur.Load(); cur != rec {
		b.mu.Unlock()
		return cur
	}
	next, ch := b.toLocked(rec, StateHalfOpen, now)
	b.mu.Unlock()
	b.announce(ch)
	return next
}

// takeProbe tries to take a probe permit of the half-open generation rec.
// It returns rec and true when admitted; rec and false when all permits are
// taken; otherwise the record that replaced rec (the state moved on, or the
// half-open wait ran out and the breaker opened again).
func (b *Breaker) takeProbe(rec *stateRec) (*stateRec, bool) {
	now := b.now()
	b.mu.Lock()
	if cur := b.cur.Load(); cur != rec {
		b.mu.Unlock()
		return cur, false
	}
	if now-rec.since >= b.halfOpenWait { // probes were lost or hang
		next, ch := b.toLocked(rec, StateOpen, now)
		b.mu.Unlock()
		b.announce(ch)
		return next, false
	}
	ok := rec.probes.issued < b.halfOpenCalls
	if ok {
		rec.probes.issued++
	}
	b.mu.Unlock()
	return rec, ok
}

// probeDone records a probe's outcome in the half-open generation rec;
// recorded is false for an ignored outcome, which frees its permit. When
// every permitted probe has finished, the breaker decides.
func (b *Breaker) probeDone(rec *stateRec, kind uint32, recorded bool) {
	b.mu.Lock()
	if b.cur.Load() != rec {
		b.mu.Unlock()
		return
	}
	p := &rec.probes
	if !recorded {
		p.issued = max(p.issued-1, 0)
		b.mu.Unlock()
		return
	}
	p.finished++
	if kind&bitFailure != 0 {
		p.failures++
	}
	if kind&bitSlow != 0 {
		p.slow++
	}
	if p.finished < b.halfOpenCalls {
		b.mu.Unlock()
		return
	}
	to := StateClosed
	if b.overThreshold(counts{calls: int64(p.finished), failures: int64(p.failures), slow: int64(p.slow)}) {
		to = StateOpen
	}
	_, ch := b.toLocked(rec, to, b.now())
	b.mu.Unlock()
	b.announce(ch)
}
