// Package resilience compares Bulwark's resilience library with its peers
// on the success path, as the issue asks: sony/gobreaker v2, failsafe-go.
// Every benchmark protects the same no-op function; policies are built once
// and reused, as a service would.
//
//	cd bench && go test -run '^$' -bench . -benchmem -count 5 ./resilience/
package resilience

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
	"github.com/bulwark-go/bulwark/resilience/breaker"
	"github.com/bulwark-go/bulwark/resilience/bulkhead"
	"github.com/bulwark-go/bulwark/resilience/limit"
	"github.com/bulwark-go/bulwark/resilience/retry"
	"github.com/failsafe-go/failsafe-go"
	fsbulkhead "github.com/failsafe-go/failsafe-go/bulkhead"
	fsbreaker "github.com/failsafe-go/failsafe-go/circuitbreaker"
	fsfallback "github.com/failsafe-go/failsafe-go/fallback"
	fsretry "github.com/failsafe-go/failsafe-go/retrypolicy"
	fstimeout "github.com/failsafe-go/failsafe-go/timeout"
	"github.com/sony/gobreaker/v2"
)

//go:noinline
func work() (int, error) { return 42, nil }

func call(context.Context) (int, error) { return work() }

// run runs fn b.N times, on one goroutine or with b.RunParallel.
func run(b *testing.B, parallel bool, fn func()) {
	b.ReportAllocs()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				fn()
			}
		})
		return
	}
	for b.Loop() {
		fn()
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func benchBreaker(b *testing.B, parallel bool) {
	ctx := context.Background()
	// The breaker's own typed entry point, as gobreaker's Execute and
	// failsafe's executor are theirs.
	b.Run("bulwark", func(b *testing.B) {
		cb := must(breaker.New(breaker.Config{}))
		run(b, parallel, func() { breaker.Do(ctx, cb, call) })
	})
	// The same breaker as the only stage of a resilience pipeline.
	b.Run("bulwark-pipeline", func(b *testing.B) {
		p := resilience.New(resilience.Policies{Breaker: must(breaker.New(breaker.Config{}))})
		run(b, parallel, func() { resilience.Do(ctx, p, call) })
	})
	b.Run("gobreaker", func(b *testing.B) {
		cb := gobreaker.NewCircuitBreaker[int](gobreaker.Settings{Name: "b"})
		run(b, parallel, func() { cb.Execute(work) })
	})
	b.Run("failsafe", func(b *testing.B) {
		ex := failsafe.With[int](fsbreaker.NewWithDefaults[int]())
		run(b, parallel, func() { ex.Get(work) })
	})
}

func BenchmarkBreakerSuccess(b *testing.B)         { benchBreaker(b, false) }
func BenchmarkBreakerSuccessParallel(b *testing.B) { benchBreaker(b, true) }

func bulwarkRetry() *retry.Policy {
	return must(retry.New(retry.Config{MaxAttempts: 4, Backoff: retry.Backoff{Kind: retry.Exponential, Base: 10 * time.Millisecond, Max: time.Second, Jitter: 0.1}}))
}

func failsafeRetry() fsretry.RetryPolicy[int] {
	return fsretry.NewBuilder[int]().WithMaxRetries(3).WithBackoff(10*time.Millisecond, time.Second).WithJitterFactor(0.1).Build()
}

func benchRetryBreaker(b *testing.B, parallel bool) {
	ctx := context.Background()
	b.Run("bulwark", func(b *testing.B) {
		p := resilience.New(resilience.Policies{Retry: bulwarkRetry(), Breaker: must(breaker.New(breaker.Config{}))})
		run(b, parallel, func() { resilience.Do(ctx, p, call) })
	})
	b.Run("failsafe", func(b *testing.B) {
		ex := failsafe.With[int](failsafeRetry(), fsbreaker.NewWithDefaults[int]())
		run(b, parallel, func() { ex.Get(work) })
	})
}

func BenchmarkRetryBreakerSuccess(b *testing.B)         { benchRetryBreaker(b, false) }
func BenchmarkRetryBreakerSuccessParallel(b *testing.B) { benchRetryBreaker(b, true) }

var errFallback = errors.New("unused")

// benchPipeline5 composes fallback, retry, breaker, bulkhead and timeout,
// outermost first, in both libraries.
func benchPipeline5(b *testing.B, parallel bool) {
	ctx := context.Background()
	b.Run("bulwark", func(b *testing.B) {
		p := resilience.New(resilience.Policies{
			Fallback: resilience.FallbackTo(func(context.Context, error) (int, error) { return 0, errFallback }),
			Retry:    bulwarkRetry(),
			Breaker:  must(breaker.New(breaker.Config{})),
			Bulkhead: must(bulkhead.New(bulkhead.Config{MaxConcurrent: 100})),
			Timeout:  resilience.Timeout{Duration: time.Second},
		})
		run(b, parallel, func() { resilience.Do(ctx, p, call) })
	})
	b.Run("failsafe", func(b *testing.B) {
		ex := failsafe.With[int](
			fsfallback.NewWithResult[int](0),
			failsafeRetry(),
			fsbreaker.NewWithDefaults[int](),
			fsbulkhead.New[int](100),
			fstimeout.New[int](time.Second),
		)
		run(b, parallel, func() { ex.Get(work) })
	})
}

func BenchmarkPipeline5(b *testing.B)         { benchPipeline5(b, false) }
func BenchmarkPipeline5Parallel(b *testing.B) { benchPipeline5(b, true) }

func benchLimiter(b *testing.B, parallel bool) {
	ctx := context.Background()
	b.Run("bulwark", func(b *testing.B) {
		l := must(limit.New(limit.Config{Algorithm: must(limit.NewGradient2(limit.Gradient2Config{InitialLimit: 1000, MinLimit: 1000, MaxLimit: 2000}))}))
		o := resilience.Outcome{Latency: time.Millisecond}
		run(b, parallel, func() {
			release, err := l.Acquire(ctx)
			if err == nil {
				release(o)
			}
		})
	})
}

func BenchmarkLimiterAcquireRelease(b *testing.B)         { benchLimiter(b, false) }
func BenchmarkLimiterAcquireReleaseParallel(b *testing.B) { benchLimiter(b, true) }
