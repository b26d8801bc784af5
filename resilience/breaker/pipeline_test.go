package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
	"github.com/bulwark-go/bulwark/resilience/breaker"
)

// TestPipeline runs the breaker inside resilience.Do, where the pipeline
// drives it through Admit and Release (the Guard fast path).
func TestPipeline(t *testing.T) {
	b, err := breaker.New(breaker.Config{Name: "upstream"})
	if err != nil {
		t.Fatal(err)
	}
	p := resilience.New(resilience.Policies{Breaker: b})
	ctx := context.Background()
	answer := func(context.Context) (int, error) { return 42, nil }

	allocs := testing.AllocsPerRun(1000, func() {
		if v, err := resilience.Do(ctx, p, answer); v != 42 || err != nil {
			t.Fatalf("Do: %v, %v", v, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("the success path allocates %v times", allocs)
	}
	next := func(context.Context) (any, error) { return nil, nil }
	if n := testing.AllocsPerRun(100, func() { _, _ = b.Execute(ctx, next) }); n != 0 {
		t.Fatalf("Execute allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = breaker.Do(ctx, b, answer) }); n != 0 {
		t.Fatalf("Do allocates %v times", n)
	}
	if s := b.Snapshot(); s.Calls != breaker.DefaultWindowSize || s.Failures != 0 {
		t.Fatalf("window %+v: the pipeline did not report outcomes", s)
	}

	failing := func(context.Context) (int, error) { return 0, errBoom }
	for b.State() == breaker.StateClosed {
		if _, err := resilience.Do(ctx, p, failing); !errors.Is(err, errBoom) {
			t.Fatalf("Do: %v", err)
		}
	}
	if s := b.Snapshot(); s.State != breaker.StateOpen || s.Generation != 2 {
		t.Fatalf("after failures: %+v", s)
	}
	called := false
	_, err = resilience.Do(ctx, p, func(context.Context) (int, error) { called = true; return 1, nil })
	if !errors.Is(err, breaker.ErrOpen) || !errors.Is(err, resilience.ErrRejected) || called {
		t.Fatalf("open breaker in a pipeline: err %v, called %v", err, called)
	}
}

// TestPipelineIgnoresInnerRejections: a policy inside the breaker that
// rejects (a full bulkhead) says nothing about the callee.
func TestPipelineIgnoresInnerRejections(t *testing.T) {
	b, err := breaker.New(breaker.Config{WindowSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	full := resilience.PolicyFunc(func(context.Context, resilience.Next) (any, error) {
		return nil, fmt.Errorf("bulkhead full: %w", resilience.ErrRejected)
	})
	p, err := resilience.Compose(b, full)
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, err := resilience.Do(context.Background(), p, func(context.Context) (int, error) { return 1, nil }); err == nil {
			t.Fatal("the inner policy did not reject")
		}
	}
	if s := b.Snapshot(); s.State != breaker.StateClosed || s.Calls != 0 {
		t.Fatalf("inner rejections were recorded: %+v", s)
	}
}

// TestPipelineSlowCalls: with slow-call detection on, the pipeline
// measures latency for the breaker.
func TestPipelineSlowCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := breaker.New(breaker.Config{WindowSize: 4, SlowCallDuration: 100 * time.Millisecond, SlowCallRateThreshold: 50})
		if err != nil {
			t.Fatal(err)
		}
		p := resilience.New(resilience.Policies{Breaker: b})
		sleepy := func(d time.Duration) func(context.Context) (int, error) {
			return func(context.Context) (int, error) { time.Sleep(d); return 1, nil }
		}
		for _, d := range []time.Duration{10 * time.Millisecond, 150 * time.Millisecond, 10 * time.Millisecond} {
			if _, err := resilience.Do(context.Background(), p, sleepy(d)); err != nil {
				t.Fatal(err)
			}
		}
		if s := b.Snapshot(); s.State != breaker.StateClosed || s.Calls != 3 || s.SlowCalls != 1 {
			t.Fatalf("after one slow call in three: %+v", s)
		}
		if _, err := resilience.Do(context.Background(), p, sleepy(100*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if s := b.Snapshot(); s.State != breaker.StateOpen {
			t.Fatalf("two slow calls in four did not open the breaker: %+v", s)
		}
	})
}

// TestConcurrentUse hammers one breaker from several goroutines, one of
// which also flips it by hand; run with -race. The assertions are the
// invariants that must hold at any moment.
func TestConcurrentUse(t *testing.T) {
	const probes = 2
	b, err := breaker.New(breaker.Config{
		WindowSize: 20, MinimumCalls: 10, OpenDuration: 50 * time.Microsecond, HalfOpenCalls: probes,
		HalfOpenMaxWait: time.Millisecond, OpenJitter: 0.5, OpenDurationMultiplier: 1.5,
		Rand: rand.New(rand.NewPCG(3, 4)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var workers sync.WaitGroup
	for g := range 4 {
		workers.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 9))
			for i := range 20000 {
				if g == 0 { // one worker also flips the breaker by hand
					switch i % 500 {
					case 100:
						b.ForceOpen()
					case 101, 301:
						b.Reset()
					case 300:
						b.Disable()
					}
				}
				var o resilience.Outcome
				switch r.IntN(8) {
				case 0, 1:
					o.Err = errBoom
				case 2:
					o.Err = context.Canceled
				}
				if r.IntN(2) == 0 {
					if p, err := b.Admit(ctx); err == nil {
						p.Release(o)
					}
				} else if done, err := b.Allow(); err == nil {
					done(o)
				}
				if s := b.Snapshot(); s.Calls > 20 || s.Failures > s.Calls || s.ProbesInFlight > probes {
					t.Errorf("snapshot out of bounds: %+v", s)
					return
				}
			}
		})
	}
	workers.Wait()
	if g := b.Snapshot().Generation; g < 20 {
		t.Fatalf("only %d generations: the test did not exercise transitions", g)
	}
}
