package breaker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
	"github.com/bulwark-go/bulwark/resilience/breaker"
)

func newBench(b *testing.B, cfg breaker.Config) *breaker.Breaker {
	b.Helper()
	br, err := breaker.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return br
}

// BenchmarkBreakerSuccess is the closed-state success path through the
// Guard interface, as a pipeline drives it: Admit, then Release.
func BenchmarkBreakerSuccess(b *testing.B) {
	br := newBench(b, breaker.Config{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p, err := br.Admit(ctx)
		if err != nil {
			b.Fatal(err)
		}
		p.Release(resilience.Outcome{})
	}
}

// BenchmarkBreakerSuccessParallel is the same path from every core at
// once: ns/op is wall time over all goroutines' calls.
func BenchmarkBreakerSuccessParallel(b *testing.B) {
	br := newBench(b, breaker.Config{})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p, err := br.Admit(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			p.Release(resilience.Outcome{})
		}
	})
}

// BenchmarkBreakerAllow is the two-step proxy path: Allow, then done.
func BenchmarkBreakerAllow(b *testing.B) {
	br := newBench(b, breaker.Config{})
	b.ReportAllocs()
	for b.Loop() {
		done, err := br.Allow()
		if err != nil {
			b.Fatal(err)
		}
		done(resilience.Outcome{})
	}
}

// BenchmarkBreakerTimeWindow is the success path with a time-based window,
// which reads the clock once per call.
func BenchmarkBreakerTimeWindow(b *testing.B) {
	br := newBench(b, breaker.Config{Window: breaker.TimeWindow})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p, err := br.Admit(ctx)
		if err != nil {
			b.Fatal(err)
		}
		p.Release(resilience.Outcome{})
	}
}

// BenchmarkBreakerRejected is an open breaker turning calls away.
func BenchmarkBreakerRejected(b *testing.B) {
	br := newBench(b, breaker.Config{OpenDuration: time.Hour})
	for range 20 { // trip it for real, so the open-state path (with its clock read) is measured
		done, _ := br.Allow()
		done(resilience.Outcome{Err: errors.New("boom")})
	}
	if br.State() != breaker.StateOpen {
		b.Fatalf("state %v, want open", br.State())
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Admit(ctx); err == nil {
			b.Fatal("admitted")
		}
	}
}

// BenchmarkBreakerMixedParallel is the parallel path with one failure in
// every 64 calls, so the window is never clean and every call claims a
// ring position (the contended path BenchmarkBreakerSuccessParallel skips).
func BenchmarkBreakerMixedParallel(b *testing.B) {
	br := newBench(b, breaker.Config{FailureRateThreshold: 90})
	ctx := context.Background()
	boom := errors.New("boom")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var n int
		for pb.Next() {
			p, err := br.Admit(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			var o resilience.Outcome
			if n++; n%64 == 0 {
				o.Err = boom
			}
			p.Release(o)
		}
	})
}

// BenchmarkBreakerPipeline is the breaker as the only policy of a
// resilience pipeline, through resilience.Do.
func BenchmarkBreakerPipeline(b *testing.B) {
	p := resilience.New(resilience.Policies{Breaker: newBench(b, breaker.Config{})})
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 42, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := resilience.Do(ctx, p, fn); err != nil {
			b.Fatal(err)
		}
	}
}
