package resilienthttp

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"hash"
	"net"
	"net/http"
	"strconv"
)

// ContentDigest is server middleware that adds an RFC 9530 Content-Digest
// to every response with content, so that a gateway (Bulwark's verifies
// it by default) or any client can tell a corrupted body from a good one.
//
// The algorithm follows the request's Want-Content-Digest when it names
// sha-256 or sha-512 with a non-zero weight (the highest weight wins);
// otherwise sha-256. A handler that sets Content-Digest itself is left
// alone. The response is buffered to compute the digest before the first
// byte is sent; a handler that flushes early (streaming) is streamed
// without a digest from that point, since the sum of a body cannot be
// known before its end. HEAD, 1xx, 204 and 304 answers carry no content
// and get no digest.
func ContentDigest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		bw := newBufferedWriter(w)
		next.ServeHTTP(bw, r)
		bw.finish(func(h http.Header, status int, body []byte) {
			if h.Get("Content-Digest") != "" || !hasContent(status) {
				return
			}
			h.Set("Content-Digest", digestValue(wantedAlg(r.Header.Get("Want-Content-Digest")), body))
		})
	})
}

func hasContent(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// digestAlg names the algorithms ContentDigest writes.
type digestAlg uint8

const (
	sha256Alg digestAlg = iota
	sha512Alg
)

// wantedAlg reads Want-Content-Digest (RFC 9530 §4): a dictionary of
// algorithm = weight 0..10, 0 meaning "not acceptable". An unparsable
// field is ignored, as the RFC allows.
func wantedAlg(want string) digestAlg {
	if want == "" {
		return sha256Alg
	}
	members, err := parseSFDictionary(want)
	if err != nil {
		return sha256Alg
	}
	best, bestWeight := sha256Alg, int64(-1)
	for _, m := range members {
		if m.isList || m.item.kind != sfInteger || m.item.num <= 0 {
			continue
		}
		var alg digestAlg
		switch m.key {
		case "sha-256":
			alg = sha256Alg
		case "sha-512":
			alg = sha512Alg
		default:
			continue
		}
		if m.item.num > bestWeight {
			best, bestWeight = alg, m.item.num
		}
	}
	return best
}

// digestValue is the Content-Digest field value of body.
func digestValue(alg digestAlg, body []byte) string {
	var h hash.Hash
	name := "sha-256"
	if alg == sha512Alg {
		h, name = sha512.New(), "sha-512"
	} else {
		h = sha256.New()
	}
	h.Write(body)
	var buf [sha512.Size]byte
	return name + "=:" + base64.StdEncoding.EncodeToString(h.Sum(buf[:0])) + ":"
}

// bufferedWriter holds a handler's answer until it returns, so that
// headers computed from the whole body (digest, signature) can precede it.
// A Flush or Hijack by the handler switches it to pass-through.
type bufferedWriter struct {
	w           http.ResponseWriter
	header      http.Header
	status      int
	body        bytes.Buffer
	passthrough bool // flushed or hijacked: bytes go straight to w
	wroteHeader bool
}

func newBufferedWriter(w http.ResponseWriter) *bufferedWriter {
	return &bufferedWriter{w: w, header: w.Header()}
}

func (b *bufferedWriter) Header() http.Header { return b.header }

func (b *bufferedWriter) WriteHeader(code int) {
	if b.passthrough {
		b.w.WriteHeader(code)
		return
	}
	if b.wroteHeader || code < 200 { // informational answers are not the response
		if code >= 100 && code < 200 {
			b.w.WriteHeader(code)
		}
		return
	}
	b.status, b.wroteHeader = code, true
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.passthrough {
		return b.w.Write(p)
	}
	if !b.wroteHeader {
		b.WriteHeader(http.StatusOK)
	}
	return b.body.Write(p)
}

// Unwrap lets http.ResponseController reach the real writer's deadlines.
func (b *bufferedWriter) Unwrap() http.ResponseWriter { return b.w }

// Flush ends buffering: what is held is sent without a digest, and the
// rest streams.
func (b *bufferedWriter) Flush() { _ = b.FlushError() }

// FlushError is Flush for http.ResponseController.
func (b *bufferedWriter) FlushError() error {
	if !b.passthrough {
		b.startPassthrough()
	}
	return http.NewResponseController(b.w).Flush()
}

// Hijack hands the connection over, as the real writer would.
func (b *bufferedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if b.wroteHeader || b.body.Len() > 0 {
		return nil, nil, errors.New("resilienthttp: hijack after the response started")
	}
	b.passthrough = true
	return http.NewResponseController(b.w).Hijack()
}

func (b *bufferedWriter) startPassthrough() {
	b.passthrough = true
	if !b.wroteHeader {
		b.status, b.wroteHeader = http.StatusOK, true
	}
	b.w.WriteHeader(b.status)
	b.w.Write(b.body.Bytes())
	b.body.Reset()
}

// finish calls decorate with the held answer (unless it already
// streamed), then sends it with an exact Content-Length.
func (b *bufferedWriter) finish(decorate func(h http.Header, status int, body []byte)) {
	if b.passthrough {
		return
	}
	if !b.wroteHeader {
		b.status = http.StatusOK
	}
	body := b.body.Bytes()
	decorate(b.header, b.status, body)
	if hasContent(b.status) {
		b.header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	b.w.WriteHeader(b.status)
	b.w.Write(body)
}
