package ratelimit_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/bulwark-go/bulwark/resilience"
	"github.com/bulwark-go/bulwark/resilience/ratelimit"
)

// A bucket of 3: three calls pass at once, the fourth is rejected.
func Example() {
	l, err := ratelimit.New(ratelimit.Config{Rate: 1, Burst: 3})
	if err != nil {
		panic(err)
	}
	for range 4 {
		fmt.Print(l.Allow(), " ")
	}
	fmt.Println()
	// Output: true true true false
}

// One bucket per client, bounded to 10000 clients, as a pipeline guard.
func ExampleKeyed() {
	k, err := ratelimit.NewKeyed(ratelimit.KeyedConfig{Config: ratelimit.Config{Rate: 5, Burst: 1}, MaxKeys: 10000})
	if err != nil {
		panic(err)
	}
	p := resilience.New(resilience.Policies{RateLimit: k})
	call := func(client string) error {
		ctx := ratelimit.WithKey(context.Background(), client)
		return resilience.Run(ctx, p, func(context.Context) error { return nil })
	}
	fmt.Println(call("10.0.0.1"))
	fmt.Println(errors.Is(call("10.0.0.1"), resilience.ErrRejected))
	fmt.Println(call("10.0.0.2"))
	// Output:
	// <nil>
	// true
	// <nil>
}
