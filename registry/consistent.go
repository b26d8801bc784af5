package registry

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Consistent reads.
//
// By default a node answers reads from its own copy of the catalog: fast,
// available in a minority partition, and marked stale (HeaderStale) when
// the node has lost the leader. A read with ?consistent is linearizable:
// a follower forwards it to the leader, and the leader answers only after a
// Raft barrier issued after the read arrived has committed (which proves a
// quorum still follows it) and everything committed before the barrier is
// applied to its catalog. It fails with 503 when no leader can prove that.
//
// A barrier is a log entry, so concurrent consistent reads share one: a
// read waits for the next barrier to start after it arrived, never for one
// already in flight (which might have been appended before a write the
// reader saw acknowledged).

// readBarrier coalesces the barriers of concurrent consistent reads.
type readBarrier struct {
	mu      sync.Mutex
	next    *barrierRound // the round new readers join; nil when none is waiting
	running bool          // a goroutine is issuing barriers
}

type barrierRound struct {
	done chan struct{}
	err  error
}

// wait returns once a barrier issued after the call began has completed,
// or with its error, or ctx's.
func (b *readBarrier) wait(ctx context.Context, issue func() error) error {
	b.mu.Lock()
	if b.next == nil {
		b.next = &barrierRound{done: make(chan struct{})}
	}
	r := b.next
	if !b.running {
		b.running = true
		go b.run(issue)
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run issues one barrier per round until no reader is waiting. It ends by
// itself; issue is bounded by its timeout.
func (b *readBarrier) run(issue func() error) {
	for {
		b.mu.Lock()
		r := b.next
		b.next = nil
		if r == nil {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		r.err = issue()
		close(r.done)
	}
}

// consistentTimeout bounds the barrier of a consistent read.
const consistentTimeout = 5 * time.Second

// consistent prepares a ?consistent read: on the leader it waits for a
// read barrier and reports true (answer from the local catalog); on a
// follower it forwards the request to the leader and reports false (the
// response is written). Errors are written as 503.
func (n *Node) consistent(w http.ResponseWriter, r *http.Request) bool {
	if !n.IsLeader() {
		leader, ok := n.leaderHTTP()
		if !ok || r.Header.Get(headerForwarded) != "" || leader == n.httpAddr {
			n.writeError(w, fmt.Errorf("%w: consistent read needs the leader, none known", ErrNotLeader))
			return false
		}
		n.forward(w, r, leader)
		return false
	}
	err := n.barrier.wait(r.Context(), func() error {
		return n.raft.Barrier(consistentTimeout).Error()
	})
	if err != nil {
		n.writeError(w, fmt.Errorf("%w: consistent read: %v", ErrNotLeader, err))
		return false
	}
	return true
}

// wantConsistent reports whether the request asks for a consistent read
// (?consistent, ?consistent=true or =1).
func wantConsistent(r *http.Request) (bool, error) {
	q := r.URL.Query()
	if !q.Has("consistent") {
		return false, nil
	}
	switch q.Get("consistent") {
	case "", "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, &FieldError{Field: "consistent", Msg: fmt.Sprintf("%q: want true or false (or no value)", q.Get("consistent"))}
}
