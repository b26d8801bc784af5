package http1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"
)

// Connection states, for Shutdown: only an idle connection (waiting for
// its next request) may be closed from outside.
const (
	stateActive int32 = iota
	stateIdle
	stateClosed
	stateHijacked
)

// Read phases: what a read from the connection means, for its deadline.
const (
	phaseIdle    = iota // waiting for the next request: IdleTimeout, set before the wait
	phaseHead           // reading a head: ReadHeaderTimeout from its first byte
	phaseBody           // the request body: BodyReadTimeout per wait, set by srvBody
	phaseHandler        // no read expected
)

// srvConn is one client connection and everything reused across its
// requests. Only the connection's goroutine touches it, except the
// request body (srvBody, under its own mutex, which may be read from the
// handler's helper goroutines) and state (atomic, for Shutdown).
type srvConn struct {
	s          *Server
	rwc        net.Conn
	cr         srvConnReader
	br         *bufio.Reader
	ctx        context.Context
	cancel     context.CancelFunc
	reqCancel  context.CancelFunc // the current request's context
	remoteAddr string
	state      atomic.Int32

	phase    int       // written by the connection's goroutine only while no body read can run
	hdrStart time.Time // when the current head's first byte arrived
	dlSet    bool      // the head's deadline is set

	// out holds response bytes not yet written to rwc. hold ≥ 0 marks the
	// start of a response head that is not complete yet (WriteHeader has
	// written the status and the handler's fields, the framing fields come
	// when the body starts): flush stops there. mark is where the current
	// response starts, for dropping it when the handler aborts.
	out        []byte
	hold, mark int
	bufs       net.Buffers // scratch for writev
	werr       error       // the first write error; the connection is dead
	hijacked   bool
	parked     bool // the goroutine ends, the connection stays open (server_idle.go)

	head    Request
	scratch []byte
	tmpl    http.Request
	req     *http.Request
	body    *srvBody
	w       srvWriter
	dateSec int64
	date    []byte
}

// srvConnReader is what the bufio.Reader reads from: before a read that
// can block, it sends the answers still buffered (so that pipelining never
// leaves a client waiting on an answer we hold), and in a head it arms
// the head's deadline.
type srvConnReader struct{ c *srvConn }

func (r *srvConnReader) Read(p []byte) (int, error) {
	c := r.c
	if c.hijacked {
		return c.rwc.Read(p)
	}
	switch c.phase {
	case phaseHead:
		c.flush()
		if !c.dlSet {
			c.rwc.SetReadDeadline(c.hdrStart.Add(c.s.readHeaderTimeout()))
			c.dlSet = true
		}
	case phaseIdle:
		c.flush()
	}
	return c.rwc.Read(p)
}

// serve is the connection's goroutine: requests in order until the
// connection closes, fails, or is hijacked.
func (c *srvConn) serve() {
	defer c.s.wg.Done()
	for c.next() && c.serveOne() {
	}
	c.serveEnd()
}

// serveEnd releases the connection when its goroutine ends: closed,
// hijacked (the hijacker owns rwc and br), or parked (a parkedConn owns
// rwc; see server_idle.go).
func (c *srvConn) serveEnd() {
	s := c.s
	c.cancel()
	if c.hijacked {
		return
	}
	if c.parked {
		c.parked = false
		s.putConn(c)
		return
	}
	c.rwc.Close()
	s.untrack(c)
	s.putConn(c)
}

// next reads the next request head, after waiting for its first byte on a
// kept-alive connection. It answers malformed heads itself and reports
// whether there is a request to serve.
func (c *srvConn) next() bool {
	s := c.s
	if c.phase != phaseHead { // not the first request
		if c.br.Buffered() == 0 {
			c.phase = phaseIdle
			c.flush()
			c.state.Store(stateIdle)
			if s.shuttingDown() || c.werr != nil {
				return false
			}
			ready, parked := c.idleWait()
			c.parked = parked
			if !ready || !c.state.CompareAndSwap(stateIdle, stateActive) {
				return false // parked, closed by Shutdown, timed out, or the client left
			}
		}
		c.phase = phaseHead
		c.hdrStart = time.Now()
		c.dlSet = false
	}
	err := ReadRequest(c.br, &c.head, s.maxHeaderBytes())
	if err == nil {
		return true
	}
	if code := Status(err); code != 0 {
		c.answerError(code, err.Error())
	}
	// Otherwise the connection failed or timed out mid-head: nothing to
	// answer (as net/http and nginx do).
	return false
}

// serveOne serves the request in c.head and reports whether the
// connection stays open for another.
func (c *srvConn) serveOne() bool {
	req, err := c.newRequest()
	if err != nil {
		c.answerError(http.StatusBadRequest, err.Error())
		return false
	}
	defer c.reqCancel()
	w := &c.w
	w.reset(c, req)
	if ex, ok := req.Header["Expect"]; ok && len(ex) > 0 {
		if c.body != nil && req.ProtoMinor == 1 && hasToken([]byte(ex[0]), "100-continue") {
			c.body.expect = true
			c.flush() // earlier pipelined answers go before the 100 Continue
		} else if !hasToken([]byte(ex[0]), "100-continue") {
			c.answerError(http.StatusExpectationFailed, "unsupported Expect")
			return false
		}
	}
	if c.body != nil {
		c.phase = phaseBody
	} else {
		c.phase = phaseHandler
	}
	c.mark = len(c.out)
	if !c.callHandler(w, req) {
		c.abort()
		return false
	}
	if c.hijacked {
		return false
	}
	w.finish()
	keep := !w.closeAfter && c.werr == nil
	unread := false
	if b := c.body; b != nil {
		if keep && !b.drain() {
			keep = false
		}
		unread = !b.seal()
	}
	c.phase = phaseHandler
	c.req, c.body = nil, nil
	if !keep {
		if unread || c.br.Buffered() > 0 {
			c.lingerClose()
		} else {
			c.flush()
		}
		return false
	}
	if c.br.Buffered() == 0 {
		c.flush()
	}
	return c.werr == nil
}

// callHandler runs the handler, reporting false when it panicked (with
// http.ErrAbortHandler, quietly; anything else is logged with its stack).
func (c *srvConn) callHandler(w *srvWriter, req *http.Request) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			ok = false
			if v != http.ErrAbortHandler {
				buf := make([]byte, 16<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.s.Logger.Error("http1: handler panicked", "client", c.remoteAddr, "method", req.Method, "target", req.RequestURI, "panic", v, "stack", string(buf))
			}
		}
	}()
	c.s.Handler.ServeHTTP(w, req)
	return true
}

// abort ends the connection after a handler panic: the answers before
// this one still go out, this one's unsent bytes do not (the client sees
// a cut answer, never a complete-looking wrong one).
func (c *srvConn) abort() {
	if c.body != nil {
		c.body.seal()
	}
	if c.hijacked {
		return
	}
	c.out = c.out[:c.mark]
	c.hold = -1
	c.flush()
}

// answerError writes a complete error answer and closes: the message
// boundary is lost, so nothing more can be read from the connection.
func (c *srvConn) answerError(code int, msg string) {
	text := http.StatusText(code)
	body := strconv.Itoa(code) + " " + text + ": " + msg + "\n"
	c.hold = -1
	c.out = append(c.out, "HTTP/1.1 "...)
	c.out = strconv.AppendInt(c.out, int64(code), 10)
	c.out = append(c.out, ' ')
	c.out = append(c.out, text...)
	c.out = append(c.out, "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: "...)
	c.out = strconv.AppendInt(c.out, int64(len(body)), 10)
	c.out = append(c.out, "\r\n\r\n"...)
	c.out = append(c.out, body...)
	c.lingerClose()
}

// lingerClose sends what is buffered, then half-closes and reads (and
// drops) what the client still sends for a short while before the
// caller closes: closing a socket with unread input resets it, and the
// reset can destroy the answer before the client reads it.
func (c *srvConn) lingerClose() {
	c.phase = phaseHandler
	c.flush()
	if c.werr != nil {
		return
	}
	cw, ok := c.rwc.(interface{ CloseWrite() error })
	if !ok {
		return
	}
	cw.CloseWrite()
	c.rwc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	io.CopyN(io.Discard, c.rwc, 256<<10)
}

// flush writes out's complete part to the connection.
func (c *srvConn) flush() {
	n := len(c.out)
	if c.hold >= 0 {
		n = c.hold
	}
	if n == 0 {
		return
	}
	if c.werr == nil {
		c.armWrite()
		if _, err := c.rwc.Write(c.out[:n]); err != nil {
			c.writeFailed(err)
		}
	}
	rest := copy(c.out, c.out[n:])
	c.out = c.out[:rest]
	if c.hold >= 0 {
		c.hold = 0
	}
	c.mark = 0
}

// write appends p to the answer, writing it through when it is large.
func (c *srvConn) write(p []byte) {
	if len(c.out)+len(p) <= cap(c.out) {
		c.out = append(c.out, p...)
		return
	}
	if c.hold >= 0 || len(p) < cap(c.out)/2 {
		c.flush()
		c.out = append(c.out, p...)
		return
	}
	// Large: one writev of what is buffered and p, without copying p.
	if c.werr == nil {
		c.armWrite()
		c.bufs = append(c.bufs[:0], c.out, p)
		if _, err := c.bufs.WriteTo(c.rwc); err != nil {
			c.writeFailed(err)
		}
		c.bufs = c.bufs[:0]
	}
	c.out = c.out[:0]
	c.mark = 0
}

func (c *srvConn) armWrite() {
	if c.w.userWrite {
		return
	}
	c.rwc.SetWriteDeadline(time.Now().Add(c.s.writeTimeout()))
}

func (c *srvConn) writeFailed(err error) {
	c.werr = err
	c.cancel() // the client is gone: whatever the handler still does for it can stop
}

// newRequest builds the handler's *http.Request from c.head: one string
// holds the head's bytes (field names canonicalized in place), and every
// string of the request is a slice of it. The Request is not pooled: a
// handler may keep it (or share it with goroutines) past ServeHTTP.
func (c *srvConn) newRequest() (*http.Request, error) {
	h := &c.head
	raw := h.Raw
	c.scratch = append(c.scratch[:0], raw...)
	for _, f := range h.Fields {
		off := cap(raw) - cap(f.Name)
		canonicalKey(c.scratch[off : off+len(f.Name)])
	}
	all := string(c.scratch)
	sub := func(b []byte) string {
		if len(b) == 0 {
			return ""
		}
		off := cap(raw) - cap(b)
		return all[off : off+len(b)]
	}
	ex := new(srvReqExtra)
	header := make(http.Header, len(h.Fields))
	vals := ex.vals[:]
	if len(h.Fields) > len(ex.vals) {
		vals = make([]string, len(h.Fields))
	}
	for i, f := range h.Fields {
		name := sub(f.Name)
		if name == "Host" || name == "Transfer-Encoding" { // moved to Request.Host, Request.TransferEncoding
			continue
		}
		vals[i] = sub(f.Value)
		if prev, ok := header[name]; ok {
			header[name] = append(prev, vals[i])
		} else {
			header[name] = vals[i : i+1 : i+1]
		}
	}
	if p, ok := header["Pragma"]; ok && len(p) > 0 && p[0] == "no-cache" {
		if _, ok := header["Cache-Control"]; !ok {
			header["Cache-Control"] = []string{"no-cache"} // RFC 7234 §5.4, as net/http does
		}
	}
	method, target := sub(h.Method), sub(h.Target)
	var u *url.URL
	var err error
	if path, query, ok := simpleTarget(target); ok {
		u = &ex.u
		u.Path, u.RawQuery = path, query
	} else if method == http.MethodConnect && target[0] != '/' {
		if u, err = url.ParseRequestURI("http://" + target); err == nil {
			u.Scheme = ""
		}
	} else {
		u, err = url.ParseRequestURI(target)
	}
	if err != nil {
		return nil, errors.New("http1: malformed request target")
	}
	host := u.Host
	if host == "" {
		host = sub(h.Host)
	}
	if !validHost(host) {
		return nil, errors.New("http1: malformed Host")
	}
	t := &c.tmpl
	*t = http.Request{
		Method:        method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    h.Minor,
		Header:        header,
		Body:          http.NoBody,
		ContentLength: 0,
		Close:         h.Close,
		Host:          host,
		RemoteAddr:    c.remoteAddr,
		RequestURI:    target,
	}
	if h.Minor == 0 {
		t.Proto = "HTTP/1.0"
	}
	c.body = nil
	switch {
	case h.Chunked:
		c.body = &srvBody{c: c, chunked: true}
		t.Body, t.ContentLength, t.TransferEncoding = c.body, -1, []string{"chunked"}
	case h.ContentLength > 0:
		c.body = &srvBody{c: c, remain: h.ContentLength}
		t.Body, t.ContentLength = c.body, h.ContentLength
	}
	// Each request gets its own context, cancelled when its handler has
	// returned (as net/http does): the gateway starts work that ends with
	// the request's context (hedges, ballots, per-try timers), and a
	// connection's context lives as long as its keep-alive.
	ctx, cancel := context.WithCancel(c.ctx)
	c.reqCancel = cancel
	c.req = t.WithContext(ctx) // the one allocation of the Request itself
	return c.req, nil
}

// srvReqExtra holds a request's URL and its header values in one
// allocation.
type srvReqExtra struct {
	u    url.URL
	vals [8]string
}

// simpleTarget splits an origin-form target whose path holds only bytes
// that url.ParseRequestURI keeps as they are (no escapes, nothing it would
// re-escape) into path and query: then the URL is exactly what
// ParseRequestURI returns, without its allocation. FuzzServeConn checks
// the equivalence.
func simpleTarget(t string) (path, query string, ok bool) {
	if len(t) == 0 || t[0] != '/' {
		return "", "", false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '?':
			if i == len(t)-1 {
				return "", "", false // "/x?": net/url sets ForceQuery
			}
			return t[:i], t[i+1:], true
		default:
			switch c {
			case '-', '_', '.', '~', '/', '$', '&', '+', ',', ':', ';', '=', '@':
			default:
				return "", "", false
			}
		}
	}
	return t, "", true
}

// canonicalKey rewrites a field name (tchars only, as ReadRequest
// guarantees) into textproto's canonical form in place: "content-type"
// becomes "Content-Type".
func canonicalKey(b []byte) {
	upper := true
	for i, c := range b {
		switch {
		case upper && 'a' <= c && c <= 'z':
			b[i] = c - ('a' - 'A')
		case !upper && 'A' <= c && c <= 'Z':
			b[i] = c + ('a' - 'A')
		}
		upper = c == '-'
	}
}

// validHost reports whether h holds only the bytes net/http accepts in a
// Host (golang.org/x/net/http/httpguts.ValidHostHeader).
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		default:
			switch c {
			case '!', '$', '%', '&', '(', ')', '*', '+', ',', '-', '.', ':', ';', '=', '[', '\'', ']', '_', '~':
			default:
				return false
			}
		}
	}
	return true
}
