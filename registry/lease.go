package registry

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark"
)

// leaseKey names one instance.
type leaseKey struct{ service, id string }

// lease is the leader's in-memory view of one incarnation's deadline.
type lease struct {
	registerIndex uint64
	deadline      time.Time
	scan          uint64 // last reconcile scan that saw the instance in the catalog
	due           int64  // wheel slot the entry is queued in (0 = not queued)
}

// leaseTable holds lease deadlines on the leader. Renewals only touch this
// table; they never become Raft log entries, so renewal load does not grow
// the log (etcd and Consul keep TTL checks out of the log the same way).
// The table is rebuilt from scratch whenever this node becomes leader:
// every lease then gets a fresh grace period of one TTL, because the new
// leader cannot know when the instance last renewed with the old one.
//
// Deadlines are checked through a timing wheel: each entry is queued in the
// slot (of LeaseCheckInterval) of its deadline, and a tick looks only at the
// entries of the slots that came due. A renewal moves the deadline but not
// the slot (no queue work on the renewal path); when the slot comes due the
// entry is re-queued at its current deadline. So a tick costs O(entries
// due), about n / (TTL − renewal interval) per second, instead of a pass
// over every lease: at 100,000 leases a full pass takes tens of
// milliseconds (BenchmarkLeaseScan100k), which every 100 ms would be most
// of a core and would hold the table's lock against renewals. A full
// reconcile scan with the catalog still runs at the start of a term and
// every reconcileEvery ticks, as a safety net.
type leaseTable struct {
	mu     sync.Mutex
	leases map[leaseKey]lease
	scans  uint64 // reconcile counter, marks entries seen (no per-scan set)
	tick   time.Duration
	wheel  map[int64][]leaseKey
	last   int64 // last slot processed
}

// reconcileEvery is how many ticks pass between full reconcile scans;
// scanChunk is how many leases a scan judges per hold of the table's lock.
const (
	reconcileEvery = 50
	scanChunk      = 2048
)

func newLeaseTable() *leaseTable {
	return &leaseTable{leases: map[leaseKey]lease{}, wheel: map[int64][]leaseKey{}, tick: 100 * time.Millisecond}
}

// reset forgets every deadline (on gaining or losing leadership).
func (t *leaseTable) reset() {
	t.mu.Lock()
	clear(t.leases)
	clear(t.wheel)
	t.last = 0
	t.mu.Unlock()
}

// slot is the wheel slot whose processing comes at or after time at.
func (t *leaseTable) slot(at time.Time) int64 {
	n := at.UnixNano()
	tk := int64(t.tick)
	return (n + tk - 1) / tk
}

// queue puts l (of key k) in the slot of at, or in the next slot to be
// processed if that one is past. t.mu is held.
func (t *leaseTable) queue(k leaseKey, l *lease, at time.Time) {
	s := max(t.slot(at), t.last+1)
	if l.due != 0 && l.due <= s {
		return // already queued at or before: re-queued then
	}
	l.due = s
	t.wheel[s] = append(t.wheel[s], k)
}

// renew pushes the deadline of one incarnation to now+ttl.
func (t *leaseTable) renew(k leaseKey, registerIndex uint64, now time.Time, ttl time.Duration) {
	t.mu.Lock()
	t.renewLocked(k, registerIndex, now.Add(ttl))
	t.mu.Unlock()
}

func (t *leaseTable) renewLocked(k leaseKey, registerIndex uint64, deadline time.Time) {
	l, ok := t.leases[k]
	l.deadline, l.scan = deadline, t.scans
	if !ok || l.registerIndex != registerIndex {
		l.registerIndex, l.due = registerIndex, 0
	}
	t.queue(k, &l, deadline)
	t.leases[k] = l
}

// leaseAction is a state change the scan decided to commit.
type leaseAction struct {
	leaseView
	expire bool // remove; otherwise mark suspect
}

// judge decides on one lease at now: nothing yet, suspect, or expire, and
// re-queues it for its next check. t.mu is held.
func (t *leaseTable) judge(k leaseKey, l *lease, v leaseView, now time.Time, suspectTimeout time.Duration, acts []leaseAction) []leaseAction {
	switch {
	case !now.After(l.deadline):
		t.queue(k, l, l.deadline)
	case v.health != bulwark.HealthSuspect:
		acts = append(acts, leaseAction{leaseView: v})
		t.queue(k, l, l.deadline.Add(suspectTimeout))
	case now.After(l.deadline.Add(suspectTimeout)):
		acts = append(acts, leaseAction{leaseView: v, expire: true})
		t.queue(k, l, now.Add(t.tick)) // dropped once the catalog no longer holds it
	default:
		t.queue(k, l, l.deadline.Add(suspectTimeout))
	}
	return acts
}

// scan is the full reconcile: it compares the whole catalog with the
// deadlines at now. Instances the table has not seen (new registrations,
// or everything after a leader change) get a deadline of now+TTL; entries
// of vanished instances are dropped. It returns the instances to mark
// suspect (deadline passed) and to remove (suspect, and
// deadline+suspectTimeout passed).
func (t *leaseTable) scan(views []leaseView, now time.Time, suspectTimeout time.Duration) []leaseAction {
	t.mu.Lock()
	defer t.mu.Unlock()
	var acts []leaseAction
	t.scans++
	if t.last == 0 {
		t.last = t.slot(now) - 1
	}
	for i, v := range views {
		if i > 0 && i%scanChunk == 0 {
			// Let renewals in: a pass over 100,000 leases holds the lock
			// for tens of milliseconds (more on a busy machine), which
			// would show up as renewal latency.
			t.mu.Unlock()
			t.mu.Lock()
		}
		k := leaseKey{v.service, v.id}
		l, ok := t.leases[k]
		if !ok || l.registerIndex != v.registerIndex {
			t.renewLocked(k, v.registerIndex, now.Add(v.ttl))
			continue
		}
		l.scan = t.scans
		acts = t.judge(k, &l, v, now, suspectTimeout, acts)
		t.leases[k] = l
	}
	for k, l := range t.leases {
		// Renewals since the previous scan are marked with the previous
		// scan number; keep those (the catalog view may predate them).
		if l.scan < t.scans-1 {
			delete(t.leases, k)
		}
	}
	return acts
}

// dueLease is a lease whose wheel slot came due.
type dueLease struct {
	key  leaseKey
	view leaseView
	ok   bool // the catalog holds the instance
}

// popDue takes the entries of every slot up to now off the wheel. Entries
// renewed past now are re-queued at once; the others are returned for the
// caller to look up in the catalog (without holding t.mu) and settle.
func (t *leaseTable) popDue(now time.Time, dst []dueLease) []dueLease {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := now.UnixNano() / int64(t.tick)
	if t.last == 0 {
		t.last = cur - 1
	}
	take := func(s int64) {
		keys := t.wheel[s]
		delete(t.wheel, s)
		for _, k := range keys {
			l, ok := t.leases[k]
			if !ok || l.due != s {
				continue // removed, or queued again elsewhere
			}
			l.due = 0
			if !now.After(l.deadline) {
				t.queue(k, &l, l.deadline)
			} else {
				dst = append(dst, dueLease{key: k})
			}
			t.leases[k] = l
		}
	}
	from := t.last + 1
	if cur < from {
		return dst
	}
	// Past slots are closed before taking them, so whatever take re-queues
	// lands in a later slot.
	t.last = cur
	if cur-from < 64 {
		for s := from; s <= cur; s++ {
			take(s)
		}
	} else { // a long pause: visit the slots that exist
		for s := range t.wheel {
			if s <= cur {
				take(s)
			}
		}
	}
	return dst
}

// settle judges the leases popDue returned, now that their catalog views
// are known, and returns the transitions to commit.
func (t *leaseTable) settle(due []dueLease, now time.Time, suspectTimeout time.Duration) []leaseAction {
	t.mu.Lock()
	defer t.mu.Unlock()
	var acts []leaseAction
	for _, d := range due {
		l, ok := t.leases[d.key]
		switch {
		case !ok || l.due != 0:
			continue // renewed (and re-queued) meanwhile, or reset
		case !d.ok:
			delete(t.leases, d.key) // deregistered or expired
			continue
		case l.registerIndex != d.view.registerIndex:
			t.renewLocked(d.key, d.view.registerIndex, now.Add(d.view.ttl)) // a new incarnation: grace
			continue
		}
		acts = t.judge(d.key, &l, d.view, now, suspectTimeout, acts)
		t.leases[d.key] = l
	}
	return acts
}

// runLeases is the leader's lease loop; it runs while this node leads and
// stops when ctx (the leadership term) ends. It first waits for the FSM to
// catch up with everything committed before this term (Barrier), so it
// never judges leases against an old catalog.
func (n *Node) runLeases(ctx context.Context) {
	n.leases.reset()
	defer n.leases.reset()
	defer n.leaseReady.Store(false)
	for {
		if err := n.raft.Barrier(n.cfg.ElectionTimeout * 2).Error(); err == nil {
			break
		} else if ctx.Err() != nil {
			return
		} else {
			n.log.Warn("registry: barrier after election failed", "err", err)
		}
	}
	n.leases.reset() // grace starts now, after catching up
	n.leases.mu.Lock()
	n.leases.tick = n.cfg.LeaseCheckInterval
	n.leases.mu.Unlock()
	var views []leaseView
	views = n.fsm.leases(views[:0])
	n.leases.scan(views, time.Now(), n.cfg.SuspectTimeout) // every lease gets its grace
	n.leaseReady.Store(true)
	n.recordSelf()
	tick := time.NewTicker(n.cfg.LeaseCheckInterval)
	defer tick.Stop()
	var due []dueLease
	for ticks := 1; ; ticks++ {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			var acts []leaseAction
			if ticks%reconcileEvery == 0 {
				views = n.fsm.leases(views[:0])
				acts = n.leases.scan(views, now, n.cfg.SuspectTimeout)
			} else {
				due = n.leases.popDue(now, due[:0])
				if len(due) == 0 {
					continue
				}
				n.fsm.lookupLeases(due)
				acts = n.leases.settle(due, now, n.cfg.SuspectTimeout)
			}
			if len(acts) > 0 {
				if rest := n.commitLeaseActions(acts); len(rest) > 0 {
					n.leases.retry(rest, now)
				}
			}
		}
	}
}

// commitLeaseActions commits suspect/expire transitions, but only after
// confirming this node still leads a quorum: a leader cut off in a
// minority must not act on deadlines it cannot see being renewed
// (self-preservation, scoped to the partition instead of Eureka's global
// renewal-rate switch).
func (n *Node) commitLeaseActions(acts []leaseAction) (uncommitted []leaseAction) {
	if err := n.raft.VerifyLeader().Error(); err != nil {
		n.log.Warn("registry: no quorum, not expiring leases", "pending", len(acts), "err", err)
		return acts
	}
	for i, a := range acts {
		c := command{Op: opHealth, Service: a.service, ID: a.id, Health: bulwark.HealthSuspect, RegisterIndex: a.registerIndex}
		if a.expire {
			c = command{Op: opExpire, Service: a.service, ID: a.id, RegisterIndex: a.registerIndex}
		}
		if _, err := n.apply(&c); err != nil {
			n.log.Warn("registry: lease transition failed", "op", c.Op, "service", a.service, "id", a.id, "err", err)
			return acts[i:]
		}
		n.log.Info("registry: lease transition", "op", c.Op, "service", a.service, "id", a.id)
	}
	return nil
}

// retry queues leases whose transition could not be committed for the
// next tick (the wheel would otherwise look at them only at their next
// deadline).
func (t *leaseTable) retry(acts []leaseAction, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, a := range acts {
		k := leaseKey{a.service, a.id}
		if l, ok := t.leases[k]; ok {
			t.queue(k, &l, now.Add(t.tick))
			t.leases[k] = l
		}
	}
}

// renew handles a renewal on the leader: it moves the deadline and, if the
// instance had been marked suspect, commits it back to up.
func (n *Node) renew(service, id string) (InstanceInfo, uint64, error) {
	if !n.leaseReady.Load() {
		return InstanceInfo{}, 0, fmt.Errorf("%w: leader still catching up", ErrNotLeader)
	}
	info, ok := n.fsm.lookup(service, id)
	if !ok {
		return InstanceInfo{}, 0, fmt.Errorf("%w: %s/%s", ErrNotFound, service, id)
	}
	n.leases.renew(leaseKey{service, id}, info.RegisterIndex, time.Now(), time.Duration(info.TTL))
	if info.Health == bulwark.HealthUp {
		return info, n.fsm.index(), nil
	}
	res, err := n.apply(&command{Op: opHealth, Service: service, ID: id, Health: bulwark.HealthUp, RegisterIndex: info.RegisterIndex})
	if err != nil {
		return InstanceInfo{}, 0, err
	}
	if !res.changed { // re-registered or removed meanwhile
		if info, ok = n.fsm.lookup(service, id); !ok {
			return InstanceInfo{}, 0, fmt.Errorf("%w: %s/%s", ErrNotFound, service, id)
		}
		return info, res.index, nil
	}
	return res.info, res.index, nil
}
