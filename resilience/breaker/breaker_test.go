package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
	"github.com/bulwark-go/bulwark/resilience/breaker"
)

var errBoom = errors.New("boom")

// env is the state a scenario's steps share.
type env struct {
	t      *testing.T
	b      *breaker.Breaker
	held   []resilience.Permit // permits taken by hold and not yet released
	events []resilience.Event
}

type step func(e *env)

// calls makes n calls that end with err after latency.
func callsLat(n int, err error, latency time.Duration) step {
	return func(e *env) {
		e.t.Helper()
		for i := range n {
			p, aerr := e.b.Admit(context.Background())
			if aerr != nil {
				e.t.Fatalf("call %d/%d rejected: %v (state %v)", i+1, n, aerr, e.b.State())
			}
			p.Release(resilience.Outcome{Err: err, Latency: latency})
		}
	}
}

func calls(n int, err error) step { return callsLat(n, err, 0) }
func ok(n int) step               { return calls(n, nil) }
func fail(n int) step             { return calls(n, errBoom) }
func slow(n int) step             { return callsLat(n, nil, 200*time.Millisecond) }

func wait(d time.Duration) step { return func(*env) { time.Sleep(d) } }

func want(s breaker.State) step {
	return func(e *env) {
		e.t.Helper()
		if got := e.b.State(); got != s {
			e.t.Fatalf("state %v, want %v (snapshot %+v)", got, s, e.b.Snapshot())
		}
	}
}

// rejected checks that the next call is rejected with ErrOpen.
func rejected() step {
	return func(e *env) {
		e.t.Helper()
		_, err := e.b.Admit(context.Background())
		if !errors.Is(err, breaker.ErrOpen) || !errors.Is(err, resilience.ErrRejected) {
			e.t.Fatalf("admit: %v, want ErrOpen (state %v)", err, e.b.State())
		}
	}
}

// hold takes n permits and keeps them for release.
func hold(n int) step {
	return func(e *env) {
		e.t.Helper()
		for range n {
			p, err := e.b.Admit(context.Background())
			if err != nil {
				e.t.Fatalf("hold: %v", err)
			}
			e.held = append(e.held, p)
		}
	}
}

// release releases held permit i with err.
func release(i int, err error) step {
	return func(e *env) { e.held[i].Release(resilience.Outcome{Err: err}) }
}

func retryAfter(d time.Duration) step {
	return func(e *env) {
		e.t.Helper()
		if got := e.b.Snapshot().RetryAfter; got != d {
			e.t.Fatalf("RetryAfter %v, want %v", got, d)
		}
	}
}

func window(calls, failures, slow int64) step {
	return func(e *env) {
		e.t.Helper()
		s := e.b.Snapshot()
		if s.Calls != calls || s.Failures != failures || s.SlowCalls != slow {
			e.t.Fatalf("window calls/failures/slow = %d/%d/%d, want %d/%d/%d", s.Calls, s.Failures, s.SlowCalls, calls, failures, slow)
		}
	}
}

func do(f func(b *breaker.Breaker)) step { return func(e *env) { f(e.b) } }

// small is a breaker that trips at 50% over 10 calls and probes with 3.
var small = breaker.Config{
	Name: "small", WindowSize: 10, MinimumCalls: 10, FailureRateThreshold: 50,
	OpenDuration: 10 * time.Second, HalfOpenCalls: 3, HalfOpenMaxWait: 5 * time.Second,
}

func with(f func(c *breaker.Config)) breaker.Config {
	c := small
	f(&c)
	return c
}

// trip fails calls until the breaker opens.
func trip(e *env) {
	e.t.Helper()
	for i := 0; e.b.State() == breaker.StateClosed; i++ {
		if i == 1000 {
			e.t.Fatalf("breaker did not open: %+v", e.b.Snapshot())
		}
		fail(1)(e)
	}
	want(breaker.StateOpen)(e)
}

func TestTransitions(t *testing.T) {
	wrapped := fmt.Errorf("inner: %w", resilience.ErrRejected)
	tests := []struct {
		name  string
		cfg   breaker.Config
		steps []step
	}{
		{"closed to open by failure rate", small, []step{
			ok(5), fail(4), want(breaker.StateClosed), window(9, 4, 0),
			fail(1), want(breaker.StateOpen), rejected(),
		}},
		{"below the failure rate stays closed", small, []step{
			ok(6), fail(4), want(breaker.StateClosed), ok(100), want(breaker.StateClosed), window(10, 0, 0),
		}},
		{"minimum calls gate", with(func(c *breaker.Config) { c.MinimumCalls = 5 }), []step{
			fail(4), want(breaker.StateClosed), fail(1), want(breaker.StateOpen),
		}},
		{"minimum reached by a success", with(func(c *breaker.Config) { c.MinimumCalls = 5 }), []step{
			fail(4), want(breaker.StateClosed), ok(1), want(breaker.StateOpen),
		}},
		{"count window evicts the oldest call", with(func(c *breaker.Config) { c.WindowSize, c.MinimumCalls = 4, 4 }), []step{
			fail(1), ok(3), window(4, 1, 0), ok(1), window(4, 0, 0),
			fail(1), want(breaker.StateClosed), fail(1), want(breaker.StateOpen),
		}},
		{"closed to open by slow-call rate", with(func(c *breaker.Config) {
			c.WindowSize, c.MinimumCalls, c.SlowCallDuration, c.SlowCallRateThreshold = 4, 4, 100*time.Millisecond, 50
		}), []step{
			ok(2), slow(1), want(breaker.StateClosed), window(3, 0, 1),
			callsLat(1, nil, 99*time.Millisecond), want(breaker.StateClosed), // just under the slow threshold
			slow(1), want(breaker.StateOpen),
		}},
		{"slow calls ignored without SlowCallDuration", with(func(c *breaker.Config) { c.SlowCallRateThreshold = 10 }), []step{
			slow(50), want(breaker.StateClosed), window(10, 0, 0),
		}},
		{"time window trips", with(func(c *breaker.Config) {
			c.Window, c.WindowDuration, c.WindowBuckets, c.MinimumCalls = breaker.TimeWindow, 10*time.Second, 10, 4
		}), []step{
			fail(2), ok(1), want(breaker.StateClosed), ok(1), want(breaker.StateOpen),
		}},
		{"time window evicts old buckets", with(func(c *breaker.Config) {
			c.Window, c.WindowDuration, c.WindowBuckets, c.MinimumCalls = breaker.TimeWindow, 10*time.Second, 10, 4
		}), []step{
			fail(2), wait(5 * time.Second), ok(1), window(3, 2, 0), wait(5 * time.Second), window(1, 0, 0),
			ok(1), fail(1), ok(1), want(breaker.StateClosed), window(4, 1, 0),
			wait(time.Hour), window(0, 0, 0),
		}},
		{"open to half-open after the wait", small, []step{
			trip, rejected(), retryAfter(10 * time.Second),
			wait(10*time.Second - 1), rejected(), retryAfter(1), want(breaker.StateOpen),
			wait(1), hold(1), want(breaker.StateHalfOpen),
		}},
		{"half-open closes only after all probes", small, []step{
			trip, wait(10 * time.Second), hold(3), want(breaker.StateHalfOpen), rejected(),
			release(0, nil), release(1, nil), want(breaker.StateHalfOpen), rejected(),
			release(2, nil), want(breaker.StateClosed), window(0, 0, 0), ok(1),
		}},
		{"half-open waits for all probes even when failure is certain", small, []step{
			trip, wait(10 * time.Second), hold(3),
			release(0, errBoom), release(1, errBoom), want(breaker.StateHalfOpen),
			release(2, nil), want(breaker.StateOpen), rejected(),
		}},
		{"half-open reopens when probes fail", small, []step{
			trip, wait(10 * time.Second), hold(3),
			release(0, nil), release(1, errBoom), release(2, errBoom), want(breaker.StateOpen),
		}},
		{"half-open closes when few probes fail", small, []step{
			trip, wait(10 * time.Second), hold(3),
			release(0, nil), release(1, errBoom), release(2, nil), want(breaker.StateClosed),
		}},
		{"one probe", with(func(c *breaker.Config) { c.HalfOpenCalls = 1 }), []step{
			trip, wait(10 * time.Second), fail(1), want(breaker.StateOpen),
			wait(10 * time.Second), ok(1), want(breaker.StateClosed),
		}},
		{"half-open slow probes reopen", with(func(c *breaker.Config) { c.SlowCallDuration = 100 * time.Millisecond }), []step{
			trip, wait(10 * time.Second), slow(3), want(breaker.StateOpen),
		}},
		{"half-open max wait reopens", small, []step{
			trip, wait(10 * time.Second), hold(3), want(breaker.StateHalfOpen),
			wait(5*time.Second - 1), rejected(), want(breaker.StateHalfOpen),
			wait(1), rejected(), want(breaker.StateOpen), retryAfter(10 * time.Second),
			release(0, nil), release(1, nil), release(2, nil), want(breaker.StateOpen), // lost probes, found too late
			wait(10 * time.Second), hold(1), want(breaker.StateHalfOpen),
		}},
		{"ignored outcome frees a probe permit", small, []step{
			trip, wait(10 * time.Second), hold(3), rejected(),
			release(0, context.Canceled), hold(1), rejected(),
			release(1, wrapped), hold(1),
			release(2, nil), release(3, nil), want(breaker.StateHalfOpen), release(4, nil), want(breaker.StateClosed),
		}},
		{"ignored outcomes do not count in closed", small, []step{
			calls(20, context.Canceled), calls(20, wrapped), window(0, 0, 0),
			calls(10, context.DeadlineExceeded), want(breaker.StateOpen),
		}},
		{"late results of an older generation are ignored", small, []step{
			hold(2), trip, want(breaker.StateOpen),
			release(0, nil), release(1, errBoom), want(breaker.StateOpen), retryAfter(10 * time.Second),
			wait(10 * time.Second), hold(1), want(breaker.StateHalfOpen),
			do((*breaker.Breaker).Reset), release(2, errBoom), window(0, 0, 0), want(breaker.StateClosed),
		}},
		{"closed-generation result is not a probe", small, []step{
			hold(1), trip, wait(10 * time.Second), hold(3), release(0, nil),
			window(0, 0, 0), want(breaker.StateHalfOpen), rejected(),
		}},
		{"force open, disable, reset", small, []step{
			do((*breaker.Breaker).ForceOpen), want(breaker.StateForcedOpen), rejected(),
			wait(time.Hour), rejected(), want(breaker.StateForcedOpen),
			do((*breaker.Breaker).Disable), want(breaker.StateDisabled), fail(100), want(breaker.StateDisabled), window(0, 0, 0),
			do((*breaker.Breaker).Reset), want(breaker.StateClosed), fail(9), window(9, 9, 0),
			do((*breaker.Breaker).Reset), window(0, 0, 0), fail(9), want(breaker.StateClosed), fail(1), want(breaker.StateOpen),
			do((*breaker.Breaker).Reset), want(breaker.StateClosed),
		}},
		{"custom classification", with(func(c *breaker.Config) {
			c.IsFailure = func(err error) bool { return !strings.Contains(err.Error(), "not found") }
			c.IsIgnored = func(err error) bool { return strings.Contains(err.Error(), "skip") }
		}), []step{
			calls(10, errors.New("not found")), want(breaker.StateClosed), window(10, 0, 0),
			calls(20, errors.New("skip me")), window(10, 0, 0),
			calls(4, context.Canceled), want(breaker.StateClosed),
			calls(1, context.Canceled), want(breaker.StateOpen), // the custom IsIgnored replaced the default
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := &env{t: t}
				cfg := tt.cfg
				cfg.Observer = func(ev resilience.Event) { e.events = append(e.events, ev) }
				b, err := breaker.New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				e.b = b
				for _, s := range tt.steps {
					s(e)
				}
			})
		})
	}
}

func TestGrowingOpenDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := with(func(c *breaker.Config) {
			c.OpenDuration, c.OpenDurationMultiplier, c.MaxOpenDuration, c.HalfOpenCalls = time.Second, 2, 5*time.Second, 1
		})
		b, err := breaker.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		e := &env{t: t, b: b}
		trip(e)
		for _, d := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second} {
			retryAfter(d)(e)
			wait(d - 1)(e)
			rejected()(e)
			wait(1)(e)
			fail(1)(e) // the probe fails: open again, for longer
			want(breaker.StateOpen)(e)
		}
		retryAfter(5 * time.Second)(e)
		wait(5 * time.Second)(e)
		ok(1)(e)
		want(breaker.StateClosed)(e)
		trip(e) // closing started the growth over
		retryAfter(time.Second)(e)
	})
}

func TestOpenJitterBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const jitter = 0.2
		cfg := with(func(c *breaker.Config) {
			c.OpenJitter, c.Rand = jitter, rand.New(rand.NewPCG(1, 2))
		})
		b, err := breaker.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		e := &env{t: t, b: b}
		lo, hi := time.Duration(float64(cfg.OpenDuration)*(1-jitter)), time.Duration(float64(cfg.OpenDuration)*(1+jitter))
		seen := map[time.Duration]bool{}
		var minSeen, maxSeen time.Duration = hi, lo
		for range 200 {
			b.Reset()
			trip(e)
			d := b.Snapshot().RetryAfter
			if d < lo || d > hi {
				t.Fatalf("open duration %v outside [%v, %v]", d, lo, hi)
			}
			seen[d] = true
			minSeen, maxSeen = min(minSeen, d), max(maxSeen, d)
		}
		// Uniform over ±20%: 200 draws spread well across the range.
		if len(seen) < 150 || minSeen > lo+time.Second || maxSeen < hi-time.Second {
			t.Fatalf("jitter not spread: %d distinct, range [%v, %v]", len(seen), minSeen, maxSeen)
		}
	})
}

func TestJitterReplaysWithSeed(t *testing.T) {
	run := func() []time.Duration {
		var out []time.Duration
		synctest.Test(t, func(t *testing.T) {
			b, err := breaker.New(with(func(c *breaker.Config) { c.OpenJitter, c.Rand = 0.5, rand.New(rand.NewPCG(7, 7)) }))
			if err != nil {
				t.Fatal(err)
			}
			e := &env{t: t, b: b}
			for range 5 {
				b.Reset()
				trip(e)
				out = append(out, b.Snapshot().RetryAfter)
			}
		})
		return out
	}
	a, b := run(), run()
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("same seed, different durations: %v vs %v", a, b)
	}
}

func TestPanicRecordsFailureAndReleases(t *testing.T) {
	tests := []struct {
		name string
		run  func(b *breaker.Breaker)
	}{
		{"Execute", func(b *breaker.Breaker) {
			_, _ = b.Execute(context.Background(), func(context.Context) (any, error) { panic("kaboom") })
		}},
		{"Do", func(b *breaker.Breaker) {
			_, _ = breaker.Do(context.Background(), b, func(context.Context) (int, error) { panic("kaboom") })
		}},
		{"pipeline", func(b *breaker.Breaker) {
			_, _ = resilience.Do(context.Background(), resilience.New(resilience.Policies{Breaker: b}),
				func(context.Context) (int, error) { panic("kaboom") })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b, err := breaker.New(with(func(c *breaker.Config) { c.HalfOpenCalls = 1 }))
				if err != nil {
					t.Fatal(err)
				}
				e := &env{t: t, b: b}
				panics := func() {
					defer func() {
						if r := recover(); r != "kaboom" {
							t.Fatalf("recovered %v, want the panic to continue", r)
						}
					}()
					tt.run(b)
				}
				panics()
				window(1, 1, 0)(e) // closed: the panic counted as a failure
				trip(e)
				wait(10 * time.Second)(e)
				panics() // the only probe panics: its permit is released and the breaker reopens
				want(breaker.StateOpen)(e)
			})
		})
	}
}

func TestCancellationReleasesProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := breaker.New(with(func(c *breaker.Config) { c.HalfOpenCalls = 1 }))
		if err != nil {
			t.Fatal(err)
		}
		e := &env{t: t, b: b}
		trip(e)
		wait(10 * time.Second)(e)
		ctx, cancel := context.WithCancel(context.Background())
		started := make(chan struct{})
		var execErr error
		doneCh := make(chan struct{})
		go func() {
			defer close(doneCh)
			_, execErr = b.Execute(ctx, func(ctx context.Context) (any, error) {
				close(started)
				<-ctx.Done()
				return nil, ctx.Err()
			})
		}()
		<-started
		rejected()(e) // the one probe is taken
		cancel()
		<-doneCh
		if !errors.Is(execErr, context.Canceled) {
			t.Fatalf("Execute: %v", execErr)
		}
		want(breaker.StateHalfOpen)(e) // the cancelled probe decided nothing
		ok(1)(e)                       // and its permit went to this one
		want(breaker.StateClosed)(e)
	})
}

func TestEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got []string
		cfg := with(func(c *breaker.Config) { c.HalfOpenCalls = 1 })
		cfg.Observer = func(ev resilience.Event) {
			if ev.Policy != "small" {
				t.Errorf("event policy %q", ev.Policy)
			}
			switch ev.Kind {
			case resilience.EventStateChange:
				got = append(got, ev.From+">"+ev.To)
			case resilience.EventRejected:
				if !errors.Is(ev.Err, breaker.ErrOpen) {
					t.Errorf("rejected event error %v", ev.Err)
				}
				got = append(got, "rejected")
			default:
				t.Errorf("unexpected event %v", ev.Kind)
			}
		}
		b, err := breaker.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		e := &env{t: t, b: b}
		trip(e)
		rejected()(e)
		wait(10 * time.Second)(e)
		hold(1)(e)
		rejected()(e)
		release(0, nil)(e)
		b.ForceOpen()
		rejected()(e)
		b.Disable()
		b.Reset()
		b.Reset() // closed to closed: no event
		want := "closed>open rejected open>half_open rejected half_open>closed closed>forced_open rejected forced_open>disabled disabled>closed"
		if s := strings.Join(got, " "); s != want {
			t.Fatalf("events:\n got %s\nwant %s", s, want)
		}
	})
}

func TestRejectionError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := breaker.New(with(func(c *breaker.Config) { c.Name = "payments" }))
		if err != nil {
			t.Fatal(err)
		}
		trip(&env{t: t, b: b})
		ctx := context.Background()
		_, err = b.Admit(ctx)
		if !errors.Is(err, breaker.ErrOpen) || !errors.Is(err, resilience.ErrRejected) {
			t.Fatalf("error %v does not wrap ErrOpen and ErrRejected", err)
		}
		if !strings.Contains(err.Error(), `"payments"`) {
			t.Fatalf("error %q does not name the breaker", err)
		}
		if _, err := b.Allow(); !errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("Allow: %v", err)
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = b.Admit(ctx) }); n != 0 {
			t.Fatalf("rejecting allocates %v times", n)
		}
	})
}

func TestAllow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := breaker.New(small)
		if err != nil {
			t.Fatal(err)
		}
		e := &env{t: t, b: b}
		if n := testing.AllocsPerRun(1000, func() {
			done, err := b.Allow()
			if err != nil {
				t.Fatal(err)
			}
			done(resilience.Outcome{})
		}); n != 0 {
			t.Fatalf("Allow+done allocates %v times", n)
		}
		window(10, 0, 0)(e)
		for range 5 { // 5 of the last 10 calls fail
			done, err := b.Allow()
			if err != nil {
				t.Fatal(err)
			}
			done(resilience.Outcome{Err: errBoom})
		}
		want(breaker.StateOpen)(e)
		if _, err := b.Allow(); !errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("Allow on open: %v", err)
		}
		b.Disable()
		done, err := b.Allow()
		if err != nil {
			t.Fatal(err)
		}
		done(resilience.Outcome{Err: errBoom})
		want(breaker.StateDisabled)(e)
	})
}

func TestSnapshot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := breaker.New(with(func(c *breaker.Config) { c.SlowCallDuration = 100 * time.Millisecond }))
		if err != nil {
			t.Fatal(err)
		}
		e := &env{t: t, b: b}
		ok(2)(e)
		fail(1)(e)
		slow(1)(e)
		s := b.Snapshot()
		want := breaker.Snapshot{Name: "small", State: breaker.StateClosed, Generation: 1,
			Calls: 4, Failures: 1, SlowCalls: 1, FailureRate: 25, SlowCallRate: 25}
		if s != want {
			t.Fatalf("snapshot %+v, want %+v", s, want)
		}
		trip(e)
		wait(10 * time.Second)(e)
		hold(2)(e)
		release(0, errBoom)(e)
		s = b.Snapshot()
		if s.State != breaker.StateHalfOpen || s.Generation != 3 || s.Calls != 1 || s.Failures != 1 || s.ProbesInFlight != 1 || s.FailureRate != 100 {
			t.Fatalf("half-open snapshot %+v", s)
		}
	})
}

func TestStateString(t *testing.T) {
	for s, name := range map[breaker.State]string{
		breaker.StateClosed: "closed", breaker.StateOpen: "open", breaker.StateHalfOpen: "half_open",
		breaker.StateForcedOpen: "forced_open", breaker.StateDisabled: "disabled", breaker.State(9): "state(9)",
	} {
		if s.String() != name {
			t.Errorf("%d: %q, want %q", s, s.String(), name)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  breaker.Config
		bad  string // substring of the error; "" means valid
	}{
		{"zero value", breaker.Config{}, ""},
		{"small window gets a small minimum", breaker.Config{WindowSize: 5}, ""},
		{"time window", breaker.Config{Window: breaker.TimeWindow, MinimumCalls: 1000}, ""},
		{"unknown window", breaker.Config{Window: 7}, "Window"},
		{"negative size", breaker.Config{WindowSize: -1}, "WindowSize"},
		{"huge size", breaker.Config{WindowSize: 1 << 30}, "WindowSize"},
		{"minimum above size", breaker.Config{WindowSize: 10, MinimumCalls: 11}, "MinimumCalls"},
		{"negative minimum", breaker.Config{MinimumCalls: -1}, "MinimumCalls"},
		{"tiny buckets", breaker.Config{Window: breaker.TimeWindow, WindowDuration: time.Microsecond, WindowBuckets: 10}, "WindowDuration"},
		{"negative buckets", breaker.Config{WindowBuckets: -1}, "WindowBuckets"},
		{"rate over 100", breaker.Config{FailureRateThreshold: 101}, "FailureRateThreshold"},
		{"negative rate", breaker.Config{FailureRateThreshold: -1}, "FailureRateThreshold"},
		{"slow rate", breaker.Config{SlowCallRateThreshold: 200}, "SlowCallRateThreshold"},
		{"negative slow duration", breaker.Config{SlowCallDuration: -1}, "SlowCallDuration"},
		{"negative open", breaker.Config{OpenDuration: -1}, "OpenDuration"},
		{"shrinking multiplier", breaker.Config{OpenDurationMultiplier: 0.5}, "OpenDurationMultiplier"},
		{"max below open", breaker.Config{OpenDuration: time.Minute, MaxOpenDuration: time.Second}, "MaxOpenDuration"},
		{"jitter of 1", breaker.Config{OpenJitter: 1}, "OpenJitter"},
		{"negative probes", breaker.Config{HalfOpenCalls: -1}, "HalfOpenCalls"},
		{"negative half-open wait", breaker.Config{HalfOpenMaxWait: -1}, "HalfOpenMaxWait"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			_, nerr := breaker.New(tt.cfg)
			if tt.bad == "" {
				if err != nil || nerr != nil {
					t.Fatalf("Validate: %v, New: %v", err, nerr)
				}
				return
			}
			if err == nil || !errors.Is(err, breaker.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.bad) {
				t.Fatalf("Validate: %v, want an ErrInvalidConfig naming %s", err, tt.bad)
			}
			if nerr == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func TestObservesLatency(t *testing.T) {
	for _, d := range []time.Duration{0, time.Second} {
		b, err := breaker.New(breaker.Config{SlowCallDuration: d})
		if err != nil {
			t.Fatal(err)
		}
		if b.ObservesLatency() != (d > 0) {
			t.Errorf("SlowCallDuration %v: ObservesLatency %v", d, b.ObservesLatency())
		}
	}
}
