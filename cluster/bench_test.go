package cluster

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// BenchmarkFSMRenew is one renewal as every node applies it (10 a second
// per cluster with the defaults).
func BenchmarkFSMRenew(b *testing.B) {
	f := &fsm{now: time.Now}
	f.apply(command{Op: opAcquire, Node: "a", Lease: time.Second})
	data, _ := json.Marshal(command{Op: opRenew, Node: "a", Epoch: 1, Lease: time.Second})
	l := &raft.Log{Data: data}
	b.ReportAllocs()
	for b.Loop() {
		if r := f.Apply(l).(result); !r.OK {
			b.Fatal("renewal refused")
		}
	}
}

// BenchmarkFenceHold is the holder's side of a committed renewal.
func BenchmarkFenceHold(b *testing.B) {
	f := &fence{addr: &fakeAddr{}, now: time.Now}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		now := time.Now()
		f.hold(ctx, now, now.Add(time.Second))
	}
	f.drop("done")
}
