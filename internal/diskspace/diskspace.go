// Package diskspace tells a store that its disk is (nearly) full before it
// tries to write, so that it can refuse new work with a clear error at
// once instead of failing half-way through a write or hanging on it.
package diskspace

import (
	"fmt"
	"sync"
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
type Guard struct {
	Path  string
	Min   uint64
	Every time.Duration

	mu      sync.Mutex
	checked time.Time
	free    uint64
	err     error
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
	g.mu.Lock()
	defer g.mu.Unlock()
	if now := time.Now(); now.Sub(g.checked) >= every {
		g.checked = now
		free, err := Free(g.Path)
		g.err = nil
		if err == nil && free < g.Min {
			g.err = fmt.Errorf("%d bytes free under %s, %d needed", free, g.Path, g.Min)
		}
		g.free = free
	}
	return g.err
}
