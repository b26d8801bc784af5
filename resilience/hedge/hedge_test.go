package hedge_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark/resilience"
	"github.com/bulwark-go/bulwark/resilience/hedge"
	"github.com/bulwark-go/bulwark/resilience/retry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The retry package's budgets are hedge budgets too.
var (
	_ hedge.Budget = (*retry.RateBudget)(nil)
	_ hedge.Budget = (*retry.ConcurrencyBudget)(nil)
	_ retry.Budget = hedge.Budget(nil)
)

func mustNew(t testing.TB, cfg hedge.Config) *hedge.Policy {
	t.Helper()
	p, err := hedge.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// script returns a Next whose n-th call (0 is the first) runs behave[n],
// and the number of calls made.
func script(behave ...func(ctx context.Context) (any, error)) (resilience.Next, *atomic.Int32) {
	var calls atomic.Int32
	return func(ctx context.Context) (any, error) {
		n := int(calls.Add(1)) - 1
		return behave[min(n, len(behave)-1)](ctx)
	}, &calls
}

// after answers v after d, or fails when its context is cancelled first.
func after(d time.Duration, v any, err error) func(context.Context) (any, error) {
	return func(ctx context.Context) (any, error) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return v, err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

type events struct {
	mu   sync.Mutex
	list []resilience.Event
}

func (e *events) observe(ev resilience.Event) {
	e.mu.Lock()
	e.list = append(e.list, ev)
	e.mu.Unlock()
}

func (e *events) attempts() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []int
	for _, ev := range e.list {
		if ev.Kind == resilience.EventHedge {
			out = append(out, ev.Attempt)
		}
	}
	return out
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  hedge.Config
		ok   bool
	}{
		{"zero", hedge.Config{}, true},
		{"adaptive", hedge.Config{Adaptive: true, Quantile: 0.99, MinSamples: 10, Window: 100}, true},
		{"negative delay", hedge.Config{Delay: -1}, false},
		{"quantile one", hedge.Config{Quantile: 1}, false},
		{"too many hedges", hedge.Config{MaxHedges: 17}, false},
		{"min samples above window", hedge.Config{MinSamples: 300}, false},
		{"negative window", hedge.Config{Window: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := hedge.New(tt.cfg); (err == nil) != tt.ok {
				t.Fatalf("New: err = %v, want ok = %v", err, tt.ok)
			}
		})
	}
}

func TestHedgeSentAfterDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ev events
		p := mustNew(t, hedge.Config{Name: "api", Delay: 50 * time.Millisecond, Observer: ev.observe})
		next, calls := script(after(time.Second, "primary", nil), after(10*time.Millisecond, "hedge", nil))
		start := time.Now()
		v, err := p.Execute(t.Context(), next)
		if v != "hedge" || err != nil {
			t.Fatalf("got %v, %v; want hedge, nil", v, err)
		}
		if got := time.Since(start); got != 60*time.Millisecond {
			t.Errorf("answered after %v, want 60ms (50 ms delay + 10 ms hedge)", got)
		}
		if calls.Load() != 2 {
			t.Errorf("calls = %d, want 2", calls.Load())
		}
		if got := ev.attempts(); len(got) != 1 || got[0] != 2 {
			t.Errorf("hedge events for attempts %v, want [2]", got)
		}
		if ev.list[0].Policy != "api" {
			t.Errorf("event policy %q", ev.list[0].Policy)
		}
	})
}

func TestLoserCancelled(t *testing.T) {
	type seen struct{ err, cause error }
	loser := func(ch chan<- seen) func(context.Context) (any, error) {
		return func(ctx context.Context) (any, error) {
			<-ctx.Done()
			ch <- seen{ctx.Err(), context.Cause(ctx)}
			return nil, ctx.Err()
		}
	}
	tests := []struct {
		name   string
		behave func(ch chan<- seen) []func(context.Context) (any, error)
		want   any
	}{
		{"primary loses", func(ch chan<- seen) []func(context.Context) (any, error) {
			return []func(context.Context) (any, error){loser(ch), after(time.Millisecond, "hedge", nil)}
		}, "hedge"},
		{"hedge loses", func(ch chan<- seen) []func(context.Context) (any, error) {
			return []func(context.Context) (any, error){after(70*time.Millisecond, "primary", nil), loser(ch)}
		}, "primary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := mustNew(t, hedge.Config{})
				ch := make(chan seen, 1)
				next, _ := script(tt.behave(ch)...)
				v, err := p.Execute(t.Context(), next)
				if v != tt.want || err != nil {
					t.Fatalf("got %v, %v; want %v", v, err, tt.want)
				}
				s := <-ch
				if !errors.Is(s.err, context.Canceled) || !errors.Is(s.cause, hedge.ErrLost) {
					t.Errorf("loser saw ctx.Err() = %v, cause %v; want Canceled, ErrLost", s.err, s.cause)
				}
			})
		})
	}
}

func TestNoHedgeWhenFast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ev events
		p := mustNew(t, hedge.Config{Observer: ev.observe})
		next, calls := script(after(10*time.Millisecond, 1, nil))
		for range 5 {
			if v, err := p.Execute(t.Context(), next); v != 1 || err != nil {
				t.Fatalf("got %v, %v", v, err)
			}
		}
		time.Sleep(time.Second) // no timer left behind fires a late hedge
		if calls.Load() != 5 || len(ev.attempts()) != 0 {
			t.Errorf("calls = %d, hedges %v; want 5 calls, no hedge", calls.Load(), ev.attempts())
		}
	})
}

// countingBudget is a Budget that allows a fixed number of retries and
// counts the calls it gets.
type countingBudget struct {
	allow                          atomic.Int32
	requests, dones, tries, retDne atomic.Int32
}

func (b *countingBudget) Request() { b.requests.Add(1) }
func (b *countingBudget) Done()    { b.dones.Add(1) }
func (b *countingBudget) TryRetry() bool {
	b.tries.Add(1)
	return b.allow.Add(-1) >= 0
}
func (b *countingBudget) RetryDone() { b.retDne.Add(1) }

func TestBudget(t *testing.T) {
	t.Run("spent: no hedge", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := &countingBudget{}
			p := mustNew(t, hedge.Config{Budget: b})
			next, calls := script(after(time.Second, "primary", nil), after(0, "hedge", nil))
			v, err := p.Execute(t.Context(), next)
			if v != "primary" || err != nil || calls.Load() != 1 {
				t.Errorf("got %v, %v after %d calls; want primary after 1", v, err, calls.Load())
			}
			if b.tries.Load() != 1 || b.requests.Load() != 1 || b.dones.Load() != 1 {
				t.Errorf("tries %d, requests %d, dones %d; want 1 each", b.tries.Load(), b.requests.Load(), b.dones.Load())
			}
		})
	})
	t.Run("allowed: hedge returns its retry", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := &countingBudget{}
			b.allow.Store(1)
			p := mustNew(t, hedge.Config{Budget: b, SkipRequestCounting: true})
			next, _ := script(after(time.Second, "primary", nil), after(0, "hedge", nil))
			if v, _ := p.Execute(t.Context(), next); v != "hedge" {
				t.Fatalf("got %v, want hedge", v)
			}
			synctest.Wait()
			if b.retDne.Load() != 1 || b.requests.Load() != 0 || b.dones.Load() != 0 {
				t.Errorf("retry dones %d, requests %d, dones %d; want 1, 0, 0",
					b.retDne.Load(), b.requests.Load(), b.dones.Load())
			}
		})
	})
	t.Run("retry's concurrency budget spent", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b, err := retry.NewConcurrencyBudget(retry.ConcurrencyBudgetConfig{MinConcurrency: 1})
			if err != nil {
				t.Fatal(err)
			}
			if !b.TryRetry() { // another caller's retry holds the only slot
				t.Fatal("TryRetry refused")
			}
			p := mustNew(t, hedge.Config{Budget: b})
			next, calls := script(after(time.Second, "primary", nil), after(0, "hedge", nil))
			if v, _ := p.Execute(t.Context(), next); v != "primary" || calls.Load() != 1 {
				t.Errorf("got %v after %d calls; want primary after 1", v, calls.Load())
			}
		})
	})
}

func TestAdaptiveDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The quantile is recomputed every Window/8 = 10 samples.
		p := mustNew(t, hedge.Config{Adaptive: true, Delay: time.Second, MinSamples: 10, Window: 80})
		if p.Delay() != time.Second {
			t.Fatalf("cold delay %v, want the 1s fallback", p.Delay())
		}
		for i := 1; i <= 80; i++ { // latencies of 1 ms … 80 ms
			next, _ := script(after(time.Duration(i)*time.Millisecond, i, nil))
			if _, err := p.Execute(t.Context(), next); err != nil {
				t.Fatal(err)
			}
			if i == 9 && p.Delay() != time.Second {
				t.Fatalf("after 9 samples the delay is %v, want still 1s", p.Delay())
			}
			if i == 10 && p.Delay() != 10*time.Millisecond {
				t.Fatalf("after 10 samples the delay is %v, want their p95, 10ms", p.Delay())
			}
		}
		if p.Delay() != 76*time.Millisecond {
			t.Fatalf("p95 of 1..80 ms = %v, want 76ms (nearest rank)", p.Delay())
		}
		// A slow call is now hedged at 76 ms.
		next, _ := script(after(time.Second, "slow", nil), after(0, "hedge", nil))
		start := time.Now()
		if v, _ := p.Execute(t.Context(), next); v != "hedge" || time.Since(start) != 76*time.Millisecond {
			t.Fatalf("got %v after %v; want hedge after 76ms", v, time.Since(start))
		}
		// Latencies move up and the delay follows.
		for range 80 {
			next, _ := script(after(300*time.Millisecond, 0, nil), after(300*time.Millisecond, 0, nil))
			if _, err := p.Execute(t.Context(), next); err != nil {
				t.Fatal(err)
			}
		}
		if d := p.Delay(); d != 300*time.Millisecond {
			t.Fatalf("after 80 calls of 300 ms the delay is %v, want 300ms", d)
		}
	})
}

func TestAllFail(t *testing.T) {
	errPrimary, errHedge := errors.New("primary failed"), errors.New("hedge failed")
	t.Run("both fail", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := mustNew(t, hedge.Config{})
			next, calls := script(after(100*time.Millisecond, nil, errPrimary), after(10*time.Millisecond, nil, errHedge))
			start := time.Now()
			_, err := p.Execute(t.Context(), next)
			if !errors.Is(err, errHedge) || calls.Load() != 2 {
				t.Errorf("err = %v after %d calls; want the first error received (the hedge's)", err, calls.Load())
			}
			if got := time.Since(start); got != 100*time.Millisecond {
				t.Errorf("returned after %v, want 100ms: the primary could still have succeeded", got)
			}
		})
	})
	t.Run("fast failure is not hedged", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := mustNew(t, hedge.Config{})
			next, calls := script(after(10*time.Millisecond, nil, errPrimary))
			start := time.Now()
			_, err := p.Execute(t.Context(), next)
			if !errors.Is(err, errPrimary) || calls.Load() != 1 || time.Since(start) != 10*time.Millisecond {
				t.Errorf("err = %v after %d calls and %v; want primary's error, 1 call, 10ms", err, calls.Load(), time.Since(start))
			}
		})
	})
}

func TestMaxHedges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ev events
		p := mustNew(t, hedge.Config{Delay: 10 * time.Millisecond, MaxHedges: 3, Observer: ev.observe})
		block := after(time.Hour, nil, nil)
		next, calls := script(block, block, block, after(5*time.Millisecond, "fourth", nil), after(0, "fifth", nil))
		start := time.Now()
		v, err := p.Execute(t.Context(), next)
		if v != "fourth" || err != nil || time.Since(start) != 35*time.Millisecond {
			t.Fatalf("got %v, %v after %v; want fourth after 35ms", v, err, time.Since(start))
		}
		if got := ev.attempts(); len(got) != 3 || got[0] != 2 || got[2] != 4 {
			t.Errorf("hedge events %v, want [2 3 4]", got)
		}
		if calls.Load() != 4 {
			t.Errorf("calls = %d, want 4 (no fifth: MaxHedges is 3)", calls.Load())
		}
	})
}

func TestCallerCancelStopsHedging(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := mustNew(t, hedge.Config{Delay: 10 * time.Millisecond, MaxHedges: 5})
		ctx, cancel := context.WithTimeout(t.Context(), 25*time.Millisecond)
		defer cancel()
		next, calls := script(after(time.Hour, nil, nil))
		_, err := p.Execute(ctx, next)
		if !errors.Is(err, context.DeadlineExceeded) || calls.Load() != 3 {
			t.Errorf("err = %v after %d calls; want DeadlineExceeded after 3 (0, 10, 20 ms)", err, calls.Load())
		}
	})
}

func TestPanicReachesCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := mustNew(t, hedge.Config{})
		defer func() {
			if r := recover(); r != "kaboom" {
				t.Errorf("recovered %v, want kaboom", r)
			}
		}()
		_, _ = p.Execute(t.Context(), func(context.Context) (any, error) { panic("kaboom") })
		t.Error("Execute returned")
	})
}

func TestInPipelineWithRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		budget, err := retry.NewRateBudget(retry.RateBudgetConfig{})
		if err != nil {
			t.Fatal(err)
		}
		r, err := retry.New(retry.Config{Budget: budget, Backoff: retry.Backoff{Kind: retry.Constant, Base: time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		h := mustNew(t, hedge.Config{Budget: budget, SkipRequestCounting: true})
		pl := resilience.New(resilience.Policies{Retry: r, Hedge: h})
		var calls atomic.Int32
		v, err := resilience.Do(t.Context(), pl, func(ctx context.Context) (string, error) {
			switch calls.Add(1) {
			case 1:
				return "", errors.New("fast failure") // retried, not hedged
			case 2:
				v, err := after(time.Second, "slow", nil)(ctx) // hedged after 50 ms
				s, _ := v.(string)
				return s, err
			}
			return "hedge", nil
		})
		if v != "hedge" || err != nil || calls.Load() != 3 {
			t.Errorf("got %q, %v after %d calls; want hedge after 3", v, err, calls.Load())
		}
	})
}

// TestNoLeakWhenNextIgnoresContext uses real time: the losing attempt
// ignores cancellation and sleeps on; it must still exit by itself.
func TestNoLeakWhenNextIgnoresContext(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := mustNew(t, hedge.Config{Delay: time.Millisecond})
	next, _ := script(
		func(context.Context) (any, error) { time.Sleep(50 * time.Millisecond); return "stubborn", nil },
		func(context.Context) (any, error) { return "hedge", nil },
	)
	start := time.Now()
	v, err := p.Execute(context.Background(), next)
	if v != "hedge" || err != nil {
		t.Fatalf("got %v, %v", v, err)
	}
	if d := time.Since(start); d >= 50*time.Millisecond {
		t.Errorf("Execute waited %v for the stubborn loser", d)
	}
}
