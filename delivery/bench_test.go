package delivery

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
)

// BenchmarkEnqueue measures accepted messages per second: each Enqueue
// returns after its PubAck from a file-store stream on an embedded server.
// Sync policy: nats-server's default (write to the OS per message, fsync
// every 2 minutes), and SyncAlways (fsync before each PubAck) for
// comparison. Many callers run in parallel, as gateway requests do; the
// asynchronous publish window lets their acks be batched. Workers deliver to
// a no-op forwarder meanwhile, as in production.
func BenchmarkEnqueue(b *testing.B) {
	for _, bc := range []struct {
		name       string
		syncAlways bool
	}{{"sync=2m", false}, {"sync=always", true}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := testConfig(b, b.TempDir())
			cfg.SyncAlways = bc.syncAlways
			cfg.Logger = nil
			var delivered atomic.Int64
			s := open(b, cfg, forwardFunc(func(context.Context, *bulwark.Message) (int, error) {
				delivered.Add(1)
				return 200, nil
			}))
			body := make([]byte, 512)
			b.SetParallelism(32) // 32 × GOMAXPROCS concurrent callers
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				m := &bulwark.Message{Route: "r", Upstream: "up", Method: "POST", Path: "/x", Body: body}
				for pb.Next() {
					if _, err := s.Enqueue(context.Background(), m); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "accepted/s")
		})
	}
}

// BenchmarkDeliver measures delivered messages per second end to end:
// b.N messages enqueued by parallel callers and delivered to a no-op
// forwarder, until the backlog is empty (each settled message is deleted
// from the work stream, then acknowledged).
func BenchmarkDeliver(b *testing.B) {
	cfg := testConfig(b, b.TempDir())
	cfg.Logger = nil
	var delivered atomic.Int64
	s := open(b, cfg, forwardFunc(func(context.Context, *bulwark.Message) (int, error) {
		delivered.Add(1)
		return 200, nil
	}))
	body := make([]byte, 512)
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		m := &bulwark.Message{Route: "r", Upstream: "up", Method: "POST", Path: "/x", Body: body}
		for pb.Next() {
			if _, err := s.Enqueue(context.Background(), m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	for delivered.Load() < int64(b.N) || s.Snapshot().Queued > 0 {
		time.Sleep(time.Millisecond) // polling
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "delivered/s")
}
