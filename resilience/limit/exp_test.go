package limit

import (
	"context"
	"errors"
	"testing"

	"github.com/bulwark-go/bulwark/resilience"
)

func BenchmarkExpNoSampleParallel(b *testing.B) {
	l := benchLimiter(b)
	ctx := context.Background()
	o := resilience.Outcome{Err: errors.New("x")}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p, _ := l.Admit(ctx)
			p.Release(o)
		}
	})
}
