package proxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestUpstreamEngineValidated(t *testing.T) {
	cfg := Config{Routes: []Route{{Upstream: "u"}}, Upstreams: []Upstream{{Name: "u", Endpoints: []Endpoint{{URL: "http://127.0.0.1:1"}}, Engine: "fasthttp"}}}
	err := cfg.Validate()
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "upstreams[0].engine" || !strings.Contains(fe.Msg, "net/http") {
		t.Fatalf("err = %v, want a FieldError on upstreams[0].engine naming the choices", err)
	}
	for _, e := range []string{"", EngineBulwark, EngineNetHTTP} {
		cfg.Upstreams[0].Engine = e
		if err := cfg.Validate(); err != nil {
			t.Errorf("engine %q: %v", e, err)
		}
	}
}

// Plain http:// pools ride the HTTP/1.1 engine by default; engine:
// net/http puts them back on net/http's Transport.
func TestUpstreamEngineChoice(t *testing.T) {
	b := newBackend(t, "a")
	for _, tc := range []struct {
		engine   string
		fastIdle int
	}{{"", 1}, {EngineBulwark, 1}, {EngineNetHTTP, 0}} {
		gw := gateway(t, func(c *Config) { c.Upstreams[0].Engine = tc.engine }, b)
		for range 3 {
			w := httptest.NewRecorder()
			gw.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/x", nil))
			if w.Code != 200 || w.Body.String() != "hello from a" {
				t.Fatalf("engine %q: %d %q", tc.engine, w.Code, w.Body.String())
			}
		}
		if n := gw.fast.IdleConns(); n != tc.fastIdle {
			t.Errorf("engine %q: the HTTP/1.1 engine holds %d idle connections, want %d", tc.engine, n, tc.fastIdle)
		}
	}
}

// A request body too large to buffer for retries streams through
// net/http (the fallback), which writes it while reading the answer;
// a buffered one goes through the HTTP/1.1 engine. Both arrive whole.
func TestUpstreamEngineRequestBodies(t *testing.T) {
	var got atomic.Value
	b := newBackend(t, "a")
	b.set(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got.Store(string(body))
		io.WriteString(w, "ok")
	})
	gw := gateway(t, func(c *Config) { c.Routes[0].Retries.MaxBody = 1024 }, b)
	for _, n := range []int{10, 100 << 10} {
		body := strings.Repeat("b", n)
		w := httptest.NewRecorder()
		gw.ServeHTTP(w, httptest.NewRequest(http.MethodPut, "/x", strings.NewReader(body)))
		if w.Code != 200 || got.Load() != body {
			t.Fatalf("%d-byte body: %d, upstream got %d bytes", n, w.Code, len(got.Load().(string)))
		}
	}
}

// An upstream that closes idle keep-alive connections (its idle timeout
// raced ours) costs no failed try: the engine retries the request once on
// a fresh connection, below the try loop. With one endpoint, a failed try
// would be the client's error (a pool of one gets no second round).
func TestUpstreamEngineStaleUpstreamConnection(t *testing.T) {
	closed := make(chan struct{}, 100)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			closed <- struct{}{}
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	gw, err := New(Config{Routes: []Route{{Name: "r", Upstream: "u"}},
		Upstreams: []Upstream{{Name: "u", Endpoints: []Endpoint{{URL: s.URL}}}}}, Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	for i := range 10 {
		w := httptest.NewRecorder()
		gw.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/x", nil))
		if w.Code != 200 || w.Body.String() != "ok" {
			t.Fatalf("request %d: %d %q", i, w.Code, w.Body.String())
		}
		if gw.fast.IdleConns() != 1 {
			t.Fatalf("request %d: the connection was not pooled", i)
		}
		s.CloseClientConnections() // the upstream drops the idle connection
		<-closed
	}
}
