// Package http1 is a strict HTTP/1.1 message-head parser for the gateway's
// planned fast path (docs/fastpath.md): it reads a request head from a
// buffered connection without allocating per header, and refuses every
// ambiguity that lets two HTTP implementations disagree on where a
// message ends — the root of request smuggling (RFC 9112 §6.3, §11.2).
//
// Refused, each with its own sentinel error and the status to answer:
//
//   - both Content-Length and Transfer-Encoding (400; RFC 9112 §6.3 item 3
//     lets a server process such a request, but a proxy that forwards it
//     invites desync);
//   - a Content-Length that is not a plain decimal, or several that
//     differ, or a list ("5, 5") (400);
//   - a Transfer-Encoding other than exactly "chunked" (400; 501 would
//     also be allowed, but any other coding is an attack on a gateway);
//   - obsolete line folding (a header line starting with SP or HTAB) (400);
//   - a bare CR, or a line ending in LF without CR (400), and NUL or other
//     control bytes in a field value;
//   - whitespace between a field name and its colon (400, RFC 9112 §5.1);
//   - an invalid method token, a target that is empty or holds spaces or
//     control bytes, a version other than HTTP/1.0 or HTTP/1.1 (400; 505
//     for HTTP/2+ in an HTTP/1 framing);
//   - a head larger than the limit (431).
//
// The package uses only the standard library. Timeouts against slow
// clients (slowloris) belong to the connection's owner: it sets read
// deadlines around ReadRequest.
package http1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
)

// Errors ReadRequest returns; Status maps each to the answer.
var (
	ErrHeadTooLarge     = errors.New("http1: request head too large")
	ErrBadRequestLine   = errors.New("http1: malformed request line")
	ErrBadVersion       = errors.New("http1: unsupported HTTP version")
	ErrBadLineEnding    = errors.New("http1: bare CR or LF: lines end in CRLF")
	ErrObsFold          = errors.New("http1: obsolete line folding")
	ErrBadHeader        = errors.New("http1: malformed header field")
	ErrBadContentLength = errors.New("http1: invalid or conflicting Content-Length")
	ErrBadTE            = errors.New("http1: unsupported Transfer-Encoding (only chunked)")
	ErrCLAndTE          = errors.New("http1: both Content-Length and Transfer-Encoding")
	ErrMissingHost      = errors.New("http1: HTTP/1.1 request without exactly one Host")
)

// Status is the HTTP status a server answers a ReadRequest error with:
// 431 for an oversized head, 505 for an unsupported version, 400 for the
// rest (0 for errors that are not parse errors: the connection failed).
func Status(err error) int {
	switch {
	case errors.Is(err, ErrHeadTooLarge):
		return http.StatusRequestHeaderFieldsTooLarge
	case errors.Is(err, ErrBadVersion):
		return http.StatusHTTPVersionNotSupported
	case errors.Is(err, ErrBadRequestLine), errors.Is(err, ErrBadLineEnding), errors.Is(err, ErrObsFold),
		errors.Is(err, ErrBadHeader), errors.Is(err, ErrBadContentLength), errors.Is(err, ErrBadTE),
		errors.Is(err, ErrCLAndTE), errors.Is(err, ErrMissingHost):
		return http.StatusBadRequest
	}
	return 0
}

// Field is one header field. Name and Value alias the Request's buffer.
type Field struct {
	Name, Value []byte
}

// Request is a parsed request head. Its byte slices alias Raw, which is
// owned by the Request and valid until the next Reset.
type Request struct {
	// Raw is the head exactly as read (request line through the empty
	// line), for forwarding with as few copies as possible.
	Raw []byte
	// Method and Target are the request line's first two tokens.
	Method, Target []byte
	// Minor is 0 for HTTP/1.0, 1 for HTTP/1.1.
	Minor int
	// Fields are the header fields in order.
	Fields []Field
	// Host is the Host field's value (required exactly once in HTTP/1.1).
	Host []byte
	// ContentLength is the body's length; -1 when there is no
	// Content-Length (then the body is chunked when Chunked is set, and
	// empty otherwise: a request has no read-until-close body).
	ContentLength int64
	// Chunked is set for Transfer-Encoding: chunked.
	Chunked bool
	// Close is set when the connection must close after this exchange:
	// Connection: close, or HTTP/1.0 without keep-alive.
	Close bool
}

// Reset empties r for reuse, keeping its buffers.
func (r *Request) Reset() {
	*r = Request{Raw: r.Raw[:0], Fields: r.Fields[:0], ContentLength: -1}
}

// ReadRequest reads one request head from br into r (which it resets),
// refusing heads longer than max bytes. The body, if any, is left in br.
// On a parse error the connection must answer Status(err) and close: the
// message boundary is no longer known.
func ReadRequest(br *bufio.Reader, r *Request, max int) error {
	r.Reset()
	// Read the head: lines until an empty one. ReadSlice's buffer is
	// reused by the next call, so each line is copied into Raw. A line
	// longer than br's buffer arrives in pieces (ErrBufferFull): a piece
	// that continues a line is never taken for the empty line.
	partial, skipped := false, 0
	for {
		line, err := br.ReadSlice('\n')
		if len(r.Raw)+len(line)+skipped > max {
			return ErrHeadTooLarge
		}
		if err == bufio.ErrBufferFull {
			r.Raw = append(r.Raw, line...)
			partial = true
			continue
		}
		if err != nil {
			if len(r.Raw) == 0 && len(line) == 0 {
				return err // the connection ended between requests
			}
			return fmt.Errorf("http1: reading the head: %w", err)
		}
		empty := !partial && (len(line) == 2 && line[0] == '\r' || len(line) == 1)
		partial = false
		// RFC 9112 §2.2: a server may skip empty lines before the request line.
		if len(r.Raw) == 0 && empty {
			skipped += len(line)
			continue
		}
		r.Raw = append(r.Raw, line...)
		if empty {
			break
		}
	}
	return r.parse()
}

// parse splits Raw into the request line and fields and checks them.
func (r *Request) parse() error {
	head := r.Raw
	first, ended := true, false
	var clSeen, teSeen, hostSeen int
	var closeConn, keepAlive bool
	for len(head) > 0 {
		i := bytes.IndexByte(head, '\n')
		if i < 1 || head[i-1] != '\r' {
			return ErrBadLineEnding
		}
		line := head[:i-1]
		head = head[i+1:]
		if bytes.IndexByte(line, '\r') >= 0 {
			return ErrBadLineEnding
		}
		if first {
			if err := r.parseRequestLine(line); err != nil {
				return err
			}
			first = false
			continue
		}
		if len(line) == 0 {
			if len(head) != 0 {
				return ErrBadLineEnding // cannot happen: the head ends at the first empty line
			}
			ended = true
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return ErrObsFold
		}
		f, err := parseField(line)
		if err != nil {
			return err
		}
		r.Fields = append(r.Fields, f)
		switch {
		case equalFold(f.Name, "content-length"):
			n, err := parseContentLength(f.Value)
			if err != nil || clSeen > 0 && n != r.ContentLength {
				return ErrBadContentLength
			}
			r.ContentLength = n
			clSeen++
		case equalFold(f.Name, "transfer-encoding"):
			if teSeen > 0 || !equalFold(f.Value, "chunked") {
				return ErrBadTE
			}
			r.Chunked = true
			teSeen++
		case equalFold(f.Name, "host"):
			r.Host = f.Value
			hostSeen++
		case equalFold(f.Name, "connection"):
			if hasToken(f.Value, "close") {
				closeConn = true
			}
			if hasToken(f.Value, "keep-alive") {
				keepAlive = true
			}
		}
	}
	if !ended || first {
		return ErrBadLineEnding
	}
	if clSeen > 0 && teSeen > 0 {
		return ErrCLAndTE
	}
	// HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 closes
	// it unless told to keep it (RFC 9112 §9.3).
	r.Close = closeConn || r.Minor == 0 && !keepAlive
	if r.Minor == 1 && hostSeen != 1 {
		return ErrMissingHost
	}
	return nil
}

func (r *Request) parseRequestLine(line []byte) error {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return ErrBadRequestLine
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return ErrBadRequestLine
	}
	method, target, version := line[:sp1], rest[:sp2], rest[sp2+1:]
	for _, c := range method {
		if !isTchar(c) {
			return ErrBadRequestLine
		}
	}
	for _, c := range target {
		if c <= ' ' || c >= 0x7f {
			return ErrBadRequestLine
		}
	}
	if !validTarget(method, target) {
		return ErrBadRequestLine
	}
	switch string(version) {
	case "HTTP/1.1":
		r.Minor = 1
	case "HTTP/1.0":
		r.Minor = 0
	default:
		if len(version) == 8 && bytes.HasPrefix(version, []byte("HTTP/")) && version[5] >= '2' && version[5] <= '9' && version[6] == '.' {
			return ErrBadVersion
		}
		return ErrBadRequestLine
	}
	r.Method, r.Target = method, target
	return nil
}

// validTarget accepts the four request-target forms of RFC 9112 §3.2:
// origin ("/path?q"), absolute ("http://host/path"), authority
// ("host:port", CONNECT only) and asterisk ("*", OPTIONS only).
func validTarget(method, target []byte) bool {
	switch {
	case target[0] == '/':
		return true
	case string(method) == "CONNECT":
		return bytes.IndexByte(target, '/') < 0 && bytes.IndexByte(target, ':') > 0
	case len(target) == 1 && target[0] == '*':
		return string(method) == "OPTIONS"
	}
	i := bytes.Index(target, []byte("://"))
	if i <= 0 {
		return false
	}
	for j, c := range target[:i] { // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || j > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}

// parseField splits "Name: value" and trims the value's optional
// whitespace (RFC 9110 §5.5).
func parseField(line []byte) (Field, error) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return Field{}, ErrBadHeader
	}
	name := line[:colon]
	for _, c := range name {
		if !isTchar(c) { // also refuses "Name :" (whitespace before the colon)
			return Field{}, ErrBadHeader
		}
	}
	v := line[colon+1:]
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	for _, c := range v {
		if c < ' ' && c != '\t' || c == 0x7f {
			return Field{}, ErrBadHeader
		}
	}
	return Field{Name: name, Value: v}, nil
}

// parseContentLength accepts 1*DIGIT and nothing else: no sign, no
// spaces inside, no list, at most 18 digits (no overflow).
func parseContentLength(v []byte) (int64, error) {
	if len(v) == 0 || len(v) > 18 {
		return 0, ErrBadContentLength
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, ErrBadContentLength
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// isTchar reports whether c may appear in a token (RFC 9110 §5.6.2).
func isTchar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0
}

// equalFold compares b with a lower-case ASCII string, ignoring case.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// hasToken reports whether a comma-separated field value lists tok.
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		var part []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			part, v = v[:i], v[i+1:]
		} else {
			part, v = v, nil
		}
		part = bytes.TrimSpace(part)
		if equalFold(part, tok) {
			return true
		}
	}
	return false
}
