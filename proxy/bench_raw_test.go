package proxy

import (
	"bytes"
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
)

// The listener-raw row of BenchmarkProxyRoundTrip: the gateway between a
// client and backends that allocate nothing per request, so that the
// allocs/op it reports are the gateway's own (server, routing, tries,
// upstream transport) over real sockets.
//
//	rawClient ─► gateway listener (http1.Server) ─► gateway ─► http1.Transport ─► rawBackend ×3

// rawBackend is a TCP server that answers every request head it reads
// with the same pre-serialized response. It handles only bodiless
// requests (the gateway forwards GETs here), allocates nothing per
// request, and serves each connection on its own goroutine until the
// connection or the listener closes.
type rawBackend struct {
	ln   net.Listener
	resp []byte
	wg   sync.WaitGroup
	mu   sync.Mutex
	cs   map[net.Conn]struct{}
}

// newRawBackend listens on loopback and answers with resp.
func newRawBackend(tb testing.TB, resp []byte) *rawBackend {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	b := &rawBackend{ln: ln, resp: resp, cs: map[net.Conn]struct{}{}}
	b.wg.Add(1)
	go b.accept()
	tb.Cleanup(b.close)
	return b
}

func (b *rawBackend) url() string { return "http://" + b.ln.Addr().String() }

func (b *rawBackend) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.cs[c] = struct{}{}
		b.mu.Unlock()
		b.wg.Add(1)
		go b.serve(c)
	}
}

// serve answers each complete head ("\r\n\r\n"-terminated) in what it
// reads; a partial head waits for more bytes.
func (b *rawBackend) serve(c net.Conn) {
	defer b.wg.Done()
	defer c.Close()
	buf := make([]byte, 8<<10)
	n := 0
	for {
		m, err := c.Read(buf[n:])
		if err != nil {
			return
		}
		n += m
		start := 0
		for {
			i := bytes.Index(buf[start:n], crlfcrlf)
			if i < 0 {
				break
			}
			start += i + 4
			if _, err := c.Write(b.resp); err != nil {
				return
			}
		}
		n = copy(buf, buf[start:n])
		if n == len(buf) {
			return // a head larger than the buffer: not what this backend serves
		}
	}
}

func (b *rawBackend) close() {
	b.ln.Close()
	b.mu.Lock()
	for c := range b.cs {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

var crlfcrlf = []byte("\r\n\r\n")

// rawResponse is the backend's answer: 200 with Content-Type,
// Content-Length and Content-Digest, as `bulwark demo` answers.
func rawResponse(body []byte) []byte {
	var b []byte
	b = append(b, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Digest: "...)
	b = append(b, ContentDigest(body)...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\nDate: Fri, 04 Dec 2026 00:00:00 GMT\r\n\r\n"...)
	return append(b, body...)
}

// rawClient sends a pre-serialized request on one keep-alive connection
// and reads each answer with a fixed buffer: nothing allocated per
// request.
type rawClient struct {
	c   net.Conn
	req []byte
	buf []byte
	n   int // bytes in buf
}

func dialRawClient(tb testing.TB, addr, path string) *rawClient {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: wrk\r\n\r\n"
	return &rawClient{c: c, req: []byte(req), buf: make([]byte, 16<<10)}
}

var (
	errRawStatus  = errors.New("rawClient: answer is not 200")
	errRawFraming = errors.New("rawClient: answer has no usable Content-Length")
	errRawTooBig  = errors.New("rawClient: answer larger than the buffer")
	clHeader      = []byte("\r\ncontent-length:")
)

// roundTrip sends the request and reads one answer, returning its body
// length. Only 200 answers with a Content-Length are accepted (what the
// gateway sends for the backend's answer).
func (rc *rawClient) roundTrip() (int, error) {
	if _, err := rc.c.Write(rc.req); err != nil {
		return 0, err
	}
	headEnd := -1
	for {
		if i := bytes.Index(rc.buf[:rc.n], crlfcrlf); i >= 0 {
			headEnd = i + 4
			break
		}
		if err := rc.fill(); err != nil {
			return 0, err
		}
	}
	head := rc.buf[:headEnd]
	if len(head) < 12 || string(head[9:12]) != "200" {
		return 0, errRawStatus
	}
	clen := -1
	for i := 0; i+len(clHeader) <= len(head); i++ { // case-insensitive search, no allocation
		if head[i] == '\r' && equalFoldBytes(head[i:i+len(clHeader)], clHeader) {
			j := i + len(clHeader)
			for j < len(head) && head[j] == ' ' {
				j++
			}
			clen = 0
			for ; j < len(head) && head[j] >= '0' && head[j] <= '9'; j++ {
				clen = clen*10 + int(head[j]-'0')
			}
			break
		}
	}
	if clen < 0 {
		return 0, errRawFraming
	}
	total := headEnd + clen
	if total > len(rc.buf) {
		return 0, errRawTooBig
	}
	for rc.n < total {
		if err := rc.fill(); err != nil {
			return 0, err
		}
	}
	rc.n = copy(rc.buf, rc.buf[total:rc.n])
	return clen, nil
}

func (rc *rawClient) fill() error {
	if rc.n == len(rc.buf) {
		return errRawTooBig
	}
	m, err := rc.c.Read(rc.buf[rc.n:])
	rc.n += m
	return err
}

func equalFoldBytes(a, lower []byte) bool {
	for i := range a {
		c := a[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// benchRaw runs the listener-raw row: sequential keep-alive GETs from
// one rawClient through gw's listener.
func benchRaw(b *testing.B, gw *Gateway, want int) {
	rc := dialRawClient(b, gw.Addrs()[0].String(), "/read")
	for range 100 { // warm up: connections pooled, latency estimates past their minimum samples
		if _, err := rc.roundTrip(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		n, err := rc.roundTrip()
		if err != nil {
			b.Fatal(err)
		}
		if n != want {
			b.Fatalf("%d body bytes, want %d", n, want)
		}
	}
}

// benchRawParallel is benchRaw with many clients at once (wrk -c64's
// shape), each on its own connection.
func benchRawParallel(b *testing.B, gw *Gateway, want int) {
	addr := gw.Addrs()[0].String()
	b.SetParallelism(32)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		rc := dialRawClient(b, addr, "/read")
		for pb.Next() {
			n, err := rc.roundTrip()
			if err != nil {
				b.Error(err)
				return
			}
			if n != want {
				b.Errorf("%d body bytes, want %d", n, want)
				return
			}
		}
	})
}
