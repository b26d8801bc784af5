package resilienthttp

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark/resilience"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testGuard is a resilience.Guard that admits unless reject is set and
// records the outcomes it is released with.
type testGuard struct {
	reject   atomic.Bool
	admitted atomic.Int64
	mu       sync.Mutex
	outcomes []resilience.Outcome
	released chan struct{} // if set, receives a value per release
}

type rejectedError struct{}

func (rejectedError) Error() string { return "test guard: rejected" }
func (rejectedError) Unwrap() error { return resilience.ErrRejected }

func (g *testGuard) Admit(context.Context) (resilience.Permit, error) {
	if g.reject.Load() {
		return resilience.Permit{}, rejectedError{}
	}
	g.admitted.Add(1)
	return resilience.NewPermit(g, 0), nil
}

func (g *testGuard) Release(_ uint64, o resilience.Outcome) {
	g.mu.Lock()
	g.outcomes = append(g.outcomes, o)
	g.mu.Unlock()
	if g.released != nil {
		g.released <- struct{}{}
	}
}

func (g *testGuard) ObservesLatency() bool { return true }

func (g *testGuard) Execute(ctx context.Context, next resilience.Next) (any, error) {
	p, err := g.Admit(ctx)
	if err != nil {
		return nil, err
	}
	v, err := next(ctx)
	p.Release(resilience.Outcome{Err: err})
	return v, err
}

func (g *testGuard) Outcomes() []resilience.Outcome {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]resilience.Outcome(nil), g.outcomes...)
}

// testRetrier retries every error up to max attempts without waiting,
// except rejections and errors whose RetryAfter is negative (the contract
// resilience/retry implements); it records the RetryAfter delays it saw.
type testRetrier struct {
	max   int
	mu    sync.Mutex
	after []time.Duration
}

func (r *testRetrier) Begin(context.Context) resilience.RetryState { return resilience.RetryState{} }
func (r *testRetrier) HasResultPredicate() bool                    { return false }
func (r *testRetrier) RetryResult(any) bool                        { return false }
func (r *testRetrier) End(resilience.RetryState)                   {}

func (r *testRetrier) Retry(ctx context.Context, st resilience.RetryState, err error) (resilience.RetryState, time.Duration, bool, error) {
	if errors.Is(err, resilience.ErrRejected) || st.Attempts >= r.max || ctx.Err() != nil {
		return st, 0, false, err
	}
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		if ra.RetryAfter() < 0 {
			return st, 0, false, err
		}
		r.mu.Lock()
		r.after = append(r.after, ra.RetryAfter())
		r.mu.Unlock()
	}
	return st, 0, true, nil
}

func (r *testRetrier) Execute(ctx context.Context, next resilience.Next) (any, error) {
	st := r.Begin(ctx)
	for {
		st.Attempts++
		v, err := next(ctx)
		if err == nil {
			return v, nil
		}
		var again bool
		if st, _, again, err = r.Retry(ctx, st, err); !again {
			return v, err
		}
	}
}

// newServer starts an httptest server on loopback and a client transport
// of its own; both are closed when the test ends.
func newServer(t *testing.T, h http.Handler) (*httptest.Server, *http.Transport) {
	t.Helper()
	return newServerWith(t, h, nil)
}

// newServerWith is newServer with a hook to configure the server first.
func newServerWith(t *testing.T, h http.Handler, configure func(*http.Server)) (*httptest.Server, *http.Transport) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	if configure != nil {
		configure(srv.Config)
	}
	srv.Start()
	base := &http.Transport{}
	t.Cleanup(func() {
		base.CloseIdleConnections()
		srv.Close()
	})
	return srv, base
}

func mustTransport(t testing.TB, cfg Config) *Transport {
	t.Helper()
	tr, err := NewTransport(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func mustCompose(t testing.TB, ps ...resilience.Policy) *resilience.Pipeline {
	t.Helper()
	p, err := resilience.Compose(ps...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
