package limit

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

const ms = time.Millisecond

// step is one window fed to an algorithm and the limit expected after it.
// The expected values are worked out by hand from the Java formulas.
type step struct {
	s    Sample
	want int
}

func runSteps(t *testing.T, a Algorithm, steps []step) {
	t.Helper()
	for i, st := range steps {
		if got := a.Update(st.s); got != st.want {
			t.Fatalf("step %d (%+v): limit = %d, want %d", i, st.s, got, st.want)
		}
		if a.Limit() != st.want {
			t.Fatalf("step %d: Limit() = %d, want %d", i, a.Limit(), st.want)
		}
	}
}

func TestAIMD(t *testing.T) {
	tests := []struct {
		name  string
		cfg   AIMDConfig
		steps []step
	}{
		{"grows when in use", AIMDConfig{}, []step{
			{Sample{RTT: 10 * ms, Inflight: 10}, 21}, // 10·2 ≥ 20
			{Sample{RTT: 10 * ms, Inflight: 11}, 22},
		}},
		{"holds when app-limited", AIMDConfig{}, []step{
			{Sample{RTT: 10 * ms, Inflight: 9}, 20}, // 9·2 < 20
		}},
		{"backs off on drop", AIMDConfig{InitialLimit: 100}, []step{
			{Sample{RTT: 10 * ms, Inflight: 100, Dropped: true}, 90}, // ⌊100·0.9⌋
			{Sample{RTT: 10 * ms, Inflight: 100, Dropped: true}, 81},
			{Sample{RTT: 10 * ms, Inflight: 100, Dropped: true}, 72}, // ⌊72.9⌋
		}},
		{"RTT over timeout is a drop", AIMDConfig{InitialLimit: 100}, []step{
			{Sample{RTT: 6 * time.Second, Inflight: 100}, 90},
		}},
		{"custom timeout and ratio", AIMDConfig{InitialLimit: 50, MinLimit: 1, BackoffRatio: 0.5, Timeout: 20 * ms}, []step{
			{Sample{RTT: 21 * ms, Inflight: 50}, 25},
			{Sample{RTT: 20 * ms, Inflight: 13}, 26}, // 20 ms is not over the timeout
		}},
		{"clamped to min", AIMDConfig{InitialLimit: 21}, []step{
			{Sample{RTT: 10 * ms, Dropped: true}, 20}, // ⌊18.9⌋ → min 20
		}},
		{"clamped to max", AIMDConfig{InitialLimit: 200}, []step{
			{Sample{RTT: 10 * ms, Inflight: 150}, 200},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAIMD(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			runSteps(t, a, tt.steps)
		})
	}
}

func newTestVegas(t *testing.T, cfg VegasConfig) *Vegas {
	t.Helper()
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(1, 2))
	}
	v, err := NewVegas(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVegas(t *testing.T) {
	tests := []struct {
		name  string
		cfg   VegasConfig
		steps []step
	}{
		{"first sample sets rtt_noload", VegasConfig{}, []step{
			{Sample{RTT: 10 * ms, Inflight: 20}, 20},
		}},
		{"no queue: grow by beta", VegasConfig{}, []step{
			{Sample{RTT: 10 * ms, Inflight: 20}, 20},
			{Sample{RTT: 10 * ms, Inflight: 10}, 26}, // queue 0 ≤ threshold 1: +6·1
			{Sample{RTT: 10 * ms, Inflight: 13}, 32},
		}},
		{"app-limited holds", VegasConfig{}, []step{
			{Sample{RTT: 10 * ms, Inflight: 20}, 20},
			{Sample{RTT: 10 * ms, Inflight: 9}, 20}, // 18 < 20
		}},
		{"long queue shrinks, sweet spot holds, short queue grows", VegasConfig{InitialLimit: 32}, []step{
			{Sample{RTT: 10 * ms, Inflight: 32}, 32},
			{Sample{RTT: 20 * ms, Inflight: 32}, 31},                  // queue ⌈32·0.5⌉ = 16 > beta 6: −1
			{Sample{RTT: 11 * ms, Inflight: 31}, 31},                  // queue ⌈31·(1−10/11)⌉ = 3: alpha ≤ 3 ≤ beta
			{Sample{RTT: 10500 * time.Microsecond, Inflight: 31}, 32}, // queue ⌈1.48⌉ = 2 < alpha 3: +1
			{Sample{RTT: 10 * ms, Inflight: 0, Dropped: true}, 31},    // a drop shrinks even when app-limited
			{Sample{RTT: 5 * ms, Inflight: 31}, 31},                   // new minimum: only rtt_noload moves
			{Sample{RTT: 10 * ms, Inflight: 31}, 30},                  // queue ⌈31·0.5⌉ = 16 > 6: −1
		}},
		{"thresholds scale with log10", VegasConfig{InitialLimit: 150}, []step{
			{Sample{RTT: 10 * ms, Inflight: 150}, 150},
			{Sample{RTT: 10 * ms, Inflight: 150}, 162}, // log10(150) = 2: +6·2
			{Sample{RTT: 12 * ms, Inflight: 162}, 160}, // queue ⌈162/6⌉ = 27 > beta 12: −2
		}},
		{"smoothing", VegasConfig{Smoothing: 0.5}, []step{
			{Sample{RTT: 10 * ms, Inflight: 20}, 20},
			{Sample{RTT: 10 * ms, Inflight: 20}, 23}, // 0.5·20 + 0.5·26
		}},
		{"clamped to max", VegasConfig{InitialLimit: 998}, []step{
			{Sample{RTT: 10 * ms, Inflight: 998}, 998},
			{Sample{RTT: 10 * ms, Inflight: 998}, 1000}, // 998 + 12 → 1000
		}},
		{"clamped to 1", VegasConfig{InitialLimit: 1}, []step{
			{Sample{RTT: 10 * ms, Inflight: 1}, 1},
			{Sample{RTT: 10 * ms, Dropped: true}, 1}, // 1 − 1 → 1
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runSteps(t, newTestVegas(t, tt.cfg), tt.steps)
		})
	}
}

// TestVegasProbe checks that rtt_noload is reset to the current RTT after
// ProbeMultiplier·limit·U(0.5, 1) windows, so a risen baseline is learnt.
func TestVegasProbe(t *testing.T) {
	v := newTestVegas(t, VegasConfig{ProbeMultiplier: 1})
	v.Update(Sample{RTT: 10 * ms, Inflight: 1})
	if v.rttNoLoad != 10*ms {
		t.Fatalf("rtt_noload = %v, want 10ms", v.rttNoLoad)
	}
	// The probe comes within 1·20·U(0.5,1) ≤ 20 windows and not before 10.
	for i := 2; i <= 21; i++ {
		v.Update(Sample{RTT: 30 * ms, Inflight: 1}) // app-limited: the limit holds
		if v.rttNoLoad == 30*ms {
			if i < 10 {
				t.Fatalf("probed after %d windows, want ≥ 10", i)
			}
			if v.Limit() != 20 {
				t.Fatalf("limit moved during probe: %d", v.Limit())
			}
			return
		}
	}
	t.Fatal("no probe within 21 windows")
}

func TestGradient2(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Gradient2Config
		steps []step
	}{
		{"stable RTT grows by queueSize·smoothing", Gradient2Config{}, []step{
			{Sample{RTT: 10 * ms, Inflight: 20}, 20}, // 0.8·20 + 0.2·24 = 20.8
			{Sample{RTT: 10 * ms, Inflight: 20}, 21}, // 0.8·20.8 + 0.2·24.8 = 21.6
		}},
		{"rttTolerance absorbs a 1.33× rise, not a 1.7× one", Gradient2Config{InitialLimit: 100}, []step{
			{Sample{RTT: 10 * ms, Inflight: 100}, 100}, // 100.8
			{Sample{RTT: 20 * ms, Inflight: 100}, 101}, // long 15: 1.5·15/20 > 1 → 101.6
			{Sample{RTT: 40 * ms, Inflight: 100}, 99},  // long 23.3: g = 0.875 → 0.8·101.6 + 0.2·(88.9+4) = 99.86
		}},
		{"app-limited holds", Gradient2Config{}, []step{
			{Sample{RTT: 10 * ms, Inflight: 9}, 20}, // 9 < 20/2
		}},
		{"drop flag is ignored", Gradient2Config{}, []step{
			{Sample{RTT: 10 * ms, Inflight: 20, Dropped: true}, 20},
			{Sample{RTT: 10 * ms, Inflight: 20, Dropped: true}, 21},
		}},
		{"gradient floor 0.5 and min limit", Gradient2Config{}, []step{
			{Sample{RTT: 10 * ms, Inflight: 20}, 20},
			{Sample{RTT: 1000 * ms, Inflight: 20}, 20}, // 0.8·20.8 + 0.2·(10.4+4) = 19.52 → min 20
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := NewGradient2(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			runSteps(t, g, tt.steps)
		})
	}
}

// TestGradient2LongRTT checks the warm-up average, the EWMA factor 2/601
// and the Java 0.95 decay (not the Go port's 0.9).
func TestGradient2LongRTT(t *testing.T) {
	g, err := NewGradient2(Gradient2Config{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		g.Update(Sample{RTT: time.Duration(90+2*i) * ms, Inflight: 20}) // 90, 92, …, 108
	}
	if got, want := g.LongRTT(), 99*ms; got != want {
		t.Fatalf("warm-up average = %v, want %v", got, want)
	}
	g.Update(Sample{RTT: 99 * ms, Inflight: 20})
	if got, want := g.LongRTT(), 99*ms; got != want {
		t.Fatalf("EWMA of equal samples = %v, want %v", got, want)
	}
	// long = 99·(1−2/601) + 40·2/601 = 98.8037 ms; 98.8/40 > 2, so ·0.95.
	g.Update(Sample{RTT: 40 * ms, Inflight: 20})
	want := (99*(1-2.0/601) + 40*2.0/601) * 0.95
	if got := float64(g.LongRTT()) / float64(ms); math.Abs(got-want) > 1e-6 {
		t.Fatalf("long RTT after decay = %v ms, want %v ms", got, want)
	}
}

func TestAlgorithmConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"aimd ratio", func() error { _, err := NewAIMD(AIMDConfig{BackoffRatio: 1}); return err }()},
		{"aimd min>max", func() error { _, err := NewAIMD(AIMDConfig{MinLimit: 30, MaxLimit: 10}); return err }()},
		{"vegas smoothing", func() error { _, err := NewVegas(VegasConfig{Smoothing: 2}); return err }()},
		{"gradient2 tolerance", func() error { _, err := NewGradient2(Gradient2Config{RTTTolerance: 0.5}); return err }()},
		{"gradient2 initial", func() error { _, err := NewGradient2(Gradient2Config{InitialLimit: 500, MaxLimit: 100}); return err }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatal("invalid config accepted")
			}
		})
	}
}

func TestLog10Root(t *testing.T) {
	for _, c := range []struct{ n, want int }{{0, 1}, {1, 1}, {9, 1}, {10, 1}, {99, 1}, {100, 2}, {999, 2}, {1000, 3}, {20000, 4}} {
		if got := log10Root(c.n); got != c.want {
			t.Errorf("log10Root(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

func TestZeroRTTIgnored(t *testing.T) {
	v := newTestVegas(t, VegasConfig{})
	g := must(NewGradient2(Gradient2Config{}))
	for _, a := range []Algorithm{v, g} {
		a.Update(Sample{RTT: 10 * ms, Inflight: 20})
		before := a.Limit()
		if got := a.Update(Sample{Inflight: 20}); got != before {
			t.Errorf("%T: zero RTT moved the limit %d → %d", a, before, got)
		}
	}
}
