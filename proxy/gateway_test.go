package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
)

// backend is a real HTTP server whose behaviour a test switches.
type backend struct {
	*httptest.Server
	name    string
	hits    atomic.Int64
	handler atomic.Pointer[http.HandlerFunc]
}

func newBackend(t *testing.T, name string) *backend {
	b := &backend{name: name}
	b.set(func(w http.ResponseWriter, r *http.Request) {
		body := "hello from " + name
		w.Header().Set("Content-Digest", ContentDigest([]byte(body)))
		io.WriteString(w, body)
	})
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		w.Header().Set("X-Backend", name)
		(*b.handler.Load())(w, r)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) set(h http.HandlerFunc) { b.handler.Store(&h) }

func gateway(t *testing.T, tune func(*Config), bs ...*backend) *Gateway {
	t.Helper()
	cfg := Config{Routes: []Route{{Name: "r", Upstream: "u"}}, Upstreams: []Upstream{{Name: "u"}}}
	for _, b := range bs {
		cfg.Upstreams[0].Endpoints = append(cfg.Upstreams[0].Endpoints, Endpoint{URL: b.URL})
	}
	if tune != nil {
		tune(&cfg)
	}
	gw, err := New(cfg, Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	return gw
}

func do(gw http.Handler, method, target string, body io.Reader, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, body)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	gw.ServeHTTP(w, r)
	return w
}

func TestRetriesOnAnotherEndpoint(t *testing.T) {
	bad, good := newBackend(t, "bad"), newBackend(t, "good")
	bad.set(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 503) })
	gw := gateway(t, nil, bad, good)
	for i := range 20 {
		w := do(gw, "GET", "http://gw/x", nil)
		if w.Code != 200 || w.Body.String() != "hello from good" {
			t.Fatalf("request %d: %d %q", i, w.Code, w.Body.String())
		}
	}
	if bad.hits.Load() == 0 {
		t.Fatal("the failing backend was never tried; the test proves nothing")
	}
}

func TestNonIdempotentNotRetried(t *testing.T) {
	bad, good := newBackend(t, "bad"), newBackend(t, "good")
	bad.set(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 503) })
	gw := gateway(t, func(c *Config) { c.Upstreams[0].Balance = "round-robin" }, bad, good)
	var sawFailure bool
	for range 4 {
		w := do(gw, "POST", "http://gw/x", strings.NewReader("payload"))
		if w.Code == 503 {
			sawFailure = true
		}
	}
	if !sawFailure {
		t.Fatal("a POST without Idempotency-Key was retried")
	}
	// With an Idempotency-Key it is retried, and the body is replayed.
	var got []string
	var mu sync.Mutex
	good.set(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
	})
	for range 4 {
		if w := do(gw, "POST", "http://gw/x", strings.NewReader("payload"), "Idempotency-Key", "k1"); w.Code != 200 {
			t.Fatalf("status %d", w.Code)
		}
	}
	for _, b := range got {
		if b != "payload" {
			t.Fatalf("replayed body %q", b)
		}
	}
}

func TestDigestMismatchNeverReachesClient(t *testing.T) {
	liar, good := newBackend(t, "liar"), newBackend(t, "good")
	liar.set(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Digest", ContentDigest([]byte("hello from liar")))
		io.WriteString(w, "hello from l1ar") // corrupted after the digest was computed
	})
	gw := gateway(t, nil, liar, good)
	for i := range 30 {
		w := do(gw, "GET", "http://gw/x", nil)
		if strings.Contains(w.Body.String(), "l1ar") {
			t.Fatalf("request %d: a corrupted body reached the client", i)
		}
		if w.Code != 200 {
			t.Fatalf("request %d: status %d", i, w.Code)
		}
	}
	if liar.hits.Load() == 0 {
		t.Fatal("the corrupting backend was never tried")
	}
}

func TestRequireDigest(t *testing.T) {
	plain := newBackend(t, "plain")
	plain.set(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "no digest") })
	gw := gateway(t, func(c *Config) { c.Routes[0].RequireDigest = true }, plain)
	if w := do(gw, "GET", "http://gw/x", nil); w.Code != 503 {
		t.Fatalf("status %d, want the fallback's 503 for a response without a digest", w.Code)
	}
}

func TestFallbackWhenAllDown(t *testing.T) {
	b := newBackend(t, "b")
	b.Close()
	gw := gateway(t, func(c *Config) {
		c.Routes[0].Fallback = Fallback{Status: 503, Body: "later\n", ContentType: "text/plain"}
	}, b)
	w := do(gw, "GET", "http://gw/x", nil)
	if w.Code != 503 || w.Body.String() != "later\n" || w.Header().Get("Retry-After") == "" {
		t.Fatalf("got %d %q %v", w.Code, w.Body.String(), w.Header())
	}
}

func TestRouting(t *testing.T) {
	api, web := newBackend(t, "api"), newBackend(t, "web")
	cfg := Config{
		Routes: []Route{
			{Name: "api", Upstream: "api", Match: Match{Host: "*.example.com", PathPrefix: "/api/", Methods: []string{"GET"}}},
			{Name: "hdr", Upstream: "api", Match: Match{Headers: map[string]string{"X-Canary": "1"}}},
			{Name: "web", Upstream: "web", Match: Match{PathPrefix: "/"}},
		},
		Upstreams: []Upstream{{Name: "api", Endpoints: []Endpoint{{URL: api.URL}}}, {Name: "web", Endpoints: []Endpoint{{URL: web.URL}}}},
	}
	gw, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	tests := []struct {
		method, url string
		hdr         []string
		want        string
	}{
		{"GET", "http://a.example.com/api/x", nil, "api"},
		{"GET", "http://a.example.com:8080/api/x", nil, "api"},
		{"POST", "http://a.example.com/api/x", nil, "web"},
		{"GET", "http://example.org/api/x", nil, "web"},
		{"GET", "http://example.org/", []string{"X-Canary", "1"}, "api"},
	}
	for _, tt := range tests {
		w := do(gw, tt.method, tt.url, nil, tt.hdr...)
		if got := w.Header().Get("X-Backend"); got != tt.want {
			t.Errorf("%s %s: routed to %q, want %q", tt.method, tt.url, got, tt.want)
		}
	}
}

func TestForwardedHeadersAndHopByHop(t *testing.T) {
	b := newBackend(t, "b")
	var seen http.Header
	b.set(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
		w.Header().Set("Connection", "X-Secret")
		w.Header().Set("X-Secret", "hop")
		w.Header().Set("Keep-Alive", "timeout=5")
		io.WriteString(w, "ok")
	})
	gw := gateway(t, nil, b)
	w := do(gw, "GET", "http://site.test/x", nil, "Connection", "X-Private", "X-Private", "1", "Proxy-Authorization", "secret")
	if seen.Get("X-Private") != "" || seen.Get("Proxy-Authorization") != "" {
		t.Errorf("hop-by-hop request headers forwarded: %v", seen)
	}
	if seen.Get("X-Forwarded-For") == "" || seen.Get("Forwarded") == "" || seen.Get("X-Forwarded-Host") != "site.test" {
		t.Errorf("forwarding headers missing: %v", seen)
	}
	if w.Header().Get("X-Secret") != "" || w.Header().Get("Keep-Alive") != "" {
		t.Errorf("hop-by-hop response headers passed to the client: %v", w.Header())
	}
}

func TestReloadSwapsUpstreams(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	gw := gateway(t, nil, a)
	if got := do(gw, "GET", "http://gw/", nil).Header().Get("X-Backend"); got != "a" {
		t.Fatalf("before reload: %q", got)
	}
	cfg := Config{Routes: []Route{{Name: "r", Upstream: "u"}}, Upstreams: []Upstream{{Name: "u", Endpoints: []Endpoint{{URL: b.URL}}}}}
	if err := gw.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := do(gw, "GET", "http://gw/", nil).Header().Get("X-Backend"); got != "b" {
		t.Fatalf("after reload: %q", got)
	}
	bad := cfg
	bad.Routes = []Route{{Name: "r", Upstream: "missing"}}
	if err := gw.Reload(bad); err == nil {
		t.Fatal("an invalid config was accepted")
	}
	if got := do(gw, "GET", "http://gw/", nil).Header().Get("X-Backend"); got != "b" {
		t.Fatalf("after a rejected reload the old config must keep running: %q", got)
	}
}

// memQueue is an Enqueuer that keeps messages in memory.
type memQueue struct {
	mu   sync.Mutex
	msgs map[string]*bulwark.Message
	keys map[string]string
}

func (q *memQueue) Enqueue(ctx context.Context, m *bulwark.Message) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if id, ok := q.keys[m.IdempotencyKey]; ok && m.IdempotencyKey != "" {
		return id, nil
	}
	id := fmt.Sprintf("m%d", len(q.msgs)+1)
	q.msgs[id] = m
	q.keys[m.IdempotencyKey] = id
	return id, nil
}

func (q *memQueue) Status(ctx context.Context, id string) (bulwark.DeliveryStatus, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.msgs[id]; !ok {
		return bulwark.DeliveryStatus{}, ErrMessageNotFound
	}
	return bulwark.DeliveryStatus{ID: id, State: bulwark.DeliveryQueued}, nil
}

func TestAsyncRouteAndForward(t *testing.T) {
	b := newBackend(t, "b")
	var got atomic.Pointer[string]
	b.set(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s := r.Method + " " + r.URL.RequestURI() + " " + string(body) + " key=" + r.Header.Get("Idempotency-Key")
		got.Store(&s)
		w.WriteHeader(201)
	})
	q := &memQueue{msgs: map[string]*bulwark.Message{}, keys: map[string]string{}}
	cfg := Config{Routes: []Route{{Name: "r", Upstream: "u", Async: true}}, Upstreams: []Upstream{{Name: "u", Endpoints: []Endpoint{{URL: b.URL}}}}}
	gw, err := New(cfg, Options{Enqueuer: q})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	w := do(gw, "POST", "http://gw/orders?x=1", strings.NewReader("order-1"), "Idempotency-Key", "k-1")
	if w.Code != 202 || w.Header().Get("Location") != statusPrefix+"m1" {
		t.Fatalf("accept: %d %v", w.Code, w.Header())
	}
	if w := do(gw, "POST", "http://gw/orders?x=1", strings.NewReader("order-1"), "Idempotency-Key", "k-1"); w.Header().Get("Location") != statusPrefix+"m1" {
		t.Fatalf("a retry with the same key must return the same id: %v", w.Header())
	}
	if w := do(gw, "GET", "http://gw"+statusPrefix+"m1", nil); w.Code != 200 || !strings.Contains(w.Body.String(), `"queued"`) {
		t.Fatalf("status: %d %s", w.Code, w.Body.String())
	}
	if w := do(gw, "GET", "http://gw"+statusPrefix+"nope", nil); w.Code != 404 {
		t.Fatalf("unknown id: %d", w.Code)
	}
	code, err := gw.Forward(t.Context(), q.msgs["m1"])
	if err != nil || code != 201 {
		t.Fatalf("Forward = %d, %v", code, err)
	}
	if s := *got.Load(); s != "POST /orders?x=1 order-1 key=k-1" {
		t.Fatalf("backend saw %q", s)
	}
}

func TestStreamingAndLargeDigestBody(t *testing.T) {
	big := strings.Repeat("x", 64<<10)
	b := newBackend(t, "b")
	b.set(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Digest", ContentDigest([]byte(big)))
		io.WriteString(w, big)
	})
	gw := gateway(t, func(c *Config) { c.Upstreams[0].MaxVerifyBody = 1024 }, b)
	srv := httptest.NewServer(gw)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != big {
		t.Fatalf("good streamed body: err %v, %d bytes", err, len(body))
	}
	b.set(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Digest", ContentDigest([]byte(big)))
		io.WriteString(w, big[:len(big)-1]+"y")
	})
	resp, err = http.Get(srv.URL + "/")
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil && string(body) == big[:len(big)-1]+"y" {
		t.Fatal("a large body that failed its digest was delivered whole")
	}
}

func TestHedgingCutsTailLatency(t *testing.T) {
	slow, fast := newBackend(t, "slow"), newBackend(t, "fast")
	slow.set(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "late")
	})
	gw := gateway(t, func(c *Config) {
		c.Routes[0].Hedge = Hedge{Delay: "20ms"}
		c.Upstreams[0].Balance = "round-robin"
	}, slow, fast)
	for i := range 6 {
		start := time.Now()
		w := do(gw, "GET", "http://gw/", nil)
		if w.Code != 200 || w.Header().Get("X-Backend") != "fast" {
			t.Fatalf("request %d: %d from %q", i, w.Code, w.Header().Get("X-Backend"))
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("request %d took %v: the hedge did not win", i, d)
		}
	}
	if slow.hits.Load() == 0 {
		t.Fatal("the slow backend was never tried")
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// httpTestServer serves h on a real listener and returns its URL.
func httpTestServer(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestAccessLog(t *testing.T) {
	b := newBackend(t, "b")
	var buf strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&mu, &buf}, nil))
	cfg := Config{AccessLog: true, Routes: []Route{{Name: "r", Upstream: "u"}}, Upstreams: []Upstream{{Name: "u", Endpoints: []Endpoint{{URL: b.URL}}}}}
	gw, err := New(cfg, Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	do(gw, "GET", "http://site/a?b=c", nil)
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{`"msg":"access"`, `"path":"/a"`, `"status":200`, `"route":"r"`, `"tries":1`, `"endpoint":"` + b.URL} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("access log lacks %s: %s", want, buf.String())
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
