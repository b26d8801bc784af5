package ratelimit

import (
	"context"
	"errors"
	"hash/maphash"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
)

const ms = time.Millisecond

func newLimiter(t testing.TB, cfg Config) *Limiter {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestBurstThenRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(t, Config{Rate: 10, Burst: 5})
		for i := range 5 {
			if !l.Allow() {
				t.Fatalf("burst call %d rejected", i)
			}
		}
		if l.Allow() {
			t.Fatal("6th call allowed with an empty bucket")
		}
		time.Sleep(99 * ms)
		if l.Allow() {
			t.Fatal("token before 1/Rate")
		}
		time.Sleep(ms)
		if !l.Allow() || l.Allow() {
			t.Fatal("want exactly one token after 100 ms")
		}
		time.Sleep(time.Second) // refills to the burst, not beyond
		if got := l.Tokens(); got != 5 {
			t.Fatalf("tokens after idle = %v, want 5", got)
		}
	})
}

// TestRateOverTime polls every millisecond for 10 s: a 100/s, burst-1
// limiter must allow exactly one call per 10 ms.
func TestRateOverTime(t *testing.T) {
	for _, tt := range []struct {
		rate  float64
		burst int
		want  int
	}{{100, 1, 1000}, {100, 20, 1019}, {3, 1, 30}} {
		t.Run(strconv.FormatFloat(tt.rate, 'f', -1, 64)+"/"+strconv.Itoa(tt.burst), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLimiter(t, Config{Rate: tt.rate, Burst: tt.burst})
				n := 0
				for range 10000 {
					if l.Allow() {
						n++
					}
					time.Sleep(ms)
				}
				if n != tt.want {
					t.Fatalf("allowed %d in 10 s, want %d", n, tt.want)
				}
			})
		})
	}
}

func TestRejectEventAndAllocs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events []resilience.Event
		l := newLimiter(t, Config{Name: "api", Rate: 1, Burst: 1, Observer: func(e resilience.Event) { events = append(events, e) }})
		ctx := context.Background()
		if _, err := l.Admit(ctx); err != nil {
			t.Fatal(err)
		}
		_, err := l.Admit(ctx)
		if !errors.Is(err, ErrLimited) || !errors.Is(err, resilience.ErrRejected) {
			t.Fatalf("second admit: %v", err)
		}
		if len(events) != 1 || events[0].Kind != resilience.EventRejected || events[0].Policy != "api" {
			t.Fatalf("events %+v", events)
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = l.Admit(ctx) }); n != 0 {
			t.Fatalf("rejecting allocates %v", n)
		}
	})
}

func TestWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(t, Config{Rate: 10, Burst: 1, MaxWait: 450 * ms})
		start := time.Now()
		var mu sync.Mutex
		var done []time.Duration
		var tooLong int
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() {
				err := l.Wait(t.Context())
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					done = append(done, time.Since(start))
				case errors.Is(err, errTooLong):
					tooLong++
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		// Tokens at 0, 100, …, 400 ms; the 6th would need 500 ms > MaxWait.
		want := map[time.Duration]bool{0: true, 100 * ms: true, 200 * ms: true, 300 * ms: true, 400 * ms: true}
		for _, d := range done {
			if !want[d] {
				t.Errorf("a waiter finished at %v", d)
			}
			delete(want, d)
		}
		if len(want) != 0 || tooLong != 1 {
			t.Fatalf("missing %v, rejected %d", want, tooLong)
		}
	})
}

func TestWaitDeadlineAndCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(t, Config{Rate: 10, Burst: 1, MaxWait: time.Second})
		if !l.Allow() {
			t.Fatal("first call rejected")
		}
		// A deadline before the next token: rejected at once, nothing reserved.
		ctx, cancel := context.WithTimeout(t.Context(), 50*ms)
		defer cancel()
		start := time.Now()
		if err := l.Wait(ctx); !errors.Is(err, errTooLong) {
			t.Fatalf("short deadline: %v", err)
		}
		if time.Since(start) != 0 {
			t.Fatal("waited although the deadline was too short")
		}
		// A cancelled wait hands its token back.
		ctx2, cancel2 := context.WithCancel(t.Context())
		errc := make(chan error)
		go func() { errc <- l.Wait(ctx2) }()
		synctest.Wait()
		cancel2()
		if err := <-errc; !errors.Is(err, context.Canceled) || !errors.Is(err, ErrLimited) {
			t.Fatalf("cancelled wait: %v", err)
		}
		if err := l.Wait(t.Context()); err != nil || time.Since(start) != 100*ms {
			t.Fatalf("next wait: %v after %v, want the 100 ms token", err, time.Since(start))
		}
	})
}

func TestConfig(t *testing.T) {
	for _, cfg := range []Config{{Rate: -1}, {Rate: 2e9}, {Burst: -1}, {MaxWait: -1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	if _, err := NewKeyed(KeyedConfig{MaxKeys: -1}); err == nil {
		t.Error("negative MaxKeys accepted")
	}
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(t, Config{})
		if got := l.Tokens(); got != 100 {
			t.Fatalf("default bucket %v, want 100", got)
		}
	})
}

func TestExecute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(t, Config{Rate: 1, Burst: 1})
		v, err := l.Execute(t.Context(), func(context.Context) (any, error) { return 1, nil })
		if v != 1 || err != nil {
			t.Fatal(v, err)
		}
		if _, err := l.Execute(t.Context(), func(context.Context) (any, error) { return 1, nil }); !errors.Is(err, ErrLimited) {
			t.Fatal(err)
		}
	})
}

func TestKeyedIndependentKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k, err := NewKeyed(KeyedConfig{Config: Config{Rate: 10, Burst: 2}})
		if err != nil {
			t.Fatal(err)
		}
		if !k.Allow("a") || !k.Allow("a") || k.Allow("a") {
			t.Fatal("key a: want a burst of 2")
		}
		if !k.Allow("b") {
			t.Fatal("key b limited by key a")
		}
		time.Sleep(100 * ms)
		if !k.Allow("a") || k.Allow("a") {
			t.Fatal("key a: want one token after 100 ms")
		}
		ctx := WithKey(t.Context(), "c")
		for range 2 {
			if _, err := k.Admit(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := k.Admit(ctx); !errors.Is(err, ErrLimited) {
			t.Fatalf("third admit for c: %v", err)
		}
	})
}

func TestKeyedWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k, _ := NewKeyed(KeyedConfig{Config: Config{Rate: 10, Burst: 1, MaxWait: 150 * ms}})
		start := time.Now()
		if err := k.Wait(t.Context(), "x"); err != nil {
			t.Fatal(err)
		}
		if err := k.Wait(t.Context(), "x"); err != nil || time.Since(start) != 100*ms {
			t.Fatalf("%v after %v", err, time.Since(start))
		}
		go func() { _ = k.Wait(t.Context(), "x") }() // reserves the 200 ms token
		synctest.Wait()
		if err := k.Wait(t.Context(), "x"); !errors.Is(err, errTooLong) { // 300 ms: 200 ms away
			t.Fatalf("beyond MaxWait: %v", err)
		}
	})
}

// TestKeyedEviction checks the bound on keys and the LRU order.
func TestKeyedEviction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k, _ := NewKeyed(KeyedConfig{Config: Config{Rate: 1, Burst: 1}, MaxKeys: 32})
		for i := range 1000 {
			k.Allow("k" + strconv.Itoa(i))
		}
		st := k.Stats()
		if st.Keys > 32 || st.Keys < 16 || st.Evicted != int64(1000-st.Keys) {
			t.Fatalf("stats %+v", st)
		}
		// Three keys of one shard (two slots): touching a keeps it, b goes.
		var same []string
		target := maphash.String(k.seed, "a0") % keyShards
		for i := 0; len(same) < 3; i++ {
			key := "a" + strconv.Itoa(i)
			if maphash.String(k.seed, key)%keyShards == target {
				same = append(same, key)
			}
		}
		a, b, c := same[0], same[1], same[2]
		k.Allow(a)
		k.Allow(b)
		k.Allow(a) // refused, but a is now the most recent
		k.Allow(c) // evicts b
		if k.Allow(a) {
			t.Fatal("a was forgotten: its empty bucket refilled")
		}
		if !k.Allow(b) {
			t.Fatal("b was kept: want it evicted and back with a full bucket")
		}
	})
}

func TestPipelineZeroAllocs(t *testing.T) {
	l := newLimiter(t, Config{Rate: 1e9, Burst: 1 << 30})
	k, _ := NewKeyed(KeyedConfig{Config: Config{Rate: 1e9, Burst: 1 << 30}})
	ctx := WithKey(context.Background(), "client")
	fn := func(context.Context) (int, error) { return 1, nil }
	for name, p := range map[string]*resilience.Pipeline{
		"limiter": resilience.New(resilience.Policies{RateLimit: l}),
		"keyed":   resilience.New(resilience.Policies{RateLimit: k}),
	} {
		if n := testing.AllocsPerRun(1000, func() {
			if _, err := resilience.Do(ctx, p, fn); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: Do allocates %v times per call", name, n)
		}
	}
}
