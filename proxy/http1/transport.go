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
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNotSent marks a RoundTrip error after which the upstream cannot have
// seen any byte of the request (the dial failed, or the first write did):
// sending it again, anywhere, is safe whatever its method.
var ErrNotSent = errors.New("http1: request not sent")

// errInvalid marks a request refused before sending (a control byte in a
// header, an invalid method): sending it again would fail the same way.
var errInvalid = errors.New("invalid request")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %w: "+format, append([]any{ErrNotSent, errInvalid}, args...)...)
}

// Defaults of Transport's zero fields.
const (
	DefaultConnectTimeout    = time.Second
	DefaultMaxIdleConnsPer   = 256
	DefaultIdleConnTimeout   = 90 * time.Second
	DefaultMaxResponseHeader = 64 << 10
)

// Transport is an http.RoundTripper for plain http:// upstreams speaking
// HTTP/1.1, for the gateway's hot path. Unlike net/http's Transport it
// runs no goroutine per connection and hands nothing between goroutines:
// RoundTrip writes the request and reads the response head on the
// caller's goroutine, and the response body is read from the connection
// by whoever reads Body. At the body's clean end the connection goes back
// to a per-host LIFO idle pool.
//
// Cancelling the request's context aborts a blocked dial, write or read
// at once (a context.AfterFunc sets an immediate deadline on the
// connection, which is then closed, not reused). A reused idle connection
// that the upstream closed before answering (its keep-alive timeout
// raced the request) is retried once on a new connection when nothing was
// written or the request is replayable (GET, HEAD, OPTIONS, TRACE or an
// Idempotency-Key, with a rewindable body), as net/http does.
//
// Requests it does not handle go to Fallback: other schemes (https),
// CONNECT, protocol upgrades, requests with trailers, and bodies that are neither
// absent nor rewindable (GetBody nil): net/http writes those while it
// already reads the answer, which an upstream that answers before reading
// a large body needs. With Fallback nil, it handles upgrades itself
// (a 101's Body is the connection, an io.ReadWriteCloser) and streams
// bodies, and refuses the rest.
//
// Response trailers are read and dropped; 1xx responses other than 101
// are skipped. The zero Transport is ready to use.
type Transport struct {
	// DialContext opens connections; nil uses a net.Dialer with TCP
	// keep-alive. ConnectTimeout bounds it either way.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// ConnectTimeout bounds a dial; default DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// MaxIdleConnsPerHost caps the idle connections kept per host;
	// default DefaultMaxIdleConnsPer.
	MaxIdleConnsPerHost int
	// IdleConnTimeout closes connections idle for about this long (between
	// half of it and all of it); default DefaultIdleConnTimeout.
	IdleConnTimeout time.Duration
	// MaxResponseHeaderBytes bounds a response head; default
	// DefaultMaxResponseHeader.
	MaxResponseHeaderBytes int
	// Fallback serves the requests this Transport does not (see above).
	Fallback http.RoundTripper

	mu     sync.Mutex
	idle   map[string][]*conn // by URL.Host; most recently used last
	nidle  int
	gen    uint64      // sweep generation, see sweep
	timer  *time.Timer // runs sweep while connections are idle
	armed  bool
	dialer net.Dialer
}

// conn is one upstream connection. Between requests it holds no buffer:
// its reader goes back to a pool while it is idle.
type conn struct {
	t      *Transport
	nc     net.Conn
	br     *bufio.Reader
	raw    []byte // the response head's bytes, reused
	key    string
	reused bool   // it served a request before this one
	gen    uint64 // the sweep generation it went idle in
	wn     int64  // bytes of this request written to nc
	stop   func() bool
	ctx    context.Context
	abort  func() // sets an immediate deadline; made once per connection
	close1 bool   // do not reuse after this exchange
}

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
	aLongAgo   = time.Unix(1, 0)
)

// RoundTrip sends req and returns the response head; see Transport.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if fb, err := t.routed(req); fb || err != nil {
		if err != nil {
			closeBody(req)
			return nil, err
		}
		return t.Fallback.RoundTrip(req)
	}
	return t.exchange(req.Context(), req, Forward{})
}

// Forward is how RoundTripForward rewrites a request's head on its way
// through a proxy, without copying the request's header map.
type Forward struct {
	// Skip reports whether the field name of h (the request's header) is
	// left out: hop-by-hop fields and those Extra replaces. A nil Skip
	// keeps every field.
	Skip func(h http.Header, name string) bool
	// Extra is appended to the head after the request's fields: complete
	// field lines, each "Name: value\r\n". A line that is not a valid
	// field (a bare CR or LF, a control byte, a name that is not a token)
	// fails the request before anything is sent.
	Extra []byte
}

// ErrNotForwardable is RoundTripForward's answer to a request it does not
// carry itself (one RoundTrip would hand to Fallback, or refuse): nothing
// was sent; send a rewritten copy with RoundTrip instead.
var ErrNotForwardable = fmt.Errorf("%w: http1: request needs the fallback transport", ErrNotSent)

// RoundTripForward is RoundTrip for a proxy: req's header goes out as fw
// says (req and its header are only read, so the incoming request's header
// can be passed as it is), under ctx instead of req's own context.
// Requests RoundTrip would give to Fallback get ErrNotForwardable.
func (t *Transport) RoundTripForward(ctx context.Context, req *http.Request, fw Forward) (*http.Response, error) {
	if !validExtra(fw.Extra) {
		closeBody(req)
		return nil, invalid("forwarding fields %q", fw.Extra)
	}
	if fb, err := t.routed(req); fb || err != nil {
		if err == nil {
			err = ErrNotForwardable
		}
		return nil, err
	}
	return t.exchange(ctx, req, fw)
}

// validExtra reports whether b is a sequence of well-formed field lines:
// a token, a colon, a value without control bytes (HTAB aside), CRLF.
func validExtra(b []byte) bool {
	for len(b) > 0 {
		i := bytes.Index(b, crlf)
		if i < 0 {
			return false
		}
		line := b[:i]
		b = b[i+2:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return false
		}
		for _, c := range line[:colon] {
			if !isTchar(c) {
				return false
			}
		}
		for _, c := range line[colon+1:] {
			if c < ' ' && c != '\t' || c == 0x7f {
				return false
			}
		}
	}
	return true
}

var crlf = []byte("\r\n")

// exchange sends req on a pooled or new connection to its host, once more
// on a fresh one when a reused connection turns out stale.
func (t *Transport) exchange(ctx context.Context, req *http.Request, fw Forward) (*http.Response, error) {
	for retried := false; ; retried = true {
		if err := ctx.Err(); err != nil {
			closeBody(req)
			return nil, fmt.Errorf("%w: %w", ErrNotSent, err)
		}
		pc, err := t.getConn(ctx, req.URL.Host, retried)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, err := pc.roundTrip(ctx, req, fw)
		if err == nil {
			return resp, nil
		}
		if retried || !pc.reused || ctx.Err() != nil || !retryable(req, err) {
			return nil, err
		}
		// The upstream closed a kept-alive connection before it answered:
		// once more on a fresh one, with the body rewound.
		if hasBody(req) {
			b, gerr := req.GetBody()
			if gerr != nil {
				return nil, err
			}
			r2 := *req
			r2.Body = b
			req = &r2
		}
	}
}

// errStale wraps an error that ended a reused connection before any byte
// of the answer came back.
type errStale struct{ err error }

func (e *errStale) Error() string {
	return "http1: upstream closed the kept-alive connection before answering: " + e.err.Error()
}
func (e *errStale) Unwrap() error { return e.err }

func retryable(req *http.Request, err error) bool {
	if hasBody(req) && req.GetBody == nil {
		return false
	}
	if errors.Is(err, ErrNotSent) {
		return !errors.Is(err, errInvalid)
	}
	var st *errStale
	if !errors.As(err, &st) {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, k1 := req.Header["Idempotency-Key"]
	_, k2 := req.Header["X-Idempotency-Key"]
	return k1 || k2
}

func hasBody(req *http.Request) bool { return req.Body != nil && req.Body != http.NoBody }

func closeBody(req *http.Request) {
	if hasBody(req) {
		req.Body.Close()
	}
}

// routed reports whether req goes to Fallback, or why it cannot be sent.
func (t *Transport) routed(req *http.Request) (bool, error) {
	u := req.URL
	if u == nil {
		return false, fmt.Errorf("%w: nil Request.URL", ErrNotSent)
	}
	fallback := u.Scheme != "http" || len(req.Trailer) > 0 || req.Method == http.MethodConnect
	if t.Fallback != nil {
		_, upgrade := req.Header["Upgrade"]
		fallback = fallback || upgrade || hasBody(req) && req.GetBody == nil
	}
	switch {
	case fallback && t.Fallback != nil:
		return true, nil
	case fallback:
		return false, fmt.Errorf("%w: http1.Transport serves http:// requests without trailers (got %s)", ErrNotSent, u.Scheme)
	case u.Host == "":
		return false, fmt.Errorf("%w: no host in the request URL", ErrNotSent)
	}
	return false, nil
}

// getConn returns an idle connection to host, or dials one (always when
// fresh).
func (t *Transport) getConn(ctx context.Context, host string, fresh bool) (*conn, error) {
	if !fresh {
		if pc := t.takeIdle(host); pc != nil {
			return pc, nil
		}
	}
	addr := host
	if strings.LastIndexByte(host, ':') <= strings.LastIndexByte(host, ']') { // no port
		addr = net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), "80")
	}
	timeout := t.ConnectTimeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	var nc net.Conn
	var err error
	if t.DialContext != nil {
		dctx, cancel := context.WithTimeout(ctx, timeout)
		nc, err = t.DialContext(dctx, "tcp", addr)
		cancel()
	} else {
		d := net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
		nc, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotSent, err)
	}
	pc := &conn{t: t, nc: nc, key: host}
	pc.abort = func() { nc.SetDeadline(aLongAgo) }
	return pc, nil
}

func (t *Transport) takeIdle(host string) *conn {
	t.mu.Lock()
	list := t.idle[host]
	if len(list) == 0 {
		t.mu.Unlock()
		return nil
	}
	pc := list[len(list)-1]
	list[len(list)-1] = nil
	t.idle[host] = list[:len(list)-1]
	t.nidle--
	t.mu.Unlock()
	pc.reused = true
	return pc
}

// putIdle keeps pc for the next request to its host, or closes it.
func (t *Transport) putIdle(pc *conn) {
	if pc.br.Buffered() > 0 { // bytes nobody asked for: the framing is off
		pc.closeConn()
		return
	}
	pc.br.Reset(nil) // a pooled reader must not keep the connection alive
	readerPool.Put(pc.br)
	pc.br = nil
	pc.ctx, pc.stop = nil, nil
	max := t.MaxIdleConnsPerHost
	if max <= 0 {
		max = DefaultMaxIdleConnsPer
	}
	t.mu.Lock()
	if t.idle == nil {
		t.idle = map[string][]*conn{}
	}
	list := t.idle[pc.key]
	if len(list) >= max {
		t.mu.Unlock()
		pc.nc.Close()
		return
	}
	pc.gen = t.gen
	t.idle[pc.key] = append(list, pc)
	t.nidle++
	if !t.armed {
		t.armed = true
		if t.timer == nil {
			t.timer = time.AfterFunc(t.sweepEvery(), t.sweep)
		} else {
			t.timer.Reset(t.sweepEvery())
		}
	}
	t.mu.Unlock()
}

func (t *Transport) sweepEvery() time.Duration {
	d := t.IdleConnTimeout
	if d <= 0 {
		d = DefaultIdleConnTimeout
	}
	return max(d/2, time.Millisecond)
}

// sweep closes the connections that went idle before the previous sweep:
// one timer for the whole Transport instead of one per connection, and no
// clock read per request.
func (t *Transport) sweep() {
	var doomed []*conn
	t.mu.Lock()
	t.gen++
	for host, list := range t.idle {
		i := 0
		for i < len(list) && list[i].gen+2 <= t.gen {
			doomed = append(doomed, list[i])
			i++
		}
		if i > 0 {
			n := copy(list, list[i:])
			clear(list[n:])
			list = list[:n]
			t.nidle -= i
		}
		if len(list) == 0 {
			delete(t.idle, host)
		} else {
			t.idle[host] = list
		}
	}
	t.armed = t.nidle > 0
	if t.armed {
		t.timer.Reset(t.sweepEvery())
	}
	t.mu.Unlock()
	for _, pc := range doomed {
		pc.nc.Close()
	}
}

// CloseIdleConnections closes every idle connection; connections in use
// are closed when their exchange ends, if the pool is then full.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle, t.nidle = nil, 0
	if t.timer != nil {
		t.timer.Stop()
	}
	t.armed = false
	t.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			pc.nc.Close()
		}
	}
	if c, ok := t.Fallback.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// IdleConns reports how many idle connections the Transport holds (for
// tests and metrics).
func (t *Transport) IdleConns() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nidle
}

// Write counts the bytes that reach the socket, so a failed write knows
// whether the upstream may have seen part of the request.
func (pc *conn) Write(p []byte) (int, error) {
	n, err := pc.nc.Write(p)
	pc.wn += int64(n)
	return n, err
}

func (pc *conn) closeConn() {
	pc.nc.Close()
	if pc.br != nil {
		pc.br.Reset(nil)
		readerPool.Put(pc.br)
		pc.br = nil
	}
}

// roundTrip runs one exchange on pc. On error pc is closed.
func (pc *conn) roundTrip(ctx context.Context, req *http.Request, fw Forward) (*http.Response, error) {
	pc.ctx, pc.wn, pc.close1 = ctx, 0, req.Close
	if ctx.Done() != nil {
		// A stale abort cannot hit the connection's next exchange: when
		// stop reports that it already ran, the connection is closed.
		pc.stop = context.AfterFunc(ctx, pc.abort)
	}
	if pc.br == nil {
		pc.br = readerPool.Get().(*bufio.Reader)
		pc.br.Reset(pc.nc)
	}
	if err := pc.writeRequest(req, fw); err != nil {
		return nil, pc.fail(err, false)
	}
	resp, err := pc.readResponse(req)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// fail closes pc after a failed exchange and shapes the error: ctx's
// error when it was cancelled, ErrNotSent when nothing was written,
// errStale when a reused connection ended before any answer.
func (pc *conn) fail(err error, received bool) error {
	if pc.stop != nil {
		pc.stop()
	}
	pc.closeConn()
	if cerr := pc.ctx.Err(); cerr != nil {
		if pc.wn == 0 {
			return fmt.Errorf("%w: %w", ErrNotSent, cerr)
		}
		return fmt.Errorf("http1: %w", cerr)
	}
	switch {
	case pc.wn == 0 && errors.Is(err, ErrNotSent):
		return err
	case pc.wn == 0:
		return fmt.Errorf("%w: %w", ErrNotSent, err)
	case pc.reused && !received && !errors.Is(err, ErrResponseHeadTooLarge) && !isParseError(err):
		return &errStale{err: err}
	}
	return err
}

func isParseError(err error) bool {
	return Status(err) != 0 || errors.Is(err, ErrBadStatusLine) || errors.Is(err, ErrTooManyInformational)
}

// bodyDone is the body's end: back to the pool after a clean end (err is
// io.EOF), closed otherwise. It returns the error the body's Read reports.
func (pc *conn) bodyDone(err error, untilClose bool) error {
	stopped := pc.stop == nil || pc.stop()
	ctx := pc.ctx
	if err == io.EOF && stopped && !pc.close1 && !untilClose {
		pc.t.putIdle(pc)
		return io.EOF
	}
	pc.closeConn()
	if err == io.EOF {
		return io.EOF
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("http1: reading the response body: %w", cerr)
	}
	if err == errClosedEarly {
		return err
	}
	return fmt.Errorf("http1: reading the response body: %w", err)
}

// readResponse reads the answer's head, skipping 1xx informational
// responses but 101.
func (pc *conn) readResponse(req *http.Request) (*http.Response, error) {
	max := pc.t.MaxResponseHeaderBytes
	if max <= 0 {
		max = DefaultMaxResponseHeader
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	for i := 0; ; i++ {
		if i > maxInformational {
			return nil, pc.fail(ErrTooManyInformational, true)
		}
		resp, err := readResponse(pc.br, method, max, &pc.raw)
		if err != nil {
			return nil, pc.fail(err, i > 0 || len(pc.raw) > 0)
		}
		resp.Request = req
		code := resp.StatusCode
		if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
			continue
		}
		if code == http.StatusSwitchingProtocols {
			return pc.upgraded(resp), nil
		}
		if resp.Close {
			pc.close1 = true
		}
		if resp.body.mode == bodyNone {
			pc.bodyDone(io.EOF, false)
			return &resp.Response, nil
		}
		resp.body.pc = pc
		return &resp.Response, nil
	}
}

// upgraded hands the connection to a 101's caller as its Body.
func (pc *conn) upgraded(resp *response) *http.Response {
	if pc.stop != nil {
		pc.stop()
	}
	pc.nc.SetDeadline(time.Time{})
	resp.Body = &upgradedConn{br: pc.br, nc: pc.nc}
	resp.ContentLength = -1
	return &resp.Response
}

// upgradedConn is a switched connection: reads drain what the head's
// reader buffered first.
type upgradedConn struct {
	br *bufio.Reader
	nc net.Conn
}

func (u *upgradedConn) Read(p []byte) (int, error)  { return u.br.Read(p) }
func (u *upgradedConn) Write(p []byte) (int, error) { return u.nc.Write(p) }
func (u *upgradedConn) Close() error                { return u.nc.Close() }

// writeRequest writes req's head and body through a pooled buffer.
func (pc *conn) writeRequest(req *http.Request, fw Forward) error {
	bw := writerPool.Get().(*bufio.Writer)
	bw.Reset(pc)
	err := writeHead(bw, req, fw)
	if err == nil && hasBody(req) {
		err = writeBody(bw, req)
	}
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	writerPool.Put(bw)
	closeBody(req)
	return err
}

// excluded are the fields writeHead writes itself (or never), as net/http.
func excluded(k string) bool {
	switch k {
	case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
		return true
	}
	return false
}

func writeHead(bw *bufio.Writer, req *http.Request, fw Forward) error {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	if !validToken(method) {
		return invalid("method %q", method)
	}
	u := req.URL
	path, query := u.Opaque, u.RawQuery
	if path == "" {
		path = u.EscapedPath()
		if path == "" {
			path = "/"
		}
	}
	host := req.Host
	if host == "" {
		host = u.Host
	}
	if !validValue(path) || !validValue(query) || !validValue(host) || strings.ContainsAny(path, " \t") || strings.ContainsAny(query, " \t") {
		return invalid("control character or space in the request URL or Host")
	}
	bw.WriteString(method)
	bw.WriteByte(' ')
	bw.WriteString(path)
	if query != "" || u.ForceQuery {
		bw.WriteByte('?')
		bw.WriteString(query)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	if ua := req.Header["User-Agent"]; len(ua) > 0 && ua[0] != "" {
		if !validValue(ua[0]) {
			return invalid("control character in User-Agent")
		}
		bw.WriteString("User-Agent: ")
		bw.WriteString(ua[0])
		bw.WriteString("\r\n")
	}
	switch {
	case !hasBody(req):
		if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
			bw.WriteString("Content-Length: 0\r\n")
		}
	case req.ContentLength > 0:
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), req.ContentLength, 10))
		bw.WriteString("\r\n")
	default: // unknown length
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if req.Close {
		bw.WriteString("Connection: close\r\n")
	}
	for k, vs := range req.Header {
		if excluded(k) || fw.Skip != nil && fw.Skip(req.Header, k) {
			continue
		}
		if !validToken(k) {
			return invalid("header field name %q", k)
		}
		for _, v := range vs {
			if !validValue(v) {
				return invalid("control character in the value of %q", k)
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	bw.Write(fw.Extra)
	_, err := bw.WriteString("\r\n")
	return err
}

// writeBody copies the body into bw's own buffer (no copy buffer of its
// own): exactly ContentLength bytes, or chunks when the length is unknown.
func writeBody(bw *bufio.Writer, req *http.Request) error {
	chunked := req.ContentLength <= 0
	remain := req.ContentLength
	for chunked || remain > 0 {
		if bw.Available() < 64 {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		buf := bw.AvailableBuffer()[:bw.Available()]
		if chunked {
			// Read the data 18 bytes in (room for the size line), then
			// write the size line and move the data up behind it.
			buf = buf[18 : len(buf)-2]
		} else if int64(len(buf)) > remain {
			buf = buf[:remain]
		}
		n, err := req.Body.Read(buf)
		if n > 0 {
			if chunked {
				var line [20]byte
				bw.Write(append(strconv.AppendInt(line[:0], int64(n), 16), '\r', '\n'))
				bw.Write(buf[:n]) // an overlapping move down: copy is memmove
				bw.WriteString("\r\n")
			} else {
				bw.Write(buf[:n]) // already in place: a copy onto itself
				remain -= int64(n)
			}
		}
		if err == io.EOF {
			if !chunked && remain > 0 {
				return fmt.Errorf("http1: request body shorter than its ContentLength: %w", io.ErrUnexpectedEOF)
			}
			break
		}
		if err != nil {
			return fmt.Errorf("http1: reading the request body: %w", err)
		}
	}
	if chunked {
		bw.WriteString("0\r\n\r\n")
	}
	return nil
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}

// validValue refuses control bytes (CR and LF above all: header
// injection) but HTAB.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
