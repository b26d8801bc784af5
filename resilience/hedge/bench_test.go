package hedge_test

import (
	"context"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/resilience/hedge"
)

// BenchmarkHedgePrimaryWins measures the common case: the first attempt
// answers before the delay, so no hedge is sent. The cost is the
// goroutine, contexts, channel and timer every hedged call pays.
func BenchmarkHedgePrimaryWins(b *testing.B) {
	p, err := hedge.New(hedge.Config{Delay: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	next := func(context.Context) (any, error) { return nil, nil }
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Execute(ctx, next); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := p.Execute(ctx, next); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
