package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// Errors a request body's Read returns for a malformed chunked body. The
// connection is closed after the answer: where the message ends is lost.
var (
	ErrBadChunk        = errors.New("http1: malformed chunked body")
	ErrChunkOverhead   = errors.New("http1: chunked body has too much non-data (extensions, tiny chunks)")
	ErrTrailerTooLarge = errors.New("http1: request trailer too large")
)

// srvBody is a request body: exactly Content-Length bytes, or a strictly
// framed chunked body (CRLF line ends only, hex sizes of at most 15
// digits, extensions only after ";", well-formed trailer fields, which
// are read and dropped). A handler may read it from any goroutine (an
// upstream transport does), so its state is under mu; the connection's
// goroutine seals it when the request is over, after which a late read
// fails instead of stealing the next request's bytes.
type srvBody struct {
	mu       sync.Mutex
	c        *srvConn
	remain   int64 // bytes left: of the body, or of the current chunk
	chunked  bool
	needCRLF bool  // a chunk's data ended; its CRLF is next
	excess   int64 // chunked framing bytes beyond the allowance (net/http's rule)
	done     bool  // the end was read
	err      error // the connection's framing is lost
	closed   bool  // the handler closed it
	sealed   bool  // the request is over
	expect   bool  // a 100 Continue is due before the first read
	userRead bool  // the handler set its own read deadline
}

// Read reads the body; the first Read of an Expect: 100-continue request
// sends the 100 Continue.
func (b *srvBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sealed || b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.readLocked(p)
}

// Close ends the handler's use of the body; what is left is read and
// dropped after the handler returns (up to a bound), or the connection
// closes.
func (b *srvBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

func (b *srvBody) readLocked(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.done {
		return 0, io.EOF
	}
	if b.expect {
		b.expect = false
		b.sendContinue()
		if b.err != nil {
			return 0, b.err
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.chunked {
		return b.readChunked(p)
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	b.arm()
	n, err := b.c.br.Read(p)
	b.remain -= int64(n)
	if b.remain == 0 {
		b.done = true
		return n, io.EOF
	}
	if err != nil {
		return n, b.fail(err)
	}
	return n, nil
}

func (b *srvBody) fail(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	b.err = err
	return err
}

// arm sets the body read timeout before a read that will wait on the
// connection.
func (b *srvBody) arm() {
	if !b.userRead && b.c.br.Buffered() == 0 {
		b.c.rwc.SetReadDeadline(time.Now().Add(b.c.s.bodyReadTimeout()))
	}
}

// sendContinue writes the 100 Continue straight to the connection: the
// response head, if the handler started one, is still held in the
// connection's buffer (every path that sends it first disarms this one
// under mu), and earlier pipelined answers were flushed before the handler.
func (b *srvBody) sendContinue() {
	c := b.c
	c.rwc.SetWriteDeadline(time.Now().Add(c.s.writeTimeout()))
	if _, err := io.WriteString(c.rwc, "HTTP/1.1 100 Continue\r\n\r\n"); err != nil {
		b.err = err
	}
}

func (b *srvBody) readChunked(p []byte) (int, error) {
	if b.remain == 0 {
		if b.needCRLF {
			b.arm()
			if err := readCRLF(b.c.br); err != nil {
				return 0, b.fail(err)
			}
			b.needCRLF = false
		}
		n, err := b.readChunkSize()
		if err != nil {
			return 0, b.fail(err)
		}
		if n == 0 {
			if err := b.readTrailer(); err != nil {
				return 0, b.fail(err)
			}
			b.done = true
			return 0, io.EOF
		}
		b.remain = n
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	b.arm()
	n, err := b.c.br.Read(p)
	b.remain -= int64(n)
	if b.remain == 0 {
		b.needCRLF = true
	} else if err != nil {
		return n, b.fail(err)
	}
	return n, nil
}

func readCRLF(br *bufio.Reader) error {
	cr, err := br.ReadByte()
	if err != nil {
		return err
	}
	lf, err := br.ReadByte()
	if err != nil {
		return err
	}
	if cr != '\r' || lf != '\n' {
		return ErrBadChunk
	}
	return nil
}

// readChunkLine reads one line of chunked framing, without its CRLF.
func (b *srvBody) readChunkLine() ([]byte, error) {
	b.arm()
	line, err := b.c.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, ErrChunkOverhead
	}
	if err != nil {
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, ErrBadChunk // bare LF
	}
	line = line[:len(line)-2]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, ErrBadChunk // bare CR
	}
	return line, nil
}

// readChunkSize reads "size [BWS ; ext] CRLF" (RFC 9112 §7.1).
func (b *srvBody) readChunkSize() (int64, error) {
	line, err := b.readChunkLine()
	if err != nil {
		return 0, err
	}
	var n int64
	i := 0
	for ; i < len(line); i++ {
		d, ok := hexDigit(line[i])
		if !ok {
			break
		}
		if i == 15 {
			return 0, ErrBadChunk // larger than any body we would accept, and near overflow
		}
		n = n<<4 | int64(d)
	}
	if i == 0 {
		return 0, ErrBadChunk
	}
	rest := line[i:]
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		rest = rest[1:]
	}
	if len(rest) > 0 {
		if rest[0] != ';' {
			return 0, ErrBadChunk
		}
		for _, c := range rest {
			if c < ' ' && c != '\t' || c == 0x7f {
				return 0, ErrBadChunk
			}
		}
	}
	// Bound framing that is not data (CVE-2023-39326): each chunk may
	// carry 16 bytes of overhead plus twice its size.
	b.excess += int64(len(line)) + 2
	b.excess -= 16 + 2*n
	b.excess = max(b.excess, 0)
	if b.excess > 16<<10 {
		return 0, ErrChunkOverhead
	}
	return n, nil
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// readTrailer reads the trailer section, checking each field's syntax,
// and drops it.
func (b *srvBody) readTrailer() error {
	total := 0
	for {
		line, err := b.readChunkLine()
		if err == ErrChunkOverhead {
			return ErrTrailerTooLarge
		}
		if err != nil {
			return err
		}
		total += len(line) + 2
		if total > b.c.s.maxHeaderBytes() {
			return ErrTrailerTooLarge
		}
		if len(line) == 0 {
			return nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return ErrObsFold
		}
		if _, err := parseField(line); err != nil {
			return err
		}
	}
}

// drain reads and drops what the handler left of the body, up to 256 KiB
// (net/http's bound), and reports whether the body's end was reached,
// so the connection can serve another request. A 100 Continue that was
// never sent is not sent now: the client has not sent the body, and
// closing is cheaper than asking for it.
func (b *srvBody) drain() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return true
	}
	if b.err != nil || b.sealed {
		return false
	}
	if b.expect {
		b.expect = false
		return false
	}
	c := b.c
	buf := c.scratch[:cap(c.scratch)]
	if len(buf) < 2<<10 {
		c.scratch = make([]byte, 4<<10)
		buf = c.scratch
	}
	for total := 0; total <= 256<<10; {
		n, err := b.readLocked(buf)
		total += n
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
	return false
}

// disarmContinue cancels a pending 100 Continue: the final head is going out.
func (b *srvBody) disarmContinue() {
	b.mu.Lock()
	b.expect = false
	b.mu.Unlock()
}

// seal ends the body's life with its request and reports whether its end
// had been read.
func (b *srvBody) seal() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sealed = true
	b.expect = false
	return b.done
}
