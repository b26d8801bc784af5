package resilienthttp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
)

// flaky answers failures with 503 (and a small body) to the first fail
// requests, then 200 with "ok", and records every request body it saw.
type flaky struct {
	fail   int32
	calls  atomic.Int32
	mu     sync.Mutex
	bodies []string
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.bodies = append(f.bodies, string(b))
	f.mu.Unlock()
	if f.calls.Add(1) <= f.fail {
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "busy")
		return
	}
	io.WriteString(w, "ok")
}

func (f *flaky) Bodies() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.bodies...)
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

func TestTransportRetriesIdempotentWithReplayedBody(t *testing.T) {
	const payload = "the same payload every time"
	tests := []struct {
		name    string
		method  string
		body    func() io.Reader // nil: no body
		wantLen int64
	}{
		{"GET without body", http.MethodGet, nil, 0},
		{"PUT with GetBody", http.MethodPut, func() io.Reader { return strings.NewReader(payload) }, int64(len(payload))},
		{"PUT buffered", http.MethodPut, func() io.Reader { return io.NopCloser(strings.NewReader(payload)) }, int64(len(payload))},
		{"PUT empty, unknown length", http.MethodPut, func() io.Reader { return bytesBody("") }, 0},
		{"DELETE buffered", http.MethodDelete, func() io.Reader { return io.NopCloser(strings.NewReader(payload)) }, int64(len(payload))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &flaky{fail: 2}
			srv, base := newServer(t, f)
			r := &testRetrier{max: 3}
			tr := mustTransport(t, Config{Base: base, Pipeline: mustCompose(t, r)})
			var body io.Reader
			if tt.body != nil {
				body = tt.body()
			}
			req, err := http.NewRequestWithContext(t.Context(), tt.method, srv.URL, body)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK || readAll(t, resp) != "ok" {
				t.Fatalf("got %d, want 200 ok", resp.StatusCode)
			}
			got := f.Bodies()
			if len(got) != 3 {
				t.Fatalf("server saw %d requests, want 3", len(got))
			}
			want := ""
			if tt.wantLen > 0 {
				want = payload
			}
			for i, b := range got {
				if b != want {
					t.Errorf("attempt %d sent body %q, want %q", i+1, b, want)
				}
			}
			if len(r.after) != 2 || r.after[0] != 2*time.Second {
				t.Errorf("retrier saw RetryAfter %v, want [2s 2s]", r.after)
			}
		})
	}
}

func TestTransportIdempotency(t *testing.T) {
	r := &testRetrier{max: 3}
	g := &testGuard{}
	all, once := Pipelines(resilience.Policies{Retry: r, Breaker: g})
	tests := []struct {
		name      string
		once      *resilience.Pipeline // Config.NonIdempotent
		method    string
		header    string
		ctx       func(context.Context) context.Context
		wantCalls int32
	}{
		{"POST, default NonIdempotent", nil, http.MethodPost, "", nil, 1},
		{"POST, NonIdempotent from Pipelines", once, http.MethodPost, "", nil, 1},
		{"PATCH, default NonIdempotent", nil, http.MethodPatch, "", nil, 1},
		{"POST with Idempotency-Key", nil, http.MethodPost, "Idempotency-Key", nil, 3},
		{"POST with X-Idempotency-Key", once, http.MethodPost, "X-Idempotency-Key", nil, 3},
		{"POST with WithIdempotent", once, http.MethodPost, "", WithIdempotent, 3},
		{"PUT", once, http.MethodPut, "", nil, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &flaky{fail: 10}
			srv, base := newServer(t, f)
			tr := mustTransport(t, Config{Base: base, Pipeline: all, NonIdempotent: tt.once})
			ctx := t.Context()
			if tt.ctx != nil {
				ctx = tt.ctx(ctx)
			}
			req, _ := http.NewRequestWithContext(ctx, tt.method, srv.URL, strings.NewReader("pay once"))
			if tt.header != "" {
				req.Header.Set(tt.header, "key-1")
			}
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatalf("RoundTrip: %v; want the backend's 503 as a response", err)
			}
			if resp.StatusCode != http.StatusServiceUnavailable || readAll(t, resp) != "busy" {
				t.Errorf("got status %d, want 503 with its body", resp.StatusCode)
			}
			if got := f.calls.Load(); got != tt.wantCalls {
				t.Errorf("server saw %d requests, want %d", got, tt.wantCalls)
			}
		})
	}
}

// A request that must not be resent, under a pipeline whose retrier
// ignores "do not retry", is still sent only once.
func TestTransportAtMostOnce(t *testing.T) {
	f := &flaky{fail: 10}
	srv, base := newServer(t, f)
	stubborn := resilience.PolicyFunc(func(ctx context.Context, next resilience.Next) (any, error) {
		var v any
		var err error
		for range 3 {
			if v, err = next(ctx); err == nil {
				break
			}
		}
		return v, err
	})
	tr := mustTransport(t, Config{Base: base, Pipeline: mustCompose(t, stubborn)})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, strings.NewReader("x"))
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, ErrNotReplayable) || !errors.Is(err, resilience.ErrRejected) {
		t.Fatalf("err = %v, want ErrNotReplayable wrapping ErrRejected", err)
	}
	if got := f.calls.Load(); got != 1 {
		t.Fatalf("server saw %d requests, want 1", got)
	}
}

// closeRecorder is a request body that records Close.
type closeRecorder struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeRecorder) Close() error { c.closed.Store(true); return nil }

func TestTransportLargeBodyNotRetried(t *testing.T) {
	big := strings.Repeat("x", 100)
	tests := []struct {
		name   string
		length int64 // ContentLength; -1 unknown
	}{
		{"unknown length", -1},
		{"known length", int64(len(big))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &flaky{fail: 10}
			srv, base := newServer(t, f)
			tr := mustTransport(t, Config{Base: base, Pipeline: mustCompose(t, &testRetrier{max: 3}), MaxReplayBody: 16})
			body := &closeRecorder{Reader: strings.NewReader(big)}
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, srv.URL, body)
			req.ContentLength = tt.length
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			if got := f.Bodies(); len(got) != 1 || got[0] != big {
				t.Fatalf("server saw %d requests (%v), want one with the whole body", len(got), got)
			}
			if !body.closed.Load() {
				t.Error("request body not closed")
			}
		})
	}
}

func TestTransportRejection(t *testing.T) {
	f := &flaky{}
	srv, base := newServer(t, f)
	g := &testGuard{}
	g.reject.Store(true)
	tr := mustTransport(t, Config{Base: base, Pipeline: mustCompose(t, g)})
	body := &closeRecorder{Reader: strings.NewReader("x")}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, srv.URL, body)
	resp, err := tr.RoundTrip(req)
	if !errors.Is(err, resilience.ErrRejected) || resp != nil {
		t.Fatalf("got %v, %v; want a rejection", resp, err)
	}
	if f.calls.Load() != 0 {
		t.Error("a rejected request reached the server")
	}
	if !body.closed.Load() {
		t.Error("request body of a rejected request not closed")
	}
}

func TestTransportTransportError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	r := &testRetrier{max: 2}
	tr := mustTransport(t, Config{Base: base, Pipeline: mustCompose(t, r)})
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		req, _ := http.NewRequestWithContext(t.Context(), method, "http://"+addr, nil)
		resp, err := tr.RoundTrip(req)
		if err == nil || resp != nil {
			t.Fatalf("%s: got %v, %v; want a connection error", method, resp, err)
		}
		var nr *noRetryError
		if errors.As(err, &nr) {
			t.Errorf("%s: the do-not-retry marker leaked to the caller: %v", method, err)
		}
	}
}

// The body stays readable after RoundTrip returns, with a timeout in the
// pipeline whose stage cancels its context when it returns
// (failsafe-go #65, #123). The server sends headers, then waits until the
// pipeline has returned before it sends the body.
func TestTransportBodyReadableAfterTimeoutStage(t *testing.T) {
	release := make(chan struct{})
	srv, base := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "late body")
	}))
	g := &testGuard{}
	p := resilience.New(resilience.Policies{Retry: &testRetrier{max: 2}, Limit: g, Timeout: resilience.Timeout{Duration: time.Minute}})
	tr := mustTransport(t, Config{Base: base, Pipeline: p})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	close(release)
	if got := readAll(t, resp); got != "late body" {
		t.Fatalf("body %q", got)
	}
	if o := g.Outcomes(); len(o) != 1 || o[0].Err != nil {
		t.Errorf("guard outcomes %+v, want one success", o)
	}
}

// Failed attempts' bodies are drained, so the retry reuses the connection.
func TestTransportDrainsFailedBodies(t *testing.T) {
	f := &flaky{fail: 2}
	var conns atomic.Int32
	srv, base := newServerWith(t, f, func(s *http.Server) {
		s.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
	})
	tr := mustTransport(t, Config{Base: base, Pipeline: mustCompose(t, &testRetrier{max: 3})})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if f.calls.Load() != 3 {
		t.Fatalf("server saw %d requests, want 3", f.calls.Load())
	}
	if got := conns.Load(); got != 1 {
		t.Errorf("%d connections for 3 attempts, want 1", got)
	}
}

// A failure body longer than MaxDrain is not drained; the final response
// still carries it whole.
func TestTransportLongFailureBody(t *testing.T) {
	long := strings.Repeat("e", 1000)
	srv, base := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, long)
	}))
	tr := mustTransport(t, Config{Base: base, Pipeline: mustCompose(t, &testRetrier{max: 2}), MaxDrain: 10})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadGateway || readAll(t, resp) != long {
		t.Fatal("final failure response not returned whole")
	}
}

func TestTransportConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"negative replay", Config{MaxReplayBody: -1}, false},
		{"negative drain", Config{MaxDrain: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewTransport(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// bytesBody makes a body without GetBody.
func bytesBody(s string) io.ReadCloser { return io.NopCloser(bytes.NewReader([]byte(s))) }

// An upgraded connection (101 Switching Protocols) keeps a writable body
// through the transport, as httputil.ReverseProxy needs, even with a
// timeout in the pipeline.
func TestTransportUpgrade(t *testing.T) {
	srv, base := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		rw.Flush()
		line, _ := rw.ReadString('\n')
		rw.WriteString(line)
		rw.Flush()
	}))
	p := resilience.New(resilience.Policies{Timeout: resilience.Timeout{Duration: time.Minute}})
	tr := mustTransport(t, Config{Base: base, Pipeline: p})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatalf("body %T is not writable", resp.Body)
	}
	if _, err := io.WriteString(rw, "ping\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(rw, buf); err != nil || string(buf) != "ping\n" {
		t.Fatalf("echo %q, %v", buf, err)
	}
}
