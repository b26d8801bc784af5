package http1

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// srvPendMax is how much body the writer holds back before sending the
// head when the handler set no Content-Length: a handler that finishes
// within it gets a Content-Length instead of chunked framing (net/http's
// bufferBeforeChunkingSize).
const srvPendMax = 2 << 10

// srvWriter is the http.ResponseWriter of one connection, reset for each
// request. It writes the head straight into the connection's buffer.
type srvWriter struct {
	c      *srvConn
	req    *http.Request
	header http.Header
	status int

	wroteHeader bool // the final status is chosen and its fields are in c.out (held)
	headSent    bool // the head is complete: body bytes follow it
	handlerDone bool
	isHEAD      bool
	clen        int64 // declared (or, at the end, computed) Content-Length; -1 unknown
	written     int64 // body bytes the handler wrote
	chunked     bool
	closeAfter  bool
	sniff       bool // no Content-Type: sniff one from the first bytes
	hasDate     bool
	prefixTrail bool // the header held http.TrailerPrefix keys at WriteHeader
	want10Keep  bool // an HTTP/1.0 request with Connection: keep-alive
	fullDuplex  bool
	userWrite   bool     // the handler set its own write deadline
	te          string   // the handler's Transfer-Encoding
	conn        []string // the handler's Connection values
	trailer     []string // the handler's Trailer values: the declared trailer names

	pend []byte
	keys []string
}

func (w *srvWriter) reset(c *srvConn, req *http.Request) {
	header, pend, keys := w.header, w.pend[:0], w.keys[:0]
	clear(header)
	*w = srvWriter{c: c, req: req, header: header, pend: pend, keys: keys, clen: -1,
		isHEAD: req.Method == http.MethodHead, closeAfter: req.Close,
		want10Keep: req.ProtoMinor == 0 && !req.Close}
}

// bodyAllowed reports whether a response with this status may have a
// body (RFC 9110 §6.4.1).
func bodyAllowed(code int) bool {
	return !(code >= 100 && code <= 199 || code == http.StatusNoContent || code == http.StatusNotModified)
}

// Header returns the header map the response will send.
func (w *srvWriter) Header() http.Header { return w.header }

// WriteHeader chooses the status and takes the header's fields (changes to
// the map afterwards only matter for trailers). 1xx statuses other than
// 101 are sent at once and may be followed by others.
func (w *srvWriter) WriteHeader(code int) {
	c := w.c
	if c.hijacked {
		c.s.Logger.Debug("http1: WriteHeader on a hijacked connection")
		return
	}
	if w.wroteHeader {
		return // superfluous, as net/http (which also logs it)
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.informational(code)
		return
	}
	w.wroteHeader = true
	w.status = code
	h := w.header
	if bodyAllowed(code) {
		if v := h["Content-Length"]; len(v) > 0 {
			if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
				w.clen = n
			} else {
				c.s.Logger.Debug("http1: handler set an invalid Content-Length; dropped", "value", v[0])
			}
		}
		_, haveType := h["Content-Type"]
		ce := h["Content-Encoding"]
		w.sniff = !haveType && (len(ce) == 0 || ce[0] == "")
	}
	if v := h["Transfer-Encoding"]; len(v) > 0 {
		w.te = v[0]
	}
	w.conn = h["Connection"]
	w.trailer = h["Trailer"]
	_, w.hasDate = h["Date"]
	c.hold = len(c.out)
	c.out = w.appendStatusLine(c.out, code)
	c.out = w.appendFields(c.out, code, false)
}

// informational sends a 1xx answer now (RFC 9110 §15.2).
func (w *srvWriter) informational(code int) {
	c := w.c
	if b := c.body; b != nil && b.expect {
		// Serialize with a 100 Continue the body reader may be sending.
		b.mu.Lock()
		defer b.mu.Unlock()
		if code == http.StatusContinue {
			b.expect = false
		}
	}
	c.out = w.appendStatusLine(c.out, code)
	c.out = w.appendFields(c.out, code, true)
	c.out = append(c.out, "\r\n"...)
	c.flush()
}

func (w *srvWriter) appendStatusLine(b []byte, code int) []byte {
	if w.req.ProtoMinor == 0 {
		b = append(b, "HTTP/1.0 "...)
	} else {
		b = append(b, "HTTP/1.1 "...)
	}
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	if text := http.StatusText(code); text != "" {
		b = append(b, text...)
	} else {
		b = append(b, "status code "...)
		b = strconv.AppendInt(b, int64(code), 10)
	}
	return append(b, "\r\n"...)
}

// appendFields appends the header's fields, sorted by name, leaving out
// the framing and connection fields (sendHead writes those) and what the
// status forbids; names that are not tokens are dropped and CR/LF in
// values become spaces, as net/http does, so a handler cannot split the
// response.
func (w *srvWriter) appendFields(b []byte, code int, info bool) []byte {
	keys := w.keys[:0]
	for k := range w.header {
		switch k {
		case "Content-Length", "Transfer-Encoding":
			continue
		case "Connection":
			if !info {
				continue
			}
		case "Content-Type":
			if code == http.StatusNotModified {
				continue
			}
		}
		if strings.HasPrefix(k, http.TrailerPrefix) {
			w.prefixTrail = true
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = appendField(b, k, w.header[k])
	}
	w.keys = keys[:0]
	return b
}

func appendField(b []byte, k string, vs []string) []byte {
	if !validFieldName(k) {
		return b
	}
	for _, v := range vs {
		b = append(b, k...)
		b = append(b, ": "...)
		b = appendValue(b, v)
		b = append(b, "\r\n"...)
	}
	return b
}

func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isTchar(k[i]) {
			return false
		}
	}
	return true
}

// appendValue appends v trimmed, with CR and LF turned into spaces.
func appendValue(b []byte, v string) []byte {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	for i := 0; i < len(v); i++ {
		if v[i] == '\r' || v[i] == '\n' {
			for j := 0; j < len(v); j++ {
				c := v[j]
				if c == '\r' || c == '\n' {
					c = ' '
				}
				b = append(b, c)
			}
			return b
		}
	}
	return append(b, v...)
}

// sendHead completes the head: framing (Content-Length, chunked, or
// close-delimited for HTTP/1.0), Content-Type if sniffed, Date,
// Connection. Then the held-back body follows it.
func (w *srvWriter) sendHead() {
	if w.headSent {
		return
	}
	w.headSent = true
	c := w.c
	code := w.status
	allowed := bodyAllowed(code)
	hasTE := w.te != ""
	trailers := len(w.trailer) > 0 || w.prefixTrail
	if w.handlerDone && !trailers && !hasTE && allowed && w.clen < 0 && (!w.isHEAD || w.written > 0) {
		w.clen = w.written // the whole body is in pend
	}
	if w.clen >= 0 && hasTE && w.te != "identity" {
		w.clen = -1 // both set: the Transfer-Encoding wins, as in net/http
	}
	// The request body must be consumed before the next request can be
	// read; reading it now, before the answer goes out, also keeps clients
	// that send a whole request before reading from deadlocking. Too much
	// of it, or a 100 Continue never sent: close after this answer.
	if b := c.body; b != nil && !w.closeAfter && !w.fullDuplex {
		if !b.drain() {
			w.closeAfter = true
		}
	} else if b != nil {
		b.disarmContinue()
	}
	for _, v := range w.conn {
		if hasToken([]byte(v), "close") {
			w.closeAfter = true
		}
	}
	if c.s.stopping.Load() {
		w.closeAfter = true
	}
	out := c.out
	switch {
	case w.isHEAD || !allowed:
		if w.isHEAD && allowed && w.clen >= 0 {
			out = appendInt(out, "Content-Length: ", w.clen)
		}
	case w.clen >= 0:
		out = appendInt(out, "Content-Length: ", w.clen)
	case w.req.ProtoMinor >= 1 && w.te != "identity":
		w.chunked = true
		out = append(out, "Transfer-Encoding: chunked\r\n"...)
	default:
		w.closeAfter = true // HTTP/1.0, or identity: the body ends with the connection
	}
	keep10 := false
	if w.req.ProtoMinor == 0 {
		if w.want10Keep && !w.closeAfter && (w.isHEAD || w.clen >= 0 || !allowed) {
			keep10 = true
		} else {
			w.closeAfter = true
		}
	}
	if w.sniff && allowed && !hasTE && len(w.pend) > 0 {
		out = append(out, "Content-Type: "...)
		out = append(out, http.DetectContentType(w.pend)...)
		out = append(out, "\r\n"...)
	}
	if !w.hasDate {
		now := time.Now()
		if sec := now.Unix(); sec != c.dateSec || len(c.date) == 0 {
			c.date = now.UTC().AppendFormat(c.date[:0], http.TimeFormat)
			c.dateSec = sec
		}
		out = append(out, "Date: "...)
		out = append(out, c.date...)
		out = append(out, "\r\n"...)
	}
	switch {
	case code == http.StatusSwitchingProtocols:
		out = appendField(out, "Connection", w.conn)
		w.closeAfter = true // a switch without Hijack: nothing more to serve here
	case w.closeAfter:
		out = append(out, "Connection: close\r\n"...)
	case len(w.conn) > 0:
		out = appendField(out, "Connection", w.conn)
	case keep10:
		out = append(out, "Connection: keep-alive\r\n"...)
	}
	c.out = append(out, "\r\n"...)
	c.hold = -1
	if len(w.pend) > 0 {
		w.writeBody(w.pend)
		w.pend = w.pend[:0]
	}
}

func appendInt(b []byte, name string, n int64) []byte {
	b = append(b, name...)
	b = strconv.AppendInt(b, n, 10)
	return append(b, "\r\n"...)
}

// Write sends body bytes (after an implicit WriteHeader(200)).
func (w *srvWriter) Write(p []byte) (int, error) {
	c := w.c
	if c.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.clen >= 0 && w.written+int64(len(p)) > w.clen {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if c.werr != nil {
		return 0, c.werr
	}
	if w.isHEAD {
		return len(p), nil // counted (for a Content-Length) and dropped
	}
	if !w.headSent {
		if w.clen < 0 || w.sniff {
			if len(w.pend)+len(p) <= srvPendMax {
				w.pend = append(w.pend, p...)
				return len(p), nil
			}
		}
		w.sendHead()
	}
	w.writeBody(p)
	if c.werr != nil {
		return 0, c.werr
	}
	return len(p), nil
}

func (w *srvWriter) writeBody(p []byte) {
	c := w.c
	if !w.chunked {
		c.write(p)
		return
	}
	c.out = strconv.AppendInt(c.out, int64(len(p)), 16)
	c.out = append(c.out, "\r\n"...)
	c.write(p)
	c.out = append(c.out, "\r\n"...)
}

// finish completes the answer after the handler returned: the head if not
// sent yet (with a Content-Length when the whole body was held back), the
// last chunk and the trailers.
func (w *srvWriter) finish() {
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.sendHead()
	c := w.c
	if w.chunked {
		c.out = append(c.out, "0\r\n"...)
		c.out = w.appendTrailers(c.out)
		c.out = append(c.out, "\r\n"...)
	}
	if w.clen >= 0 && !w.isHEAD && bodyAllowed(w.status) && w.written != w.clen {
		w.closeAfter = true // short of its Content-Length: the client will see it cut
	}
	c.mark = len(c.out)
}

// appendTrailers appends the declared trailers (names listed in the
// Trailer field, values set in the header map after WriteHeader) and the
// http.TrailerPrefix ones.
func (w *srvWriter) appendTrailers(b []byte) []byte {
	for _, v := range w.trailer {
		for name := range strings.SplitSeq(v, ",") {
			name = http.CanonicalHeaderKey(strings.TrimSpace(name))
			switch name {
			case "", "Transfer-Encoding", "Content-Length", "Trailer":
				continue
			}
			b = appendField(b, name, w.header[name])
		}
	}
	for k, vs := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			b = appendField(b, http.CanonicalHeaderKey(name), vs)
		}
	}
	return b
}

// Flush sends what the handler wrote so far (http.Flusher).
func (w *srvWriter) Flush() { w.FlushError() }

// FlushError is Flush reporting the write error (http.ResponseController).
func (w *srvWriter) FlushError() error {
	c := w.c
	if c.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.sendHead()
	c.flush()
	return c.werr
}

// Hijack hands the connection to the handler (http.Hijacker), with any
// bytes already read in the returned reader. The server no longer
// touches it, nor waits for it in Shutdown.
func (w *srvWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := w.c
	if c.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.wroteHeader {
		w.sendHead()
	}
	if c.body != nil {
		c.body.seal()
	}
	c.phase = phaseHandler
	c.flush()
	if c.werr != nil {
		return nil, nil, c.werr
	}
	c.hijacked = true
	c.state.Store(stateHijacked)
	c.s.untrack(c)
	c.rwc.SetDeadline(time.Time{})
	return c.rwc, bufio.NewReadWriter(c.br, bufio.NewWriter(c.rwc)), nil
}

// SetReadDeadline replaces the server's body read timeout for this
// request (http.ResponseController).
func (w *srvWriter) SetReadDeadline(t time.Time) error {
	if b := w.c.body; b != nil {
		b.mu.Lock()
		b.userRead = true
		b.mu.Unlock()
	}
	return w.c.rwc.SetReadDeadline(t)
}

// SetWriteDeadline replaces the server's write timeout for this request
// (http.ResponseController).
func (w *srvWriter) SetWriteDeadline(t time.Time) error {
	w.userWrite = true
	return w.c.rwc.SetWriteDeadline(t)
}

// EnableFullDuplex lets the handler read the request body after it
// started the answer (http.ResponseController); without it the rest of
// the body is read and dropped when the head goes out.
func (w *srvWriter) EnableFullDuplex() error {
	w.fullDuplex = true
	return nil
}
