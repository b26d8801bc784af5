package limit_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
	"github.com/bulwark-go/bulwark/resilience/limit"
)

// A server-side limiter: Acquire before handling a request, release with
// its RTT (and Dropped when it timed out) after.
func Example() {
	alg, err := limit.NewGradient2(limit.Gradient2Config{InitialLimit: 2, MinLimit: 1})
	if err != nil {
		panic(err)
	}
	l, err := limit.New(limit.Config{Name: "api", Algorithm: alg})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	r1, _ := l.Acquire(ctx)
	r2, _ := l.Acquire(ctx)
	_, err = l.Acquire(ctx)
	fmt.Println(errors.Is(err, limit.ErrLimited), errors.Is(err, resilience.ErrRejected))
	r1(resilience.Outcome{Latency: 12 * time.Millisecond})
	r2(resilience.Outcome{Latency: 3 * time.Second, Dropped: true})
	fmt.Printf("%+v\n", l.Snapshot())
	// Output:
	// true true
	// {Limit:2 Inflight:0 Queued:0}
}

// In a pipeline the limiter is timed for free, and a timeout inside it
// counts as a drop.
func Example_pipeline() {
	l, _ := limit.New(limit.Config{}) // Vegas, Netflix defaults
	p := resilience.New(resilience.Policies{Limit: l, Timeout: resilience.Timeout{Duration: time.Second}})
	v, err := resilience.Do(context.Background(), p, func(context.Context) (string, error) { return "ok", nil })
	fmt.Println(v, err)
	// Output: ok <nil>
}

// Partitions guarantee batch traffic 10% of the limit and live traffic
// 90%; either may use more while the total is under the limit.
func Example_partitions() {
	l, _ := limit.New(limit.Config{
		Algorithm:  limit.Fixed(10),
		Partitions: []limit.Partition{{Name: "live", Share: 0.9}, {Name: "batch", Share: 0.1}},
	})
	release, err := l.AcquirePartition(context.Background(), "batch")
	fmt.Println(err)
	release(resilience.Outcome{Latency: time.Millisecond})
	lim, _, _ := l.PartitionSnapshot("live")
	fmt.Println(lim)
	// Output:
	// <nil>
	// 9
}

// With a queue, callers wait for a slot up to MaxWait; LIFO serves the
// newest first.
func ExampleConfig_queue() {
	l, _ := limit.New(limit.Config{Algorithm: limit.Fixed(1), MaxWait: 50 * time.Millisecond, MaxQueue: 100, Order: limit.LIFO})
	release, _ := l.Acquire(context.Background())
	start := time.Now()
	_, err := l.Acquire(context.Background())
	fmt.Println(errors.Is(err, limit.ErrLimited), time.Since(start) >= 50*time.Millisecond)
	release(resilience.Outcome{})
	// Output: true true
}
