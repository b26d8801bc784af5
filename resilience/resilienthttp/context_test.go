package resilienthttp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
	"github.com/bulwark-go/bulwark/resilience/limit"
	"github.com/bulwark-go/bulwark/resilience/retry"
)

// fakeRT is an in-memory RoundTripper: respond makes the n-th response
// (n from 1). It records the requests it was sent.
type fakeRT struct {
	respond func(req *http.Request, n int) (*http.Response, error)
	mu      sync.Mutex
	reqs    []*http.Request
}

func (f *fakeRT) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	n := len(f.reqs)
	f.mu.Unlock()
	return f.respond(req, n)
}

func (f *fakeRT) Requests() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.reqs...)
}

// ctxBody behaves like net/http's response bodies: reads fail once the
// request's context is done. Before that, it blocks until open is closed
// (when set), then serves data.
type ctxBody struct {
	ctx    context.Context
	open   chan struct{}
	data   strings.Reader
	closed atomic.Bool
}

func newCtxBody(req *http.Request, data string, open chan struct{}) *ctxBody {
	b := &ctxBody{ctx: req.Context(), open: open}
	b.data.Reset(data)
	return b
}

func (b *ctxBody) Read(p []byte) (int, error) {
	if b.open != nil {
		select {
		case <-b.open:
		case <-b.ctx.Done():
		}
	}
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	return b.data.Read(p)
}

func (b *ctxBody) Close() error { b.closed.Store(true); return nil }

func response(req *http.Request, code int, body io.ReadCloser) *http.Response {
	return &http.Response{StatusCode: code, Header: http.Header{}, Body: body, Request: req}
}

// The timeout bounds the attempt while it waits for headers.
func TestTransportTimeoutWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := &fakeRT{respond: func(req *http.Request, _ int) (*http.Response, error) {
			<-req.Context().Done()
			return nil, req.Context().Err()
		}}
		g := &testGuard{}
		p := resilience.New(resilience.Policies{Limit: g, Timeout: resilience.Timeout{Duration: time.Second}})
		tr := mustTransport(t, Config{Base: rt, Pipeline: p})
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://backend/", nil)
		start := time.Now()
		_, err := tr.RoundTrip(req)
		if !errors.Is(err, resilience.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want a timeout", err)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("timed out after %v, want 1s", d)
		}
		if o := g.Outcomes(); len(o) != 1 || !o[0].Dropped {
			t.Errorf("outcomes %+v, want one dropped", o)
		}
	})
}

// After RoundTrip returns, the attempt's context lives until the body is
// closed or read to the end, and still carries the attempt's deadline.
func TestTransportAttemptContextLifetime(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		use     func(t *testing.T, resp *http.Response, open chan struct{})
		wantErr error // of the attempt's context at the end
	}{
		{"closed unread", time.Minute, func(t *testing.T, resp *http.Response, _ chan struct{}) {
			resp.Body.Close()
		}, context.Canceled},
		{"read to EOF", time.Minute, func(t *testing.T, resp *http.Response, open chan struct{}) {
			close(open)
			if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "payload" {
				t.Errorf("read %q, %v", b, err)
			}
		}, context.Canceled},
		{"slow body hits the deadline", time.Second, func(t *testing.T, resp *http.Response, _ chan struct{}) {
			defer resp.Body.Close()
			if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("read err = %v, want deadline exceeded", err)
			}
		}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				open := make(chan struct{})
				var body *ctxBody
				rt := &fakeRT{respond: func(req *http.Request, _ int) (*http.Response, error) {
					body = newCtxBody(req, "payload", open)
					return response(req, http.StatusOK, body), nil
				}}
				p := resilience.New(resilience.Policies{Timeout: resilience.Timeout{Duration: tt.timeout}})
				tr := mustTransport(t, Config{Base: rt, Pipeline: p})
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://backend/", nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				actx := rt.Requests()[0].Context()
				if actx.Err() != nil {
					t.Fatalf("attempt context done when RoundTrip returned: %v", actx.Err())
				}
				tt.use(t, resp, open)
				synctest.Wait()
				if err := actx.Err(); !errors.Is(err, tt.wantErr) {
					t.Errorf("attempt context err = %v, want %v", err, tt.wantErr)
				}
			})
		})
	}
}

// A hedge-like policy runs two attempts at once and returns the first; the
// loser's response is closed.
func TestTransportClosesLosingResponses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var bodies [2]*ctxBody
		rt := &fakeRT{respond: func(req *http.Request, n int) (*http.Response, error) {
			if n == 2 {
				time.Sleep(time.Second) // the slower one
			}
			bodies[n-1] = newCtxBody(req, "x", nil)
			return response(req, http.StatusOK, bodies[n-1]), nil
		}}
		hedge := resilience.PolicyFunc(func(ctx context.Context, next resilience.Next) (any, error) {
			type result struct {
				v   any
				err error
			}
			ch := make(chan result, 2)
			for range 2 {
				go func() { v, err := next(ctx); ch <- result{v, err} }()
			}
			r := <-ch
			return r.v, r.err
		})
		p := mustCompose(t, hedge, resilience.Timeout{Duration: time.Minute})
		tr := mustTransport(t, Config{Base: rt, Pipeline: p})
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://backend/", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		time.Sleep(2 * time.Second) // the loser arrives after RoundTrip returned
		synctest.Wait()
		if !bodies[1].closed.Load() {
			t.Error("the losing attempt's body was not closed")
		}
		if bodies[0].closed.Load() {
			t.Error("the winner's body was closed")
		}
	})
}

// With resilience/retry: a 503's Retry-After is honoured (the retry waits
// at least that long), and a POST is not retried.
func TestTransportWithRetryPackage(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		wantCalls int
		wantWait  time.Duration
	}{
		{"GET waits Retry-After", http.MethodGet, 2, 5 * time.Second},
		{"POST not retried", http.MethodPost, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rt := &fakeRT{respond: func(req *http.Request, n int) (*http.Response, error) {
					if n == 1 {
						resp := response(req, http.StatusServiceUnavailable, newCtxBody(req, "busy", nil))
						resp.Header.Set("Retry-After", "5")
						return resp, nil
					}
					return response(req, http.StatusOK, newCtxBody(req, "ok", nil)), nil
				}}
				r, err := retry.New(retry.Config{Backoff: retry.Backoff{Kind: retry.Constant, Base: time.Millisecond}})
				if err != nil {
					t.Fatal(err)
				}
				tr := mustTransport(t, Config{Base: rt, Pipeline: resilience.New(resilience.Policies{Retry: r})})
				req, _ := http.NewRequestWithContext(t.Context(), tt.method, "http://backend/", strings.NewReader("body"))
				start := time.Now()
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if got := len(rt.Requests()); got != tt.wantCalls {
					t.Errorf("%d attempts, want %d", got, tt.wantCalls)
				}
				if d := time.Since(start); d != tt.wantWait {
					t.Errorf("took %v, want %v", d, tt.wantWait)
				}
			})
		})
	}
}

// With resilience/limit as the pipeline's limiter at a limit of 1: a second
// call made while the first waits for its headers is rejected, and the slot
// is free again once RoundTrip has returned (the limiter measures the time
// to headers, not the body's).
func TestTransportWithLimitPackage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inside := make(chan struct{})
		proceed := make(chan struct{})
		rt := &fakeRT{respond: func(req *http.Request, n int) (*http.Response, error) {
			if n == 1 {
				close(inside)
				<-proceed
			}
			return response(req, http.StatusOK, newCtxBody(req, "ok", nil)), nil
		}}
		l, err := limit.New(limit.Config{Algorithm: limit.Fixed(1)})
		if err != nil {
			t.Fatal(err)
		}
		tr := mustTransport(t, Config{Base: rt, Pipeline: resilience.New(resilience.Policies{Limit: l})})
		done := make(chan error)
		go func() {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://backend/", nil)
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		<-inside
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://backend/", nil)
		if _, err := tr.RoundTrip(req); !errors.Is(err, limit.ErrLimited) {
			t.Errorf("second call: err = %v, want limit.ErrLimited", err)
		}
		close(proceed)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if s := l.Snapshot(); s.Inflight != 0 {
			t.Errorf("%d calls still in flight", s.Inflight)
		}
	})
}
