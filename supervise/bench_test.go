package supervise

import (
	"context"
	"testing"
	"time"
)

// BenchmarkRestartAfterPanic measures a restart with no backoff: from the
// child's panic to its Serve running again (recover, stack capture, the
// supervisor's decision, a new goroutine).
func BenchmarkRestartAfterPanic(b *testing.B) {
	started := make(chan struct{})
	crash := make(chan struct{})
	svc := ServiceFunc(func(ctx context.Context) error {
		started <- struct{}{}
		select {
		case <-crash:
			panic("benchmark crash")
		case <-ctx.Done():
			return nil
		}
	})
	s := New(Config{Backoff: -1, MaxRestarts: 1 << 30, Period: time.Nanosecond}, Spec{Name: "svc", Service: svc})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	<-started
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		crash <- struct{}{}
		<-started
	}
	b.StopTimer()
	cancel()
	<-done
}

// BenchmarkRestartAfterError is the same with a returned error: the cost
// without the panic's stack capture.
func BenchmarkRestartAfterError(b *testing.B) {
	started := make(chan struct{})
	crash := make(chan struct{})
	svc := ServiceFunc(func(ctx context.Context) error {
		started <- struct{}{}
		select {
		case <-crash:
			return errBoom
		case <-ctx.Done():
			return nil
		}
	})
	s := New(Config{Backoff: -1, MaxRestarts: 1 << 30, Period: time.Nanosecond}, Spec{Name: "svc", Service: svc})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	<-started
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		crash <- struct{}{}
		<-started
	}
	b.StopTimer()
	cancel()
	<-done
}
