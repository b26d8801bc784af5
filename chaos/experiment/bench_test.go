package experiment

import (
	"testing"
	"time"
)

// BenchmarkJudge judges a 60 s run at 1000 requests/s (60,000 samples)
// over sliding 1 s windows: the cost of a verdict.
func BenchmarkJudge(b *testing.B) {
	ratio := 0.99
	h := &Hypothesis{SuccessRatio: &ratio, P99: 100 * time.Millisecond, Window: time.Second, MinRequests: 1}
	ss := make([]sample, 60_000)
	for i := range ss {
		end := time.Duration(i) * time.Millisecond
		ss[i] = sample{start: end - time.Duration(i%50)*time.Millisecond, end: end, ok: i%97 != 0}
	}
	b.ReportAllocs()
	for b.Loop() {
		judge(h, ss, "during", 0, 60*time.Second, nil)
	}
}
