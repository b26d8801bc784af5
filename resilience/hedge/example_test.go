package hedge_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
	"github.com/bulwark-go/bulwark/resilience/hedge"
)

// A hedge in a pipeline: the first attempt is stuck, so after 5 ms a second
// one is sent; it answers and the stuck one is cancelled.
func ExampleNew() {
	h, err := hedge.New(hedge.Config{
		Delay:    5 * time.Millisecond,
		Observer: func(e resilience.Event) { fmt.Println(e.Kind, "attempt", e.Attempt) },
	})
	if err != nil {
		panic(err)
	}
	p := resilience.New(resilience.Policies{Hedge: h})
	var calls atomic.Int32 // attempts run on their own goroutines
	done := make(chan error, 1)
	v, err := resilience.Do(context.Background(), p, func(ctx context.Context) (string, error) {
		if calls.Add(1) == 1 {
			<-ctx.Done() // a replica that hangs
			done <- context.Cause(ctx)
			return "", ctx.Err()
		}
		return "fast replica", nil
	})
	fmt.Println(v, err)
	fmt.Println("loser's cause:", <-done)
	// Output:
	// hedge attempt 2
	// fast replica <nil>
	// loser's cause: hedge: another attempt won
}
