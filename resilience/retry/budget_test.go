package retry_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
	"github.com/bulwark-go/bulwark/resilience/retry"
)

func newRate(t testing.TB, cfg retry.RateBudgetConfig) *retry.RateBudget {
	t.Helper()
	b, err := retry.NewRateBudget(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newConcurrency(t testing.TB, cfg retry.ConcurrencyBudgetConfig) *retry.ConcurrencyBudget {
	t.Helper()
	b, err := retry.NewConcurrencyBudget(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBudgetConfigValidate(t *testing.T) {
	for name, err := range map[string]error{
		"rate zero":               retry.RateBudgetConfig{}.Validate(),
		"concurrency zero":        retry.ConcurrencyBudgetConfig{}.Validate(),
		"rate no reserve":         retry.RateBudgetConfig{MinPerSecond: -1}.Validate(),
		"rate negative ratio":     retry.RateBudgetConfig{Ratio: -0.1}.Validate(),
		"rate tiny ttl":           retry.RateBudgetConfig{TTL: time.Millisecond}.Validate(),
		"concurrency percent":     retry.ConcurrencyBudgetConfig{Percent: 101}.Validate(),
		"concurrency negative":    retry.ConcurrencyBudgetConfig{MinConcurrency: -1}.Validate(),
		"rate ttl of a whole day": retry.RateBudgetConfig{TTL: 24 * time.Hour}.Validate(),
	} {
		wantOK := name == "rate zero" || name == "concurrency zero" || name == "rate no reserve"
		if (err == nil) != wantOK {
			t.Errorf("%s: err = %v, want ok = %v", name, err, wantOK)
		}
	}
}

// take withdraws from b until it refuses and returns how many it allowed.
func take(b retry.Budget, limit int) int {
	n := 0
	for n < limit && b.TryRetry() {
		n++
	}
	return n
}

func TestRateBudgetRatio(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newRate(t, retry.RateBudgetConfig{Ratio: 0.5, MinPerSecond: -1, TTL: time.Second})
		if got := take(b, 100); got != 0 {
			t.Fatalf("no requests, no reserve: %d retries allowed", got)
		}
		for range 10 {
			b.Request()
		}
		if got := take(b, 100); got != 5 {
			t.Fatalf("10 requests at 50%%: %d retries allowed, want 5", got)
		}
		// Half a TTL later another 10 requests earn 5 more.
		time.Sleep(500 * time.Millisecond)
		_ = b.Available() // advance the window so the next deposits land in their own slice
		for range 10 {
			b.Request()
		}
		if got := take(b, 100); got != 5 {
			t.Fatalf("10 more requests: %d retries allowed, want 5", got)
		}
		// After a TTL the first deposits and withdrawals have expired: the
		// second batch's 10 requests are balanced by its 5 retries.
		time.Sleep(600 * time.Millisecond)
		if got := b.Available(); got != 0 {
			t.Fatalf("after the first batch expired: %d available, want 0", got)
		}
		// After another TTL everything expired.
		time.Sleep(time.Second)
		for range 4 {
			b.Request()
		}
		if got := take(b, 100); got != 2 {
			t.Fatalf("fresh window, 4 requests: %d retries allowed, want 2", got)
		}
	})
}

func TestRateBudgetReserve(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newRate(t, retry.RateBudgetConfig{MinPerSecond: 3, TTL: 2 * time.Second})
		if got := take(b, 100); got != 6 {
			t.Fatalf("reserve of 3/s over 2 s: %d retries allowed, want 6", got)
		}
		time.Sleep(2 * time.Second) // withdrawals expire
		if got := take(b, 100); got != 6 {
			t.Fatalf("after a TTL: %d retries allowed, want 6", got)
		}
		// Defaults: 10/s over 10 s.
		d := newRate(t, retry.RateBudgetConfig{})
		if got := d.Available(); got != 100 {
			t.Fatalf("default reserve: %d, want 100", got)
		}
	})
}

// TestRateBudgetDepositPathRolls checks the window moves on the deposit
// path alone (a clock read every 32 deposits) within its documented error.
func TestRateBudgetDepositPathRolls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newRate(t, retry.RateBudgetConfig{Ratio: 1, MinPerSecond: -1, TTL: time.Second})
		for range 300 { // 100 requests/s for 3 s
			b.Request()
			time.Sleep(10 * time.Millisecond)
		}
		if got := b.Available(); got < 100-31 || got > 100 {
			t.Fatalf("100 requests in the last TTL: %d available, want in [69, 100]", got)
		}
	})
}

func TestConcurrencyBudget(t *testing.T) {
	b := newConcurrency(t, retry.ConcurrencyBudgetConfig{})
	if got := take(b, 100); got != 3 {
		t.Fatalf("idle: %d retries allowed, want the minimum 3", got)
	}
	for range 50 {
		b.Request()
	}
	if got := take(b, 100); got != 7 {
		t.Fatalf("50 active: %d more retries allowed, want 7 (20%% = 10 in all)", got)
	}
	for range 10 {
		b.RetryDone()
	}
	if got := b.Available(); got != 10 {
		t.Fatalf("after the retries ended: %d available, want 10", got)
	}
	for range 50 {
		b.Done()
	}
	if got := b.Available(); got != 3 {
		t.Fatalf("idle again: %d available, want 3", got)
	}
	p := newConcurrency(t, retry.ConcurrencyBudgetConfig{Percent: 50, MinConcurrency: 1})
	for range 10 {
		p.Request()
	}
	if got := take(p, 100); got != 5 {
		t.Fatalf("50%% of 10: %d, want 5", got)
	}
}

// TestBudgetExhaustion checks that a spent budget ends the execution at
// once, without waiting, with ErrBudgetExhausted wrapping the last error.
func TestBudgetExhaustion(t *testing.T) {
	spentRate := func(t *testing.T) retry.Budget {
		return newRate(t, retry.RateBudgetConfig{MinPerSecond: -1}) // one request earns 0.2 retries
	}
	spentConcurrency := func(t *testing.T) retry.Budget {
		b := newConcurrency(t, retry.ConcurrencyBudgetConfig{MinConcurrency: 1})
		if !b.TryRetry() { // another caller holds the only retry
			t.Fatal("TryRetry refused")
		}
		return b
	}
	for name, mk := range map[string]func(*testing.T) retry.Budget{"rate": spentRate, "concurrency": spentConcurrency} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var rec recorder
				p := mustNew(t, retry.Config{Budget: mk(t), Backoff: constant, Observer: rec.observe})
				calls := 0
				start := time.Now()
				_, err := resilience.Do(t.Context(), resilience.New(resilience.Policies{Retry: p}), failing(10, &calls))
				if calls != 1 || !errors.Is(err, retry.ErrBudgetExhausted) || !errors.Is(err, errBoom) {
					t.Errorf("calls = %d, err = %v; want 1 call, ErrBudgetExhausted wrapping boom", calls, err)
				}
				if time.Since(start) != 0 {
					t.Errorf("a spent budget waited %v", time.Since(start))
				}
				if ks := rec.kinds(); len(ks) != 1 || ks[0] != resilience.EventRetriesExhausted {
					t.Errorf("events %v, want [retries_exhausted]", ks)
				}
			})
		})
	}
}

// TestBudgetSharedByConcurrentCallers runs many callers of always-failing
// calls through policies sharing one budget.
func TestBudgetSharedByConcurrentCallers(t *testing.T) {
	const callers = 100
	run := func(t *testing.T, b retry.Budget, attempt func(retry bool)) (attempts int, exhausted int) {
		p := mustNew(t, retry.Config{MaxAttempts: 3, Budget: b, Backoff: constant})
		pl := resilience.New(resilience.Policies{Retry: p})
		var total, spent atomic.Int64
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				n := 0
				_, err := resilience.Do(t.Context(), pl, func(context.Context) (int, error) {
					n++
					total.Add(1)
					attempt(n > 1)
					return 0, errBoom
				})
				if errors.Is(err, retry.ErrBudgetExhausted) {
					spent.Add(1)
				}
			})
		}
		wg.Wait()
		return int(total.Load()), int(spent.Load())
	}
	t.Run("rate", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newRate(t, retry.RateBudgetConfig{Ratio: 0.1, MinPerSecond: -1})
			attempts, spent := run(t, b, func(bool) { time.Sleep(10 * time.Millisecond) })
			// 100 requests earn exactly 10 retries; every caller ends on the budget.
			if attempts != callers+10 || spent != callers {
				t.Errorf("attempts = %d, budget-exhausted = %d; want %d and %d", attempts, spent, callers+10, callers)
			}
		})
	})
	t.Run("concurrency", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newConcurrency(t, retry.ConcurrencyBudgetConfig{Percent: 10, MinConcurrency: 2})
			var inRetry, peak atomic.Int64
			attempts, spent := run(t, b, func(isRetry bool) {
				if isRetry {
					n := inRetry.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					defer inRetry.Add(-1)
				}
				time.Sleep(10 * time.Millisecond)
			})
			// At most 10% of 100 active callers retry at once.
			if got := peak.Load(); got < 2 || got > 10 {
				t.Errorf("peak concurrent retries = %d, want in [2, 10]", got)
			}
			if attempts <= callers || spent == 0 {
				t.Errorf("attempts = %d, budget-exhausted = %d: want some retries and some refusals", attempts, spent)
			}
			if got := b.Available(); got != 2 {
				t.Errorf("after all callers ended: %d available, want the minimum 2 (a retry leaked)", got)
			}
		})
	})
}
