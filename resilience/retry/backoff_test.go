package retry_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/resilience/retry"
)

// delays returns the first n backoff delays a policy with b produces.
func delays(t *testing.T, b retry.Backoff, n int, seed uint64) []time.Duration {
	t.Helper()
	p := mustNew(t, retry.Config{MaxAttempts: n + 1, Backoff: b, Rand: rand.New(rand.NewPCG(seed, seed))})
	st := p.Begin(t.Context())
	defer func() { p.End(st) }()
	out := make([]time.Duration, 0, n)
	for range n {
		st.Attempts++
		var d time.Duration
		var ok bool
		st, d, ok, _ = p.Retry(t.Context(), st, errBoom)
		if !ok {
			t.Fatalf("retry %d refused", st.Attempts)
		}
		out = append(out, d)
	}
	return out
}

func TestBackoffExact(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		b    retry.Backoff
		want []time.Duration
	}{
		{"constant", retry.Backoff{Kind: retry.Constant, Base: 50 * ms}, []time.Duration{50 * ms, 50 * ms, 50 * ms}},
		{"exponential doubles then caps", retry.Backoff{Kind: retry.Exponential, Base: 10 * ms, Max: 50 * ms},
			[]time.Duration{10 * ms, 20 * ms, 40 * ms, 50 * ms, 50 * ms}},
		{"exponential x3", retry.Backoff{Kind: retry.Exponential, Base: 10 * ms, Multiplier: 3, Max: time.Second},
			[]time.Duration{10 * ms, 30 * ms, 90 * ms, 270 * ms, 810 * ms, time.Second}},
		{"defaults", retry.Backoff{Kind: retry.Exponential},
			[]time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 6400 * ms, 10 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := delays(t, tt.b, len(tt.want), 1)
			for i := range tt.want {
				if got[i] != tt.want[i] {
					t.Errorf("delay %d = %v, want %v (all: %v)", i+1, got[i], tt.want[i], got)
				}
			}
		})
	}
}

// TestBackoffBounds checks every jittered formula against its bounds over
// many seeds, and that the jitter actually spreads the delays.
func TestBackoffBounds(t *testing.T) {
	ms := time.Millisecond
	base, maxD := 10*ms, 400*ms
	tests := []struct {
		name   string
		b      retry.Backoff
		bounds func(n int, prev time.Duration) (lo, hi time.Duration)
	}{
		{"full jitter", retry.Backoff{Kind: retry.FullJitter, Base: base, Max: maxD},
			func(n int, _ time.Duration) (time.Duration, time.Duration) {
				return 0, min(maxD, base<<(n-1))
			}},
		{"decorrelated jitter", retry.Backoff{Kind: retry.DecorrelatedJitter, Base: base, Max: maxD},
			func(_ int, prev time.Duration) (time.Duration, time.Duration) {
				return base, min(maxD, max(prev, base)*3)
			}},
		{"exponential ±20%", retry.Backoff{Kind: retry.Exponential, Base: base, Max: maxD, Jitter: 0.2},
			func(n int, _ time.Duration) (time.Duration, time.Duration) {
				d := min(maxD, base<<(n-1))
				return d - d/5, d + d/5
			}},
		{"constant ±50%", retry.Backoff{Kind: retry.Constant, Base: base, Jitter: 0.5},
			func(int, time.Duration) (time.Duration, time.Duration) { return base / 2, base * 3 / 2 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			distinct := map[time.Duration]bool{}
			for seed := range uint64(200) {
				var prev time.Duration
				for i, d := range delays(t, tt.b, 8, seed) {
					lo, hi := tt.bounds(i+1, prev)
					if d < lo || d > hi {
						t.Fatalf("seed %d: delay %d = %v, want in [%v, %v]", seed, i+1, d, lo, hi)
					}
					distinct[d] = true
					prev = d
				}
			}
			if len(distinct) < 100 {
				t.Errorf("only %d distinct delays over 1600 draws: jitter is not spreading", len(distinct))
			}
		})
	}
}

func TestBackoffKindString(t *testing.T) {
	for k, want := range map[retry.BackoffKind]string{
		retry.FullJitter: "full_jitter", retry.Exponential: "exponential", retry.Constant: "constant",
		retry.DecorrelatedJitter: "decorrelated_jitter", 42: "backoff(42)",
	} {
		if got := k.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", k, got, want)
		}
	}
}
