package registry

import (
	"fmt"
	"testing"
	"time"
)

// The leader's per-instance costs at the scale of 100,000 leased instances
// (1,000 services × 100): one lease scan (every LeaseCheckInterval) and one
// batch of 1,000 renewals (POST /v1/renew without HTTP).

func bigCatalog(b *testing.B, services, per int) (*Node, []InstanceKey) {
	b.Helper()
	n := &Node{fsm: newFSM(), leases: newLeaseTable()}
	n.leaseReady.Store(true)
	var keys []InstanceKey
	idx := uint64(1)
	for s := range services {
		for i := range per {
			c := command{Op: opRegister, Service: fmt.Sprintf("svc-%04d", s), ID: fmt.Sprintf("i-%03d", i),
				Address: "http://127.0.0.1:9", TTL: Duration(3 * time.Second)}
			n.fsm.cat.apply(&c, idx)
			idx++
			keys = append(keys, InstanceKey{c.Service, c.ID})
		}
	}
	return n, keys
}

func BenchmarkLeaseScan100k(b *testing.B) {
	n, _ := bigCatalog(b, 1000, 100)
	var views []leaseView
	now := time.Now()
	views = n.fsm.leases(views[:0])
	n.leases.scan(views, now, 2*time.Second) // first scan fills the table
	b.ReportAllocs()
	for b.Loop() {
		views = n.fsm.leases(views[:0])
		if acts := n.leases.scan(views, now, 2*time.Second); len(acts) != 0 {
			b.Fatalf("%d actions", len(acts))
		}
	}
}

func BenchmarkRenewBatch1000(b *testing.B) {
	n, keys := bigCatalog(b, 1000, 100)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		batch := keys[(i%100)*1000 : (i%100+1)*1000]
		res, err := n.renewBatch(batch, nil)
		if err != nil || res.Renewed != 1000 {
			b.Fatalf("%+v %v", res, err)
		}
		i++
	}
}

func BenchmarkDecodeRenewBatch1000(b *testing.B) {
	_, keys := bigCatalog(b, 10, 100)
	body := []byte(`{"instances":[`)
	for i, k := range keys {
		if i > 0 {
			body = append(body, ',')
		}
		body = fmt.Appendf(body, `{"service":%q,"id":%q}`, k.Service, k.ID)
	}
	body = append(body, "]}"...)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeRenewBatch(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSnapshot100k(b *testing.B) {
	n, _ := bigCatalog(b, 1000, 100)
	b.ReportAllocs()
	for b.Loop() {
		s, err := n.fsm.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(s.(fsmSnapshot))))
	}
}

// BenchmarkLeaseTick100k is one 100 ms tick of the leader's lease loop at
// 100,000 leases of 3 s renewed every second: the 10,000 renewals that
// arrive in a tick plus the wheel's work for the slot that came due.
func BenchmarkLeaseTick100k(b *testing.B) {
	n, keys := bigCatalog(b, 1000, 100)
	now := time.Now()
	views := n.fsm.leases(nil)
	n.leases.scan(views, now, 2*time.Second)
	var due []dueLease
	b.ReportAllocs()
	tick := 0
	for b.Loop() {
		now = now.Add(100 * time.Millisecond)
		first := (tick % 10) * 10000
		n.leases.mu.RLock()
		d := n.leases.mono(now.Add(3 * time.Second))
		for i, k := range keys[first : first+10000] {
			if !n.leases.renewKnown(leaseKey{k.Service, k.ID}, uint64(first+i+1), d) {
				b.Fatal("renewal of a known lease missed")
			}
		}
		n.leases.mu.RUnlock()
		due = n.leases.popDue(now, due[:0])
		n.fsm.lookupLeases(due)
		if acts := n.leases.settle(due, now, 2*time.Second); len(acts) != 0 {
			b.Fatalf("%d actions at tick %d", len(acts), tick)
		}
		tick++
	}
}
