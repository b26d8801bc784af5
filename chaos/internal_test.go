package chaos

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestSliceBounds(t *testing.T) {
	tests := []struct {
		name  string
		attrs SlicerAttrs
		n     int
	}{
		{"fixed", SlicerAttrs{AverageSize: 10}, 1000},
		{"varied", SlicerAttrs{AverageSize: 16, SizeVariation: 8}, 4096},
		{"small input", SlicerAttrs{AverageSize: 100}, 50},
		{"size 1", SlicerAttrs{AverageSize: 1}, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			b := sliceBounds(rng, &tt.attrs, 0, tt.n, nil)
			if len(b)%2 != 0 || b[0] != 0 || b[len(b)-1] != tt.n {
				t.Fatalf("bounds %v do not cover [0,%d)", b, tt.n)
			}
			limit := tt.attrs.AverageSize + tt.attrs.SizeVariation
			for i := 1; i < len(b); i += 2 {
				size := b[i] - b[i-1]
				if size <= 0 || size > max(limit, 1) {
					t.Errorf("piece %d..%d of size %d, want 1..%d", b[i-1], b[i], size, limit)
				}
				if i+1 < len(b) && b[i+1] != b[i] {
					t.Errorf("gap between pieces at %d", b[i])
				}
			}
		})
	}
}

func TestFlipBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	orig := bytes.Repeat([]byte{0x55}, 100)
	for _, n := range []int{0, 1, 7, 100, 500} {
		b := bytes.Clone(orig)
		got := flipBytes(rng, b, n)
		diff := 0
		for i := range b {
			if b[i] != orig[i] {
				diff++
			}
		}
		want := min(n, len(b))
		if got != want || diff != want {
			t.Errorf("flipBytes(n=%d) = %d, %d bytes differ; want %d", n, got, diff, want)
		}
	}
}
