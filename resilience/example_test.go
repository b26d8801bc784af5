package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
)

// A pipeline is built once and used for every call. Here a timeout bounds
// each call and a fallback answers when it fails.
func ExampleDo() {
	p := resilience.New(resilience.Policies{
		Fallback: resilience.FallbackTo(func(ctx context.Context, err error) (string, error) {
			return "stale answer", nil
		}),
		Timeout: resilience.Timeout{Duration: 10 * time.Millisecond},
	})
	v, err := resilience.Do(context.Background(), p, func(ctx context.Context) (string, error) {
		<-ctx.Done() // a callee that is too slow
		return "", ctx.Err()
	})
	fmt.Println(v, err)
	// Output: stale answer <nil>
}

// Compose takes policies in any order, outermost first, including custom
// ones written as a PolicyFunc.
func ExampleCompose() {
	logging := resilience.PolicyFunc(func(ctx context.Context, next resilience.Next) (any, error) {
		v, err := next(ctx)
		fmt.Println("call returned", v, err)
		return v, err
	})
	p, err := resilience.Compose(logging, resilience.Timeout{Duration: time.Second})
	if err != nil {
		panic(err)
	}
	err = resilience.Run(context.Background(), p, func(ctx context.Context) error {
		return errors.New("backend said no")
	})
	fmt.Println(err)
	// Output:
	// call returned {} backend said no
	// backend said no
}
