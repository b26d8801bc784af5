package retry_test

import (
	"context"
	"testing"

	"github.com/bulwark-go/bulwark/resilience"
	"github.com/bulwark-go/bulwark/resilience/retry"
)

//go:noinline
func succeed(context.Context) (int, error) { return 42, nil }

// successPipelines returns the pipelines the success benchmarks compare:
// the guard alone (the baseline the retry's cost is measured against) and
// retry(guard) without and with each budget.
func successPipelines(b *testing.B) []struct {
	name string
	p    *resilience.Pipeline
} {
	g := &nopGuard{}
	plain := mustNew(b, retry.Config{})
	bs := budgets(b)
	withRate := mustNew(b, retry.Config{Budget: bs[0]})
	withConc := mustNew(b, retry.Config{Budget: bs[1]})
	return []struct {
		name string
		p    *resilience.Pipeline
	}{
		{"guard-only", resilience.New(resilience.Policies{Breaker: g})},
		{"retry+guard", resilience.New(resilience.Policies{Retry: plain, Breaker: g})},
		{"retry+guard+rate-budget", resilience.New(resilience.Policies{Retry: withRate, Breaker: g})},
		{"retry+guard+concurrency-budget", resilience.New(resilience.Policies{Retry: withConc, Breaker: g})},
	}
}

func BenchmarkRetrySuccess(b *testing.B) {
	ctx := context.Background()
	for _, c := range successPipelines(b) {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := resilience.Do(ctx, c.p, succeed); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRetrySuccessParallel(b *testing.B) {
	ctx := context.Background()
	for _, c := range successPipelines(b) {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := resilience.Do(ctx, c.p, succeed); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkRateBudget measures the deposit path every call pays
// (Request+Done) and the withdrawal path a failing call pays, both
// contended by all cores.
func BenchmarkRateBudget(b *testing.B) {
	benchmarkBudget(b, budgets(b)[0])
}

// BenchmarkConcurrencyBudget is BenchmarkRateBudget for the concurrency
// family.
func BenchmarkConcurrencyBudget(b *testing.B) {
	benchmarkBudget(b, budgets(b)[1])
}

func benchmarkBudget(b *testing.B, budget retry.Budget) {
	b.Run("request", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				budget.Request()
				budget.Done()
			}
		})
	})
	b.Run("retry", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				budget.Request()
				if budget.TryRetry() {
					budget.RetryDone()
				}
				budget.Done()
			}
		})
	})
}
