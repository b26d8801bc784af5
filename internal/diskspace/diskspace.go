// Package diskspace tells a store that its disk is (nearly) full before it
// tries to write, so that it can refuse new work with a clear error at
// once instead of failing half-way through a write or hanging on it.
package diskspace

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Free returns the bytes available to unprivileged writers on the file
// system holding path.
func Free(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// Guard reports whether at least Min bytes are free under Path, asking
// the kernel at most once per Every (default 250ms) so it can sit on a
// hot path. The zero Path disables it. Safe for concurrent use.
//
// A check between refreshes is one atomic load: no lock, so callers never
// queue behind one another, nor behind the caller doing the statfs (on a
// busy machine a lock holder that loses its CPU would stall every write
// behind it; the registry's renewals go through here 100 times a second at
// 100,000 instances). While one caller refreshes, the others get the last
// answer.
type Guard struct {
	Path  string
	Min   uint64
	Every time.Duration

	last    atomic.Pointer[guardResult]
	refresh sync.Mutex // one statfs at a time
}

// guardResult is one statfs verdict.
type guardResult struct {
	at  time.Time
	err error
}

// Check returns nil when there is room, else an error saying how much is
// free where. A failing statfs is not an error (the write then decides).
func (g *Guard) Check() error {
	if g == nil || g.Path == "" {
		return nil
	}
	every := g.Every
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	r := g.last.Load()
	if r != nil && time.Since(r.at) < every {
		return r.err
	}
	if !g.refresh.TryLock() {
		if r != nil {
			return r.err // another caller is refreshing
		}
		g.refresh.Lock() // the very first check waits for the answer
	}
	defer g.refresh.Unlock()
	if r = g.last.Load(); r != nil && time.Since(r.at) < every {
		return r.err
	}
	next := &guardResult{at: time.Now()}
	if free, err := Free(g.Path); err == nil && free < g.Min {
		next.err = fmt.Errorf("%d bytes free under %s, %d needed", free, g.Path, g.Min)
	}
	g.last.Store(next)
	return next.err
}
