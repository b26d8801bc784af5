package experiment

import (
	"io"
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

// BenchmarkWriteHTML renders the report of a 60 s run with two fault
// windows: the cost of the HTML report.
func BenchmarkWriteHTML(b *testing.B) {
	res := &Result{Title: "bench", Target: "http://127.0.0.1:8080", Duration: 60, Verdict: VerdictPassed,
		Hypothesis: HypothesisResult{SuccessRatio: 0.99, P99Ms: 100, WindowS: 1, MinRequests: 1},
		Faults:     []FaultWindow{{10, 20, "kill"}, {30, 40, "slow"}}}
	for i := range 60 {
		res.Timeline = append(res.Timeline, Bucket{T: float64(i), Requests: 1000, OK: 990, SuccessRatio: 0.99, P50Ms: 3, P99Ms: 40})
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteHTML(io.Discard, res); err != nil {
			b.Fatal(err)
		}
	}
}
