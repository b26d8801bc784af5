package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
)

// recorder is a Guard that records the order in which policies run and the
// outcomes they learn. It stands in for the real guards, which live in
// subpackages that import this one.
type recorder struct {
	name     string
	log      *[]string
	reject   error
	latency  bool
	admitted atomic.Int64
	released atomic.Int64
	outcomes []resilience.Outcome
}

func (r *recorder) Admit(ctx context.Context) (resilience.Permit, error) {
	if r.log != nil {
		*r.log = append(*r.log, "admit "+r.name)
	}
	if r.reject != nil {
		return resilience.Permit{}, r.reject
	}
	r.admitted.Add(1)
	return resilience.NewPermit(r, 7), nil
}

func (r *recorder) Release(token uint64, o resilience.Outcome) {
	if token != 7 {
		panic("wrong token")
	}
	if r.log != nil {
		*r.log = append(*r.log, "release "+r.name)
	}
	r.released.Add(1)
	r.outcomes = append(r.outcomes, o)
}

func (r *recorder) ObservesLatency() bool { return r.latency }

func (r *recorder) Execute(ctx context.Context, next resilience.Next) (any, error) {
	p, err := r.Admit(ctx)
	if err != nil {
		return nil, err
	}
	v, err := next(ctx)
	p.Release(resilience.Outcome{Err: err})
	return v, err
}

// countingRetrier retries up to max attempts with no delay.
type countingRetrier struct {
	max     int
	begun   atomic.Int64
	ended   atomic.Int64
	results func(any) bool
}

func (c *countingRetrier) Begin(ctx context.Context) resilience.RetryState {
	c.begun.Add(1)
	return resilience.RetryState{}
}

func (c *countingRetrier) Retry(ctx context.Context, st resilience.RetryState, err error) (resilience.RetryState, time.Duration, bool, error) {
	if st.Attempts >= c.max {
		return st, 0, false, fmt.Errorf("gave up after %d attempts: %w", st.Attempts, err)
	}
	return st, time.Millisecond, true, nil
}

func (c *countingRetrier) HasResultPredicate() bool     { return c.results != nil }
func (c *countingRetrier) RetryResult(result any) bool  { return c.results(result) }
func (c *countingRetrier) End(st resilience.RetryState) { c.ended.Add(1) }

func (c *countingRetrier) Execute(ctx context.Context, next resilience.Next) (any, error) {
	return resilience.Do(ctx, mustCompose(c), next)
}

func mustCompose(ps ...resilience.Policy) *resilience.Pipeline {
	p, err := resilience.Compose(ps...)
	if err != nil {
		panic(err)
	}
	return p
}

var errBoom = errors.New("boom")

func TestDefaultOrder(t *testing.T) {
	var log []string
	g := func(n string) *recorder { return &recorder{name: n, log: &log} }
	p := resilience.New(resilience.Policies{
		Limit:     g("limit"),
		Bulkhead:  g("bulkhead"),
		RateLimit: g("ratelimit"),
		Breaker:   g("breaker"),
		Hedge:     g("hedge"),
		Timeout:   resilience.Timeout{Duration: time.Second},
	})
	if p.Len() != 6 {
		t.Fatalf("Len = %d, want 6", p.Len())
	}
	v, err := resilience.Do(t.Context(), p, func(ctx context.Context) (int, error) {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("the call's context has no deadline: the timeout is not innermost")
		}
		log = append(log, "call")
		return 42, nil
	})
	if err != nil || v != 42 {
		t.Fatalf("Do = %v, %v", v, err)
	}
	want := "admit hedge,admit breaker,admit ratelimit,admit bulkhead,admit limit,call," +
		"release limit,release bulkhead,release ratelimit,release breaker,release hedge"
	if got := strings.Join(log, ","); got != want {
		t.Errorf("order:\n got %s\nwant %s", got, want)
	}
}

func TestComposeCustomOrderAndNesting(t *testing.T) {
	var log []string
	inner := mustCompose(&recorder{name: "b", log: &log})
	outer := mustCompose(inner, &recorder{name: "a", log: &log})
	if _, err := resilience.Do(t.Context(), outer, func(context.Context) (string, error) {
		log = append(log, "call")
		return "", nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(log, ","), "admit b,admit a,call,release a,release b"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if _, err := resilience.Compose(nil); !errors.Is(err, resilience.ErrNilPolicy) {
		t.Errorf("Compose(nil) error = %v, want ErrNilPolicy", err)
	}
}

func TestGuardRejectionAndOutcomes(t *testing.T) {
	errNo := fmt.Errorf("no: %w", resilience.ErrRejected)
	tests := []struct {
		name      string
		reject    error
		fnErr     error
		wantErr   error
		wantCalls int
	}{
		{"success", nil, nil, nil, 1},
		{"failure reaches the guard", nil, errBoom, errBoom, 1},
		{"rejection skips the call", errNo, nil, resilience.ErrRejected, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &recorder{name: "g", reject: tt.reject}
			calls := 0
			_, err := resilience.Do(t.Context(), resilience.New(resilience.Policies{Breaker: g}), func(context.Context) (int, error) {
				calls++
				return 1, tt.fnErr
			})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if calls != tt.wantCalls {
				t.Fatalf("calls = %d, want %d", calls, tt.wantCalls)
			}
			if g.admitted.Load() != g.released.Load() {
				t.Fatalf("admitted %d, released %d", g.admitted.Load(), g.released.Load())
			}
			if tt.wantCalls == 1 && !errors.Is(g.outcomes[0].Err, tt.fnErr) {
				t.Fatalf("outcome err = %v, want %v", g.outcomes[0].Err, tt.fnErr)
			}
		})
	}
}

func TestPanicReleasesPermit(t *testing.T) {
	g := &recorder{name: "g"}
	p := resilience.New(resilience.Policies{Bulkhead: g})
	func() {
		defer func() {
			if r := recover(); r != "kaboom" {
				t.Errorf("recovered %v, want the original panic", r)
			}
		}()
		resilience.Do(t.Context(), p, func(context.Context) (int, error) { panic("kaboom") })
	}()
	if g.released.Load() != 1 || g.outcomes[0].Err == nil {
		t.Fatalf("permit not released with a failure on panic: released=%d outcomes=%v", g.released.Load(), g.outcomes)
	}
}

func TestLatencyMeasuredOnlyWhenAsked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		with := &recorder{name: "with", latency: true}
		without := &recorder{name: "without"}
		p := mustCompose(with, without)
		resilience.Do(t.Context(), p, func(context.Context) (int, error) {
			time.Sleep(30 * time.Millisecond)
			return 0, nil
		})
		if got := with.outcomes[0].Latency; got != 30*time.Millisecond {
			t.Errorf("latency = %v, want 30ms", got)
		}
		if got := without.outcomes[0].Latency; got != 0 {
			t.Errorf("latency measured for a guard that did not ask: %v", got)
		}
	})
}

func TestRetryLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &countingRetrier{max: 3}
		g := &recorder{name: "breaker"}
		p := resilience.New(resilience.Policies{Retry: r, Breaker: g})
		attempts := 0
		_, err := resilience.Do(t.Context(), p, func(context.Context) (int, error) {
			attempts++
			return 0, errBoom
		})
		if attempts != 3 || !errors.Is(err, errBoom) || !strings.Contains(err.Error(), "gave up after 3") {
			t.Fatalf("attempts=%d err=%v", attempts, err)
		}
		if g.admitted.Load() != 3 {
			t.Errorf("each attempt must be one breaker sample: admitted %d", g.admitted.Load())
		}
		if r.begun.Load() != 1 || r.ended.Load() != 1 {
			t.Errorf("Begin/End = %d/%d, want 1/1", r.begun.Load(), r.ended.Load())
		}

		attempts = 0
		v, err := resilience.Do(t.Context(), p, func(context.Context) (int, error) {
			attempts++
			if attempts < 2 {
				return 0, errBoom
			}
			return 5, nil
		})
		if v != 5 || err != nil || attempts != 2 {
			t.Fatalf("v=%d err=%v attempts=%d", v, err, attempts)
		}
	})
}

func TestRetryResultPredicate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &countingRetrier{max: 5, results: func(v any) bool { return v.(int) < 3 }}
		n := 0
		v, err := resilience.Do(t.Context(), mustCompose(r), func(context.Context) (int, error) {
			n++
			return n, nil
		})
		if v != 3 || err != nil {
			t.Fatalf("v=%d err=%v, want 3, nil", v, err)
		}
	})
}

func TestRetryWaitHonoursCancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		r := &countingRetrier{max: 100}
		go func() {
			time.Sleep(5 * time.Millisecond)
			cancel()
		}()
		_, err := resilience.Do(ctx, mustCompose(r), func(context.Context) (int, error) { return 0, errBoom })
		if !errors.Is(err, context.Canceled) || !errors.Is(err, errBoom) {
			t.Fatalf("err = %v, want both the cancellation and the last attempt's error", err)
		}
	})
}

func TestTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events []resilience.Event
		to := resilience.Timeout{Duration: 50 * time.Millisecond, Name: "t", Observer: func(e resilience.Event) { events = append(events, e) }}
		p := resilience.New(resilience.Policies{Timeout: to})
		start := time.Now()
		_, err := resilience.Do(t.Context(), p, func(ctx context.Context) (int, error) {
			<-ctx.Done()
			return 0, ctx.Err()
		})
		if !errors.Is(err, resilience.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrTimeout and DeadlineExceeded", err)
		}
		if d := time.Since(start); d != 50*time.Millisecond {
			t.Errorf("cancelled after %v, want 50ms", d)
		}
		if len(events) != 1 || events[0].Kind != resilience.EventTimeout {
			t.Errorf("events = %v", events)
		}

		// A call that checks only Err sees the deadline without a timer.
		_, err = resilience.Do(t.Context(), p, func(ctx context.Context) (int, error) {
			time.Sleep(60 * time.Millisecond)
			return 0, ctx.Err()
		})
		if !errors.Is(err, resilience.ErrTimeout) {
			t.Fatalf("Err-only call: %v", err)
		}

		// A fast call is not wrapped, and its context ends when it returns.
		var kept context.Context
		if _, err := resilience.Do(t.Context(), p, func(ctx context.Context) (int, error) { kept = ctx; return 1, nil }); err != nil {
			t.Fatal(err)
		}
		select {
		case <-kept.Done():
		default:
			t.Error("a call's context must be done once the call returned")
		}

		// The parent's cancellation is not reported as our timeout.
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err = resilience.Do(ctx, p, func(ctx context.Context) (int, error) { return 0, ctx.Err() })
		if errors.Is(err, resilience.ErrTimeout) || !errors.Is(err, context.Canceled) {
			t.Fatalf("parent cancel: %v", err)
		}
	})
}

func TestTimeoutContextPropagatesToChildren(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := resilience.New(resilience.Policies{Timeout: resilience.Timeout{Duration: 10 * time.Millisecond}})
		_, err := resilience.Do(t.Context(), p, func(ctx context.Context) (int, error) {
			child, cancel := context.WithCancel(ctx)
			defer cancel()
			<-child.Done()
			if context.Cause(child) != context.DeadlineExceeded {
				t.Errorf("cause = %v", context.Cause(child))
			}
			return 0, child.Err()
		})
		if !errors.Is(err, resilience.ErrTimeout) {
			t.Fatal(err)
		}
	})
}

func TestFallback(t *testing.T) {
	var got []resilience.Event
	fb := resilience.FallbackTo(func(ctx context.Context, err error) (string, error) { return "cached", nil })
	fb.Observer = func(e resilience.Event) { got = append(got, e) }
	fb.If = func(err error) bool { return !errors.Is(err, context.Canceled) }
	p := resilience.New(resilience.Policies{Fallback: fb, Breaker: &recorder{name: "b", reject: fmt.Errorf("open: %w", resilience.ErrRejected)}})
	v, err := resilience.Do(t.Context(), p, func(context.Context) (string, error) { return "live", nil })
	if v != "cached" || err != nil {
		t.Fatalf("Do = %q, %v; the fallback must see a rejection", v, err)
	}
	if len(got) != 1 || !errors.Is(got[0].Err, resilience.ErrRejected) {
		t.Fatalf("events = %v", got)
	}
	p = resilience.New(resilience.Policies{Fallback: fb})
	if _, err := resilience.Do(t.Context(), p, func(context.Context) (string, error) { return "", context.Canceled }); !errors.Is(err, context.Canceled) {
		t.Fatalf("If=false must pass the error through: %v", err)
	}
	// A fallback of the wrong type is an error, not a panic.
	bad := resilience.Fallback{Handle: func(context.Context, error) (any, error) { return 3, nil }}
	if _, err := resilience.Do(t.Context(), resilience.New(resilience.Policies{Fallback: bad}), func(context.Context) (string, error) { return "", errBoom }); !errors.Is(err, resilience.ErrResultType) {
		t.Fatalf("err = %v, want ErrResultType", err)
	}
}

func TestGeneralPolicy(t *testing.T) {
	var seen []string
	wrap := resilience.PolicyFunc(func(ctx context.Context, next resilience.Next) (any, error) {
		seen = append(seen, "before")
		v, err := next(ctx)
		seen = append(seen, "after")
		return v, err
	})
	v, err := resilience.Do(t.Context(), mustCompose(wrap, &recorder{name: "g"}), func(context.Context) (int, error) { return 9, nil })
	if v != 9 || err != nil || len(seen) != 2 {
		t.Fatalf("v=%d err=%v seen=%v", v, err, seen)
	}
	err = resilience.Run(t.Context(), mustCompose(wrap), func(context.Context) error { return errBoom })
	if !errors.Is(err, errBoom) {
		t.Fatal(err)
	}
}

func TestNilPipelineCallsThrough(t *testing.T) {
	v, err := resilience.Do(t.Context(), nil, func(context.Context) (int, error) { return 1, nil })
	if v != 1 || err != nil {
		t.Fatal(v, err)
	}
}

type nopGuard struct{}

func (nopGuard) Admit(context.Context) (resilience.Permit, error) {
	return resilience.NewPermit(nopGuard{}, 0), nil
}
func (nopGuard) Release(uint64, resilience.Outcome) {}
func (nopGuard) Execute(ctx context.Context, next resilience.Next) (any, error) {
	return next(ctx)
}

type nopRetrier struct{}

func (nopRetrier) Begin(context.Context) resilience.RetryState { return resilience.RetryState{} }
func (nopRetrier) Retry(_ context.Context, st resilience.RetryState, err error) (resilience.RetryState, time.Duration, bool, error) {
	return st, 0, false, err
}
func (nopRetrier) HasResultPredicate() bool  { return false }
func (nopRetrier) RetryResult(any) bool      { return false }
func (nopRetrier) End(resilience.RetryState) {}
func (nopRetrier) Execute(ctx context.Context, next resilience.Next) (any, error) {
	return next(ctx)
}

//go:noinline
func work(context.Context) (int, error) { return 42, nil }

func TestSuccessPathAllocations(t *testing.T) {
	ctx := t.Context()
	guards := resilience.New(resilience.Policies{Retry: nopRetrier{}, Breaker: nopGuard{}, Bulkhead: nopGuard{}, Limit: nopGuard{}})
	if a := testing.AllocsPerRun(1000, func() { resilience.Do(ctx, guards, work) }); a != 0 {
		t.Errorf("retry+guards success path: %v allocs, want 0", a)
	}
	timed := resilience.New(resilience.Policies{Breaker: nopGuard{}, Timeout: resilience.Timeout{Duration: time.Second}})
	if a := testing.AllocsPerRun(1000, func() { resilience.Do(ctx, timed, work) }); a > 1 {
		t.Errorf("timeout success path: %v allocs, want ≤ 1 (its context)", a)
	}
}

func BenchmarkPipelineGuards(b *testing.B) {
	p := resilience.New(resilience.Policies{Retry: nopRetrier{}, Breaker: nopGuard{}, Bulkhead: nopGuard{}})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resilience.Do(ctx, p, work)
	}
}

func BenchmarkTimeout(b *testing.B) {
	p := resilience.New(resilience.Policies{Timeout: resilience.Timeout{Duration: time.Second}})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resilience.Do(ctx, p, work)
	}
}

func BenchmarkContextWithTimeout(b *testing.B) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, cancel := context.WithTimeout(ctx, time.Second)
		work(c)
		cancel()
	}
}
