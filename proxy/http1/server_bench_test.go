package http1

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
)

// repeatConn replays one request n times, then EOF; it drops what is
// written. A whole keep-alive connection with no socket: the server's own
// cost per request.
type repeatConn struct {
	memConn
	req       []byte
	left, off int
	written   int64
	closed    chan struct{}
	once      sync.Once
}

func newRepeatConn(req string, n int) *repeatConn {
	return &repeatConn{req: []byte(req), left: n, off: len(req), closed: make(chan struct{})}
}

func (r *repeatConn) Read(p []byte) (int, error) {
	if r.off == len(r.req) {
		if r.left == 0 {
			return 0, io.EOF
		}
		r.left--
		r.off = 0
	}
	n := copy(p, r.req[r.off:])
	r.off += n
	return n, nil
}

func (r *repeatConn) Write(p []byte) (int, error) { r.written += int64(len(p)); return len(p), nil }
func (r *repeatConn) Close() error                { r.once.Do(func() { close(r.closed) }); return nil }

// oneConnListener hands out one connection, then blocks until closed.
type oneConnListener struct {
	c    net.Conn
	once sync.Once
	done chan struct{}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.c })
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}
func (l *oneConnListener) Close() error {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return nil
}
func (l *oneConnListener) Addr() net.Addr { return memAddr }

// BenchmarkServer prices one request on a kept-alive connection, the
// request as wrk sends it and the answer as the gateway writes it (three
// fields and a 100-byte body with its Content-Length), on this package's
// Server and on net/http's, over the same in-memory connection:
//
//	go test -run '^$' -bench Server -benchmem ./proxy/http1/
func BenchmarkServer(b *testing.B) {
	body := bytes.Repeat([]byte("abcdefghij"), 10)
	digest := []string{"sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"}
	ctype := []string{"text/plain"}
	clen := []string{strconv.Itoa(len(body))}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			io.Copy(io.Discard, r.Body)
		}
		hd := w.Header()
		hd["Content-Digest"] = digest
		hd["Content-Type"] = ctype
		hd["Content-Length"] = clen
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	})
	const get = "GET /read HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
	const browser = "GET /read?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n" +
		"Accept: text/html,application/xhtml+xml\r\nAccept-Encoding: gzip, deflate\r\nAccept-Language: en\r\nCookie: a=b; c=d\r\n\r\n"
	post := "POST /write HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 1024\r\n\r\n" + string(bytes.Repeat([]byte("x"), 1024))
	for _, tc := range []struct{ name, req string }{{"get", get}, {"browser-get", browser}, {"post-1k", post}} {
		b.Run("http1/"+tc.name, func(b *testing.B) {
			s := &Server{Handler: h}
			s.init()
			c := newRepeatConn(tc.req, b.N)
			sc := s.newConn(c, "")
			s.track(sc)
			s.wg.Add(1)
			b.ReportAllocs()
			b.ResetTimer()
			sc.serve()
			b.StopTimer()
			if c.written < int64(b.N*len(body)) {
				b.Fatalf("wrote %d bytes for %d requests", c.written, b.N)
			}
		})
		b.Run("net-http/"+tc.name, func(b *testing.B) {
			c := newRepeatConn(tc.req, b.N)
			ln := &oneConnListener{c: c, done: make(chan struct{})}
			s := &http.Server{Handler: h}
			b.ReportAllocs()
			b.ResetTimer()
			go s.Serve(ln)
			<-c.closed
			b.StopTimer()
			s.Close()
			if c.written < int64(b.N*len(body)) {
				b.Fatalf("wrote %d bytes for %d requests", c.written, b.N)
			}
		})
	}
}
