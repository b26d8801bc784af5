package http1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strings"
)

// Errors ReadResponse returns for a response head it refuses. A gateway
// answers them as a failed try (502-class): the upstream's framing cannot
// be trusted, so the connection is closed.
var (
	ErrResponseHeadTooLarge = errors.New("http1: response head too large")
	ErrBadStatusLine        = errors.New("http1: malformed status line")
	ErrTooManyInformational = errors.New("http1: too many 1xx informational responses")
)

// maxInformational bounds the 1xx responses skipped before the final one
// (net/http allows 5 too), so an upstream cannot keep a try busy forever
// with 100 Continue.
const maxInformational = 5

// ReadResponse reads one response head from br, as an answer to a request
// with the given method, refusing heads longer than max bytes with the
// same strictness as ReadRequest: both Content-Length and
// Transfer-Encoding, an invalid or conflicting Content-Length, a
// Transfer-Encoding other than "chunked", obsolete line folding, a bare CR
// or LF, control bytes in a field, a version other than HTTP/1.0 or
// HTTP/1.1, a status outside 100–599. Identical repeated Content-Length
// fields are accepted as one (RFC 9110 §8.6), as in requests.
//
// The returned Response's Body reads the body from br as framed by RFC
// 9112 §6.3: nothing for HEAD, 1xx, 204 and 304; Content-Length bytes;
// chunked (trailers are read and dropped); or until the connection
// closes (then Close is set). A 1xx response is returned as it is, like
// net/http's ReadResponse: the caller skips it. Response.Request is req
// (may be nil).
func ReadResponse(br *bufio.Reader, req *http.Request, max int) (*http.Response, error) {
	method := http.MethodGet
	if req != nil && req.Method != "" {
		method = req.Method
	}
	var raw []byte
	resp, err := readResponse(br, method, max, &raw)
	if err != nil {
		return nil, err
	}
	resp.Request = req
	return &resp.Response, nil
}

// response is a Response, its body and the values of its first fields in
// one allocation.
type response struct {
	http.Response
	body body
	vals [8]string
}

// readResponse reads and parses one head; raw is a reusable buffer for the
// head's bytes (they are copied into one string that the header aliases).
func readResponse(br *bufio.Reader, method string, max int, raw *[]byte) (*response, error) {
	if err := readHead(br, raw, max); err != nil {
		return nil, err
	}
	resp := &response{}
	if err := resp.parse(string(*raw), method); err != nil {
		return nil, err
	}
	resp.body.br = br
	return resp, nil
}

// readHead reads lines up to and including the first empty one into raw.
func readHead(br *bufio.Reader, raw *[]byte, max int) error {
	buf := (*raw)[:0]
	defer func() { *raw = buf }()
	partial := false
	for {
		line, err := br.ReadSlice('\n')
		if len(buf)+len(line) > max {
			return ErrResponseHeadTooLarge
		}
		if err == bufio.ErrBufferFull {
			buf = append(buf, line...)
			partial = true
			continue
		}
		if err != nil {
			if len(buf) == 0 && len(line) == 0 {
				return err // the connection ended before the response began
			}
			buf = append(buf, line...) // what was received, for the caller's retry decision
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("http1: reading the response head: %w", err)
		}
		empty := !partial && (len(line) == 2 && line[0] == '\r' || len(line) == 1)
		partial = false
		buf = append(buf, line...)
		if empty {
			if len(buf) == len(line) { // a response cannot start with an empty line
				return ErrBadStatusLine
			}
			return nil
		}
	}
}

// parse splits head (status line through the empty line) into r.
func (r *response) parse(head, method string) error {
	nl := strings.IndexByte(head, '\n')
	if nl < 1 || head[nl-1] != '\r' {
		return ErrBadLineEnding
	}
	if err := r.parseStatusLine(head[:nl-1]); err != nil {
		return err
	}
	rest := head[nl+1:]
	n := strings.Count(rest, "\n") - 1 // fields; the last line is the empty one
	if n < 0 {
		return ErrBadLineEnding
	}
	h := make(http.Header, n)
	vals := r.vals[:] // one backing array for single-valued fields
	if n > len(r.vals) {
		vals = make([]string, n)
	}
	var clSeen, teSeen int
	cl := int64(-1)
	var closeConn, keepAlive, chunked bool
	for i := 0; ; i++ {
		nl := strings.IndexByte(rest, '\n')
		if nl < 1 || rest[nl-1] != '\r' {
			return ErrBadLineEnding
		}
		line := rest[:nl-1]
		rest = rest[nl+1:]
		if strings.IndexByte(line, '\r') >= 0 {
			return ErrBadLineEnding
		}
		if len(line) == 0 {
			if len(rest) != 0 {
				return ErrBadLineEnding
			}
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return ErrObsFold
		}
		name, v, err := parseFieldString(line)
		if err != nil {
			return err
		}
		switch {
		case equalFoldString(name, "content-length"):
			c, err := parseContentLengthString(v)
			if err != nil || clSeen > 0 && c != cl {
				return ErrBadContentLength
			}
			cl = c
			clSeen++
			if clSeen > 1 {
				continue // identical repeat: keep one, as net/http does
			}
		case equalFoldString(name, "transfer-encoding"):
			if teSeen > 0 || !equalFoldString(v, "chunked") {
				return ErrBadTE
			}
			chunked = true
			teSeen++
			continue // framing, not content: net/http moves it to TransferEncoding too
		case equalFoldString(name, "connection"):
			closeConn = closeConn || hasTokenString(v, "close")
			keepAlive = keepAlive || hasTokenString(v, "keep-alive")
		}
		key := textproto.CanonicalMIMEHeaderKey(name) // no allocation when already canonical
		if prior, ok := h[key]; ok {
			h[key] = append(prior, v)
		} else {
			vals[i] = v
			h[key] = vals[i : i+1 : i+1]
		}
	}
	if clSeen > 0 && teSeen > 0 {
		return ErrCLAndTE
	}
	if chunked && r.ProtoMinor == 0 {
		return ErrBadTE // an HTTP/1.0 peer cannot send chunked
	}
	r.Header = h
	r.Close = closeConn || r.ProtoMinor == 0 && !keepAlive
	r.frame(method, cl, chunked)
	return nil
}

// frame sets the body's framing by RFC 9112 §6.3 and net/http's
// ContentLength conventions.
func (r *response) frame(method string, cl int64, chunked bool) {
	code := r.StatusCode
	r.ContentLength = cl
	if chunked {
		r.TransferEncoding = chunkedTE // even when there is no body, as net/http
	}
	switch {
	case method == http.MethodHead:
		r.body.mode = bodyNone // ContentLength stays what the header said
	case code < 200 || code == http.StatusNoContent || code == http.StatusNotModified:
		r.body.mode = bodyNone
		r.ContentLength = 0
	case chunked:
		r.body.mode = bodyChunked
		r.ContentLength = -1
	case cl >= 0:
		r.body.mode = bodyLength
		r.body.remain = cl
		if cl == 0 {
			r.body.mode = bodyNone
		}
	default:
		r.body.mode = bodyUntilClose
		r.Close = true
	}
	r.Body = &r.body
	if r.body.mode == bodyNone {
		r.Body = http.NoBody
	}
}

var chunkedTE = []string{"chunked"}

// parseStatusLine reads "HTTP/1.1 200 OK" (the reason may be empty, and
// its space too, as many servers send it).
func (r *response) parseStatusLine(line string) error {
	if len(line) < 12 || line[8] != ' ' {
		return ErrBadStatusLine
	}
	switch line[:8] {
	case "HTTP/1.1":
		r.Proto, r.ProtoMinor = "HTTP/1.1", 1
	case "HTTP/1.0":
		r.Proto, r.ProtoMinor = "HTTP/1.0", 0
	default:
		if strings.HasPrefix(line, "HTTP/") && line[5] >= '2' && line[5] <= '9' {
			return ErrBadVersion
		}
		return ErrBadStatusLine
	}
	r.ProtoMajor = 1
	c0, c1, c2 := line[9], line[10], line[11]
	if c0 < '1' || c0 > '5' || c1 < '0' || c1 > '9' || c2 < '0' || c2 > '9' {
		return ErrBadStatusLine
	}
	r.StatusCode = int(c0-'0')*100 + int(c1-'0')*10 + int(c2-'0')
	if len(line) > 12 {
		if line[12] != ' ' {
			return ErrBadStatusLine
		}
		for i := 13; i < len(line); i++ {
			if c := line[i]; c < ' ' && c != '\t' || c == 0x7f {
				return ErrBadStatusLine
			}
		}
	}
	r.Status = line[9:] // "200 OK", as net/http sets it
	return nil
}

// parseFieldString is parseField on a string: "Name: value" with the
// value's optional whitespace trimmed.
func parseFieldString(line string) (name, value string, err error) {
	colon := strings.IndexByte(line, ':')
	if colon <= 0 {
		return "", "", ErrBadHeader
	}
	name = line[:colon]
	for i := 0; i < len(name); i++ {
		if !isTchar(name[i]) {
			return "", "", ErrBadHeader
		}
	}
	v := line[colon+1:]
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return "", "", ErrBadHeader
		}
	}
	return name, v, nil
}

func equalFoldString(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// parseContentLengthString is parseContentLength on a string.
func parseContentLengthString(v string) (int64, error) {
	if len(v) == 0 || len(v) > 18 {
		return 0, ErrBadContentLength
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, ErrBadContentLength
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// hasTokenString reports whether a comma-separated value lists tok.
func hasTokenString(v, tok string) bool {
	for part := range strings.SplitSeq(v, ",") {
		if equalFoldString(strings.TrimSpace(part), tok) {
			return true
		}
	}
	return false
}
