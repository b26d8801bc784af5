package bulkhead

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
)

func newBulkhead(t testing.TB, cfg Config) *Bulkhead {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRejectWhenFull(t *testing.T) {
	var events []resilience.Event
	b := newBulkhead(t, Config{Name: "db", MaxConcurrent: 2, Observer: func(e resilience.Event) { events = append(events, e) }})
	ctx := context.Background()
	p1, err1 := b.Admit(ctx)
	p2, err2 := b.Admit(ctx)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	_, err := b.Admit(ctx)
	if !errors.Is(err, ErrFull) || !errors.Is(err, resilience.ErrRejected) {
		t.Fatalf("third admit: %v", err)
	}
	if len(events) != 1 || events[0].Kind != resilience.EventRejected || events[0].Policy != "db" {
		t.Fatalf("events %+v", events)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = b.Admit(ctx) }); n != 0 {
		t.Errorf("rejecting allocates %v times", n)
	}
	if s := b.Snapshot(); s != (Snapshot{MaxConcurrent: 2, Inflight: 2}) {
		t.Fatalf("snapshot %+v", s)
	}
	p1.Release(resilience.Outcome{})
	if _, err := b.Admit(ctx); err != nil {
		t.Fatalf("after release: %v", err)
	}
	p2.Release(resilience.Outcome{})
}

func TestDefaults(t *testing.T) {
	b := newBulkhead(t, Config{})
	if s := b.Snapshot(); s.MaxConcurrent != 25 {
		t.Fatalf("default MaxConcurrent %d", s.MaxConcurrent)
	}
	if _, err := New(Config{MaxWait: -1}); err == nil {
		t.Fatal("negative MaxWait accepted")
	}
}

func TestWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBulkhead(t, Config{MaxConcurrent: 1, MaxWait: time.Second})
		holder, _ := b.Admit(t.Context())
		start := time.Now()
		go func() {
			time.Sleep(300 * time.Millisecond)
			holder.Release(resilience.Outcome{})
		}()
		p, err := b.Admit(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 300*time.Millisecond {
			t.Fatalf("waited %v, want until the release", d)
		}
		p.Release(resilience.Outcome{})
	})
}

func TestWaitTimeoutQueueFullAndCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBulkhead(t, Config{MaxConcurrent: 1, MaxWait: 100 * time.Millisecond, MaxQueue: 1})
		holder, _ := b.Admit(t.Context())
		start := time.Now()
		done := make(chan error)
		go func() { _, err := b.Admit(t.Context()); done <- err }()
		synctest.Wait()
		if _, err := b.Admit(t.Context()); !errors.Is(err, errQueueFull) {
			t.Fatalf("over MaxQueue: %v", err)
		}
		if err := <-done; !errors.Is(err, errWaitTimeout) || !errors.Is(err, ErrFull) {
			t.Fatalf("waiter: %v", err)
		}
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Fatalf("timed out after %v", d)
		}
		ctx, cancel := context.WithCancel(t.Context())
		go func() { _, err := b.Admit(ctx); done <- err }()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) || !errors.Is(err, resilience.ErrRejected) {
			t.Fatalf("cancelled waiter: %v", err)
		}
		if time.Since(start) != 100*time.Millisecond {
			t.Fatal("cancellation was not immediate")
		}
		if s := b.Snapshot(); s.Queued != 0 || s.Inflight != 1 {
			t.Fatalf("snapshot %+v", s)
		}
		holder.Release(resilience.Outcome{})
	})
}

func TestFIFO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBulkhead(t, Config{MaxConcurrent: 1, MaxWait: time.Minute, MaxQueue: 10})
		holder, _ := b.Admit(t.Context())
		var mu sync.Mutex
		var got []int
		var wg sync.WaitGroup
		for i := range 5 {
			wg.Go(func() {
				p, err := b.Admit(t.Context())
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got = append(got, i)
				mu.Unlock()
				time.Sleep(time.Millisecond)
				p.Release(resilience.Outcome{})
			})
			synctest.Wait()
		}
		holder.Release(resilience.Outcome{})
		wg.Wait()
		if want := []int{0, 1, 2, 3, 4}; !slices.Equal(got, want) {
			t.Fatalf("served %v, want %v", got, want)
		}
	})
}

// TestStress mixes grants, timeouts and cancellations; the cap must hold
// and no slot may leak.
func TestStress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBulkhead(t, Config{MaxConcurrent: 3, MaxWait: 5 * time.Millisecond, MaxQueue: 8})
		var inflight atomic.Int64
		var over atomic.Bool
		var wg sync.WaitGroup
		for g := range 16 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(g), 7))
				for range 200 {
					ctx, cancel := context.WithTimeout(t.Context(), time.Duration(r.IntN(6000))*time.Microsecond)
					p, err := b.Admit(ctx)
					cancel()
					if err != nil {
						continue
					}
					if inflight.Add(1) > 3 {
						over.Store(true)
					}
					time.Sleep(time.Duration(r.IntN(3000)) * time.Microsecond)
					inflight.Add(-1)
					p.Release(resilience.Outcome{})
				}
			})
		}
		wg.Wait()
		if over.Load() {
			t.Error("cap exceeded")
		}
		if s := b.Snapshot(); s.Inflight != 0 || s.Queued != 0 {
			t.Fatalf("leaked %+v", s)
		}
	})
}

func TestExecute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBulkhead(t, Config{MaxConcurrent: 1})
		v, err := b.Execute(t.Context(), func(context.Context) (any, error) { return 3, nil })
		if v != 3 || err != nil {
			t.Fatalf("%v %v", v, err)
		}
		release := make(chan struct{})
		go func() {
			_, _ = b.Execute(t.Context(), func(context.Context) (any, error) { <-release; return nil, nil })
		}()
		synctest.Wait()
		if _, err := b.Execute(t.Context(), func(context.Context) (any, error) { return nil, nil }); !errors.Is(err, ErrFull) {
			t.Fatalf("full: %v", err)
		}
		close(release)
		synctest.Wait()
		func() {
			defer func() { _ = recover() }()
			_, _ = b.Execute(t.Context(), func(context.Context) (any, error) { panic("boom") })
		}()
		if s := b.Snapshot(); s.Inflight != 0 {
			t.Fatalf("leaked %+v", s)
		}
	})
}

func TestPipelineZeroAllocs(t *testing.T) {
	b := newBulkhead(t, Config{})
	p := resilience.New(resilience.Policies{Bulkhead: b})
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 1, nil }
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := resilience.Do(ctx, p, fn); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Do allocates %v times per call", n)
	}
}

func BenchmarkBulkheadSuccess(b *testing.B) {
	bh := newBulkhead(b, Config{MaxConcurrent: 1 << 20})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p, err := bh.Admit(ctx)
		if err != nil {
			b.Fatal(err)
		}
		p.Release(resilience.Outcome{})
	}
}

func BenchmarkBulkheadSuccessParallel(b *testing.B) {
	bh := newBulkhead(b, Config{MaxConcurrent: 1 << 20})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p, err := bh.Admit(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			p.Release(resilience.Outcome{})
		}
	})
}

func BenchmarkBulkheadInPipeline(b *testing.B) {
	p := resilience.New(resilience.Policies{Bulkhead: newBulkhead(b, Config{MaxConcurrent: 1 << 20})})
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 1, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := resilience.Do(ctx, p, fn); err != nil {
			b.Fatal(err)
		}
	}
}
