package limit

import (
	"context"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
)

// benchLimiter has a limit no benchmark reaches, so every iteration takes
// the success path; the outcome carries a fixed RTT as a pipeline would.
func benchLimiter(b *testing.B) *Limiter {
	b.Helper()
	l, err := New(Config{Algorithm: Fixed(1 << 20)})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

var benchOutcome = resilience.Outcome{Latency: time.Millisecond}

func BenchmarkLimiterAcquireRelease(b *testing.B) {
	l := benchLimiter(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		release, err := l.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		release(benchOutcome)
	}
}

func BenchmarkLimiterAcquireReleaseParallel(b *testing.B) {
	l := benchLimiter(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			release, err := l.Acquire(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			release(benchOutcome)
		}
	})
}

func BenchmarkLimiterAdmitRelease(b *testing.B) {
	l := benchLimiter(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p, err := l.Admit(ctx)
		if err != nil {
			b.Fatal(err)
		}
		p.Release(benchOutcome)
	}
}

func BenchmarkLimiterAdmitReleaseParallel(b *testing.B) {
	l := benchLimiter(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p, err := l.Admit(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			p.Release(benchOutcome)
		}
	})
}

// BenchmarkLimiterVegas is the full path with a real algorithm updating
// every window.
func BenchmarkLimiterVegas(b *testing.B) {
	l, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p, err := l.Admit(ctx)
		if err != nil {
			b.Fatal(err)
		}
		p.Release(benchOutcome)
	}
}

func BenchmarkLimiterInPipeline(b *testing.B) {
	l := benchLimiter(b)
	p := resilience.New(resilience.Policies{Limit: l})
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 42, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := resilience.Do(ctx, p, fn); err != nil {
			b.Fatal(err)
		}
	}
}
