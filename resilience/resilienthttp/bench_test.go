package resilienthttp

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
	"github.com/bulwark-go/bulwark/resilience/limit"
	"github.com/bulwark-go/bulwark/resilience/retry"
)

// benchGuard is the cheapest possible guard: an atomic counter.
type benchGuard struct{ inflight atomic.Int64 }

func (g *benchGuard) Admit(context.Context) (resilience.Permit, error) {
	g.inflight.Add(1)
	return resilience.NewPermit(g, 0), nil
}
func (g *benchGuard) Release(uint64, resilience.Outcome) { g.inflight.Add(-1) }
func (g *benchGuard) Execute(ctx context.Context, next resilience.Next) (any, error) {
	p, _ := g.Admit(ctx)
	v, err := next(ctx)
	p.Release(resilience.Outcome{Err: err})
	return v, err
}

// cannedRT answers every request with a copy of one response (the copy is
// one allocation of the fake, not of the transport: the transport may
// replace a response's Body, so responses cannot be shared).
type cannedRT struct{ resp http.Response }

func (c *cannedRT) RoundTrip(req *http.Request) (*http.Response, error) {
	r := new(http.Response)
	*r = c.resp
	r.Request = req
	return r, nil
}

func BenchmarkTransport(b *testing.B) {
	lim, err := limit.New(limit.Config{})
	if err != nil {
		b.Fatal(err)
	}
	rp, err := retry.New(retry.Config{})
	if err != nil {
		b.Fatal(err)
	}
	pipelines := []struct {
		name string
		p    *resilience.Pipeline
	}{
		{"none", nil},
		{"two guards", resilience.New(resilience.Policies{Breaker: &benchGuard{}, Bulkhead: &benchGuard{}})},
		{"retry+guards+timeout", resilience.New(resilience.Policies{Retry: &testRetrier{max: 3},
			Breaker: &benchGuard{}, Bulkhead: &benchGuard{}, Timeout: resilience.Timeout{Duration: time.Minute}})},
		{"retry.Policy+limit.Limiter", resilience.New(resilience.Policies{Retry: rp, Limit: lim})},
	}
	rt := &cannedRT{resp: http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody}}
	for _, pl := range pipelines {
		tr := mustTransport(b, Config{Base: rt, Pipeline: pl.p})
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://backend/", nil)
		b.Run(pl.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				resp, err := tr.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
		b.Run(pl.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := tr.RoundTrip(req)
					if err != nil {
						b.Error(err)
						return
					}
					resp.Body.Close()
				}
			})
		})
	}
}

// nopWriter is a reusable ResponseWriter that discards everything.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header               { return w.h }
func (w *nopWriter) Write(b []byte) (int, error)       { return len(b), nil }
func (w *nopWriter) WriteHeader(int)                   {}
func (w *nopWriter) WriteString(s string) (int, error) { return len(s), nil }

func BenchmarkShed(b *testing.B) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "ok")
	})
	lim, err := limit.New(limit.Config{})
	if err != nil {
		b.Fatal(err)
	}
	rejecting := &testGuard{}
	rejecting.reject.Store(true)
	cases := []struct {
		name string
		g    Admitter
	}{
		{"admit/benchGuard", &benchGuard{}},
		{"admit/limit.Limiter", lim},
		{"shed", rejecting},
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "/", nil)
	for _, c := range cases {
		s := Shed(c.g, ok)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			w := &nopWriter{h: http.Header{}}
			for b.Loop() {
				s.ServeHTTP(w, req)
			}
		})
	}
}
