package cluster

import (
	"context"
	"sync"
	"time"
)

// Address is the virtual IP on this host: Add makes this node answer for
// it, Remove stops that. Both must be idempotent.
type Address interface {
	Add() error
	Remove() error
}

// fence holds the address only until a deadline: every successful renewal
// moves the deadline, and a timer removes the address when it passes,
// whatever else the node is doing (blocked in a Raft call, say).
type fence struct {
	addr   Address
	now    func() time.Time
	onDrop func(reason string, err error)
	onAdd  func(err error)

	mu       sync.Mutex
	held     bool
	deadline time.Time
	timer    *time.Timer
	since    time.Time // when the last hold extension was proposed
	added    time.Time // when the address was last added
}

// hold keeps (or adds) the address until until. It does nothing when ctx
// is done (the term that asked has ended) or until has already passed.
// It reports whether the address is held afterwards.
func (f *fence) hold(ctx context.Context, proposed, until time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ctx.Err() != nil {
		return false
	}
	d := until.Sub(f.now())
	if d <= 0 {
		return f.held
	}
	if !f.held {
		err := f.addr.Add()
		if f.onAdd != nil {
			f.onAdd(err)
		}
		if err != nil {
			f.addr.Remove()
			return false
		}
		f.held = true
		f.added = f.now()
	}
	f.deadline = until
	f.since = proposed
	if f.timer == nil {
		f.timer = time.AfterFunc(d, f.expire)
	} else {
		f.timer.Reset(d)
	}
	return true
}

func (f *fence) expire() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.held || f.now().Before(f.deadline) {
		return // extended meanwhile; the timer was reset
	}
	f.dropLocked("lease not renewed in time")
}

// drop removes the address now.
func (f *fence) drop(reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropLocked(reason)
}

func (f *fence) dropLocked(reason string) {
	if f.timer != nil {
		f.timer.Stop()
	}
	if !f.held {
		return
	}
	f.held = false
	err := f.addr.Remove()
	if f.onDrop != nil {
		f.onDrop(reason, err)
	}
}

// addedAt reports when the address was last added (zero before the
// first time).
func (f *fence) addedAt() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.added
}

// status reports whether the address is held and when the holding lease
// was last proposed.
func (f *fence) status() (bool, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held, f.since
}
