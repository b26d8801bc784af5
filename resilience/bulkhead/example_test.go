package bulkhead_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
	"github.com/bulwark-go/bulwark/resilience/bulkhead"
)

// A bulkhead of two: a third concurrent call is rejected with ErrFull,
// which also matches resilience.ErrRejected.
func Example() {
	b, err := bulkhead.New(bulkhead.Config{MaxConcurrent: 2})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	p1, _ := b.Admit(ctx)
	p2, _ := b.Admit(ctx)
	_, err = b.Admit(ctx)
	fmt.Println(errors.Is(err, bulkhead.ErrFull), errors.Is(err, resilience.ErrRejected))
	p1.Release(resilience.Outcome{})
	p2.Release(resilience.Outcome{})
	// Output: true true
}

// In a pipeline, the bulkhead wraps each attempt.
func Example_pipeline() {
	b, _ := bulkhead.New(bulkhead.Config{MaxConcurrent: 10, MaxWait: 50 * time.Millisecond})
	p := resilience.New(resilience.Policies{Bulkhead: b})
	v, err := resilience.Do(context.Background(), p, func(context.Context) (string, error) {
		return "ok", nil
	})
	fmt.Println(v, err)
	// Output: ok <nil>
}
