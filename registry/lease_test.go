package registry

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark"
)

func TestLeaseTableScan(t *testing.T) {
	// synctest gives a fake clock: the deadlines below are exact.
	synctest.Test(t, func(t *testing.T) {
		const ttl, suspectAfter = time.Second, 2 * time.Second
		tab := newLeaseTable()
		v := leaseView{service: "s", id: "a", health: bulwark.HealthUp, ttl: ttl, registerIndex: 7}
		start := time.Now()
		steps := []struct {
			name   string
			at     time.Duration
			health bulwark.Health
			regIdx uint64
			renew  bool
			want   string // "", "suspect" or "expire"
		}{
			{"first sight grants a grace TTL", 0, bulwark.HealthUp, 7, false, ""},
			{"within TTL", 900 * time.Millisecond, bulwark.HealthUp, 7, false, ""},
			{"deadline passed", 1100 * time.Millisecond, bulwark.HealthUp, 7, false, "suspect"},
			{"suspect, not long enough", 2900 * time.Millisecond, bulwark.HealthSuspect, 7, false, ""},
			{"suspect past deadline+SuspectTimeout", 3100 * time.Millisecond, bulwark.HealthSuspect, 7, false, "expire"},
			{"re-registered: new incarnation gets grace", 3200 * time.Millisecond, bulwark.HealthUp, 9, false, ""},
			{"renewed in time", 4000 * time.Millisecond, bulwark.HealthUp, 9, true, ""},
			{"deadline counts from the renewal", 4900 * time.Millisecond, bulwark.HealthUp, 9, false, ""},
			{"and passes", 5100 * time.Millisecond, bulwark.HealthUp, 9, false, "suspect"},
		}
		for _, s := range steps {
			time.Sleep(time.Until(start.Add(s.at)))
			v.health, v.registerIndex = s.health, s.regIdx
			if s.renew {
				tab.renew(leaseKey{"s", "a"}, s.regIdx, time.Now(), ttl)
			}
			acts := tab.scan([]leaseView{v}, time.Now(), suspectAfter)
			got := ""
			if len(acts) == 1 {
				got = "suspect"
				if acts[0].expire {
					got = "expire"
				}
			} else if len(acts) > 1 {
				t.Fatalf("%s: %d actions", s.name, len(acts))
			}
			if got != s.want {
				t.Errorf("%s (t=%v): got %q, want %q", s.name, s.at, got, s.want)
			}
		}
		// A vanished instance leaves the table (one scan later, so a
		// renewal racing with the catalog read is not lost).
		tab.scan(nil, time.Now(), suspectAfter)
		if tab.count != 1 {
			t.Errorf("table dropped a lease renewed since the previous scan")
		}
		tab.scan(nil, time.Now(), suspectAfter)
		if tab.count != 0 || len(tab.leases) != 0 {
			t.Errorf("table keeps %d leases of removed instances", tab.count)
		}
	})
}

// viewRecorder collects what a watching Client reports.
type viewRecorder struct {
	mu      sync.Mutex
	updates [][]bulwark.Instance
	changed chan struct{}
}

func newViewRecorder() *viewRecorder { return &viewRecorder{changed: make(chan struct{}, 1)} }

func (r *viewRecorder) update(insts []bulwark.Instance) {
	r.mu.Lock()
	r.updates = append(r.updates, insts)
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *viewRecorder) last() ([]bulwark.Instance, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.updates) == 0 {
		return nil, 0
	}
	return r.updates[len(r.updates)-1], len(r.updates)
}

// routable reports whether id is in the routable set of the last update.
func (r *viewRecorder) routable(id string) bool {
	insts, _ := r.last()
	for _, in := range insts {
		if in.ID == id && in.Health.Routable() {
			return true
		}
	}
	return false
}

func (r *viewRecorder) present(id string) bool {
	insts, _ := r.last()
	for _, in := range insts {
		if in.ID == id {
			return true
		}
	}
	return false
}

// startWatch runs c.Watch until the test ends.
func startWatch(t *testing.T, c *Client, service string) *viewRecorder {
	rec := newViewRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Watch(ctx, service, rec.update) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Watch returned %v, want context.Canceled", err)
		}
	})
	return rec
}

func TestLeaseExpiryDetection(t *testing.T) {
	checkLeaks(t)
	tc := newCluster(t, 3, nil)
	c := newTestClient(t, tc.addrs())
	rec := startWatch(t, c, "pay")

	live, err := c.Register(t.Context(), bulwark.Instance{Service: "pay", ID: "live", Address: "http://127.0.0.1:1"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	dying, err := c.Register(t.Context(), bulwark.Instance{Service: "pay", ID: "dying", Address: "http://127.0.0.1:2"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tc.waitFor("watch sees both", 3*time.Second, func() bool { return rec.routable("live") && rec.routable("dying") })

	dying.abandon() // stops renewing like a killed process
	killed := time.Now()
	tc.waitFor("dying out of the routable view", 5*time.Second, func() bool { return !rec.routable("dying") })
	outOfView := time.Since(killed)
	tc.waitFor("dying removed", 6*time.Second, func() bool { return !rec.present("dying") })
	removed := time.Since(killed)
	t.Logf("detection: out of watching client's view (suspect) after %v, removed after %v",
		outOfView.Round(time.Millisecond), removed.Round(time.Millisecond))
	if outOfView > 2*time.Second {
		t.Errorf("out-of-view detection took %v, want <= 2s", outOfView)
	}
	if removed < outOfView+time.Second {
		t.Errorf("removed %v after suspect: suspect period shorter than expected", removed-outOfView)
	}
	if !rec.routable("live") {
		t.Error("the renewing instance left the routable view")
	}
}

func TestSuspectRenewedBackToUp(t *testing.T) {
	checkLeaks(t)
	tc := newCluster(t, 1, func(_ int, c *Config) { c.SuspectTimeout = 10 * time.Second })
	n := tc.nodes[0]
	c := newTestClient(t, tc.addrs())
	r, err := c.Register(t.Context(), bulwark.Instance{Service: "s", ID: "x", Address: "h:1"}, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	r.abandon()
	tc.waitFor("suspect", 3*time.Second, func() bool {
		i, _ := n.fsm.lookup("s", "x")
		return i.Health == bulwark.HealthSuspect
	})
	var wr WriteResponse
	if err := c.do(t.Context(), "PUT", "/v1/instances/s/x/renew", nil, time.Second, &wr); err != nil {
		t.Fatal(err)
	}
	if wr.Instance == nil || wr.Instance.Health != bulwark.HealthUp {
		t.Fatalf("renewal of a suspect instance answered %+v, want health up", wr.Instance)
	}
}

func TestPartitionedMinorityNoFalseEvictions(t *testing.T) {
	for _, cutLeader := range []bool{false, true} {
		name := "follower"
		if cutLeader {
			name = "leader"
		}
		t.Run("cut "+name, func(t *testing.T) { testPartition(t, cutLeader) })
	}
}

// testPartition cuts one node (the leader or a follower) away from the
// other two while 5 instances renew through the majority's addresses.
func testPartition(t *testing.T, cutLeader bool) {
	checkLeaks(t)
	tc := newCluster(t, 3, nil)
	leader := tc.leader()
	minority := tc.follower()
	if cutLeader {
		minority = leader
	}
	var majority []int
	for i := range 3 {
		if i != minority {
			majority = append(majority, i)
		}
	}
	c := newTestClient(t, tc.addrs(majority...))
	var regs []*Registration
	for i := range 5 {
		r, err := c.Register(t.Context(), bulwark.Instance{Service: "api", ID: fmt.Sprintf("i%d", i), Address: "h:1"}, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		regs = append(regs, r)
	}
	defer func() {
		for _, r := range regs {
			r.Close()
		}
	}()
	// The watcher prefers the node about to be cut: it must move away
	// from its stale answers and keep following the majority.
	wc := newTestClient(t, append(tc.addrs(minority), tc.addrs(majority...)...))
	rec := startWatch(t, wc, "api")
	tc.waitFor("minority replicated all 5", 3*time.Second, func() bool {
		return len(tc.nodes[minority].fsm.service("api").instances) == 5
	})

	tc.layers[minority].setCut(true)
	cutAt := time.Now()
	tc.waitFor("minority reports stale", 3*time.Second, func() bool { return tc.nodes[minority].stale() })
	// Stale flag on the HTTP API of the minority node.
	mc := newTestClient(t, tc.addrs(minority))
	var sr ServiceResponse
	if err := mc.do(t.Context(), "GET", "/v1/services/api", nil, time.Second, &sr); err != nil || !sr.Stale {
		t.Fatalf("minority read: stale=%v err=%v, want stale", sr.Stale, err)
	}
	// A change made on the majority side reaches the watcher.
	late, err := c.Register(t.Context(), bulwark.Instance{Service: "api", ID: "late", Address: "h:2"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	regs = append(regs, late)
	tc.waitFor("watcher sees a write made during the partition", 5*time.Second, func() bool { return rec.routable("late") })
	t.Logf("watcher left the cut node and saw a new write %v after the cut", time.Since(cutAt).Round(time.Millisecond))
	// Keep the partition for longer than TTL + SuspectTimeout (3 s): any
	// false suspicion or eviction would have happened by then.
	time.Sleep(time.Until(cutAt.Add(3300 * time.Millisecond)))
	if tc.nodes[minority].IsLeader() {
		t.Errorf("partitioned node %d still claims leadership", minority)
	}
	// Count, over every view the watcher reported, each time one of the
	// five live instances was missing or not routable (suspect counts).
	insts, _ := rec.last()
	// Views before the first complete one (a lagging node's first answer)
	// are not evictions.
	rec.mu.Lock()
	evicted, views, complete := 0, len(rec.updates), false
	for _, u := range rec.updates {
		up := 0
		for _, in := range u {
			if in.ID != "late" && in.Health.Routable() {
				up++
			}
		}
		complete = complete || up == 5
		if complete {
			evicted += 5 - up
		}
	}
	rec.mu.Unlock()
	t.Logf("partition of node %d for 3.3s: %d false evictions/suspicions of 5 live instances over %d views (last view: %d instances)",
		minority, evicted, views, len(insts))
	if evicted != 0 {
		t.Errorf("live instances left the routable view %d times during a minority partition", evicted)
	}
	// The minority's catalog kept them too (it expires nothing).
	if got := len(tc.nodes[minority].fsm.service("api").instances); got != 5 { // "late" never reached it
		t.Errorf("minority catalog holds %d instances, want 5", got)
	}
	tc.layers[minority].setCut(false)
	tc.waitFor("minority fresh again", 5*time.Second, func() bool { return !tc.nodes[minority].stale() })
}

func TestClientServesCacheWhenAllNodesDown(t *testing.T) {
	checkLeaks(t)
	tc := newCluster(t, 3, nil)
	c := newTestClient(t, tc.addrs())
	r, err := c.Register(t.Context(), bulwark.Instance{Service: "db", ID: "a", Address: "h:1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r.abandon()
	rec := startWatch(t, c, "db")
	tc.waitFor("watch sees a", 3*time.Second, func() bool { return rec.routable("a") })
	if _, err := c.Instances(t.Context(), "db"); err != nil {
		t.Fatal(err)
	}
	tc.close()
	_, before := rec.last()

	got, err := c.Instances(t.Context(), "db")
	if err != nil || len(got) != 1 || got[0].ID != "a" {
		t.Fatalf("Instances with all nodes down = %v, %v; want the cached [a]", got, err)
	}
	time.Sleep(500 * time.Millisecond) // the watcher fails over and backs off meanwhile
	if insts, after := rec.last(); after != before || len(insts) != 1 {
		t.Fatalf("watch changed its view during the outage: %d updates (was %d), last %v", after, before, insts)
	}
	// A new watcher starts from the cache.
	rec2 := startWatch(t, c, "db")
	tc.waitFor("second watcher served from cache", 2*time.Second, func() bool { return rec2.routable("a") })
}

func TestRegistrationReregistersAfterLoss(t *testing.T) {
	checkLeaks(t)
	tc := newCluster(t, 1, nil)
	c := newTestClient(t, tc.addrs())
	r, err := c.Register(t.Context(), bulwark.Instance{Service: "re", ID: "a", Address: "h:1"}, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	first := r.Instance().RegisterIndex
	// The registry loses the entry (an operator deregisters it, or it
	// expired during a long pause): the next renewal gets 404 and the
	// Registration registers again.
	if err := c.do(t.Context(), "DELETE", "/v1/instances/re/a", nil, time.Second, nil); err != nil {
		t.Fatal(err)
	}
	tc.waitFor("re-registered", 3*time.Second, func() bool {
		in, ok := tc.nodes[0].fsm.lookup("re", "a")
		return ok && in.RegisterIndex > first
	})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := tc.nodes[0].fsm.lookup("re", "a"); ok {
		t.Fatal("Close did not deregister")
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestLeaseWheel: between reconcile scans the leader judges leases from the
// timing wheel alone, with the same outcomes as a scan: grace, suspect at
// the deadline, expire after SuspectTimeout more, renewals move deadlines,
// a vanished instance leaves the table, a new incarnation gets grace.
func TestLeaseWheel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl, suspectAfter = time.Second, 2 * time.Second
		tab := newLeaseTable()
		views := map[leaseKey]leaseView{
			{"s", "a"}: {service: "s", id: "a", health: bulwark.HealthUp, ttl: ttl, registerIndex: 7},
			{"s", "b"}: {service: "s", id: "b", health: bulwark.HealthUp, ttl: ttl, registerIndex: 8},
		}
		var all []leaseView
		for _, v := range views {
			all = append(all, v)
		}
		start := time.Now()
		tab.scan(all, start, suspectAfter) // grace for both
		// tick runs one wheel tick at start+at and returns "id:op" strings.
		tick := func(at time.Duration) []string {
			time.Sleep(time.Until(start.Add(at)))
			due := tab.popDue(time.Now(), nil)
			for i := range due {
				v, ok := views[due[i].key]
				due[i].view, due[i].ok = v, ok
			}
			var out []string
			for _, a := range tab.settle(due, time.Now(), suspectAfter) {
				op := "suspect"
				if a.expire {
					op = "expire"
				}
				out = append(out, a.id+":"+op)
				// Commit it, as the leader would.
				v := views[leaseKey{a.service, a.id}]
				if a.expire {
					delete(views, leaseKey{a.service, a.id})
				} else {
					v.health = bulwark.HealthSuspect
					views[leaseKey{a.service, a.id}] = v
				}
			}
			return out
		}
		for at := 100 * time.Millisecond; at <= 900*time.Millisecond; at += 100 * time.Millisecond {
			if got := tick(at); len(got) != 0 {
				t.Fatalf("t=%v: %v within the grace TTL", at, got)
			}
			tab.renew(leaseKey{"s", "b"}, 8, time.Now(), ttl) // b renews every 100 ms
		}
		var got []string
		for at := time.Second; at <= 1300*time.Millisecond; at += 100 * time.Millisecond {
			got = append(got, tick(at)...)
			tab.renew(leaseKey{"s", "b"}, 8, time.Now(), ttl)
		}
		if fmt.Sprint(got) != "[a:suspect]" {
			t.Fatalf("around the deadline: %v, want [a:suspect]", got)
		}
		got = nil
		for at := 1400 * time.Millisecond; at <= 3300*time.Millisecond; at += 100 * time.Millisecond {
			got = append(got, tick(at)...)
			tab.renew(leaseKey{"s", "b"}, 8, time.Now(), ttl)
		}
		if fmt.Sprint(got) != "[a:expire]" {
			t.Fatalf("after SuspectTimeout: %v, want [a:expire]", got)
		}
		tick(3400 * time.Millisecond)
		tab.mu.Lock()
		hasA := tab.get(leaseKey{"s", "a"}) != nil
		tab.mu.Unlock()
		if hasA {
			t.Fatal("expired instance still in the lease table")
		}
		// b re-registers (new incarnation) and stops renewing: grace of one
		// TTL from now, then suspect.
		views[leaseKey{"s", "b"}] = leaseView{service: "s", id: "b", health: bulwark.HealthUp, ttl: ttl, registerIndex: 20}
		got = nil
		for at := 3500 * time.Millisecond; at <= 5800*time.Millisecond; at += 100 * time.Millisecond {
			if r := tick(at); len(r) > 0 {
				got = append(got, fmt.Sprint(at, r))
			}
		}
		// The wheel meets the new incarnation when the old lease's slot comes
		// due (deadline 4.3 s, judged at 4.4 s), grants it a TTL of grace
		// from there, and suspects it one tick after that runs out. (The
		// leader's own register path renews the new incarnation at once.)
		if len(got) != 1 || got[0] != "5.5s [b:suspect]" {
			t.Fatalf("new incarnation: %v, want suspect at 5.5s", got)
		}
	})
}
