package limit

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

// recorder is an Algorithm that keeps a fixed limit and records the samples
// it is given, to test the windowing.
type recorder struct {
	limit   int
	samples []Sample
}

func (r *recorder) Update(s Sample) int { r.samples = append(r.samples, s); return r.limit }
func (r *recorder) Limit() int          { return r.limit }

func newLimiter(t *testing.T, cfg Config) *Limiter {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func ok(rtt time.Duration) resilience.Outcome { return resilience.Outcome{Latency: rtt} }

func TestRejectsAtLimit(t *testing.T) {
	var events []resilience.Event
	l := newLimiter(t, Config{Name: "db", Algorithm: Fixed(2), Observer: func(e resilience.Event) { events = append(events, e) }})
	ctx := context.Background()
	p1, err1 := l.Admit(ctx)
	r2, err2 := l.Acquire(ctx)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	_, err := l.Admit(ctx)
	if !errors.Is(err, ErrLimited) || !errors.Is(err, resilience.ErrRejected) {
		t.Fatalf("third admit: %v, want ErrLimited wrapping ErrRejected", err)
	}
	if len(events) != 1 || events[0].Kind != resilience.EventRejected || events[0].Policy != "db" {
		t.Fatalf("events = %+v", events)
	}
	if s := l.Snapshot(); s != (Snapshot{Limit: 2, Inflight: 2}) {
		t.Fatalf("snapshot %+v", s)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = l.Admit(ctx) }); n != 0 {
		t.Errorf("rejecting allocates %v times", n)
	}
	p1.Release(ok(ms))
	r2(ok(ms))
	if s := l.Snapshot(); s.Inflight != 0 {
		t.Fatalf("inflight after release = %d", s.Inflight)
	}
	if _, err := l.Admit(ctx); err != nil {
		t.Fatalf("admit after release: %v", err)
	}
}

// TestWindow checks the WindowedLimit rules: the threshold, WindowSize,
// the average RTT, the max in-flight, the drop flag and the window length
// clamp(2·minRTT, MinWindow, MaxWindow); and that a due window closes
// within 2^maxCheckShift+firstCheck samples.
func TestWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{limit: 100}
		l := newLimiter(t, Config{Algorithm: rec, MinWindow: 100 * ms, MaxWindow: time.Second})
		ctx := context.Background()
		// feed releases up to n calls one at a time and returns how many it
		// took for the algorithm to be updated (0: not updated).
		feed := func(n int, o resilience.Outcome) int {
			before := len(rec.samples)
			for i := range n {
				p, err := l.Admit(ctx)
				if err != nil {
					t.Fatal(err)
				}
				p.Release(o)
				if len(rec.samples) > before {
					return i + 1
				}
			}
			return 0
		}
		feed(20, ok(50*time.Microsecond))                                        // under MinRTT: ignored
		feed(20, resilience.Outcome{Latency: 200 * ms, Err: errors.New("boom")}) // errors: ignored
		if n := feed(9, ok(200*ms)); n != 0 {
			t.Fatalf("updated after %d samples, want ≥ 10", n)
		}
		// Three admitted at once give a max in-flight of 3, and one drops.
		var ps []resilience.Permit
		for range 3 {
			p, _ := l.Admit(ctx)
			ps = append(ps, p)
		}
		ps[2].Release(resilience.Outcome{Err: context.DeadlineExceeded, Dropped: true, Latency: time.Second})
		ps[1].Release(ok(200 * ms))
		ps[0].Release(ok(200 * ms))
		if len(rec.samples) == 0 {
			if n := feed(1<<maxCheckShift+int(l.firstCheck), ok(200*ms)); n == 0 {
				t.Fatalf("window not closed %d samples after it was due", 1<<maxCheckShift+int(l.firstCheck))
			}
		}
		if want := (Sample{RTT: 200 * ms, Inflight: 3, Dropped: true}); rec.samples[0] != want {
			t.Fatalf("sample = %+v, want %+v", rec.samples[0], want)
		}
		// The next window ends 2·200 ms later, whatever the sample count.
		if n := feed(100, ok(300*ms)); n != 0 {
			t.Fatalf("window closed early, after %d samples", n)
		}
		time.Sleep(399 * ms)
		if n := feed(20, ok(300*ms)); n != 0 {
			t.Fatalf("window closed 1 ms early")
		}
		time.Sleep(ms)
		if n := feed(1<<maxCheckShift+int(l.firstCheck), ok(300*ms)); n == 0 {
			t.Fatalf("window not closed %d samples after its end", 1<<maxCheckShift+int(l.firstCheck))
		}
		if want := (Sample{RTT: 300 * ms, Inflight: 1}); rec.samples[1] != want {
			t.Fatalf("second sample = %+v, want %+v", rec.samples[1], want)
		}
		// Averages are of all the window's samples, in whole microseconds.
		time.Sleep(time.Second)
		feed(9, ok(100*ms))
		feed(1<<maxCheckShift+1, ok(101*ms))
		if got := rec.samples[2].RTT; got <= 100*ms || got >= 101*ms || got%time.Microsecond != 0 {
			t.Fatalf("average of 100 and 101 ms samples = %v", got)
		}
	})
}

// TestDropsShrinkLimit drives an AIMD limiter through windows with and
// without drops and checks the limit and its events.
func TestDropsShrinkLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var limits []int
		alg := must(NewAIMD(AIMDConfig{InitialLimit: 50, MinLimit: 1}))
		l := newLimiter(t, Config{Algorithm: alg, MinWindow: 100 * ms, Observer: func(e resilience.Event) {
			if e.Kind == resilience.EventLimitChanged {
				limits = append(limits, e.Limit)
			}
		}})
		ctx := context.Background()
		window := func(dropped bool) {
			var ps []resilience.Permit
			for range 30 { // 30 in flight: 30·2 ≥ limit, so AIMD may grow
				p, err := l.Admit(ctx)
				if err != nil {
					t.Fatal(err)
				}
				ps = append(ps, p)
			}
			// Samples carry the in-flight count at their admission: the last
			// admitted are released first, so the window sees 30 (or 29).
			slices.Reverse(ps)
			if dropped {
				ps[0].Release(resilience.Outcome{Err: context.DeadlineExceeded, Dropped: true})
				ps = ps[1:]
			}
			for _, p := range ps[:10] {
				p.Release(ok(10 * ms))
			}
			for _, p := range ps[10:] {
				p.Release(resilience.Outcome{Err: errors.New("ignored")})
			}
			time.Sleep(time.Second)
		}
		window(true)  // 50 → 45
		window(false) // 46
		window(true)  // ⌊46·0.9⌋ = 41
		if want := []int{45, 46, 41}; !equal(limits, want) {
			t.Fatalf("limits %v, want %v", limits, want)
		}
		if s := l.Snapshot(); s.Limit != 41 || s.Inflight != 0 {
			t.Fatalf("snapshot %+v", s)
		}
	})
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestQueueOrder(t *testing.T) {
	for _, tt := range []struct {
		order Order
		want  []int
	}{{FIFO, []int{0, 1, 2, 3}}, {LIFO, []int{3, 2, 1, 0}}} {
		t.Run(map[Order]string{FIFO: "fifo", LIFO: "lifo"}[tt.order], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLimiter(t, Config{Algorithm: Fixed(1), MaxWait: time.Second, Order: tt.order})
				holder, err := l.Acquire(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				var mu sync.Mutex
				var got []int
				var wg sync.WaitGroup
				for i := range 4 {
					wg.Go(func() {
						release, err := l.Acquire(t.Context())
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						got = append(got, i)
						mu.Unlock()
						release(ok(ms))
					})
					synctest.Wait() // queued in index order
				}
				if q := l.Snapshot().Queued; q != 4 {
					t.Fatalf("queued = %d, want 4", q)
				}
				holder(ok(ms))
				wg.Wait()
				if !equal(got, tt.want) {
					t.Fatalf("served %v, want %v", got, tt.want)
				}
			})
		})
	}
}

func TestQueueTimeoutFullAndCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(t, Config{Algorithm: Fixed(1), MaxWait: 100 * ms, MaxQueue: 1})
		holder, _ := l.Acquire(t.Context())

		start := time.Now()
		done := make(chan error)
		go func() { _, err := l.Admit(t.Context()); done <- err }()
		synctest.Wait()
		if _, err := l.Admit(t.Context()); !errors.Is(err, errQueueFull) || !errors.Is(err, resilience.ErrRejected) {
			t.Fatalf("second waiter: %v, want queue full", err)
		}
		err := <-done
		if !errors.Is(err, errWaitTimeout) || !errors.Is(err, ErrLimited) {
			t.Fatalf("waiter: %v, want wait timeout", err)
		}
		if d := time.Since(start); d != 100*ms {
			t.Fatalf("waited %v, want MaxWait", d)
		}

		ctx, cancel := context.WithCancel(t.Context())
		go func() { _, err := l.Admit(ctx); done <- err }()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) || !errors.Is(err, ErrLimited) {
			t.Fatalf("cancelled waiter: %v", err)
		}
		if s := l.Snapshot(); s.Queued != 0 || s.Inflight != 1 {
			t.Fatalf("snapshot %+v", s)
		}
		holder(ok(ms))
		if s := l.Snapshot(); s.Inflight != 0 {
			t.Fatalf("snapshot %+v", s)
		}
	})
}

// TestQueueStress mixes grants, timeouts and cancellations and checks that
// no slot leaks, in particular when a slot is granted to a waiter that is
// giving up.
func TestQueueStress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(t, Config{Algorithm: Fixed(3), MaxWait: 5 * ms, MaxQueue: 8})
		var over atomic.Bool
		var inflight atomic.Int64
		var wg sync.WaitGroup
		for g := range 16 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(g), 1))
				for range 200 {
					ctx, cancel := context.WithTimeout(t.Context(), time.Duration(r.IntN(6000))*time.Microsecond)
					release, err := l.Acquire(ctx)
					cancel()
					if err != nil {
						continue
					}
					if inflight.Add(1) > 3 {
						over.Store(true)
					}
					time.Sleep(time.Duration(r.IntN(3000)) * time.Microsecond)
					inflight.Add(-1)
					release(ok(ms))
				}
			})
		}
		wg.Wait()
		if over.Load() {
			t.Error("more than the limit in flight")
		}
		if s := l.Snapshot(); s.Inflight != 0 || s.Queued != 0 {
			t.Fatalf("leaked: %+v", s)
		}
	})
}

func TestPartitions(t *testing.T) {
	l := newLimiter(t, Config{Algorithm: Fixed(10), Partitions: []Partition{{"live", 0.9}, {"batch", 0.1}}})
	ctx := context.Background()
	if lim, _, _ := l.PartitionSnapshot("live"); lim != 9 {
		t.Fatalf("live share = %d, want 9", lim)
	}
	var releases []func(resilience.Outcome)
	take := func(name string) error {
		r, err := l.AcquirePartition(ctx, name)
		if err == nil {
			releases = append(releases, r)
		}
		return err
	}
	// Batch may use the whole limit while the total is below it.
	for i := range 10 {
		if err := take("batch"); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	if err := take("batch"); !errors.Is(err, ErrLimited) {
		t.Fatalf("batch over limit and share: %v", err)
	}
	if err := take("other"); !errors.Is(err, ErrLimited) {
		t.Fatalf("unpartitioned over limit: %v", err)
	}
	// Live keeps its guaranteed 9 even though the total is at the limit.
	for i := range 9 {
		if err := take("live"); err != nil {
			t.Fatalf("live %d: %v", i, err)
		}
	}
	if _, err := l.Admit(WithPartition(ctx, "live")); !errors.Is(err, ErrLimited) {
		t.Fatalf("live beyond its share at the limit: %v", err)
	}
	if _, busy, _ := l.PartitionSnapshot("batch"); busy != 10 {
		t.Fatalf("batch busy %d", busy)
	}
	for _, r := range releases[:10] { // the batch calls end: total 9
		r(ok(ms))
	}
	p, err := l.Admit(WithPartition(ctx, "batch"))
	if err != nil {
		t.Fatalf("batch below the limit: %v", err)
	}
	p.Release(ok(ms))
	for _, r := range releases[10:] {
		r(ok(ms))
	}
	if s := l.Snapshot(); s.Inflight != 0 {
		t.Fatalf("inflight %d", s.Inflight)
	}
	if _, busy, _ := l.PartitionSnapshot("live"); busy != 0 {
		t.Fatalf("live busy %d", busy)
	}
}

func TestPartitionLimitsFollowLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(t, Config{Algorithm: &recorder{limit: 40}, Partitions: []Partition{{"live", 0.9}, {"batch", 0.1}}})
		if lim, _, _ := l.PartitionSnapshot("batch"); lim != 4 {
			t.Fatalf("batch = %d, want ⌈40·0.1⌉", lim)
		}
		l.alg.(*recorder).limit = 15
		for range 10 {
			p, _ := l.Admit(context.Background())
			p.Release(ok(ms))
		}
		live, _, _ := l.PartitionSnapshot("live")
		batch, _, _ := l.PartitionSnapshot("batch")
		if live != 14 || batch != 2 { // ⌈13.5⌉, ⌈1.5⌉
			t.Fatalf("live %d batch %d, want 14 and 2", live, batch)
		}
	})
}

func TestExecute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(t, Config{Algorithm: Fixed(1)})
		v, err := l.Execute(t.Context(), func(context.Context) (any, error) { return 7, nil })
		if v != 7 || err != nil {
			t.Fatalf("Execute = %v, %v", v, err)
		}
		func() {
			defer func() { _ = recover() }()
			_, _ = l.Execute(t.Context(), func(context.Context) (any, error) { panic("boom") })
		}()
		if s := l.Snapshot(); s.Inflight != 0 {
			t.Fatalf("panic leaked the permit: %+v", s)
		}
		block := make(chan struct{})
		go func() {
			_, _ = l.Execute(t.Context(), func(context.Context) (any, error) { <-block; return nil, nil })
		}()
		synctest.Wait()
		if _, err := l.Execute(t.Context(), func(context.Context) (any, error) { return nil, nil }); !errors.Is(err, ErrLimited) {
			t.Fatalf("Execute at limit: %v", err)
		}
		close(block)
	})
}

// TestPipelineZeroAllocs: the success path inside resilience.Do allocates
// nothing.
func TestPipelineZeroAllocs(t *testing.T) {
	l := newLimiter(t, Config{})
	p := resilience.New(resilience.Policies{Limit: l})
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 1, nil }
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := resilience.Do(ctx, p, fn); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Do allocates %v times per call", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		r, _ := l.Acquire(ctx)
		r(ok(ms))
	}); n != 0 {
		t.Fatalf("Acquire+release allocates %v times", n)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"windows", Config{MinWindow: 2 * time.Second, MaxWindow: time.Second}},
		{"negative wait", Config{MaxWait: -1}},
		{"order", Config{Order: 7}},
		{"share", Config{Partitions: []Partition{{"a", 0}}}},
		{"sum", Config{Partitions: []Partition{{"a", 0.6}, {"b", 0.6}}}},
		{"dup", Config{Partitions: []Partition{{"a", 0.1}, {"a", 0.1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
}

func TestZeroLimitAlgorithmRejected(t *testing.T) {
	if _, err := New(Config{Algorithm: Fixed(0)}); err == nil {
		t.Fatal("limit 0 accepted")
	}
}

// TestCheckCadenceAdapts: releases check the clock every 2^k samples of
// a stripe, k following the sample rate: at a high rate rarely, at a low
// rate on every sample; either way a window closes within 2^k samples of
// its end.
func TestCheckCadenceAdapts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{limit: 100}
		l := newLimiter(t, Config{Algorithm: rec})
		ctx := context.Background()
		feed := func(n int, every time.Duration) int {
			before := len(rec.samples)
			for i := range n {
				time.Sleep(every)
				p, _ := l.Admit(ctx)
				p.Release(ok(ms))
				if len(rec.samples) > before {
					return i + 1
				}
			}
			return 0
		}
		feed(10, 0) // 10 samples in no time: a high rate
		if got := l.checkMask.Load(); got != 1<<maxCheckShift-1 {
			t.Fatalf("check mask %d at a high rate, want %d", got, 1<<maxCheckShift-1)
		}
		time.Sleep(time.Second)
		limit := 1<<maxCheckShift + int(l.firstCheck)
		if n := feed(10*limit, 0); n == 0 || n > limit {
			t.Fatalf("window closed after %d samples, want ≤ %d", n, limit)
		}
		// 20 samples over 2 s: 10 per 1 s window, so every sample checks.
		feed(20, 100*ms)
		time.Sleep(time.Second)
		feed(20, 100*ms)
		if got := l.checkMask.Load(); got != 0 {
			t.Fatalf("check mask %d at a low rate, want 0", got)
		}
	})
}

// TestAcquireBeyondCachedFuncs covers admission counts past fnSlots, whose
// release functions come from a pool.
func TestAcquireBeyondCachedFuncs(t *testing.T) {
	l := newLimiter(t, Config{Algorithm: Fixed(fnSlots + 200), Partitions: []Partition{{"p", 0.5}}})
	ctx := context.Background()
	var rs []func(resilience.Outcome)
	for i := range fnSlots + 100 {
		r, err := l.AcquirePartition(ctx, []string{"p", ""}[i%2])
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	if n := testing.AllocsPerRun(100, func() {
		r, _ := l.Acquire(ctx)
		r(ok(ms))
	}); n != 0 {
		t.Errorf("pooled release allocates %v times", n)
	}
	for _, r := range rs {
		r(ok(ms))
	}
	if s := l.Snapshot(); s.Inflight != 0 {
		t.Fatalf("inflight %d", s.Inflight)
	}
	if _, busy, _ := l.PartitionSnapshot("p"); busy != 0 {
		t.Fatalf("partition busy %d", busy)
	}
}
