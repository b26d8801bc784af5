package hedge

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestSelectKth checks the quickselect against sorting, on random inputs
// with many duplicates and on sorted and reversed ones.
func TestSelectKth(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for trial := range 500 {
		n := 1 + rnd.IntN(300)
		s := make([]time.Duration, n)
		for i := range s {
			switch trial % 3 {
			case 0:
				s[i] = time.Duration(rnd.IntN(10)) // duplicates
			case 1:
				s[i] = time.Duration(i) // sorted
			default:
				s[i] = time.Duration(n - i) // reversed
			}
		}
		sorted := slices.Clone(s)
		slices.Sort(sorted)
		k := rnd.IntN(n)
		if got := selectKth(slices.Clone(s), k); got != sorted[k] {
			t.Fatalf("trial %d: selectKth(k=%d) = %v, want %v", trial, k, got, sorted[k])
		}
	}
}

func BenchmarkLatencyRecord(b *testing.B) {
	l := NewLatencyQuantile(DefaultWindow, DefaultMinSamples, DefaultQuantile)
	rnd := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	for b.Loop() {
		l.Record(time.Duration(rnd.IntN(1000)) * time.Microsecond)
	}
}
