package http1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// startServer serves h on a loopback listener and returns its address.
func startServer(t testing.TB, s *Server, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Handler = h
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

// echo answers "<method> <path> <body>" with a Content-Length.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
})

// dial opens a raw client connection with a generous deadline.
func dial(t testing.TB, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c, bufio.NewReader(c)
}

// readResp reads one response (for a request with the given method) and
// its whole body.
func readResp(t testing.TB, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading a response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading a response body: %v", err)
	}
	resp.Body.Close()
	return resp, string(b)
}

// expectClosed checks that the server closed the connection (after any
// answer already read).
func expectClosed(t testing.TB, br *bufio.Reader) {
	t.Helper()
	if b, err := io.ReadAll(br); err != nil || len(b) != 0 {
		t.Fatalf("after the last answer: %q, %v; want the connection closed", b, err)
	}
}

func TestServerKeepAliveAndClients(t *testing.T) {
	var mu sync.Mutex
	addrs := map[string]bool{}
	addr := startServer(t, &Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		addrs[r.RemoteAddr] = true
		mu.Unlock()
		echo(w, r)
	}))
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	for i := range 5 {
		resp, err := c.Post("http://"+addr+"/k", "text/plain", strings.NewReader(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("POST /k %d", i); string(b) != want || resp.ContentLength != int64(len(want)) {
			t.Fatalf("got %q (length %d), want %q", b, resp.ContentLength, want)
		}
	}
	if len(addrs) != 1 {
		t.Fatalf("%d client connections for 5 requests, want 1 (keep-alive)", len(addrs))
	}
}

func TestServerExchanges(t *testing.T) {
	addr := startServer(t, &Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stream": // unknown length, flushed: chunked
			io.WriteString(w, "part1,")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part2")
		case "/big": // more than the writer holds back: chunked
			io.WriteString(w, strings.Repeat("x", 5000))
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
			io.WriteString(w, "dropped")
		case "/trailer":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "data")
			w.Header().Set("X-Sum", "42")
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		default:
			echo(w, r)
		}
	}))
	tests := []struct {
		name    string
		method  string
		req     string
		status  int
		body    string
		chunked bool
		clen    int64
		closed  bool
		check   func(*http.Response) error
	}{
		{name: "GET", method: "GET", req: "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", status: 200, body: "GET /a ", clen: 7},
		{name: "HEAD: length, no body", method: "HEAD", req: "HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n", status: 200, clen: 8},
		{name: "chunked answer", method: "GET", req: "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n", status: 200, body: "part1,part2", chunked: true, clen: -1},
		{name: "large answer", method: "GET", req: "GET /big HTTP/1.1\r\nHost: x\r\n\r\n", status: 200, body: strings.Repeat("x", 5000), chunked: true, clen: -1},
		{name: "204 has no body", method: "GET", req: "GET /nocontent HTTP/1.1\r\nHost: x\r\n\r\n", status: 204},
		{name: "trailers", method: "GET", req: "GET /trailer HTTP/1.1\r\nHost: x\r\n\r\n", status: 200, body: "data", chunked: true, clen: -1,
			check: func(r *http.Response) error {
				if r.Trailer.Get("X-Sum") != "42" {
					return fmt.Errorf("trailer %v, want X-Sum: 42", r.Trailer)
				}
				return nil
			}},
		{name: "Content-Length body", method: "POST", req: "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "POST /p hello", clen: 13},
		{name: "chunked body, extension and trailer", method: "POST",
			req:    "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
			status: 200, body: "POST /p abcde", clen: 13},
		{name: "handler asks to close", method: "GET", req: "GET /close HTTP/1.1\r\nHost: x\r\n\r\n", status: 200, body: "bye", clen: 3, closed: true},
		{name: "client asks to close", method: "GET", req: "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", status: 200, body: "GET /a ", clen: 7, closed: true},
		{name: "HTTP/1.0 closes", method: "GET", req: "GET /a HTTP/1.0\r\n\r\n", status: 200, body: "GET /a ", clen: 7, closed: true},
		{name: "HTTP/1.0 keep-alive", method: "GET", req: "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", status: 200, body: "GET /a ", clen: 7,
			check: func(r *http.Response) error {
				if r.Header.Get("Connection") != "keep-alive" {
					return fmt.Errorf("Connection %q, want keep-alive", r.Header.Get("Connection"))
				}
				return nil
			}},
		{name: "HTTP/1.0 unknown length: ends with the connection", method: "GET", req: "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", status: 200, body: "part1,part2", clen: -1, closed: true},
		{name: "unsupported Expect", method: "POST", req: "POST /p HTTP/1.1\r\nHost: x\r\nExpect: magic\r\nContent-Length: 1\r\n\r\nx", status: 417, closed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, br := dial(t, addr)
			io.WriteString(c, tt.req)
			resp, body := readResp(t, br, tt.method)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tt.status, body)
			}
			if tt.status == 200 && body != tt.body {
				t.Fatalf("body %q, want %q", body, tt.body)
			}
			if chunked := len(resp.TransferEncoding) > 0; chunked != tt.chunked {
				t.Fatalf("chunked %v, want %v", chunked, tt.chunked)
			}
			if tt.status == 200 && resp.ContentLength != tt.clen {
				t.Fatalf("Content-Length %d, want %d", resp.ContentLength, tt.clen)
			}
			if resp.StatusCode < 400 && resp.Header.Get("Date") == "" {
				t.Fatal("no Date")
			}
			if tt.check != nil {
				if err := tt.check(resp); err != nil {
					t.Fatal(err)
				}
			}
			if tt.closed {
				expectClosed(t, br)
				return
			}
			// The connection serves another request.
			io.WriteString(c, "GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
			if _, body := readResp(t, br, "GET"); body != "GET /again " {
				t.Fatalf("next answer %q", body)
			}
		})
	}
}

func TestServerPipelining(t *testing.T) {
	addr := startServer(t, &Server{}, echo)
	c, br := dial(t, addr)
	// Three requests in one write, one with a body, one HEAD: answered in order.
	io.WriteString(c, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"+
		"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"+
		"HEAD /3 HTTP/1.1\r\nHost: x\r\n\r\n"+
		"GET /4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	for _, want := range []struct{ method, body string }{{"GET", "GET /1 "}, {"POST", "POST /2 abc"}, {"HEAD", ""}, {"GET", "GET /4 "}} {
		resp, body := readResp(t, br, want.method)
		if resp.StatusCode != 200 || body != want.body {
			t.Fatalf("got %d %q, want %q", resp.StatusCode, body, want.body)
		}
	}
	expectClosed(t, br)
}

func TestServerExpectContinue(t *testing.T) {
	addr := startServer(t, &Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ignore" {
			http.Error(w, "not reading that", http.StatusForbidden)
			return
		}
		echo(w, r)
	}))
	t.Run("sent on first read", func(t *testing.T) {
		c, br := dial(t, addr)
		io.WriteString(c, "POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
		line, err := br.ReadString('\n')
		if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
			t.Fatalf("got %q, %v, want a 100 Continue before the body is sent", line, err)
		}
		if blank, _ := br.ReadString('\n'); blank != "\r\n" {
			t.Fatalf("after the 100: %q", blank)
		}
		io.WriteString(c, "data")
		if _, body := readResp(t, br, "POST"); body != "POST /p data" {
			t.Fatalf("body %q", body)
		}
	})
	t.Run("never sent when the body is not read", func(t *testing.T) {
		c, br := dial(t, addr)
		io.WriteString(c, "POST /ignore HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
		resp, _ := readResp(t, br, "POST")
		if resp.StatusCode != 403 || !resp.Close {
			t.Fatalf("got %d (close %v), want 403 and Connection: close", resp.StatusCode, resp.Close)
		}
		expectClosed(t, br)
	})
	t.Run("net/http client", func(t *testing.T) {
		tr := &http.Transport{ExpectContinueTimeout: time.Minute}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("POST", "http://"+addr+"/p", strings.NewReader("payload"))
		req.Header.Set("Expect", "100-continue")
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "POST /p payload" {
			t.Fatalf("got %q", b)
		}
	})
}

func TestServerUnreadBody(t *testing.T) {
	addr := startServer(t, &Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ignored the body")
	}))
	t.Run("small: drained, connection kept", func(t *testing.T) {
		c, br := dial(t, addr)
		fmt.Fprintf(c, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n%s", strings.Repeat("b", 1000))
		if resp, _ := readResp(t, br, "POST"); resp.Close {
			t.Fatal("closed after a small unread body")
		}
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, body := readResp(t, br, "GET"); body != "ignored the body" {
			t.Fatalf("next answer %q", body)
		}
	})
	t.Run("large: connection closed", func(t *testing.T) {
		c, br := dial(t, addr)
		go func() {
			fmt.Fprintf(c, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
			buf := make([]byte, 64<<10)
			for i := 0; i < 10000000/len(buf); i++ {
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		}()
		if resp, _ := readResp(t, br, "POST"); !resp.Close {
			t.Fatal("kept the connection with megabytes of unread body")
		}
	})
}

// TestServerRefusesSmuggling sends what two parsers may frame differently,
// each followed by a request hidden where a lenient parser would find it:
// the server answers once with the error, closes, and never serves the
// hidden request.
func TestServerRefusesSmuggling(t *testing.T) {
	served := make(chan string, 16)
	addr := startServer(t, &Server{MaxHeaderBytes: 4096}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served <- r.URL.Path
		echo(w, r)
	}))
	const hidden = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	tests := []struct {
		name   string
		req    string
		status int
	}{
		{"CL and TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden, 400},
		{"TE and CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + hidden, 400},
		{"duplicate CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 36\r\n\r\n" + hidden, 400},
		{"CL list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0, 36\r\n\r\n" + hidden, 400},
		{"TE not chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + hidden, 400},
		{"TE with space before colon", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + hidden, 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n" + hidden, 400},
		{"bare LF", "GET / HTTP/1.1\nHost: x\r\n\r\n" + hidden, 400},
		{"bare CR", "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r2\r\n\r\n" + hidden, 400},
		{"no Host", "GET / HTTP/1.1\r\n\r\n" + hidden, 400},
		{"bad Host", "GET / HTTP/1.1\r\nHost: a b@c\r\n\r\n" + hidden, 400},
		{"bad target", "GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n" + hidden, 400},
		{"HTTP/2 in HTTP/1 framing", "GET / HTTP/2.0\r\nHost: x\r\n\r\n" + hidden, 505},
		{"head too large", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 5000) + "\r\n\r\n" + hidden, 431},
		{"chunk size bare LF", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n" + hidden, 400},
		{"chunk data without CRLF", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n" + hidden, 400},
		{"chunk size overflow", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000001\r\nabc\r\n0\r\n\r\n" + hidden, 400},
		{"chunk size with junk", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3 x\r\nabc\r\n0\r\n\r\n" + hidden, 400},
		{"trailer obs-fold", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n 2\r\n\r\n" + hidden, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, br := dial(t, addr)
			io.WriteString(c, tt.req)
			resp, _ := readResp(t, br, "POST")
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if !resp.Close {
				t.Fatal("no Connection: close on a refused request")
			}
			expectClosed(t, br)
		drain:
			for {
				select {
				case p := <-served:
					if p == "/smuggled" {
						t.Fatal("served the smuggled request")
					}
				default:
					break drain
				}
			}
		})
	}
}

func TestServerHandlerPanic(t *testing.T) {
	addr := startServer(t, &Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/abort":
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "wrong")
			panic(http.ErrAbortHandler)
		case "/panic":
			panic("boom")
		}
		echo(w, r)
	}))
	for _, path := range []string{"/abort", "/panic"} {
		c, br := dial(t, addr)
		// The answer before the panicking one still arrives; the panicking
		// one is not seen at all (not a complete-looking wrong answer).
		fmt.Fprintf(c, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
		if _, body := readResp(t, br, "GET"); body != "GET /ok " {
			t.Fatalf("%s: first answer %q", path, body)
		}
		expectClosed(t, br)
	}
}

func TestServerHijack(t *testing.T) {
	addr := startServer(t, &Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo: " + line)
		brw.Flush()
	}))
	c, br := dial(t, addr)
	// "ping" arrives in the same write as the head: the hijacker gets it
	// from the buffered reader.
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nping\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("%v %v", resp, err)
	}
	if line, err := br.ReadString('\n'); err != nil || line != "echo: ping\n" {
		t.Fatalf("%q %v", line, err)
	}
}

func TestServerShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	s := &Server{}
	addr := startServer(t, s, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			<-release
		}
		echo(w, r)
	}))
	idle, idleBr := dial(t, addr)
	io.WriteString(idle, "GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
	readResp(t, idleBr, "GET")
	busy, busyBr := dial(t, addr)
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started

	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	expectClosed(t, idleBr) // the idle connection is closed at once
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	default:
	}
	close(release)
	resp, body := readResp(t, busyBr, "GET")
	if body != "GET /slow " || !resp.Close {
		t.Fatalf("in-flight answer %q (close %v), want it whole with Connection: close", body, resp.Close)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}

func TestServerShutdownDeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{}, 1)
	s := &Server{}
	addr := startServer(t, s, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done(): // Close cancels it
		}
	}))
	c, br := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown with a done context: %v", err)
	}
	s.Close()
	if _, err := io.ReadAll(br); err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("after Close: %v", err)
	}
}

func isReset(err error) bool { return strings.Contains(err.Error(), "reset") }
