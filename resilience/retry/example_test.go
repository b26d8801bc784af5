package retry_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
	"github.com/bulwark-go/bulwark/resilience/retry"
)

// A retry policy in a pipeline: the flaky call succeeds on its third
// attempt. Retry sits outside the breaker in resilience.New's order, so
// each attempt would be one breaker sample.
func ExampleNew() {
	r, err := retry.New(retry.Config{
		MaxAttempts: 4,
		Backoff:     retry.Backoff{Kind: retry.Exponential, Base: time.Millisecond, Max: 10 * time.Millisecond},
		Observer: func(e resilience.Event) {
			fmt.Printf("%s: attempt %d failed (%v), waiting %v\n", e.Kind, e.Attempt, e.Err, e.Delay)
		},
	})
	if err != nil {
		panic(err)
	}
	p := resilience.New(resilience.Policies{Retry: r})
	calls := 0
	v, err := resilience.Do(context.Background(), p, func(ctx context.Context) (string, error) {
		calls++
		if calls < 3 {
			return "", errors.New("connection reset")
		}
		return "hello", nil
	})
	fmt.Println(v, err)
	// Output:
	// retry: attempt 1 failed (connection reset), waiting 1ms
	// retry: attempt 2 failed (connection reset), waiting 2ms
	// hello <nil>
}

// One budget shared by every policy that calls the same callee caps the
// retries they add together. Here the budget allows no retry at all (no
// reserve, and one request earns only 0.2 retries), so the call fails at
// once with ErrBudgetExhausted rather than adding load.
func ExampleRateBudget() {
	budget, err := retry.NewRateBudget(retry.RateBudgetConfig{Ratio: 0.2, MinPerSecond: -1})
	if err != nil {
		panic(err)
	}
	r, err := retry.New(retry.Config{Budget: budget})
	if err != nil {
		panic(err)
	}
	p := resilience.New(resilience.Policies{Retry: r})
	err = resilience.Run(context.Background(), p, func(ctx context.Context) error {
		return errors.New("503 service unavailable")
	})
	fmt.Println(errors.Is(err, retry.ErrBudgetExhausted))
	fmt.Println(err)
	// Output:
	// true
	// retry budget exhausted after 1 attempts: 503 service unavailable
}

// A server's Retry-After, parsed from the header and attached to the
// error, stretches the next delay.
func ExampleParseRetryAfter() {
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	for _, h := range []string{"120", "Thu, 26 Nov 2026 03:00:30 GMT", "later"} {
		d, ok := retry.ParseRetryAfter(h, now)
		fmt.Println(d, ok)
	}
	err := retry.After(errors.New("429 too many requests"), 2*time.Second)
	var ra retry.RetryAfterError
	fmt.Println(errors.As(err, &ra), ra.RetryAfter())
	// Output:
	// 2m0s true
	// 30s true
	// 0s false
	// true 2s
}
