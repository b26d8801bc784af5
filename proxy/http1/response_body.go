package http1

import (
	"bufio"
	"errors"
	"io"
)

// Errors a response body's Read returns for bad chunked framing.
var (
	ErrBadResponseChunk = errors.New("http1: malformed chunked response body")
	ErrBodyClosed       = errors.New("http1: read on closed response body")
	errClosedEarly      = errors.New("http1: body closed before its end")
)

// maxTrailerBytes bounds the trailer section, which is read and dropped.
const maxTrailerBytes = 16 << 10

type bodyMode uint8

const (
	bodyNone       bodyMode = iota // HEAD, 1xx, 204, 304, Content-Length: 0
	bodyLength                     // Content-Length bytes
	bodyChunked                    // chunked, trailers dropped
	bodyUntilClose                 // no framing: until the connection closes
)

// body reads a response body framed by mode from br. When pc is set (the
// Transport's responses) the end of the body hands the connection back:
// to the idle pool after a clean end, closed otherwise. Read and Close
// must not be called concurrently (the gateway never does; cancel the
// request's context to abort a blocked Read).
type body struct {
	br       *bufio.Reader
	pc       *conn
	mode     bodyMode
	remain   int64 // bodyLength: bytes left; bodyChunked: bytes left in the chunk
	needCRLF bool  // bodyChunked: a chunk's data ended, its CRLF is next
	err      error // sticky: io.EOF after the end
	closed   bool
}

// Read reads the body; it returns io.EOF with the last bytes when the
// framing says the body ends there, so a caller reading exactly
// Content-Length bytes still releases the connection.
func (b *body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, ErrBodyClosed
	}
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var err error
	switch b.mode {
	case bodyLength:
		if int64(len(p)) > b.remain {
			p = p[:b.remain]
		}
		n, err = b.br.Read(p)
		b.remain -= int64(n)
		if b.remain == 0 {
			err = io.EOF
		} else if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	case bodyChunked:
		n, err = b.readChunked(p)
	case bodyUntilClose:
		n, err = b.br.Read(p)
	default:
		err = io.EOF
	}
	if err != nil {
		err = b.finish(err)
	}
	return n, err
}

// finish records the body's end and releases the connection; it returns
// the error Read reports (ctx's error when the request was cancelled).
func (b *body) finish(err error) error {
	if pc := b.pc; pc != nil {
		b.pc = nil
		err = pc.bodyDone(err, b.mode == bodyUntilClose)
	}
	b.err = err
	return err
}

// Close ends the body. Before its end, the connection is reused only when
// the rest of a Content-Length body is already buffered (up to 4 KiB);
// otherwise it is closed: draining an unknown rest from a slow or hung
// upstream would hold the try.
func (b *body) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	if b.err != nil {
		return nil
	}
	if b.mode == bodyLength && b.remain <= 4<<10 && b.remain <= int64(b.br.Buffered()) {
		b.br.Discard(int(b.remain))
		b.remain = 0
		b.finish(io.EOF)
		return nil
	}
	b.finish(errClosedEarly)
	return nil
}

// readChunked reads chunk data (RFC 9112 §7.1), strictly: sizes are 1 to
// 15 hex digits, extensions are skipped, every line ends in CRLF.
func (b *body) readChunked(p []byte) (int, error) {
	for b.remain == 0 {
		if b.needCRLF {
			if err := readChunkEnd(b.br); err != nil {
				return 0, err
			}
			b.needCRLF = false
		}
		size, err := readChunkSize(b.br)
		if err != nil {
			return 0, err
		}
		if size == 0 {
			if err := skipTrailers(b.br); err != nil {
				return 0, err
			}
			return 0, io.EOF
		}
		b.remain = size
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	n, err := b.br.Read(p)
	b.remain -= int64(n)
	if b.remain == 0 {
		b.needCRLF = true
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func readChunkEnd(br *bufio.Reader) error {
	c, err := br.ReadByte()
	if err == nil && c != '\r' {
		return ErrBadResponseChunk
	}
	if err == nil {
		if c, err = br.ReadByte(); err == nil && c != '\n' {
			return ErrBadResponseChunk
		}
	}
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readChunkSize reads "SIZE[;ext]CRLF".
func readChunkSize(br *bufio.Reader) (int64, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return 0, ErrBadResponseChunk // a chunk line longer than the buffer: extensions as an attack
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return 0, ErrBadResponseChunk
	}
	line = line[:len(line)-2]
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			goto ext
		}
		if i >= 15 {
			return 0, ErrBadResponseChunk // would overflow, and no body is that large
		}
		n = n<<4 | int64(d)
	}
ext:
	if i == 0 {
		return 0, ErrBadResponseChunk
	}
	rest := line[i:]
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') { // BWS before ";"
		rest = rest[1:]
	}
	if len(rest) > 0 && rest[0] != ';' {
		return 0, ErrBadResponseChunk
	}
	for _, c := range rest {
		if c < ' ' && c != '\t' || c == 0x7f {
			return 0, ErrBadResponseChunk
		}
	}
	return n, nil
}

// skipTrailers reads the trailer section up to its empty line and drops
// it: the gateway does not forward response trailers on this path.
func skipTrailers(br *bufio.Reader) error {
	total := 0
	for {
		line, err := br.ReadSlice('\n')
		total += len(line)
		if err == bufio.ErrBufferFull || total > maxTrailerBytes {
			return ErrBadResponseChunk
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if len(line) < 2 || line[len(line)-2] != '\r' {
			return ErrBadLineEnding
		}
		for _, c := range line[:len(line)-2] {
			if c == '\r' {
				return ErrBadLineEnding
			}
		}
		if len(line) == 2 {
			return nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return ErrObsFold
		}
	}
}
