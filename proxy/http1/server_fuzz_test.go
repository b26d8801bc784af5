package http1

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// memConn is a net.Conn over a reader and a writer, with no deadlines.
type memConn struct {
	r io.Reader
	w io.Writer
}

var memAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

func (m *memConn) Read(p []byte) (int, error)       { return m.r.Read(p) }
func (m *memConn) Write(p []byte) (int, error)      { return m.w.Write(p) }
func (m *memConn) Close() error                     { return nil }
func (m *memConn) LocalAddr() net.Addr              { return memAddr }
func (m *memConn) RemoteAddr() net.Addr             { return memAddr }
func (m *memConn) SetDeadline(time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(time.Time) error { return nil }

// serveMem serves everything in in on one connection and returns what the
// server wrote.
func serveMem(s *Server, in []byte) []byte {
	s.init()
	var out bytes.Buffer
	c := s.newConn(&memConn{r: bytes.NewReader(in), w: &out}, "")
	s.track(c)
	s.wg.Add(1)
	c.serve()
	return out.Bytes()
}

// FuzzServeConn feeds arbitrary bytes to one connection and checks that
// the server never panics and that what it writes back is a sequence of
// well-formed answers, at most one per request the handler saw plus one
// error answer, with nothing after an answer that says Connection: close.
func FuzzServeConn(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n\r\nHEAD /h HTTP/1.1\r\nHost: a\r\n\r\nGET /flush HTTP/1.0\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;e\r\nabc\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n",
		"GET /ignore HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a/b;c=d/e.f?q=1&r=%20#x HTTP/1.1\r\nHost: a\r\n\r\nGET //x/%41?q HTTP/1.1\r\nHost: a\r\n\r\nGET /(x)!*' HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var methods []string
		s := &Server{MaxHeaderBytes: 2048, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			methods = append(methods, r.Method)
			if r.Method != http.MethodConnect {
				if std, err := url.ParseRequestURI(r.RequestURI); err != nil || *std != *r.URL {
					t.Errorf("URL of %q: %#v, net/url says %#v (%v)", r.RequestURI, r.URL, std, err)
				}
			}
			if r.URL.Path != "/ignore" {
				if _, err := io.Copy(io.Discard, r.Body); err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
			}
			if r.URL.Path == "/flush" {
				io.WriteString(w, "a")
				w.(http.Flusher).Flush()
			}
			io.WriteString(w, r.Method+" "+r.URL.Path)
		})}
		var out []byte
		done := make(chan struct{})
		go func() { out = serveMem(s, in); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second): // far more than any input needs, even on a loaded machine
			panic(fmt.Sprintf("serving %q hangs", in))
		}
		br := bufio.NewReader(bytes.NewReader(out))
		answers := 0
		for {
			if _, err := br.Peek(1); err == io.EOF {
				break
			}
			method := http.MethodGet
			if answers < len(methods) {
				method = methods[answers]
			}
			resp, err := http.ReadResponse(br, &http.Request{Method: method})
			if err != nil {
				t.Fatalf("answer %d is malformed (%v): %q", answers, err, out)
			}
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				t.Fatalf("answer %d's body is malformed (%v): %q", answers, err, out)
			}
			if resp.StatusCode == http.StatusContinue {
				continue
			}
			answers++
			if resp.Close {
				if _, err := br.Peek(1); err != io.EOF {
					t.Fatalf("bytes after an answer with Connection: close: %q", out)
				}
			}
		}
		if answers > len(methods)+1 {
			t.Fatalf("%d answers for %d requests served: %q", answers, len(methods), out)
		}
	})
}
