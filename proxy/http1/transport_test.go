package http1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// upstreamServer serves each accepted connection with handle, for answers
// net/http's server would never send. Connections are closed at cleanup,
// so a handler that hangs ends with the test.
type upstreamServer struct {
	ln    net.Listener
	conns atomic.Int32
	mu    sync.Mutex
	open  []net.Conn
	wg    sync.WaitGroup
}

func newUpstreamServer(t *testing.T, handle func(n int, c net.Conn, br *bufio.Reader)) *upstreamServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &upstreamServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(s.conns.Add(1))
			s.mu.Lock()
			s.open = append(s.open, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				handle(n, c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.open {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *upstreamServer) url() string { return "http://" + s.ln.Addr().String() }

// readReq reads one request and its body; false when the connection ended.
func upReadReq(br *bufio.Reader) (*http.Request, []byte, bool) {
	r, err := http.ReadRequest(br)
	if err != nil {
		return nil, nil, false
	}
	b, err := io.ReadAll(r.Body)
	return r, b, err == nil
}

// countingServer is an httptest server that counts new connections.
func upCountingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	s := httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			n.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s, &n
}

func upGet(t *testing.T, tr http.RoundTripper, ctx context.Context, url string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tr.RoundTrip(req)
}

func upReadAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	resp.Body.Close()
	return string(b)
}

func TestTransportKeepAlive(t *testing.T) {
	s, conns := upCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Path", r.URL.RequestURI())
		io.WriteString(w, "hello "+r.Host+" "+r.Header.Get("X-A"))
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	for i := range 20 {
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/p/a%20b?q=1&r", nil)
		req.Host = "front.example"
		req.Header.Set("X-A", fmt.Sprint(i))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := upReadAll(t, resp), fmt.Sprintf("hello front.example %d", i); got != want || resp.StatusCode != 200 {
			t.Fatalf("%d %q, want %q", resp.StatusCode, got, want)
		}
		if p := resp.Header.Get("X-Path"); p != "/p/a%20b?q=1&r" {
			t.Fatalf("upstream saw %q", p)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 20 sequential requests, want 1", n)
	}
	if n := tr.IdleConns(); n != 1 {
		t.Errorf("%d idle connections, want 1", n)
	}
}

func TestTransportChunkedAndBodies(t *testing.T) {
	s, conns := upCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s cl=%d te=%v:", r.Method, r.ContentLength, r.TransferEncoding)
		w.(http.Flusher).Flush() // forces a chunked answer
		w.Write(b)
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	big := strings.Repeat("0123456789", 2000) // larger than the write buffer
	for _, tc := range []struct {
		name string
		body func() (io.ReadCloser, int64, bool) // body, length, rewindable
		want string
	}{
		{"no body", func() (io.ReadCloser, int64, bool) { return nil, 0, true }, "POST cl=0 te=[]:"},
		{"buffered", func() (io.ReadCloser, int64, bool) {
			return io.NopCloser(strings.NewReader(big)), int64(len(big)), true
		}, fmt.Sprintf("POST cl=%d te=[]:%s", len(big), big)},
		{"streamed unknown length", func() (io.ReadCloser, int64, bool) {
			return io.NopCloser(io.MultiReader(strings.NewReader(big), strings.NewReader("!"))), -1, false
		}, "POST cl=-1 te=[chunked]:" + big + "!"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, n, _ := tc.body()
			req, _ := http.NewRequest(http.MethodPost, s.URL, nil)
			if body != nil {
				req.Body, req.ContentLength = body, n
			}
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.TransferEncoding) == 0 || resp.ContentLength != -1 {
				t.Errorf("answer not chunked: te=%v cl=%d", resp.TransferEncoding, resp.ContentLength)
			}
			if got := upReadAll(t, resp); got != tc.want {
				t.Fatalf("got %.80q…, want %.80q…", got, tc.want)
			}
		})
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (chunked answers end cleanly)", n)
	}
}

func TestTransportNoBodyAnswers(t *testing.T) {
	s, conns := upCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		default:
			w.Header().Set("Content-Length", "5")
			w.Write([]byte("hello"))
		}
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	for _, c := range []struct{ method, path string }{{"HEAD", "/"}, {"GET", "/204"}, {"GET", "/304"}, {"GET", "/"}} {
		req, _ := http.NewRequest(c.method, s.URL+c.path, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Body != http.NoBody && c.path != "/" {
			t.Errorf("%s %s: body %T, want NoBody", c.method, c.path, resp.Body)
		}
		upReadAll(t, resp)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

func TestTransportConnectionClose(t *testing.T) {
	s, conns := upCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	for range 3 {
		resp, err := upGet(t, tr, context.Background(), s.URL)
		if err != nil {
			t.Fatal(err)
		}
		upReadAll(t, resp)
		if !resp.Close || tr.IdleConns() != 0 {
			t.Fatalf("Close=%v idle=%d: a Connection: close answer's connection was kept", resp.Close, tr.IdleConns())
		}
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

func TestTransportEarlyClose(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	s, conns := upCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			io.WriteString(w, big)
			return
		}
		io.WriteString(w, "0123456789") // small: all of it arrives with the head
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	resp, err := upGet(t, tr, context.Background(), s.URL+"/big")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := tr.IdleConns(); n != 0 {
		t.Fatalf("%d idle after closing a 1 MiB body early, want 0 (the rest is not drained)", n)
	}
	resp, err = upGet(t, tr, context.Background(), s.URL+"/small")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 3)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := tr.IdleConns(); n != 1 {
		t.Fatalf("%d idle after closing a buffered body early, want 1 (the buffered rest is discarded)", n)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// A cancelled context ends a read blocked on the answer's head at once
// (the server never answers), and the connection is not reused.
func TestTransportCancelMidHeader(t *testing.T) {
	seen := make(chan struct{}, 1)
	s := newUpstreamServer(t, func(_ int, c net.Conn, br *bufio.Reader) {
		if _, _, ok := upReadReq(br); ok {
			seen <- struct{}{}
		}
		io.Copy(io.Discard, br) // hang until the client closes
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-seen; cancel() }()
	start := time.Now()
	_, err := upGet(t, tr, ctx, s.url())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if errors.Is(err, ErrNotSent) {
		t.Error("the request was sent, but the error says it was not")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v to return after cancel", d)
	}
	if n := tr.IdleConns(); n != 0 {
		t.Errorf("%d idle connections after a cancelled try, want 0", n)
	}
}

// A cancelled context ends a read blocked mid-body; Read returns the
// context's error and the connection is closed.
func TestTransportCancelMidBody(t *testing.T) {
	s := newUpstreamServer(t, func(_ int, c net.Conn, br *bufio.Reader) {
		if _, _, ok := upReadReq(br); ok {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
		}
		io.Copy(io.Discard, br)
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := upGet(t, tr, ctx, s.url())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = io.ReadAll(resp.Body)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("read after cancel: %v, want context.Canceled", err)
	}
	resp.Body.Close()
	if n := tr.IdleConns(); n != 0 {
		t.Errorf("%d idle connections, want 0", n)
	}
}

// The per-try timeout of the gateway cancels from a timer while RoundTrip
// is blocked; so does a context deadline.
func TestTransportDeadline(t *testing.T) {
	s := newUpstreamServer(t, func(_ int, c net.Conn, br *bufio.Reader) { io.Copy(io.Discard, br) })
	tr := &Transport{}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := upGet(t, tr, ctx, s.url()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
}

// An idle pooled connection that the server closed is retried once,
// transparently, for a replayable request; a POST that was written is not.
func TestTransportStaleIdleConn(t *testing.T) {
	closed := make(chan struct{}, 4)
	s := newUpstreamServer(t, func(n int, c net.Conn, br *bufio.Reader) {
		for {
			r, _, ok := upReadReq(br)
			if !ok {
				return
			}
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d", n)
			if r.URL.Path == "/then-close" {
				c.Close()
				closed <- struct{}{}
				return
			}
		}
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	prime := func() {
		resp, err := upGet(t, tr, context.Background(), s.url()+"/then-close")
		if err != nil {
			t.Fatal(err)
		}
		upReadAll(t, resp)
		<-closed
		if tr.IdleConns() != 1 {
			t.Fatal("the connection was not pooled")
		}
	}
	prime()
	resp, err := upGet(t, tr, context.Background(), s.url()+"/")
	if err != nil {
		t.Fatalf("GET on a stale pooled connection: %v (want a transparent retry)", err)
	}
	if got := upReadAll(t, resp); got != "2" {
		t.Fatalf("answered by connection %s, want 2", got)
	}

	tr.CloseIdleConnections()
	prime()
	req, _ := http.NewRequest(http.MethodPost, s.url()+"/", strings.NewReader("x"))
	req.GetBody = nil // not rewindable
	_, err = tr.RoundTrip(req)
	if err == nil {
		t.Fatal("a written POST on a stale connection succeeded: it was sent twice")
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "reset") && !strings.Contains(err.Error(), "broken pipe") {
		t.Errorf("err = %v, want a reset or EOF", err)
	}
}

func TestTransportSkips1xx(t *testing.T) {
	s := newUpstreamServer(t, func(n int, c net.Conn, br *bufio.Reader) {
		for {
			r, _, ok := upReadReq(br)
			if !ok {
				return
			}
			many := r.URL.Path == "/many"
			k := 2
			if many {
				k = 6
			}
			for range k {
				io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n")
			}
			io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	resp, err := upGet(t, tr, context.Background(), s.url()+"/")
	if err != nil {
		t.Fatal(err)
	}
	if got := upReadAll(t, resp); resp.StatusCode != 200 || got != "ok" || resp.Header.Get("Link") != "" {
		t.Fatalf("%d %q %v", resp.StatusCode, got, resp.Header)
	}
	if _, err := upGet(t, tr, context.Background(), s.url()+"/many"); !errors.Is(err, ErrTooManyInformational) {
		t.Fatalf("err = %v, want ErrTooManyInformational", err)
	}
}

func TestTransportRefusesSmuggling(t *testing.T) {
	s := newUpstreamServer(t, func(n int, c net.Conn, br *bufio.Reader) {
		if _, _, ok := upReadReq(br); ok {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
		}
		io.Copy(io.Discard, br)
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	if _, err := upGet(t, tr, context.Background(), s.url()); !errors.Is(err, ErrCLAndTE) {
		t.Fatalf("err = %v, want ErrCLAndTE", err)
	}
	if tr.IdleConns() != 0 {
		t.Error("connection kept after a refused answer")
	}
}

func TestTransportDialError(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	_, err := upGet(t, &Transport{}, context.Background(), "http://"+addr+"/")
	var op *net.OpError
	if !errors.Is(err, ErrNotSent) || !errors.As(err, &op) || op.Op != "dial" {
		t.Fatalf("err = %v, want ErrNotSent wrapping a dial *net.OpError", err)
	}
}

type fallbackRecorder struct{ n atomic.Int32 }

func (r *fallbackRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.n.Add(1)
	return &http.Response{StatusCode: 299, Body: http.NoBody, Request: req}, nil
}

func TestTransportFallback(t *testing.T) {
	s, _ := upCountingServer(t, func(w http.ResponseWriter, r *http.Request) {})
	fb := &fallbackRecorder{}
	tr := &Transport{Fallback: fb}
	defer tr.CloseIdleConnections()
	up, _ := http.NewRequest(http.MethodGet, s.URL, nil)
	up.Header.Set("Connection", "Upgrade")
	up.Header.Set("Upgrade", "websocket")
	streamed, _ := http.NewRequest(http.MethodPost, s.URL, io.NopCloser(strings.NewReader("x")))
	tls, _ := http.NewRequest(http.MethodGet, "https://127.0.0.1:1/", nil)
	connect, _ := http.NewRequest(http.MethodConnect, s.URL, nil)
	for _, req := range []*http.Request{up, streamed, tls, connect} {
		resp, err := tr.RoundTrip(req)
		if err != nil || resp.StatusCode != 299 {
			t.Fatalf("%s %s: %v %v, want the fallback", req.Method, req.URL, resp, err)
		}
	}
	if _, err := (&Transport{}).RoundTrip(tls); !errors.Is(err, ErrNotSent) {
		t.Errorf("https without Fallback: %v, want ErrNotSent", err)
	}
}

func TestTransportUpgradeWithoutFallback(t *testing.T) {
	s := newUpstreamServer(t, func(n int, c net.Conn, br *bufio.Reader) {
		if _, _, ok := upReadReq(br); !ok {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhi ")
		io.Copy(c, br)
	})
	req, _ := http.NewRequest(http.MethodGet, s.url(), nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := (&Transport{}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if resp.StatusCode != 101 || !ok {
		t.Fatalf("%d %T", resp.StatusCode, resp.Body)
	}
	defer rwc.Close()
	io.WriteString(rwc, "there")
	got := make([]byte, 8)
	if _, err := io.ReadFull(rwc, got); err != nil || string(got) != "hi there" {
		t.Fatalf("%q %v", got, err)
	}
}

func TestTransportIdleTimeout(t *testing.T) {
	s, _ := upCountingServer(t, func(w http.ResponseWriter, r *http.Request) {})
	tr := &Transport{IdleConnTimeout: 2 * time.Millisecond}
	resp, err := upGet(t, tr, context.Background(), s.URL)
	if err != nil {
		t.Fatal(err)
	}
	upReadAll(t, resp)
	deadline := time.Now().Add(20 * time.Second)
	for tr.IdleConns() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the idle connection was never closed")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestTransportMaxIdlePerHost(t *testing.T) {
	s, _ := upCountingServer(t, func(w http.ResponseWriter, r *http.Request) {})
	tr := &Transport{MaxIdleConnsPerHost: 2}
	defer tr.CloseIdleConnections()
	var resps []*http.Response
	for range 4 { // four at once: four connections
		resp, err := upGet(t, tr, context.Background(), s.URL)
		if err != nil {
			t.Fatal(err)
		}
		resps = append(resps, resp)
	}
	// Bodies are empty (Content-Length: 0): the connections went back at once.
	if n := tr.IdleConns(); n > 2 {
		t.Fatalf("%d idle, want at most 2", n)
	}
}

func TestTransportRefusesHeaderInjection(t *testing.T) {
	s, conns := upCountingServer(t, func(w http.ResponseWriter, r *http.Request) {})
	for _, mut := range []func(*http.Request){
		func(r *http.Request) { r.Header["X-A"] = []string{"a\r\nX-Evil: 1"} },
		func(r *http.Request) { r.Header["X A"] = []string{"a"} },
		func(r *http.Request) { r.Host = "a\r\nX-Evil: 1" },
		func(r *http.Request) { r.Method = "GET /x" },
	} {
		req, _ := http.NewRequest(http.MethodGet, s.URL, nil)
		mut(req)
		if _, err := (&Transport{}).RoundTrip(req); !errors.Is(err, ErrNotSent) {
			t.Errorf("err = %v, want ErrNotSent", err)
		}
	}
	_ = conns
}

// Many goroutines share one Transport: the idle pool under -race.
func TestTransportConcurrent(t *testing.T) {
	s, conns := upCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				want := fmt.Sprintf("g%d-%d", g, i)
				req, _ := http.NewRequest(http.MethodPut, s.URL, bytes.NewReader([]byte(want)))
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Error(err)
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(b) != want {
					t.Errorf("%q %v, want %q", b, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := conns.Load(); n > 8 {
		t.Errorf("%d connections for 8 concurrent clients", n)
	}
}

// RoundTripForward writes the request's header minus Skip's fields, then
// Extra, under the context it is given; it refuses malformed Extra before
// dialing and hands what RoundTrip would give to Fallback back to the
// caller, unsent.
func TestTransportRoundTripForward(t *testing.T) {
	got := make(chan http.Header, 1)
	s, conns := upCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header
		io.WriteString(w, "ok")
	})
	tr := &Transport{Fallback: &fallbackRecorder{}}
	defer tr.CloseIdleConnections()
	skip := func(h http.Header, name string) bool { return name == "X-Drop" }
	in, _ := http.NewRequest(http.MethodGet, s.URL+"/p?q=1", nil)
	in.Header = http.Header{"X-Drop": {"d"}, "X-Keep": {"k1", "k2"}, "User-Agent": {"ua"}}
	before := fmt.Sprint(in.Header)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	resp, err := tr.RoundTripForward(ctx, in, Forward{Skip: skip, Extra: []byte("X-Added: a\r\nX-Added: b\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	if body := upReadAll(t, resp); body != "ok" {
		t.Fatalf("body %q", body)
	}
	h := <-got
	if _, ok := h["X-Drop"]; ok {
		t.Errorf("Skip's field was sent: %v", h)
	}
	if !slices.Equal(h["X-Keep"], []string{"k1", "k2"}) || !slices.Equal(h["X-Added"], []string{"a", "b"}) || h.Get("User-Agent") != "ua" {
		t.Errorf("upstream saw %v", h)
	}
	if after := fmt.Sprint(in.Header); after != before {
		t.Errorf("the request's header changed: %s, was %s", after, before)
	}

	for _, extra := range []string{"X-A: 1\r\nX-Evil", "X-A: a\nb\r\n", "X A: 1\r\n", ": v\r\n", "X-A: \x00\r\n", "X-A: 1"} {
		if _, err := tr.RoundTripForward(ctx, in, Forward{Extra: []byte(extra)}); !errors.Is(err, ErrNotSent) || errors.Is(err, ErrNotForwardable) {
			t.Errorf("Extra %q: err = %v, want ErrNotSent", extra, err)
		}
	}
	streamed, _ := http.NewRequest(http.MethodPost, s.URL, io.NopCloser(strings.NewReader("x")))
	if _, err := tr.RoundTripForward(ctx, streamed, Forward{}); !errors.Is(err, ErrNotForwardable) {
		t.Errorf("a streamed body: err = %v, want ErrNotForwardable", err)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (refused requests are not sent)", n)
	}

	cancel()
	if _, err := tr.RoundTripForward(ctx, in, Forward{}); !errors.Is(err, context.Canceled) {
		t.Errorf("after its context ended: err = %v, want context.Canceled", err)
	}
}
