package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bulwark-go/bulwark/proxy/balance"
	"github.com/bulwark-go/bulwark/proxy/http1"
)

// failKind classifies a failed try, for retry conditions, outlier
// detection and metrics.
type failKind uint8

const (
	failNone      failKind = iota
	failConnect            // could not connect: the request never reached the endpoint
	failReset              // connection reset or closed mid-exchange
	failTimeout            // the per-try timeout expired
	failStatus             // the endpoint answered with a failure status
	failDigest             // the body did not match its Content-Digest
	failOther              // anything else (malformed response, ...)
	failByzantine          // a well-formed answer outvoted by the other replicas
)

var failNames = [...]string{"ok", "connect_error", "reset", "timeout", "status", "digest", "other", "byzantine"}

func (k failKind) String() string { return failNames[k] }

// try is the result of sending a request to one endpoint.
type try struct {
	ep     *balance.Endpoint
	resp   *http.Response // with Body replaced by the verified buffer when buffered
	body   []byte         // the verified body, when buffered
	err    error
	kind   failKind
	tries  int                        // how many tries the request took, this one included
	cancel context.CancelFunc         // ends the try's context; called when the body is done
	timer  *time.Timer                // the per-try timeout
	ext    atomic.Pointer[time.Timer] // the rest of the way to the ceiling, after an adaptive timeout let the try run on
	hedge  int                        // a hedge's index among its request's hedges; -1 for other tries

	expired   atomic.Bool // the per-try timeout cancelled the try
	abandoned atomic.Bool // it expired at the adaptive timeout and its retry is paid for
	lost      bool        // a hedge answered first, so the try was cancelled

	out http.Request // the request sent, on the fast path (see forwardRequest)
	url url.URL      // out's URL
}

// discard releases a try that will not be answered to the client.
func (t *try) discard() {
	if t.resp != nil && t.body == nil {
		// Drain a little so the connection can be reused, then close.
		io.CopyN(io.Discard, t.resp.Body, 4<<10)
		t.resp.Body.Close()
	}
	t.finish()
}

// status is the endpoint's answer, 0 if none.
func (t *try) status() int {
	if t.resp == nil {
		return 0
	}
	return t.resp.StatusCode
}

func (t *try) finish() {
	t.stopTimers()
	if t.cancel != nil {
		t.cancel()
	}
}

func (t *try) stopTimers() {
	if t.timer != nil {
		t.timer.Stop()
	}
	if e := t.ext.Load(); e != nil {
		e.Stop()
	}
}

// errStatus marks a response whose status counts as a failure (5xx by
// default), so breakers and retry conditions see it.
type errStatus int

func (e errStatus) Error() string { return fmt.Sprintf("upstream answered %d", int(e)) }

// send sends one try of the request (with the buffered body, if any) to
// ep under tctx, a child of ctx that cancel ends, and classifies the
// outcome. h, for the first try of a hedged request, shares the try's
// timer with the hedge. It verifies Content-Digest before returning, so a try that
// returns without error is safe to pass to the client.
func (rt *route) send(ctx, tctx context.Context, cancel context.CancelFunc, req *request, ep *balance.Endpoint, h *hedging) *try {
	m := ep.Data().(*member)
	t := &try{ep: ep, cancel: cancel, hedge: -1}
	timeout, adaptive := rt.tryTimeout()
	// The per-try timeout covers connecting, the response headers and the
	// digest check; a streamed body is bounded only by the total.
	var expire func()
	if !adaptive {
		expire = func() { t.expired.Store(true); cancel() }
	} else {
		rest := rt.perTry - timeout
		expire = func() {
			if req.mayAbandon() {
				t.abandoned.Store(true)
				t.expired.Store(true)
				cancel()
				return
			}
			t.ext.Store(time.AfterFunc(rest, func() { t.expired.Store(true); cancel() }))
		}
	}
	switch { // h is the hedging of this try when it is a hedged request's first
	case h != nil && (timeout <= 0 || h.delay < timeout):
		// One timer for both: it fires the hedge, then re-arms for the
		// per-try timeout (a second timer per request cost 2% of the CPU).
		t.timer = h.arm(timeout, expire)
	case timeout > 0:
		t.timer = time.AfterFunc(timeout, expire)
		if h != nil {
			h.arm(-1, nil) // the timeout comes first: no hedge for this try
		}
	}
	if tr := rt.gw.opts.Tracer; tr != nil {
		var end func(int, string, error)
		tctx, end = tr.StartTry(tctx, ep.ID())
		defer func() { end(t.status(), t.kind.String(), t.err) }()
	}
	resp, err := rt.roundTrip(tctx, t, req, m)
	if err != nil {
		t.err, t.kind = err, t.classify(tctx, ctx, err)
		return t
	}
	t.resp = resp
	if rt.failStatus(resp.StatusCode) {
		t.err, t.kind = errStatus(resp.StatusCode), failStatus
	}
	if err := rt.verify(t, m, rt.upstream.maxVerify); err != nil {
		t.err, t.kind = err, failDigest
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			t.kind = t.classify(tctx, ctx, err)
			if t.kind == failTimeout {
				t.err = fmt.Errorf("per-try timeout while reading the body: %w", err)
			}
		} else if !errors.Is(err, ErrDigestMismatch) && !errors.Is(err, ErrDigestMissing) {
			t.kind = failReset
		}
	}
	if t.kind == failNone && rt.upstream.sigMaxAge > 0 {
		if err := rt.upstream.checkSignature(t, m); err != nil {
			t.err, t.kind = err, failByzantine
			rt.upstream.byzantine(ep, err.Error()) // observe reports it to outlier detection
		}
	}
	if t.kind == failNone || t.kind == failStatus {
		t.stopTimers() // the answer is here: a streaming body is not a slow try
	}
	return t
}

// classify tells a connect failure (safe to retry anywhere: nothing was
// sent) from a reset, from our own per-try timeout, and from a
// cancellation that is not the endpoint's fault (the client left, the
// total timeout expired, a hedge won).
func (t *try) classify(tctx, ctx context.Context, err error) failKind {
	if ctx.Err() != nil {
		return failOther
	}
	if tctx.Err() != nil {
		if t.expired.Load() {
			return failTimeout
		}
		return failOther
	}
	if isTimeout(err) {
		return failTimeout
	}
	return classifyErr(err)
}

// verify checks the response's Content-Digest. Bodies up to max bytes are
// read whole and checked before the client sees anything; larger ones are
// checked as they stream (see streamVerifier).
func (rt *route) verify(t *try, m *member, max int64) error {
	resp := t.resp
	h := resp.Header.Get("Content-Digest")
	if h == "" {
		if rt.requireDigest && resp.StatusCode < 300 && resp.Request.Method != http.MethodHead {
			resp.Body.Close()
			return ErrDigestMissing
		}
		return nil
	}
	d, err := parseContentDigest(h)
	if err != nil || !d.any {
		if rt.requireDigest {
			resp.Body.Close()
			return fmt.Errorf("%w: unusable header %q", ErrDigestMissing, h)
		}
		return nil
	}
	if resp.Request.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
		return nil
	}
	if resp.ContentLength > max {
		resp.Body = &streamVerifier{rc: resp.Body, v: newVerifier(d)}
		return nil
	}
	var body []byte
	if resp.ContentLength >= 0 { // the usual case: read exactly that much
		body = make([]byte, resp.ContentLength)
		if _, err := io.ReadFull(resp.Body, body); err != nil {
			resp.Body.Close()
			return err
		}
	} else {
		buf := bytes.NewBuffer(make([]byte, 0, 512))
		n, err := io.Copy(buf, io.LimitReader(resp.Body, max+1))
		if err != nil {
			resp.Body.Close()
			return err
		}
		if n > max { // no Content-Length and too large: check the rest while streaming
			resp.Body = &streamVerifier{rc: resp.Body, v: newVerifier(d), head: buf.Bytes()}
			return nil
		}
		body = buf.Bytes()
	}
	resp.Body.Close()
	v := newVerifier(d)
	v.Write(body)
	err = v.check()
	v.release()
	if err != nil {
		return err
	}
	t.body = body
	return nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// streamVerifier checks a large body's digest as it streams. On a
// mismatch the last read fails, so the gateway aborts the client's
// response instead of completing it: the client never receives a whole
// body whose digest failed.
type streamVerifier struct {
	rc   io.ReadCloser
	v    *verifier
	head []byte
}

func (s *streamVerifier) Read(p []byte) (int, error) {
	if len(s.head) > 0 {
		n := copy(p, s.head)
		s.v.Write(s.head[:n])
		s.head = s.head[n:]
		return n, nil
	}
	n, err := s.rc.Read(p)
	s.v.Write(p[:n])
	if err == io.EOF {
		cerr := s.v.check()
		if cerr != nil {
			return n, cerr
		}
	}
	return n, err
}

func (s *streamVerifier) Close() error { return s.rc.Close() }

// classifyErr tells a connect failure from a reset and from other
// transport errors.
func classifyErr(err error) failKind {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return failConnect
	}
	// TLS: a certificate the gateway does not trust fails the handshake
	// before anything is sent (a connect failure: the wrong server, or a
	// middleman presenting its own); a record that fails its integrity
	// check or an alert mid-exchange breaks the connection (a reset: the
	// bytes were tampered with on the way).
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	var hne x509.HostnameError
	if errors.As(err, &cve) || errors.As(err, &uae) || errors.As(err, &hne) {
		return failConnect
	}
	var alert tls.AlertError
	var rhe tls.RecordHeaderError
	if errors.As(err, &alert) || errors.As(err, &rhe) || strings.Contains(err.Error(), "tls: ") {
		return failReset
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return failConnect
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.EPIPE) || strings.Contains(err.Error(), "server closed") {
		return failReset
	}
	return failOther
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// outgoing builds the request sent to an endpoint: the client's request
// with the endpoint's scheme and host, hop-by-hop headers removed and
// forwarding headers added. The Host header is the client's, as nginx's
// proxy_set_header Host $host and HAProxy do.
func (rt *route) outgoing(ctx context.Context, in *http.Request, base *url.URL, body []byte) *http.Request {
	out := in.Clone(ctx) // shallow for the body; deep for headers and URL
	out.RequestURI = ""
	out.URL.Scheme = base.Scheme
	out.URL.Host = base.Host
	if base.Path != "" && base.Path != "/" {
		out.URL.Path = strings.TrimSuffix(base.Path, "/") + in.URL.Path
		out.URL.RawPath = ""
	}
	out.Host = in.Host
	out.Close = false
	removeHopHeaders(out.Header, true)
	addForwarded(out.Header, in)
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = []string{""} // do not let net/http add its own
	}
	setBody(out, in, body)
	return out
}

// roundTrip sends t's request to m: on the fast path (the HTTP/1.1
// engine, no tracer) with the client's header as it is and the
// forwarding fields as bytes, without copying the request; otherwise as
// outgoing builds it.
func (rt *route) roundTrip(tctx context.Context, t *try, req *request, m *member) (*http.Response, error) {
	tr := rt.gw.opts.Tracer
	if ft, ok := rt.upstream.fast.(*http1.Transport); ok && tr == nil && req.fwd != nil {
		out := t.forwardRequest(req.r, m.url, req.body)
		resp, err := ft.RoundTripForward(tctx, out, http1.Forward{Skip: skipForward, Extra: req.fwd})
		if !errors.Is(err, http1.ErrNotForwardable) {
			return resp, err
		}
	}
	out := rt.outgoing(tctx, req.r, m.url, req.body)
	if tr != nil {
		tr.Inject(tctx, out.Header) // the endpoint continues the try's span
	}
	return rt.upstream.roundTripper(rt.gw.transport).RoundTrip(out)
}

// forwardRequest is outgoing for the fast path: the same request in t's
// own storage, sharing in's header (which the fast transport only reads,
// leaving out skipForward's fields).
func (t *try) forwardRequest(in *http.Request, base *url.URL, body []byte) *http.Request {
	out := &t.out
	*out = *in
	out.RequestURI = ""
	t.url = *in.URL
	out.URL = &t.url
	t.url.Scheme = base.Scheme
	t.url.Host = base.Host
	if base.Path != "" && base.Path != "/" {
		t.url.Path = strings.TrimSuffix(base.Path, "/") + in.URL.Path
		t.url.RawPath = ""
	}
	out.Close = false
	setBody(out, in, body)
	return out
}

// setBody gives out the buffered body (replayable), or none when the
// client sent none; otherwise out keeps in's body, to stream once.
func setBody(out, in *http.Request, body []byte) {
	if body != nil {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	} else if in.ContentLength == 0 {
		out.Body = nil
	}
}

// failStatus reports whether an endpoint's status counts as its failure.
func (rt *route) failStatus(code int) bool {
	return code >= 500 && code != http.StatusNotImplemented && code != http.StatusHTTPVersionNotSupported
}

// retryable reports whether a failed try may be sent again elsewhere.
func (rt *route) retryable(t *try) bool {
	for _, c := range rt.retryOn {
		switch {
		case c.kind == "connect-error" && t.kind == failConnect,
			c.kind == "reset" && t.kind == failReset,
			c.kind == "timeout" && t.kind == failTimeout,
			c.kind == "digest" && (t.kind == failDigest || t.kind == failByzantine):
			return true
		case c.kind == "status" && t.resp != nil && t.resp.StatusCode >= c.lo && t.resp.StatusCode <= c.hi:
			return true
		}
	}
	return false
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
