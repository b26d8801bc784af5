package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
	"github.com/bulwark-go/bulwark/resilience/breaker"
)

// A breaker in a pipeline: after enough failures it opens, and calls are
// rejected without reaching the callee.
func ExampleNew() {
	b, err := breaker.New(breaker.Config{
		Name:         "inventory",
		WindowSize:   10, // judge the last 10 calls
		MinimumCalls: 5,  // once there are at least 5
		OpenDuration: 15 * time.Second,
	})
	if err != nil {
		panic(err)
	}
	p := resilience.New(resilience.Policies{Breaker: b})
	down := errors.New("connection refused")
	for i := range 6 {
		_, err := resilience.Do(context.Background(), p, func(context.Context) (string, error) {
			return "", down
		})
		fmt.Printf("call %d: %v (breaker %v)\n", i+1, err, b.State())
	}
	_, err = resilience.Do(context.Background(), p, func(context.Context) (string, error) { return "ok", nil })
	fmt.Println(errors.Is(err, breaker.ErrOpen), errors.Is(err, resilience.ErrRejected))
	// Output:
	// call 1: connection refused (breaker closed)
	// call 2: connection refused (breaker closed)
	// call 3: connection refused (breaker closed)
	// call 4: connection refused (breaker closed)
	// call 5: connection refused (breaker open)
	// call 6: circuit breaker "inventory" is open (breaker open)
	// true true
}

// Allow is the two-step form a proxy uses: admit when the request leaves,
// report when its response (or error) comes back.
func ExampleBreaker_Allow() {
	b, err := breaker.New(breaker.Config{Name: "backend-1", WindowSize: 4})
	if err != nil {
		panic(err)
	}
	forward := func(status int) error {
		done, err := b.Allow()
		if err != nil {
			return err // answer 503 without touching the backend
		}
		var callErr error
		if status >= 500 {
			callErr = fmt.Errorf("backend answered %d", status)
		}
		done(resilience.Outcome{Err: callErr})
		return callErr
	}
	for _, status := range []int{200, 502, 503, 200, 200} {
		fmt.Println(forward(status))
	}
	s := b.Snapshot()
	fmt.Printf("%v: %d calls, %.0f%% failed\n", s.State, s.Calls, s.FailureRate)
	// Output:
	// <nil>
	// backend answered 502
	// backend answered 503
	// <nil>
	// circuit breaker "backend-1" is open
	// open: 0 calls, 0% failed
}
