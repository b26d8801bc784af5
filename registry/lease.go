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
	scan          uint64 // last scan that saw the instance in the catalog
}

// leaseTable holds lease deadlines on the leader. Renewals only touch this
// table; they never become Raft log entries, so renewal load does not grow
// the log (etcd and Consul keep TTL checks out of the log the same way).
// The table is rebuilt from scratch whenever this node becomes leader:
// every lease then gets a fresh grace period of one TTL, because the new
// leader cannot know when the instance last renewed with the old one.
type leaseTable struct {
	mu     sync.Mutex
	leases map[leaseKey]lease
	scans  uint64 // scan counter, marks entries seen (no per-scan set)
}

func newLeaseTable() *leaseTable { return &leaseTable{leases: map[leaseKey]lease{}} }

// reset forgets every deadline (on gaining or losing leadership).
func (t *leaseTable) reset() {
	t.mu.Lock()
	clear(t.leases)
	t.mu.Unlock()
}

// renew pushes the deadline of one incarnation to now+ttl.
func (t *leaseTable) renew(k leaseKey, registerIndex uint64, now time.Time, ttl time.Duration) {
	t.mu.Lock()
	t.leases[k] = lease{registerIndex: registerIndex, deadline: now.Add(ttl), scan: t.scans}
	t.mu.Unlock()
}

// leaseAction is a state change the scan decided to commit.
type leaseAction struct {
	leaseView
	expire bool // remove; otherwise mark suspect
}

// scan compares the catalog with the deadlines at now. Instances the table
// has not seen (new registrations, or everything after a leader change) get
// a deadline of now+TTL; entries of vanished instances are dropped. It
// returns the instances to mark suspect (deadline passed) and to remove
// (suspect, and deadline+suspectTimeout passed).
func (t *leaseTable) scan(views []leaseView, now time.Time, suspectTimeout time.Duration) []leaseAction {
	t.mu.Lock()
	defer t.mu.Unlock()
	var acts []leaseAction
	t.scans++
	for _, v := range views {
		k := leaseKey{v.service, v.id}
		l, ok := t.leases[k]
		if !ok || l.registerIndex != v.registerIndex {
			t.leases[k] = lease{registerIndex: v.registerIndex, deadline: now.Add(v.ttl), scan: t.scans}
			continue
		}
		l.scan = t.scans
		t.leases[k] = l
		switch {
		case v.health == bulwark.HealthSuspect && now.After(l.deadline.Add(suspectTimeout)):
			acts = append(acts, leaseAction{leaseView: v, expire: true})
		case v.health != bulwark.HealthSuspect && now.After(l.deadline):
			acts = append(acts, leaseAction{leaseView: v})
		}
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
	n.leaseReady.Store(true)
	n.recordSelf()
	tick := time.NewTicker(n.cfg.LeaseCheckInterval)
	defer tick.Stop()
	var views []leaseView
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			views = n.fsm.leases(views[:0])
			acts := n.leases.scan(views, now, n.cfg.SuspectTimeout)
			if len(acts) > 0 {
				n.commitLeaseActions(acts)
			}
		}
	}
}

// commitLeaseActions commits suspect/expire transitions, but only after
// confirming this node still leads a quorum: a leader cut off in a
// minority must not act on deadlines it cannot see being renewed
// (self-preservation, scoped to the partition instead of Eureka's global
// renewal-rate switch).
func (n *Node) commitLeaseActions(acts []leaseAction) {
	if err := n.raft.VerifyLeader().Error(); err != nil {
		n.log.Warn("registry: no quorum, not expiring leases", "pending", len(acts), "err", err)
		return
	}
	for _, a := range acts {
		c := command{Op: opHealth, Service: a.service, ID: a.id, Health: bulwark.HealthSuspect, RegisterIndex: a.registerIndex}
		if a.expire {
			c = command{Op: opExpire, Service: a.service, ID: a.id, RegisterIndex: a.registerIndex}
		}
		if _, err := n.apply(&c); err != nil {
			n.log.Warn("registry: lease transition failed", "op", c.Op, "service", a.service, "id", a.id, "err", err)
			return
		}
		n.log.Info("registry: lease transition", "op", c.Op, "service", a.service, "id", a.id)
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
