package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The gateway's features through each engine an http listener can run:
// the fast path (proxy/http1, the default) and net/http (engine:
// net/http). Each case is what the handler relies on the server for.
func TestHTTPListenerEngines(t *testing.T) {
	for _, engine := range []string{"", EngineNetHTTP} {
		name := engine
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			t.Run("selected", func(t *testing.T) {
				b := newBackend(t, "b")
				gw, _ := listening(t, Listener{Engine: engine}, b, nil)
				l := gw.listeners[0]
				if fast := l.fast != nil; fast != (engine == "") {
					t.Fatalf("fast path %v for engine %q", fast, engine)
				}
			})
			t.Run("request body streamed both ways", func(t *testing.T) {
				b := newBackend(t, "b")
				b.set(func(w http.ResponseWriter, r *http.Request) {
					n, err := io.Copy(io.Discard, r.Body)
					fmt.Fprintf(w, "%d %v %s", n, err, r.Header.Get("X-Test"))
				})
				_, addr := listening(t, Listener{Engine: engine}, b, nil)
				pr, pw := io.Pipe()
				go func() {
					for range 100 {
						pw.Write(make([]byte, 1000))
					}
					pw.Close()
				}()
				req, _ := http.NewRequest("POST", "http://"+addr+"/up", pr) // unknown length: sent chunked
				req.Header.Set("X-Test", "kept")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(got) != "100000 <nil> kept" {
					t.Fatalf("backend saw %q", got)
				}
			})
			t.Run("streamed answer of unknown length", func(t *testing.T) {
				b := newBackend(t, "b")
				b.set(func(w http.ResponseWriter, r *http.Request) {
					for i := range 3 {
						fmt.Fprintf(w, "event %d\n", i)
						w.(http.Flusher).Flush()
					}
				})
				_, addr := listening(t, Listener{Engine: engine}, b, nil)
				resp, err := http.Get("http://" + addr + "/events")
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(got) != "event 0\nevent 1\nevent 2\n" || resp.ContentLength != -1 {
					t.Fatalf("got %q (length %d)", got, resp.ContentLength)
				}
			})
			t.Run("large body failing its digest is never delivered whole", func(t *testing.T) {
				big := strings.Repeat("x", 64<<10)
				b := newBackend(t, "b")
				b.set(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Digest", ContentDigest([]byte(big)))
					io.WriteString(w, big[:len(big)-1]+"y")
				})
				_, addr := listening(t, Listener{Engine: engine}, b, func(c *Config) { c.Upstreams[0].MaxVerifyBody = 1024 })
				resp, err := http.Get("http://" + addr + "/")
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if err == nil && string(body) == big[:len(big)-1]+"y" {
					t.Fatal("a large body that failed its digest was delivered whole")
				}
			})
			t.Run("drain on shutdown finishes the request in flight", func(t *testing.T) {
				b := newBackend(t, "b")
				started := make(chan struct{})
				b.set(func(w http.ResponseWriter, r *http.Request) {
					close(started)
					time.Sleep(200 * time.Millisecond)
					io.WriteString(w, "finished")
				})
				cfg := Config{Listeners: []Listener{{Address: "127.0.0.1:0", Engine: engine}}, Routes: []Route{{Name: "r", Upstream: "u"}},
					Upstreams: []Upstream{{Name: "u", Endpoints: []Endpoint{{URL: b.URL}}}}}
				gw, err := New(cfg, Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer gw.Close()
				if err := gw.Listen(); err != nil {
					t.Fatal(err)
				}
				addr := gw.Addrs()[0].String()
				got := make(chan string, 1)
				go func() {
					resp, err := http.Get("http://" + addr + "/slow")
					if err != nil {
						got <- err.Error()
						return
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					got <- string(body)
				}()
				<-started
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := gw.Shutdown(ctx); err != nil {
					t.Fatalf("Shutdown: %v", err)
				}
				if s := <-got; s != "finished" {
					t.Fatalf("in-flight request got %q", s)
				}
			})
		})
	}
}

// TestFastPathRefusesSmuggling: an ambiguous request never reaches an
// endpoint, and neither does what it hides.
func TestFastPathRefusesSmuggling(t *testing.T) {
	b := newBackend(t, "b")
	_, addr := listening(t, Listener{}, b, nil)
	for _, req := range []string{
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /hidden HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 35\r\n\r\nGET /hidden HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n Transfer-Encoding: chunked\r\n\r\n",
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, req)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err != nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%q: %v %v, want 400", req, resp, err)
		}
	}
	if n := b.hits.Load(); n != 0 {
		t.Fatalf("the endpoint saw %d requests", n)
	}
}

func TestListenerEngineValidation(t *testing.T) {
	for _, tt := range []struct {
		l    Listener
		want string
	}{
		{Listener{Address: ":1", Engine: "fasthttp"}, "unknown engine"},
		{Listener{Address: ":1", Protocol: "h2c", Engine: EngineBulwark}, "serves only protocol http"},
		{Listener{Address: ":1", Protocol: "tcp", Upstream: "u", Engine: EngineNetHTTP}, "no HTTP engine"},
	} {
		cfg := Config{Listeners: []Listener{tt.l}, Upstreams: []Upstream{{Name: "u", Endpoints: []Endpoint{{URL: "http://127.0.0.1:1"}}}}}
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "listeners[0].engine") {
			t.Errorf("%+v: %v, want an error on listeners[0].engine saying %q", tt.l, err, tt.want)
		}
	}
	for _, l := range []Listener{{Address: ":1", Engine: EngineBulwark}, {Address: ":1", Protocol: "http", Engine: EngineNetHTTP}, {Address: ":1", Protocol: "h2c", Engine: EngineNetHTTP}} {
		cfg := Config{Listeners: []Listener{l}}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%+v: %v", l, err)
		}
	}
}
