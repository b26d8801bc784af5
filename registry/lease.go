package registry

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
)

// leaseKey names one instance.
type leaseKey struct{ service, id string }

// lease is the leader's in-memory view of one incarnation's deadline. A
// new incarnation (re-registration) gets a new lease, so registerIndex
// never changes once the lease is in the table.
type lease struct {
	key           leaseKey
	registerIndex uint64
	// deadline is in nanoseconds since the table's epoch (monotonic).
	// Renewals store it holding only t.mu for reading.
	deadline atomic.Int64

	// Guarded by t.wmu:
	scan uint64 // last reconcile scan that saw the instance in the catalog
	due  int64  // wheel slot the entry is queued in (0 = not queued)
	gone bool   // no longer in the table (removed or replaced)
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
// of a core. A full reconcile scan with the catalog still runs at the start
// of a term and every reconcileEvery ticks, as a safety net.
//
// Locking. A renewal of a known incarnation holds mu for reading and
// stores one atomic deadline, so renewals never wait for each other, for a
// wheel tick or for a reconcile scan (which hold wmu, and mu only for
// reading): on a busy machine a lock holder that loses its CPU would
// otherwise stall every renewal behind it. mu is held for writing only to
// add, replace or drop entries (registrations, the rare expiry). Lock
// order: mu, then wmu.
type leaseTable struct {
	mu sync.RWMutex
	// leases is by service, then ID: string-keyed maps hash faster than a
	// two-string struct key, and a batch (one service's instances listed
	// together) looks its service up once. Guarded by mu.
	leases map[string]map[string]*lease
	count  int       // entries in leases, guarded by mu
	epoch  time.Time // origin of lease.deadline and of wheel slots

	wmu     sync.Mutex
	scans   uint64 // reconcile counter, marks entries seen (no per-scan set)
	tick    time.Duration
	wheel   map[int64][]*lease
	last    int64 // last slot processed
	started bool  // last is set
}

// reconcileEvery is how many ticks pass between full reconcile scans;
// scanChunk is how many leases a scan judges per hold of wmu.
const (
	reconcileEvery = 50
	scanChunk      = 2048
)

func newLeaseTable() *leaseTable {
	return &leaseTable{leases: map[string]map[string]*lease{}, wheel: map[int64][]*lease{}, tick: 100 * time.Millisecond, epoch: time.Now()}
}

// reset forgets every deadline (on gaining or losing leadership).
func (t *leaseTable) reset() {
	t.mu.Lock()
	t.wmu.Lock()
	for _, m := range t.leases {
		for _, l := range m {
			l.gone = true
		}
	}
	clear(t.leases)
	t.count = 0
	clear(t.wheel)
	t.last, t.started = 0, false
	t.wmu.Unlock()
	t.mu.Unlock()
}

// mono converts a time to the table's deadline scale.
func (t *leaseTable) mono(at time.Time) int64 { return int64(at.Sub(t.epoch)) }

// slot is the wheel slot whose processing comes at or after mono time at.
func (t *leaseTable) slot(at int64) int64 {
	tk := int64(t.tick)
	return (at + tk - 1) / tk
}

// queue puts l in the slot of at (mono), or in the next slot to be
// processed if that one is past. t.wmu is held.
func (t *leaseTable) queue(l *lease, at int64) {
	s := t.slot(at)
	if t.started {
		s = max(s, t.last+1)
	}
	if l.due != 0 && l.due <= s {
		return // already queued at or before: re-queued then
	}
	l.due = s
	t.wheel[s] = append(t.wheel[s], l)
}

// renew pushes the deadline of one incarnation to now+ttl.
func (t *leaseTable) renew(k leaseKey, registerIndex uint64, now time.Time, ttl time.Duration) {
	d := t.mono(now.Add(ttl))
	t.mu.RLock()
	ok := t.renewKnown(k, registerIndex, d)
	t.mu.RUnlock()
	if ok {
		return
	}
	t.mu.Lock()
	t.wmu.Lock()
	t.renewLocked(k, registerIndex, d)
	t.wmu.Unlock()
	t.mu.Unlock()
}

// get returns the lease of k, or nil. t.mu is held, for reading at least.
func (t *leaseTable) get(k leaseKey) *lease { return t.leases[k.service][k.id] }

// put sets the lease of k. t.mu is held for writing.
func (t *leaseTable) put(k leaseKey, l *lease) {
	m := t.leases[k.service]
	if m == nil {
		m = map[string]*lease{}
		t.leases[k.service] = m
	}
	if m[k.id] == nil {
		t.count++
	}
	m[k.id] = l
}

// drop removes the lease of k. t.mu is held for writing.
func (t *leaseTable) drop(k leaseKey) {
	m := t.leases[k.service]
	if _, ok := m[k.id]; !ok {
		return
	}
	delete(m, k.id)
	t.count--
	if len(m) == 0 {
		delete(t.leases, k.service)
	}
}

// renewKnown moves the deadline of an incarnation the table already holds
// and reports whether it did. t.mu is held, for reading at least.
func (t *leaseTable) renewKnown(k leaseKey, registerIndex uint64, deadline int64) bool {
	return renewIn(t.leases[k.service], k.id, registerIndex, deadline)
}

// renewIn is renewKnown within one service's leases.
func renewIn(svc map[string]*lease, id string, registerIndex uint64, deadline int64) bool {
	l := svc[id]
	if l == nil || l.registerIndex != registerIndex {
		return false
	}
	l.deadline.Store(deadline)
	return true
}

// renewLocked sets the deadline of one incarnation, adding it (or
// replacing an older one) if need be. t.mu is held for writing, and t.wmu.
func (t *leaseTable) renewLocked(k leaseKey, registerIndex uint64, deadline int64) {
	l := t.get(k)
	if l == nil || l.registerIndex != registerIndex {
		if l != nil {
			l.gone = true
		}
		l = &lease{key: k, registerIndex: registerIndex}
		t.put(k, l)
	}
	l.deadline.Store(deadline)
	l.scan = t.scans
	t.queue(l, deadline)
}

// leaseAction is a state change the scan decided to commit.
type leaseAction struct {
	leaseView
	expire bool // remove; otherwise mark suspect
}

// judge decides on one lease at now (mono): nothing yet, suspect, or
// expire, and re-queues it for its next check. t.wmu is held.
func (t *leaseTable) judge(l *lease, v leaseView, now int64, suspectTimeout time.Duration, acts []leaseAction) []leaseAction {
	deadline := l.deadline.Load()
	switch {
	case now <= deadline:
		t.queue(l, deadline)
	case v.health != bulwark.HealthSuspect:
		acts = append(acts, leaseAction{leaseView: v})
		t.queue(l, deadline+int64(suspectTimeout))
	case now > deadline+int64(suspectTimeout):
		acts = append(acts, leaseAction{leaseView: v, expire: true})
		t.queue(l, now+int64(t.tick)) // dropped once the catalog no longer holds it
	default:
		t.queue(l, deadline+int64(suspectTimeout))
	}
	return acts
}

// scan is the full reconcile: it compares the whole catalog with the
// deadlines at now. Instances the table has not seen (new registrations,
// or everything after a leader change) get a deadline of now+TTL; entries
// of vanished instances are dropped. It returns the instances to mark
// suspect (deadline passed) and to remove (suspect, and
// deadline+suspectTimeout passed).
//
// The pass holds t.mu only for reading, so renewals go on meanwhile;
// entries to add or drop are collected and changed afterwards under a
// short write lock.
func (t *leaseTable) scan(views []leaseView, now time.Time, suspectTimeout time.Duration) []leaseAction {
	var acts []leaseAction
	var fresh []leaseView
	var stale []*lease
	mnow := t.mono(now)
	t.mu.RLock()
	t.wmu.Lock()
	t.scans++
	scans := t.scans
	if !t.started {
		t.last, t.started = t.slot(mnow)-1, true
	}
	for i, v := range views {
		if i > 0 && i%scanChunk == 0 {
			// Let registrations in: a pass over 100,000 leases takes tens
			// of milliseconds (more on a busy machine).
			t.wmu.Unlock()
			t.mu.RUnlock()
			t.mu.RLock()
			t.wmu.Lock()
		}
		l := t.get(leaseKey{v.service, v.id})
		if l == nil || l.registerIndex != v.registerIndex {
			fresh = append(fresh, v)
			continue
		}
		l.scan = scans
		acts = t.judge(l, v, mnow, suspectTimeout, acts)
	}
	for _, m := range t.leases {
		for _, l := range m {
			// Renewals since the previous scan are marked with the previous
			// scan number; keep those (the catalog view may predate them).
			if l.scan+1 < scans {
				stale = append(stale, l)
			}
		}
	}
	t.wmu.Unlock()
	t.mu.RUnlock()
	if len(fresh) == 0 && len(stale) == 0 {
		return acts
	}
	t.mu.Lock()
	t.wmu.Lock()
	defer t.mu.Unlock()
	defer t.wmu.Unlock()
	for _, v := range fresh {
		k := leaseKey{v.service, v.id}
		// A registration after the catalog was read may have put a newer
		// incarnation in meanwhile: keep that one.
		if l := t.get(k); l == nil || l.registerIndex < v.registerIndex {
			t.renewLocked(k, v.registerIndex, mnow+int64(v.ttl))
		}
	}
	for _, l := range stale {
		if t.get(l.key) == l && l.scan+1 < scans {
			t.drop(l.key)
			l.gone = true
		}
	}
	return acts
}

// dueLease is a lease whose wheel slot came due.
type dueLease struct {
	key  leaseKey
	l    *lease
	view leaseView
	ok   bool // the catalog holds the instance
}

// popDue takes the entries of every slot up to now off the wheel. Entries
// renewed past now are re-queued at once; the others are returned for the
// caller to look up in the catalog (without holding the table's locks) and
// settle. It holds only t.wmu: renewals go on meanwhile.
func (t *leaseTable) popDue(now time.Time, dst []dueLease) []dueLease {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	mnow := t.mono(now)
	cur := mnow / int64(t.tick)
	if !t.started {
		t.last, t.started = cur-1, true
	}
	take := func(s int64) {
		ls := t.wheel[s]
		delete(t.wheel, s)
		for _, l := range ls {
			if l.gone || l.due != s {
				continue // removed, or queued again elsewhere
			}
			l.due = 0
			if d := l.deadline.Load(); mnow <= d {
				t.queue(l, d)
			} else {
				dst = append(dst, dueLease{key: l.key, l: l})
			}
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
	if len(due) == 0 {
		return nil
	}
	mnow := t.mono(now)
	t.mu.Lock()
	t.wmu.Lock()
	defer t.mu.Unlock()
	defer t.wmu.Unlock()
	var acts []leaseAction
	for _, d := range due {
		l := d.l
		switch {
		case l.gone || l.due != 0:
			continue // replaced, re-queued meanwhile, or reset
		case !d.ok:
			t.drop(l.key) // deregistered or expired
			l.gone = true
			continue
		case l.registerIndex != d.view.registerIndex:
			t.renewLocked(l.key, d.view.registerIndex, mnow+int64(d.view.ttl)) // a new incarnation: grace
			continue
		}
		acts = t.judge(l, d.view, mnow, suspectTimeout, acts)
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
	n.leases.wmu.Lock()
	n.leases.tick = n.cfg.LeaseCheckInterval
	n.leases.wmu.Unlock()
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
	t.mu.RLock()
	t.wmu.Lock()
	defer t.mu.RUnlock()
	defer t.wmu.Unlock()
	for _, a := range acts {
		if l := t.get(leaseKey{a.service, a.id}); l != nil {
			t.queue(l, t.mono(now)+int64(t.tick))
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
