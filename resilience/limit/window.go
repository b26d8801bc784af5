package limit

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
)

// record adds one outcome to the current window, in the manner of Netflix's
// WindowedLimit: samples faster than the threshold are ignored; a drop only
// sets the window's drop flag and max in-flight (it has no meaningful RTT).
//
// The clock is not read per sample. The RTT comes from the outcome, and the
// window's end is checked only when a stripe's count reaches firstCheck and
// then every checkMask+1 samples, by whichever release gets there; that one
// release reads the clock, and only if it wins the updater's TryLock and
// the window holds WindowSize samples.
func (l *Limiter) record(rtt time.Duration, inflight int64, dropped bool) {
	if dropped {
		if !l.dropped.Load() {
			l.dropped.Store(true)
		}
		l.raiseMax(inflight)
		return
	}
	if rtt < l.threshold || rtt <= 0 {
		return
	}
	us := uint64(rtt / time.Microsecond)
	v := l.win[inflight%stripes].v.Add(us<<countBits | 1)
	for cur := l.minRTT.Load(); int64(rtt) < cur; cur = l.minRTT.Load() {
		if l.minRTT.CompareAndSwap(cur, int64(rtt)) {
			break
		}
	}
	l.raiseMax(inflight)
	if c := v & countMask; c >= l.firstCheck && (c-l.firstCheck)&l.checkMask.Load() == 0 {
		l.update()
	}
}

func (l *Limiter) raiseMax(n int64) {
	for cur := l.maxIn.Load(); n > cur; cur = l.maxIn.Load() {
		if l.maxIn.CompareAndSwap(cur, n) {
			return
		}
	}
}

// update closes the window if it is due and feeds it to the algorithm. One
// goroutine updates at a time; the others do not wait for it, they keep
// adding samples (which land in this window or the next).
func (l *Limiter) update() {
	if !l.mu.TryLock() {
		return
	}
	defer l.mu.Unlock()
	var c, top uint64
	for i := range l.win {
		n := l.win[i].v.Load() & countMask
		c, top = c+n, max(top, n)
	}
	if c < l.windowSize { // too few samples yet, or another updater just closed the window
		return
	}
	now := time.Now()
	if top < forceCount && now.Before(l.nextUpdate) {
		return
	}
	var sum uint64
	c = 0
	for i := range l.win {
		v := l.win[i].v.Swap(0)
		c, sum = c+v&countMask, sum+v>>countBits
	}
	avg := max(time.Microsecond, time.Duration(sum/c)*time.Microsecond) // algorithms divide by it
	candidate := time.Duration(l.minRTT.Swap(math.MaxInt64))
	inflight := l.maxIn.Swap(0)
	dropped := l.dropped.Swap(false)
	length := min(max(2*candidate, l.minWindow), l.maxWindow)
	l.nextUpdate = now.Add(length)

	// Pace the checks for the next window from this one's sample rate.
	elapsed := max(time.Millisecond, now.Sub(l.lastClose))
	l.lastClose = now
	expected := uint64(float64(c) * float64(length) / float64(elapsed))
	shift := min(maxCheckShift, max(0, bits.Len64(expected/stripes/checksPerWindow)-1))
	l.checkMask.Store(1<<shift - 1)

	old := l.limit.Load()
	n := int64(l.alg.Update(Sample{RTT: avg, Inflight: int(inflight), Dropped: dropped}))
	if n == old {
		return
	}
	l.limit.Store(n)
	for _, p := range l.parts {
		p.setLimit(n)
	}
	l.obs.Emit(resilience.Event{Kind: resilience.EventLimitChanged, Policy: l.name, Limit: int(n)})
	if n > old && l.waiters.Load() > 0 {
		l.drain()
	}
}

// waiter is a caller queued for a slot. ch is buffered so that granting
// never blocks the granter.
type waiter struct {
	part int
	ch   chan uint64
}

// wait queues the caller until a slot is granted, MaxWait passes or ctx
// ends. The caller is queued and the queue drained under one lock, so a
// slot freed just before queueing is not missed: the releaser either sees
// waiters > 0 and drains, or freed the slot before our drain looks.
func (l *Limiter) wait(ctx context.Context, part int) (uint64, error) {
	if ctx.Err() != nil {
		return 0, fmt.Errorf("limit: not waiting for a slot: %w: %w", ErrLimited, context.Cause(ctx))
	}
	w := l.waiterP.Get().(*waiter)
	w.part = part
	l.qmu.Lock()
	if len(l.queue) >= l.maxQueue {
		l.qmu.Unlock()
		l.waiterP.Put(w)
		return 0, l.reject(errQueueFull)
	}
	l.queue = append(l.queue, w)
	l.waiters.Add(1)
	l.drainLocked()
	l.qmu.Unlock()

	t := time.NewTimer(l.maxWait)
	defer t.Stop()
	select {
	case tok := <-w.ch:
		l.waiterP.Put(w)
		return tok, nil
	case <-t.C:
		return 0, l.abandon(w, l.reject(errWaitTimeout))
	case <-ctx.Done():
		return 0, l.abandon(w, fmt.Errorf("limit: gave up waiting for a slot: %w: %w", ErrLimited, context.Cause(ctx)))
	}
}

// abandon takes w out of the queue; if a slot was granted meanwhile, it is
// handed back.
func (l *Limiter) abandon(w *waiter, err error) error {
	l.qmu.Lock()
	i := slices.Index(l.queue, w)
	if i >= 0 {
		l.queue = slices.Delete(l.queue, i, i+1)
		l.waiters.Add(-1)
	}
	l.qmu.Unlock()
	if i < 0 {
		tok := <-w.ch // granted while we gave up: give the slot back
		l.Release(tok, resilience.Outcome{Err: err})
	}
	l.waiterP.Put(w)
	return err
}

func (l *Limiter) drain() {
	l.qmu.Lock()
	l.drainLocked()
	l.qmu.Unlock()
}

// drainLocked grants free slots to waiters in queue order. It stops at the
// first waiter that cannot be admitted (a partition at its share), so the
// order is kept at the price of head-of-line blocking.
func (l *Limiter) drainLocked() {
	for len(l.queue) > 0 {
		i := 0
		if l.order == LIFO {
			i = len(l.queue) - 1
		}
		w := l.queue[i]
		n, ok := l.tryAcquire(w.part)
		if !ok {
			return
		}
		l.queue = slices.Delete(l.queue, i, i+1)
		l.waiters.Add(-1)
		w.ch <- token(n, w.part)
	}
}
