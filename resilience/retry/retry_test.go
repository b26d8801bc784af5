package retry_test

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
	"github.com/bulwark-go/bulwark/resilience/retry"
)

var errBoom = errors.New("boom")

// nopGuard is the trivial Guard the allocation test and the benchmarks put
// inside the retry, standing for a breaker.
type nopGuard struct{}

func (g *nopGuard) Execute(ctx context.Context, next resilience.Next) (any, error) { return next(ctx) }
func (g *nopGuard) Admit(context.Context) (resilience.Permit, error) {
	return resilience.NewPermit(g, 0), nil
}
func (g *nopGuard) Release(uint64, resilience.Outcome) {}

// rejectGuard rejects every call, like an open breaker.
type rejectGuard struct{ admits int }

func (g *rejectGuard) Execute(ctx context.Context, next resilience.Next) (any, error) {
	return next(ctx)
}
func (g *rejectGuard) Admit(context.Context) (resilience.Permit, error) {
	g.admits++
	return resilience.Permit{}, fmt.Errorf("open: %w", resilience.ErrRejected)
}

func mustNew(t testing.TB, cfg retry.Config) *retry.Policy {
	t.Helper()
	p, err := retry.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// recorder collects events.
type recorder struct {
	mu     sync.Mutex
	events []resilience.Event
}

func (r *recorder) observe(e resilience.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) kinds() []resilience.EventKind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ks []resilience.EventKind
	for _, e := range r.events {
		ks = append(ks, e.Kind)
	}
	return ks
}

// failing returns a function that fails the first n calls, then returns 42.
func failing(n int, calls *int) func(context.Context) (int, error) {
	return func(context.Context) (int, error) {
		*calls++
		if *calls <= n {
			return 0, errBoom
		}
		return 42, nil
	}
}

// constant is a backoff without randomness, so tests know every delay.
var constant = retry.Backoff{Kind: retry.Constant, Base: 100 * time.Millisecond}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  retry.Config
		ok   bool
	}{
		{"zero", retry.Config{}, true},
		{"negative attempts", retry.Config{MaxAttempts: -1}, false},
		{"negative duration", retry.Config{MaxDuration: -time.Second}, false},
		{"bad kind", retry.Config{Backoff: retry.Backoff{Kind: 9}}, false},
		{"multiplier below one", retry.Config{Backoff: retry.Backoff{Multiplier: 0.5}}, false},
		{"jitter above one", retry.Config{Backoff: retry.Backoff{Jitter: 1.5}}, false},
		{"max below base", retry.Config{Backoff: retry.Backoff{Base: time.Second, Max: time.Millisecond}}, false},
		{"negative base", retry.Config{Backoff: retry.Backoff{Base: -1}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := retry.New(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("New: err = %v, want ok = %v", err, tt.ok)
			}
		})
	}
}

// bothPaths runs fn under p through the pipeline's inline loop and through
// Policy.Execute, which must behave the same.
func bothPaths(t *testing.T, name string, test func(t *testing.T, run func(context.Context, *retry.Policy, func(context.Context) (int, error)) (int, error))) {
	t.Run(name+"/pipeline", func(t *testing.T) {
		test(t, func(ctx context.Context, p *retry.Policy, fn func(context.Context) (int, error)) (int, error) {
			return resilience.Do(ctx, resilience.New(resilience.Policies{Retry: p}), fn)
		})
	})
	t.Run(name+"/execute", func(t *testing.T) {
		test(t, func(ctx context.Context, p *retry.Policy, fn func(context.Context) (int, error)) (int, error) {
			v, err := p.Execute(ctx, func(ctx context.Context) (any, error) { return fn(ctx) })
			n, _ := v.(int)
			return n, err
		})
	})
}

func TestMaxAttempts(t *testing.T) {
	tests := []struct {
		name      string
		max       int
		failures  int
		wantCalls int
		wantErr   bool
	}{
		{"default three, succeeds on third", 0, 2, 3, false},
		{"default three, gives up", 0, 5, 3, true},
		{"one attempt only", 1, 5, 1, true},
		{"five", 5, 4, 5, false},
	}
	for _, tt := range tests {
		bothPaths(t, tt.name, func(t *testing.T, run func(context.Context, *retry.Policy, func(context.Context) (int, error)) (int, error)) {
			synctest.Test(t, func(t *testing.T) {
				p := mustNew(t, retry.Config{MaxAttempts: tt.max, Backoff: constant})
				calls := 0
				v, err := run(t.Context(), p, failing(tt.failures, &calls))
				if calls != tt.wantCalls {
					t.Errorf("calls = %d, want %d", calls, tt.wantCalls)
				}
				if tt.wantErr {
					if !errors.Is(err, retry.ErrExhausted) || !errors.Is(err, errBoom) {
						t.Errorf("err = %v, want ErrExhausted wrapping boom", err)
					}
					return
				}
				if err != nil || v != 42 {
					t.Errorf("got %v, %v; want 42, nil", v, err)
				}
			})
		})
	}
}

func TestMaxDuration(t *testing.T) {
	bothPaths(t, "stops", func(t *testing.T, run func(context.Context, *retry.Policy, func(context.Context) (int, error)) (int, error)) {
		synctest.Test(t, func(t *testing.T) {
			// Attempts take 100 ms and wait 100 ms: they start at 0, 200,
			// 400, 600 ms; the one at 800 ms would pass the 700 ms bound.
			p := mustNew(t, retry.Config{MaxAttempts: 100, MaxDuration: 700 * time.Millisecond, Backoff: constant})
			calls := 0
			start := time.Now()
			_, err := run(t.Context(), p, func(context.Context) (int, error) {
				calls++
				time.Sleep(100 * time.Millisecond)
				return 0, errBoom
			})
			if calls != 4 {
				t.Errorf("calls = %d, want 4", calls)
			}
			if !errors.Is(err, retry.ErrExhausted) {
				t.Errorf("err = %v, want ErrExhausted", err)
			}
			if got := time.Since(start); got != 700*time.Millisecond {
				t.Errorf("took %v, want 700ms", got)
			}
		})
	})
}

func TestPredicates(t *testing.T) {
	errFatal := errors.New("fatal")
	tests := []struct {
		name      string
		cfg       retry.Config
		err       error
		wantCalls int
	}{
		{"default retries any error", retry.Config{}, errBoom, 3},
		{"default skips rejections", retry.Config{}, fmt.Errorf("full: %w", resilience.ErrRejected), 1},
		{"default retries an attempt's own timeout", retry.Config{}, context.DeadlineExceeded, 3},
		{"retry-if says no", retry.Config{RetryIf: func(err error) bool { return !errors.Is(err, errBoom) }}, errBoom, 1},
		{"retry-if says yes to a rejection", retry.Config{RetryIf: func(error) bool { return true }}, resilience.ErrRejected, 3},
		{"abort-if wins over retry-if", retry.Config{
			RetryIf: func(error) bool { return true },
			AbortIf: func(err error) bool { return errors.Is(err, errFatal) },
		}, fmt.Errorf("wrapped: %w", errFatal), 1},
		{"abort-if ignores others", retry.Config{AbortIf: func(err error) bool { return errors.Is(err, errFatal) }}, errBoom, 3},
		{"negative retry-after stops", retry.Config{}, retry.After(errBoom, -1), 1},
	}
	for _, tt := range tests {
		bothPaths(t, tt.name, func(t *testing.T, run func(context.Context, *retry.Policy, func(context.Context) (int, error)) (int, error)) {
			synctest.Test(t, func(t *testing.T) {
				tt.cfg.Backoff = constant
				p := mustNew(t, tt.cfg)
				calls := 0
				_, err := run(t.Context(), p, func(context.Context) (int, error) { calls++; return 0, tt.err })
				if calls != tt.wantCalls {
					t.Errorf("calls = %d, want %d", calls, tt.wantCalls)
				}
				if !errors.Is(err, tt.err) {
					t.Errorf("err = %v, want it to wrap %v", err, tt.err)
				}
				if calls == 1 && errors.Is(err, retry.ErrExhausted) {
					t.Errorf("a non-retryable error was reported as exhausted: %v", err)
				}
			})
		})
	}
}

func TestCallerCancellationNotRetried(t *testing.T) {
	bothPaths(t, "cancelled", func(t *testing.T, run func(context.Context, *retry.Policy, func(context.Context) (int, error)) (int, error)) {
		synctest.Test(t, func(t *testing.T) {
			p := mustNew(t, retry.Config{MaxAttempts: 10, Backoff: constant})
			ctx, cancel := context.WithCancel(t.Context())
			calls := 0
			_, err := run(ctx, p, func(ctx context.Context) (int, error) {
				calls++
				cancel()
				return 0, ctx.Err()
			})
			if calls != 1 || !errors.Is(err, context.Canceled) {
				t.Errorf("calls = %d, err = %v; want 1 call and context.Canceled", calls, err)
			}
		})
	})
}

func TestRetryOnResult(t *testing.T) {
	bothPaths(t, "result", func(t *testing.T, run func(context.Context, *retry.Policy, func(context.Context) (int, error)) (int, error)) {
		synctest.Test(t, func(t *testing.T) {
			var rec recorder
			p := mustNew(t, retry.Config{
				Backoff:       constant,
				RetryOnResult: func(v any) bool { return v.(int) < 2 },
				Observer:      rec.observe,
			})
			if !p.HasResultPredicate() {
				t.Fatal("HasResultPredicate = false")
			}
			calls := 0
			v, err := run(t.Context(), p, func(context.Context) (int, error) { calls++; return calls - 1, nil })
			if v != 2 || err != nil || calls != 3 {
				t.Errorf("got %v, %v after %d calls; want 2, nil after 3", v, err, calls)
			}
			// Exhausted on results: the last result comes back, no error.
			calls = 0
			v, err = run(t.Context(), p, func(context.Context) (int, error) { calls++; return 0, nil })
			if v != 0 || err != nil || calls != 3 {
				t.Errorf("got %v, %v after %d calls; want 0, nil after 3", v, err, calls)
			}
		})
	})
	if mustNew(t, retry.Config{}).HasResultPredicate() {
		t.Error("HasResultPredicate = true without RetryOnResult")
	}
}

func TestDeadlineAware(t *testing.T) {
	tests := []struct {
		name      string
		deadline  time.Duration
		attempt   time.Duration
		wantCalls int
	}{
		// Attempts of 300 ms, 100 ms apart: 0–300, 400–700; a third would
		// run 800–1100 and is not started with a 1 s deadline.
		{"stops before a doomed attempt", time.Second, 300 * time.Millisecond, 2},
		// With a 1.2 s deadline the third (800–1100) fits.
		{"starts one that fits", 1200 * time.Millisecond, 300 * time.Millisecond, 3},
		// Even the delay alone would pass the deadline.
		{"delay passes deadline", 150 * time.Millisecond, 100 * time.Millisecond, 1},
	}
	for _, tt := range tests {
		bothPaths(t, tt.name, func(t *testing.T, run func(context.Context, *retry.Policy, func(context.Context) (int, error)) (int, error)) {
			synctest.Test(t, func(t *testing.T) {
				var rec recorder
				p := mustNew(t, retry.Config{Backoff: constant, Observer: rec.observe})
				ctx, cancel := context.WithTimeout(t.Context(), tt.deadline)
				defer cancel()
				calls := 0
				start := time.Now()
				_, err := run(ctx, p, func(context.Context) (int, error) {
					calls++
					time.Sleep(tt.attempt)
					return 0, errBoom
				})
				if calls != tt.wantCalls {
					t.Errorf("calls = %d, want %d", calls, tt.wantCalls)
				}
				if calls < 3 {
					if !errors.Is(err, retry.ErrDeadline) || !errors.Is(err, errBoom) {
						t.Errorf("err = %v, want ErrDeadline wrapping boom", err)
					}
					if d := time.Since(start); d >= tt.deadline {
						t.Errorf("returned after %v, at or past the %v deadline", d, tt.deadline)
					}
					ks := rec.kinds()
					if len(ks) == 0 || ks[len(ks)-1] != resilience.EventRetriesExhausted {
						t.Errorf("events %v, want the last to be retries_exhausted", ks)
					}
				}
			})
		})
	}
}

func TestRetryAfter(t *testing.T) {
	bothPaths(t, "honoured", func(t *testing.T, run func(context.Context, *retry.Policy, func(context.Context) (int, error)) (int, error)) {
		synctest.Test(t, func(t *testing.T) {
			p := mustNew(t, retry.Config{Backoff: constant})
			var starts []time.Duration
			t0 := time.Now()
			calls := 0
			v, err := run(t.Context(), p, func(context.Context) (int, error) {
				starts = append(starts, time.Since(t0))
				calls++
				switch calls {
				case 1:
					return 0, retry.After(errBoom, 2*time.Second) // longer than the 100 ms backoff
				case 2:
					return 0, retry.After(errBoom, time.Millisecond) // shorter: backoff wins
				}
				return 7, nil
			})
			if v != 7 || err != nil {
				t.Fatalf("got %v, %v", v, err)
			}
			want := []time.Duration{0, 2 * time.Second, 2*time.Second + 100*time.Millisecond}
			if fmt.Sprint(starts) != fmt.Sprint(want) {
				t.Errorf("attempts started at %v, want %v", starts, want)
			}
		})
	})
	bothPaths(t, "past deadline", func(t *testing.T, run func(context.Context, *retry.Policy, func(context.Context) (int, error)) (int, error)) {
		synctest.Test(t, func(t *testing.T) {
			p := mustNew(t, retry.Config{Backoff: constant})
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			calls := 0
			_, err := run(ctx, p, func(context.Context) (int, error) {
				calls++
				return 0, fmt.Errorf("503: %w", retry.After(errBoom, time.Minute))
			})
			if calls != 1 || !errors.Is(err, retry.ErrDeadline) {
				t.Errorf("calls = %d, err = %v; want 1 call, ErrDeadline", calls, err)
			}
		})
	})
}

func TestEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		p := mustNew(t, retry.Config{Name: "db", Backoff: constant, Observer: rec.observe})
		calls := 0
		_, err := resilience.Do(t.Context(), resilience.New(resilience.Policies{Retry: p}), failing(10, &calls))
		if err == nil {
			t.Fatal("want an error")
		}
		want := []resilience.Event{
			{Kind: resilience.EventRetry, Policy: "db", Attempt: 1, Delay: 100 * time.Millisecond, Err: errBoom},
			{Kind: resilience.EventRetry, Policy: "db", Attempt: 2, Delay: 100 * time.Millisecond, Err: errBoom},
			{Kind: resilience.EventRetriesExhausted, Policy: "db", Attempt: 3, Err: err},
		}
		if len(rec.events) != len(want) {
			t.Fatalf("events = %+v, want %+v", rec.events, want)
		}
		for i := range want {
			if rec.events[i] != want[i] {
				t.Errorf("event %d = %+v, want %+v", i, rec.events[i], want[i])
			}
		}
	})
}

func TestBreakerRejectionStopsRetries(t *testing.T) {
	p := mustNew(t, retry.Config{MaxAttempts: 5, Backoff: constant})
	g := &rejectGuard{}
	calls := 0
	_, err := resilience.Do(t.Context(), resilience.New(resilience.Policies{Retry: p, Breaker: g}), failing(10, &calls))
	if g.admits != 1 || calls != 0 || !errors.Is(err, resilience.ErrRejected) {
		t.Errorf("admits = %d, calls = %d, err = %v; want 1 admission, 0 calls, a rejection", g.admits, calls, err)
	}
}

func TestSuccessPathAllocs(t *testing.T) {
	p := mustNew(t, retry.Config{})
	pl := resilience.New(resilience.Policies{Retry: p, Breaker: &nopGuard{}})
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 42, nil }
	allocs := testing.AllocsPerRun(1000, func() {
		if v, err := resilience.Do(ctx, pl, fn); v != 42 || err != nil {
			t.Fatalf("got %v, %v", v, err)
		}
	})
	if allocs != 0 {
		t.Errorf("success path allocates %v times per call, want 0", allocs)
	}
	// With a shared budget the success path still does not allocate.
	for _, b := range budgets(t) {
		p := mustNew(t, retry.Config{Budget: b})
		pl := resilience.New(resilience.Policies{Retry: p, Breaker: &nopGuard{}})
		if allocs := testing.AllocsPerRun(1000, func() { _, _ = resilience.Do(ctx, pl, fn) }); allocs != 0 {
			t.Errorf("%T: success path allocates %v times per call, want 0", b, allocs)
		}
	}
}

func budgets(t testing.TB) []retry.Budget {
	rb, err := retry.NewRateBudget(retry.RateBudgetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cb, err := retry.NewConcurrencyBudget(retry.ConcurrencyBudgetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return []retry.Budget{rb, cb}
}

func TestSeededRandReplays(t *testing.T) {
	delays := func() []time.Duration {
		p := mustNew(t, retry.Config{MaxAttempts: 10, Rand: rand.New(rand.NewPCG(1, 2))})
		var out []time.Duration
		st := p.Begin(t.Context())
		for range 5 {
			st.Attempts++
			var d time.Duration
			st, d, _, _ = p.Retry(t.Context(), st, errBoom)
			out = append(out, d)
		}
		p.End(st)
		return out
	}
	a, b := delays(), delays()
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("same seed, different delays: %v vs %v", a, b)
	}
}

// TestPerAttemptTimeoutRetried puts a resilience.Timeout inside the retry:
// an attempt's own timeout is retried, the caller's deadline is not.
func TestPerAttemptTimeoutRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := mustNew(t, retry.Config{Backoff: constant})
		pl := resilience.New(resilience.Policies{Retry: p, Timeout: resilience.Timeout{Duration: 50 * time.Millisecond}})
		calls := 0
		hang := func(ctx context.Context) (int, error) {
			calls++
			<-ctx.Done()
			return 0, ctx.Err()
		}
		_, err := resilience.Do(t.Context(), pl, hang)
		if calls != 3 || !errors.Is(err, resilience.ErrTimeout) || !errors.Is(err, retry.ErrExhausted) {
			t.Errorf("calls = %d, err = %v; want 3 timed-out attempts, exhausted", calls, err)
		}
		// The caller's own deadline (shorter than the attempt timeout) ends it.
		calls = 0
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		_, err = resilience.Do(ctx, pl, hang)
		if calls != 1 || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, retry.ErrExhausted) {
			t.Errorf("calls = %d, err = %v; want 1 attempt ended by the caller's deadline", calls, err)
		}
	})
}
