package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestIndexUpper(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 123456789, 1 << 40} {
		i := index(v)
		if i < prev {
			t.Fatalf("index(%d) = %d < %d: not monotonic", v, i, prev)
		}
		prev = i
		if u := upper(i); u < v || float64(u-v) > float64(v)/128+1 {
			t.Fatalf("upper(index(%d)) = %d: outside 1/128", v, u)
		}
		if i > 0 && upper(i-1) >= v {
			t.Fatalf("upper(index(%d)-1) = %d ≥ %d", v, upper(i-1), v)
		}
	}
}

func TestQuantileAgainstSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h hist
	var all []time.Duration
	for range 100000 {
		d := time.Duration(r.ExpFloat64() * float64(2*time.Millisecond))
		h.record(d)
		all = append(all, d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := all[int(q*float64(len(all)))-1]
		got := h.quantile(q)
		if got < exact-time.Microsecond || float64(got-exact) > float64(exact)/100 {
			t.Errorf("q%.3f: %v, exact %v", q, got, exact)
		}
	}
	if h.quantile(1) != all[len(all)-1] {
		t.Errorf("max %v, want %v", h.quantile(1), all[len(all)-1])
	}
}
