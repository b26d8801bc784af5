package supervise

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder collects events as "child kind" strings (and the events).
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) observe(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// log returns "child:kind" for each event, optionally only those kinds.
func (r *recorder) log(kinds ...EventKind) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if len(kinds) > 0 && !slices.Contains(kinds, e.Kind) {
			continue
		}
		who := e.Child
		if who == "" {
			who = e.Supervisor
		}
		out = append(out, who+":"+string(e.Kind))
	}
	return out
}

func (r *recorder) all() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// worker is a controllable child: each run blocks until its context ends
// (returns nil) or until the test sends it what to do.
type worker struct {
	name   string
	do     chan func() error // the next run returns what this returns
	mu     sync.Mutex
	starts int
	stops  *[]string // appended with name when a run ends by cancellation
	smu    *sync.Mutex
}

func newWorker(name string, stops *[]string, smu *sync.Mutex) *worker {
	return &worker{name: name, do: make(chan func() error), stops: stops, smu: smu}
}

func (w *worker) Serve(ctx context.Context) error {
	w.mu.Lock()
	w.starts++
	w.mu.Unlock()
	select {
	case <-ctx.Done():
		if w.stops != nil {
			w.smu.Lock()
			*w.stops = append(*w.stops, w.name)
			w.smu.Unlock()
		}
		return ctx.Err()
	case f := <-w.do:
		return f()
	}
}

func (w *worker) Starts() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.starts
}

var errBoom = errors.New("boom")

func fail() error  { return errBoom }
func exit() error  { return nil }
func crash() error { panic("crash!") }

// serve runs s in the background; the returned func cancels it and
// returns Serve's result.
func serve(s *Supervisor) (stop func() error, result chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	result = make(chan error, 1)
	go func() { result <- s.Serve(ctx) }()
	return func() error { cancel(); return <-result }, result
}

func TestStrategies(t *testing.T) {
	for _, tc := range []struct {
		strategy Strategy
		starts   []int    // starts of a, b, c after b fails once
		stopped  []string // siblings stopped, in order
	}{
		{OneForOne, []int{1, 2, 1}, nil},
		{OneForAll, []int{2, 2, 2}, []string{"c", "a"}},
		{RestForOne, []int{1, 2, 2}, []string{"c"}},
	} {
		t.Run(tc.strategy.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var stops []string
				var smu sync.Mutex
				rec := &recorder{}
				ws := []*worker{newWorker("a", &stops, &smu), newWorker("b", &stops, &smu), newWorker("c", &stops, &smu)}
				s := New(Config{Name: "root", Strategy: tc.strategy, Observer: rec.observe, Jitter: -1},
					Spec{Name: "a", Service: ws[0]}, Spec{Name: "b", Service: ws[1]}, Spec{Name: "c", Service: ws[2]})
				stop, _ := serve(s)
				synctest.Wait()
				ws[1].do <- fail
				time.Sleep(time.Second) // past the backoff
				synctest.Wait()
				var got []int
				for _, w := range ws {
					got = append(got, w.Starts())
				}
				if !slices.Equal(got, tc.starts) {
					t.Errorf("starts %v, want %v", got, tc.starts)
				}
				smu.Lock()
				gotStops := slices.Clone(stops)
				stops = nil
				smu.Unlock()
				if !slices.Equal(gotStops, tc.stopped) {
					t.Errorf("siblings stopped %v, want %v", gotStops, tc.stopped)
				}
				// Restarts happen in start order.
				var restarted []string
				for _, e := range rec.all() {
					if e.Kind == EventRestarted {
						restarted = append(restarted, e.Child)
					}
				}
				want := map[Strategy][]string{OneForOne: {"b"}, OneForAll: {"a", "b", "c"}, RestForOne: {"b", "c"}}[tc.strategy]
				if !slices.Equal(restarted, want) {
					t.Errorf("restarted %v, want %v", restarted, want)
				}
				if err := stop(); err != nil {
					t.Fatalf("Serve after cancel: %v", err)
				}
				smu.Lock()
				defer smu.Unlock()
				if !slices.Equal(stops, []string{"c", "b", "a"}) {
					t.Errorf("shutdown order %v, want [c b a]", stops)
				}
			})
		})
	}
}

func TestPolicies(t *testing.T) {
	for _, tc := range []struct {
		restart Restart
		how     func() error
		again   bool
		state   State
		kind    EventKind
	}{
		{Permanent, exit, true, StateRunning, EventExited},
		{Permanent, fail, true, StateRunning, EventFailed},
		{Permanent, crash, true, StateRunning, EventFailed},
		{Transient, exit, false, StateExited, EventExited},
		{Transient, fail, true, StateRunning, EventFailed},
		{Transient, crash, true, StateRunning, EventFailed},
		{Temporary, exit, false, StateExited, EventExited},
		{Temporary, fail, false, StateFailed, EventFailed},
		{Temporary, crash, false, StateFailed, EventFailed},
	} {
		name := fmt.Sprintf("%v/%s", tc.restart, map[bool]string{true: "restarted", false: "not-restarted"}[tc.again])
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				w := newWorker("w", nil, nil)
				s := New(Config{Observer: rec.observe}, Spec{Name: "w", Service: w, Restart: tc.restart})
				stop, _ := serve(s)
				synctest.Wait()
				w.do <- tc.how
				time.Sleep(time.Second)
				synctest.Wait()
				if got, want := w.Starts(), map[bool]int{true: 2, false: 1}[tc.again]; got != want {
					t.Errorf("starts %d, want %d", got, want)
				}
				if st := s.Tree().Children[0].State; st != tc.state {
					t.Errorf("state %q, want %q", st, tc.state)
				}
				if got := rec.log(EventExited, EventFailed); !slices.Equal(got, []string{"w:" + string(tc.kind)}) {
					t.Errorf("events %v, want [w:%s]", got, tc.kind)
				}
				if err := stop(); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// TestTemporarySiblingNotRestarted: a temporary child stopped by a
// sibling's one-for-all restart stays down.
func TestTemporarySiblingNotRestarted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, tmp := newWorker("a", nil, nil), newWorker("tmp", nil, nil)
		s := New(Config{Strategy: OneForAll}, Spec{Name: "a", Service: a}, Spec{Name: "tmp", Service: tmp, Restart: Temporary})
		stop, _ := serve(s)
		synctest.Wait()
		a.do <- fail
		time.Sleep(time.Second)
		synctest.Wait()
		if a.Starts() != 2 || tmp.Starts() != 1 {
			t.Fatalf("starts a=%d tmp=%d, want 2 and 1", a.Starts(), tmp.Starts())
		}
		if st := s.Tree().Children[1].State; st != StateStopped {
			t.Fatalf("temporary sibling is %q, want stopped", st)
		}
		stop()
	})
}

func TestIntensity(t *testing.T) {
	for _, tc := range []struct {
		name     string
		max      int
		failures int
		spacing  time.Duration
		gaveUp   bool
	}{
		{"within the limit", 3, 3, 10 * time.Millisecond, false},
		{"one more than the limit", 3, 4, 10 * time.Millisecond, true},
		{"spread beyond the period", 3, 8, 400 * time.Millisecond, false},
		{"no restarts allowed", -1, 1, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				w, other := newWorker("w", nil, nil), newWorker("other", nil, nil)
				s := New(Config{Name: "sup", MaxRestarts: tc.max, Period: time.Second, Backoff: -1, Observer: rec.observe},
					Spec{Name: "other", Service: other}, Spec{Name: "w", Service: w})
				stop, result := serve(s)
				synctest.Wait()
				for range tc.failures {
					w.do <- fail
					time.Sleep(tc.spacing)
					synctest.Wait()
				}
				select {
				case err := <-result:
					if !tc.gaveUp {
						t.Fatalf("Serve returned %v", err)
					}
					if !errors.Is(err, ErrTooManyRestarts) || !errors.Is(err, errBoom) {
						t.Fatalf("Serve returned %v, want ErrTooManyRestarts wrapping the last failure", err)
					}
					if got := rec.log(EventGaveUp, EventStopped); !slices.Equal(got, []string{"other:stopped", "sup:gave-up"}) {
						t.Fatalf("events %v: want the sibling stopped, then gave-up", got)
					}
				default:
					if tc.gaveUp {
						t.Fatal("the supervisor did not give up")
					}
					if err := stop(); err != nil {
						t.Fatal(err)
					}
					if w.Starts() != tc.failures+1 {
						t.Fatalf("starts %d, want %d", w.Starts(), tc.failures+1)
					}
				}
			})
		})
	}
}

// TestEscalation: a nested supervisor that gives up fails in its parent,
// which restarts it (permanent) or leaves it down (temporary) — and the
// parent's own intensity limit escalates further.
func TestEscalation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		w := newWorker("w", nil, nil)
		tmpW := newWorker("tw", nil, nil)
		sub := New(Config{Name: "sub", MaxRestarts: 1, Backoff: -1}, Spec{Name: "w", Service: w})
		tmp := New(Config{Name: "tmp", MaxRestarts: -1}, Spec{Name: "tw", Service: tmpW})
		root := New(Config{Name: "root", MaxRestarts: 1, Backoff: -1, Observer: rec.observe},
			Spec{Name: "sub", Service: sub}, Spec{Name: "tmp", Service: tmp, Restart: Temporary})
		_, result := serve(root)
		synctest.Wait()

		// The temporary subtree gives up and stays down.
		tmpW.do <- fail
		synctest.Wait()
		tree := root.Tree()
		if st := tree.Children[1].State; st != StateGaveUp {
			t.Fatalf("temporary subtree is %q, want gave-up", st)
		}
		if !strings.Contains(tree.Children[1].LastFailure, "too many restarts") {
			t.Fatalf("last failure %q", tree.Children[1].LastFailure)
		}

		// sub gives up on its second failure; root restarts sub (1 allowed).
		w.do <- fail
		synctest.Wait()
		w.do <- fail
		synctest.Wait()
		if got := rec.log(EventGaveUp); !slices.Equal(got, []string{"root/tmp:gave-up", "root/sub:gave-up"}) {
			t.Fatalf("gave-up events %v", got)
		}
		if w.Starts() != 3 {
			t.Fatalf("w started %d times, want 3 (first, sub's restart, root's restart of sub)", w.Starts())
		}
		// Twice more: sub gives up again, and root exceeds its own limit.
		w.do <- fail
		synctest.Wait()
		w.do <- fail
		err := <-result
		if !errors.Is(err, ErrTooManyRestarts) || !strings.Contains(err.Error(), "root") {
			t.Fatalf("root returned %v, want its own ErrTooManyRestarts", err)
		}
		if got := rec.log(EventGaveUp); got[len(got)-1] != "root:gave-up" {
			t.Fatalf("gave-up events %v", got)
		}
		// Events of the nested supervisors reached root's observer with
		// their path.
		var paths []string
		for _, e := range rec.all() {
			if e.Child == "w" && e.Kind == EventFailed {
				paths = append(paths, e.Supervisor)
			}
		}
		if len(paths) == 0 || paths[0] != "root/sub" {
			t.Fatalf("nested events' supervisor paths %v", paths)
		}
	})
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    Config
		want   []time.Duration // delays before restarts 1..n
		jitter float64
	}{
		{"exponential and capped", Config{Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Jitter: -1},
			[]time.Duration{10, 20, 40, 50, 50}, 0},
		{"immediate", Config{Backoff: -1}, []time.Duration{0, 0, 0}, 0},
		{"jittered", Config{Backoff: 100 * time.Millisecond, MaxBackoff: time.Second, Jitter: 0.5, Rand: rand.New(rand.NewPCG(1, 2))},
			[]time.Duration{100, 200, 400}, 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				w := newWorker("w", nil, nil)
				tc.cfg.Observer, tc.cfg.MaxRestarts, tc.cfg.Period = rec.observe, 100, time.Minute
				s := New(tc.cfg, Spec{Name: "w", Service: w})
				stop, _ := serve(s)
				synctest.Wait()
				var got []time.Duration
				for range tc.want {
					failedAt := time.Now()
					w.do <- fail
					for w.Starts() == len(got)+1 {
						time.Sleep(time.Millisecond / 10)
						synctest.Wait()
					}
					got = append(got, time.Since(failedAt))
				}
				for i, d := range got {
					want := tc.want[i]
					if tc.name != "immediate" {
						want *= time.Millisecond
					}
					lo, hi := time.Duration(float64(want)*(1-tc.jitter)), time.Duration(float64(want)*(1+tc.jitter))+time.Millisecond/10
					if d < lo || d > hi {
						t.Errorf("restart %d after %v, want %v..%v", i+1, d, lo, hi)
					}
				}
				// The event's Delay is the backoff applied.
				for _, e := range rec.all() {
					if e.Kind == EventFailed && (!e.Restarting || e.Delay < 0) {
						t.Errorf("failed event %+v: want Restarting with a delay", e)
					}
				}
				stop()
			})
		})
	}
}

// TestJitterReplays: the same seed gives the same delays.
func TestJitterReplays(t *testing.T) {
	delays := func() []time.Duration {
		s := New(Config{Backoff: time.Second, Jitter: 0.3, Rand: rand.New(rand.NewPCG(7, 7))})
		c := &child{}
		var out []time.Duration
		for range 4 {
			out = append(out, s.backoff(c, time.Unix(0, 0)))
		}
		return out
	}
	a, b := delays(), delays()
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different delays: %v vs %v", a, b)
	}
	if a[0] == time.Second {
		t.Fatalf("no jitter applied: %v", a)
	}
}

// stubborn ignores cancellation until released.
type stubborn struct{ release chan struct{} }

func (s stubborn) Serve(ctx context.Context) error {
	<-ctx.Done()
	<-s.release
	return nil
}

func TestShutdownTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		var stops []string
		var smu sync.Mutex
		release := make(chan struct{})
		a := newWorker("a", &stops, &smu)
		s := New(Config{Observer: rec.observe, Shutdown: time.Hour},
			Spec{Name: "a", Service: a},
			Spec{Name: "slow", Service: stubborn{release}, Shutdown: 2 * time.Second})
		stop, _ := serve(s)
		synctest.Wait()
		begin := time.Now()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(begin); took != 2*time.Second {
			t.Errorf("shutdown took %v, want the slow child's 2s timeout", took)
		}
		if got := rec.log(EventStopped, EventStopTimeout); !slices.Equal(got, []string{"slow:stop-timeout", "a:stopped"}) {
			t.Errorf("events %v, want slow timed out (stopped first: reverse order), then a", got)
		}
		close(release)
	})
}

func TestPanicCapture(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		w := newWorker("w", nil, nil)
		s := New(Config{Observer: rec.observe, MaxRestarts: 1}, Spec{Name: "w", Service: w, Restart: Temporary})
		stop, _ := serve(s)
		synctest.Wait()
		w.do <- func() error { panic(fmt.Errorf("wrapped: %w", errBoom)) }
		synctest.Wait()
		var p *PanicError
		var ev Event
		for _, e := range rec.all() {
			if e.Kind == EventFailed {
				ev = e
			}
		}
		if !errors.As(ev.Err, &p) {
			t.Fatalf("failed event's error %v is not a *PanicError", ev.Err)
		}
		if !errors.Is(ev.Err, errBoom) {
			t.Errorf("a panic with an error value should unwrap to it")
		}
		if !strings.Contains(string(p.Stack), "supervise.TestPanicCapture") {
			t.Errorf("stack does not name the panicking function:\n%s", p.Stack)
		}
		if got := s.Tree().Children[0].LastFailure; !strings.Contains(got, "panic: wrapped: boom") {
			t.Errorf("last failure %q", got)
		}
		stop()
	})
}

func TestStopStartChild(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		w := newWorker("w", nil, nil)
		s := New(Config{Observer: rec.observe}, Spec{Name: "w", Service: w})
		ctx := context.Background()
		if err := s.StopChild(ctx, "w"); !errors.Is(err, ErrNotRunning) {
			t.Fatalf("StopChild before Serve: %v", err)
		}
		stop, _ := serve(s)
		synctest.Wait()
		if err := s.StopChild(ctx, "w"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if w.Starts() != 1 || s.Tree().Children[0].State != StateStopped {
			t.Fatalf("a stopped child came back: starts %d, state %s", w.Starts(), s.Tree().Children[0].State)
		}
		if err := s.StartChild(ctx, "w"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if w.Starts() != 2 || s.Tree().Children[0].State != StateRunning {
			t.Fatalf("StartChild: starts %d, state %s", w.Starts(), s.Tree().Children[0].State)
		}
		if err := s.StopChild(ctx, "nope"); !errors.Is(err, ErrNoChild) {
			t.Fatalf("StopChild of an unknown child: %v", err)
		}
		// Add while running starts at once; a duplicate is refused.
		x := newWorker("x", nil, nil)
		if err := s.Add(Spec{Name: "x", Service: x}); err != nil {
			t.Fatal(err)
		}
		if err := s.Add(Spec{Name: "x", Service: x}); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("duplicate Add: %v", err)
		}
		synctest.Wait()
		if x.Starts() != 1 {
			t.Fatal("a child added while running did not start")
		}
		stop()
		if got := rec.log(EventStarted, EventStopped); !slices.Equal(got, []string{"w:started", "w:stopped", "w:started", "x:started", "x:stopped", "w:stopped"}) {
			t.Fatalf("events %v", got)
		}
	})
}

func TestTree(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorker("w", nil, nil)
		sub := New(Config{Name: "sub", Strategy: RestForOne}, Spec{Name: "w", Service: w, Restart: Transient})
		root := New(Config{Name: "root"}, Spec{Name: "sub", Service: sub})
		if st := root.Tree().State; st != StateIdle {
			t.Fatalf("before Serve: %s", st)
		}
		stop, _ := serve(root)
		synctest.Wait()
		w.do <- fail
		time.Sleep(time.Second)
		synctest.Wait()
		tree := root.Tree()
		if tree.State != StateRunning || len(tree.Children) != 1 {
			t.Fatalf("tree %+v", tree)
		}
		s := tree.Children[0]
		if !s.Supervisor || s.Strategy != "rest-for-one" || len(s.Children) != 1 {
			t.Fatalf("sub node %+v", s)
		}
		k := s.Children[0]
		if k.Name != "w" || k.State != StateRunning || k.Restarts != 1 || k.LastFailure != "boom" || k.Restart != "transient" {
			t.Fatalf("worker node %+v", k)
		}
		stop()
	})
}

func TestServeTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Config{}, Spec{Name: "w", Service: newWorker("w", nil, nil)})
		stop, _ := serve(s)
		synctest.Wait()
		if err := s.Serve(context.Background()); !errors.Is(err, ErrRunning) {
			t.Fatalf("second concurrent Serve: %v", err)
		}
		stop()
	})
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{Period: -1}, {MaxBackoff: -1}, {Jitter: 2}, {Shutdown: -1}, {Strategy: 9}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: want an error", c)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatal(err)
	}
	s := New(Config{})
	if err := s.Add(Spec{Name: "x"}); err == nil {
		t.Error("Add without a service: want an error")
	}
	if err := s.Add(Spec{Name: "x", Service: s}); err == nil {
		t.Error("a supervisor supervising itself: want an error")
	}
}

// TestNoLeakRealTime runs a tree on the real clock, with a crash and
// restart, and checks no goroutine outlives Serve.
func TestNoLeakRealTime(t *testing.T) {
	defer goleak.VerifyNone(t)
	crashed := make(chan struct{})
	var once sync.Once
	svc := ServiceFunc(func(ctx context.Context) error {
		once.Do(func() { close(crashed); panic("first run crashes") })
		<-ctx.Done()
		return nil
	})
	sub := New(Config{Name: "sub"}, Spec{Name: "svc", Service: svc})
	root := New(Config{Name: "root"}, Spec{Name: "sub", Service: sub}, Spec{Name: "w", Service: newWorker("w", nil, nil)})
	stop, _ := serve(root)
	<-crashed
	deadline := time.Now().Add(10 * time.Second)
	for root.Tree().Children[0].Children[0].Restarts == 0 || root.Tree().Children[0].Children[0].State != StateRunning {
		if time.Now().After(deadline) {
			t.Fatalf("not restarted: %+v", root.Tree())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestBackoffReset: a child that ran for BackoffReset before failing
// starts again from the first delay.
func TestBackoffReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorker("w", nil, nil)
		s := New(Config{Backoff: 10 * time.Millisecond, BackoffReset: time.Second, Jitter: -1, MaxRestarts: 100, Period: time.Hour},
			Spec{Name: "w", Service: w})
		stop, _ := serve(s)
		synctest.Wait()
		delay := func(ranFor time.Duration) time.Duration {
			time.Sleep(ranFor)
			n := w.Starts()
			failed := time.Now()
			w.do <- fail
			for w.Starts() == n {
				time.Sleep(time.Millisecond)
				synctest.Wait()
			}
			return time.Since(failed)
		}
		got := []time.Duration{delay(0), delay(0), delay(0), delay(time.Second), delay(0)}
		want := []time.Duration{10, 20, 40, 10, 20}
		for i := range want {
			if got[i] != want[i]*time.Millisecond {
				t.Fatalf("delays %v, want %v ms", got, want)
			}
		}
		stop()
	})
}

func TestRemove(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		a, b := newWorker("a", nil, nil), newWorker("b", nil, nil)
		s := New(Config{Observer: rec.observe}, Spec{Name: "a", Service: a}, Spec{Name: "b", Service: b})
		if err := s.Remove(context.Background(), "b"); err != nil { // not serving: just dropped
			t.Fatal(err)
		}
		if err := s.Add(Spec{Name: "b", Service: b}); err != nil {
			t.Fatal(err)
		}
		stop, _ := serve(s)
		synctest.Wait()
		if err := s.Remove(context.Background(), "a"); err != nil {
			t.Fatal(err)
		}
		if err := s.Remove(context.Background(), "a"); !errors.Is(err, ErrNoChild) {
			t.Fatalf("second Remove: %v", err)
		}
		tree := s.Tree()
		if len(tree.Children) != 1 || tree.Children[0].Name != "b" {
			t.Fatalf("tree after Remove: %+v", tree)
		}
		stop()
		if got := rec.log(EventStopped); !slices.Equal(got, []string{"a:stopped", "b:stopped"}) {
			t.Fatalf("stopped %v", got)
		}
		if a.Starts() != 1 || b.Starts() != 1 {
			t.Fatalf("starts a=%d b=%d", a.Starts(), b.Starts())
		}
	})
}

// wrapped runs a supervisor with a tear-down of its own.
type wrapped struct{ s *Supervisor }

func (w wrapped) Serve(ctx context.Context) error { return w.s.Serve(ctx) }
func (w wrapped) Unwrap() *Supervisor             { return w.s }

// TestWrapper: a supervisor run by a wrapping service nests like a direct
// child: events with its path, nodes in Tree.
func TestWrapper(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		sub := New(Config{Name: "sub"}, Spec{Name: "w", Service: newWorker("w", nil, nil)})
		root := New(Config{Name: "root", Observer: rec.observe}, Spec{Name: "sub", Service: wrapped{sub}})
		stop, _ := serve(root)
		synctest.Wait()
		var paths []string
		for _, e := range rec.all() {
			paths = append(paths, e.Supervisor+"/"+e.Child)
		}
		if !slices.Contains(paths, "root/sub/w") {
			t.Fatalf("events %v: want root/sub/w", paths)
		}
		if tr := root.Tree(); len(tr.Children[0].Children) != 1 {
			t.Fatalf("tree %+v", tr)
		}
		stop()
	})
}

// TestOneForAllKeepsStoppedSiblingDown: an operator's StopChild holds
// against a sibling's one-for-all restart, and rest-for-one on the last
// child restarts only it.
func TestOneForAllKeepsStoppedSiblingDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b, c := newWorker("a", nil, nil), newWorker("b", nil, nil), newWorker("c", nil, nil)
		s := New(Config{Strategy: OneForAll}, Spec{Name: "a", Service: a}, Spec{Name: "b", Service: b}, Spec{Name: "c", Service: c})
		stop, _ := serve(s)
		synctest.Wait()
		if err := s.StopChild(context.Background(), "b"); err != nil {
			t.Fatal(err)
		}
		a.do <- fail
		time.Sleep(time.Second)
		synctest.Wait()
		if a.Starts() != 2 || b.Starts() != 1 || c.Starts() != 2 {
			t.Fatalf("starts a=%d b=%d c=%d, want 2 1 2", a.Starts(), b.Starts(), c.Starts())
		}
		stop()
	})
	synctest.Test(t, func(t *testing.T) {
		a, b := newWorker("a", nil, nil), newWorker("b", nil, nil)
		s := New(Config{Strategy: RestForOne}, Spec{Name: "a", Service: a}, Spec{Name: "b", Service: b})
		stop, _ := serve(s)
		synctest.Wait()
		b.do <- fail
		time.Sleep(time.Second)
		synctest.Wait()
		if a.Starts() != 1 || b.Starts() != 2 {
			t.Fatalf("starts a=%d b=%d, want 1 2", a.Starts(), b.Starts())
		}
		stop()
	})
}
