package resilienthttp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
)

// Admitter is what [Shedder] needs from a limiter: admission with a
// [resilience.Permit] to release with the outcome. Every resilience.Guard
// satisfies it; an adaptive limiter (resilience/limit) is the intended one.
type Admitter interface {
	Admit(ctx context.Context) (resilience.Permit, error)
}

// DefaultShedRetryAfter is the default [Shedder.RetryAfter].
const DefaultShedRetryAfter = time.Second

// shedBody is the text of a 503 sent for a shed request.
const shedBody = "server overloaded: request shed, retry later\n"

// Shedder is server middleware that sheds load: it asks Limiter to admit
// each request and answers 503 Service Unavailable, with a Retry-After
// header, when it does not. An admitted request runs Next, and its permit is
// released with the handler's latency and whether it was dropped (the
// handler answered 503, or the request's context hit its deadline), the
// signals an adaptive limiter moves its limit on; a 5xx answer is released
// as a failure, with a *[StatusError].
//
// Set the fields before the first request and do not change them after; a
// Shedder must not be copied once used.
type Shedder struct {
	// Limiter admits requests. Default nil: every request is admitted.
	Limiter Admitter
	// Next serves admitted requests. Default nil: 404 Not Found.
	Next http.Handler
	// RetryAfter is the delay a shed response asks clients to wait, sent in
	// whole seconds, rounded up. Default DefaultShedRetryAfter (1 s).
	RetryAfter time.Duration

	writers sync.Pool // *statusWriter, so that admitted requests allocate nothing

	// The shed response's header values, made once: shedding is the
	// overload path, and allocating there would make overload worse.
	hdrOnce sync.Once
	hdr     shedHeader
}

type shedHeader struct{ retryAfter, contentType, nosniff []string }

// Shed returns a [Shedder] that admits requests to next through limiter.
func Shed(limiter Admitter, next http.Handler) *Shedder {
	return &Shedder{Limiter: limiter, Next: next}
}

// ServeHTTP admits r or sheds it.
func (s *Shedder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	next := s.Next
	if next == nil {
		next = http.NotFoundHandler()
	}
	if s.Limiter == nil {
		next.ServeHTTP(w, r)
		return
	}
	permit, err := s.Limiter.Admit(r.Context())
	if err != nil { // a rejection, or the client gave up while queued
		s.shed(w)
		return
	}
	sw, _ := s.writers.Get().(*statusWriter)
	if sw == nil {
		sw = new(statusWriter)
	}
	sw.ResponseWriter = w
	start := time.Now()
	released := false
	defer func() {
		if !released { // Next panicked (http.ErrAbortHandler, say): release anyway
			permit.Release(resilience.Outcome{Err: errHandlerPanicked, Latency: time.Since(start)})
		}
	}()
	next.ServeHTTP(sw, r)
	o := resilience.Outcome{Latency: time.Since(start)}
	code := sw.code
	if code == 0 && !sw.hijacked {
		code = http.StatusOK // the server sends 200 for a handler that wrote nothing
	}
	if code >= 500 {
		o.Err = &StatusError{Code: code}
	}
	o.Dropped = code == http.StatusServiceUnavailable || r.Context().Err() == context.DeadlineExceeded
	released = true
	permit.Release(o)
	*sw = statusWriter{}
	s.writers.Put(sw)
}

// errHandlerPanicked is the outcome of a request whose handler panicked.
var errHandlerPanicked = errors.New("resilienthttp: handler panicked")

func (s *Shedder) shed(w http.ResponseWriter) {
	s.hdrOnce.Do(func() {
		d := s.RetryAfter
		if d <= 0 {
			d = DefaultShedRetryAfter
		}
		secs := int64((d + time.Second - 1) / time.Second)
		s.hdr = shedHeader{
			retryAfter:  []string{strconv.FormatInt(secs, 10)},
			contentType: []string{"text/plain; charset=utf-8"},
			nosniff:     []string{"nosniff"},
		}
	})
	// The slices are shared by every shed response; nothing modifies a
	// header value in place (Header.Add appends past their capacity).
	h := w.Header()
	h["Retry-After"] = s.hdr.retryAfter
	h["Content-Type"] = s.hdr.contentType
	h["X-Content-Type-Options"] = s.hdr.nosniff
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, shedBody)
}

// statusWriter records the status a handler sends. It implements the
// optional interfaces handlers type-assert for (http.Flusher, http.Hijacker,
// http.Pusher, io.ReaderFrom) by delegating, and Unwrap for
// http.ResponseController, so wrapping changes nothing a handler can see
// except that methods the underlying writer lacks return
// http.ErrNotSupported.
type statusWriter struct {
	http.ResponseWriter
	code     int
	hijacked bool
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// WriteHeader records the final status: 1xx responses other than 101 are
// informational, and more may follow.
func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// WriteString keeps io.WriteString from copying s when the wrapped writer
// writes strings itself (net/http's does).
func (w *statusWriter) WriteString(s string) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return io.WriteString(w.ResponseWriter, s)
}

// ReadFrom keeps net/http's sendfile path for io.Copy into the writer.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return io.Copy(w.ResponseWriter, r)
}

// Flush implements http.Flusher.
func (w *statusWriter) Flush() { _ = w.FlushError() }

// FlushError flushes and reports errors; http.ResponseController prefers it.
func (w *statusWriter) FlushError() error {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack implements http.Hijacker.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return conn, rw, err
}

// Push implements http.Pusher.
func (w *statusWriter) Push(target string, opts *http.PushOptions) error {
	if p, ok := w.ResponseWriter.(http.Pusher); ok {
		return p.Push(target, opts)
	}
	return http.ErrNotSupported
}
