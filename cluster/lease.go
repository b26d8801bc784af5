package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Timing is the lease arithmetic. All nodes of a cluster should use the
// same values; each lease entry carries its Lease, so a node that waits for
// an expiry uses the length the holder used.
type Timing struct {
	// Lease is how long a lease lasts. The holder measures it from the
	// instant it proposed the entry, the others from the (later) instant
	// they applied it.
	Lease time.Duration `yaml:"lease"`
	// Renew is how often the holder proposes a renewal.
	Renew time.Duration `yaml:"renew"`
	// Removal is the most the holder may take, once its hold time is up,
	// to have the address removed (timer latency, the netlink call).
	Removal time.Duration `yaml:"removal"`
	// Drift bounds how far two nodes' monotonic clocks can drift apart
	// over one lease (crystal error is ~1e-4; the default is generous).
	Drift time.Duration `yaml:"drift"`
}

// DefaultTiming is tuned for a LAN: a lease of 600 ms renewed every 100 ms,
// so a holder tolerates four lost renewals and a dead owner's lease is over
// by the time a new Raft leader is elected (about 300–900 ms).
var DefaultTiming = Timing{Lease: 600 * time.Millisecond, Renew: 100 * time.Millisecond, Removal: 100 * time.Millisecond, Drift: 50 * time.Millisecond}

func (t Timing) withDefaults() Timing {
	d := DefaultTiming
	if t.Lease == 0 {
		t.Lease = d.Lease
	}
	if t.Renew == 0 {
		t.Renew = d.Renew
	}
	if t.Removal == 0 {
		t.Removal = d.Removal
	}
	if t.Drift == 0 {
		t.Drift = d.Drift
	}
	return t
}

// Hold is how long after proposing a renewal the holder may keep the
// address: Lease - Removal - Drift. By the time the address is gone
// (Hold + Removal), no other node's clock can have reached Lease.
func (t Timing) Hold() time.Duration { return t.Lease - t.Removal - t.Drift }

// ErrTiming is returned for lease timings that cannot be safe or live.
var ErrTiming = errors.New("cluster: invalid lease timing")

// Validate checks the arithmetic: the holder must still hold after a
// renewal period (or it would drop the address between renewals), and the
// margins must be positive.
func (t Timing) Validate() error {
	switch {
	case t.Lease <= 0 || t.Renew <= 0 || t.Removal <= 0 || t.Drift < 0:
		return fmt.Errorf("%w: lease, renew and removal must be positive and drift not negative", ErrTiming)
	case t.Hold() < 2*t.Renew:
		return fmt.Errorf("%w: lease (%v) must exceed removal (%v) + drift (%v) + two renewals (%v): the holder would drop the address between renewals", ErrTiming, t.Lease, t.Removal, t.Drift, 2*t.Renew)
	}
	return nil
}

// Lease operations in the log.
const (
	opAcquire = "acquire"
	opRenew   = "renew"
	opRelease = "release"
)

// command is one lease entry in the Raft log.
type command struct {
	Op    string        `json:"op"`
	Node  string        `json:"node"`
	Epoch uint64        `json:"epoch,omitempty"` // renew and release: the epoch being renewed
	Lease time.Duration `json:"lease"`
}

// result is what applying a command returns to its proposer.
type result struct {
	OK    bool
	Epoch uint64
}

// LeaseState is the replicated lease as one node sees it.
type LeaseState struct {
	// Holder is the node holding the lease; empty when released or never
	// granted.
	Holder string `json:"holder"`
	// Epoch counts acquisitions (handovers).
	Epoch uint64 `json:"epoch"`
	// Lease is the length the holder uses.
	Lease time.Duration `json:"lease"`
	// Applied is when this node applied the last acquisition or renewal,
	// on its own clock: the lease cannot be over anywhere before
	// Applied + Lease.
	Applied time.Time `json:"-"`
}

// Free reports whether a leader may propose an acquisition at now without
// waiting, and if not, how long to wait.
func (s LeaseState) Free(now time.Time, drift time.Duration) (bool, time.Duration) {
	if s.Holder == "" {
		return true, 0
	}
	end := s.Applied.Add(s.Lease + drift)
	if !now.Before(end) {
		return true, 0
	}
	return false, end.Sub(now)
}

// fsm applies lease entries. It is deterministic except for Applied, which
// is local time by design.
type fsm struct {
	mu       sync.Mutex
	st       LeaseState
	now      func() time.Time
	onChange func(old, new LeaseState)
}

func (f *fsm) state() LeaseState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	var c command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return result{}
	}
	return f.apply(c)
}

func (f *fsm) apply(c command) result {
	f.mu.Lock()
	old := f.st
	var r result
	switch c.Op {
	case opAcquire:
		// The proposer (the leader) has waited out any earlier lease;
		// the log orders acquisitions, so this one simply wins.
		f.st = LeaseState{Holder: c.Node, Epoch: f.st.Epoch + 1, Lease: c.Lease, Applied: f.now()}
		r = result{OK: true, Epoch: f.st.Epoch}
	case opRenew:
		if f.st.Holder == c.Node && f.st.Epoch == c.Epoch {
			f.st.Applied = f.now()
			f.st.Lease = c.Lease
			r = result{OK: true, Epoch: c.Epoch}
		}
	case opRelease:
		if f.st.Holder == c.Node && f.st.Epoch == c.Epoch {
			f.st.Holder = ""
			r = result{OK: true, Epoch: c.Epoch}
		}
	}
	st := f.st
	cb := f.onChange
	f.mu.Unlock()
	if cb != nil && (old.Holder != st.Holder || old.Epoch != st.Epoch) {
		cb(old, st)
	}
	return r
}

// Snapshot implements raft.FSM.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	b, err := json.Marshal(f.state())
	if err != nil {
		return nil, err
	}
	return snapshot(b), nil
}

// Restore implements raft.FSM. A restored lease counts as applied now:
// later than it really was, which only makes a waiter wait longer.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var st LeaseState
	if err := json.NewDecoder(rc).Decode(&st); err != nil {
		return err
	}
	st.Applied = f.now()
	f.mu.Lock()
	f.st = st
	f.mu.Unlock()
	return nil
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s snapshot) Release() {}
