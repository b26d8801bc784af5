package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// maxCorruptBody bounds how much of a response body http_corrupt reads
// into memory; bytes beyond it pass through untouched.
const maxCorruptBody = 8 << 20

// upstreamURL parses an HTTP proxy's upstream: a base URL, or host:port
// meaning http://host:port.
func upstreamURL(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q: want http(s)://host:port or host:port", s)
	}
	return u, nil
}

// bufferPool recycles the reverse proxy's 32 KiB copy buffers; one per
// proxy, not global.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32*1024)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

func slogErrorLog(l *slog.Logger) *log.Logger { return slog.NewLogLogger(l.Handler(), slog.LevelWarn) }

// newHTTPHandler builds the reverse proxy of an HTTP-protocol proxy. The
// faults live in a RoundTripper so that they see exactly the request sent
// upstream and the response as the backend sent it.
func (p *Proxy) newHTTPHandler() (http.Handler, error) {
	target, err := upstreamURL(p.cfg.Upstream)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: p.dialTimeout}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
		// Keep the body bytes as the backend sent them: corruption must
		// hit the bytes a Content-Digest covers.
		DisableCompression: true,
	}
	p.httpTr = tr
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport:  &faultTransport{p: p, next: tr},
		BufferPool: &bufferPool{},
		ErrorLog:   slogErrorLog(p.log),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			p.log.Warn("upstream request failed", "err", err)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.stats.requests.Add(1)
		rp.ServeHTTP(w, r)
	}), nil
}

// faultTransport applies a proxy's HTTP toxics around one round trip:
// upstream-stream toxics to the request, downstream ones to the response.
// http_abort answers without forwarding, whichever its stream.
type faultTransport struct {
	p    *Proxy
	next http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (ft *faultTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c := ft.p.chain.Load()
	for _, t := range c.all {
		if a, ok := t.Attributes.(*HTTPAbortAttrs); ok && ft.roll(t) {
			ft.p.stats.aborted.Add(1)
			return abortResponse(req, a), nil
		}
	}
	for _, t := range c.dirs[dirUp] {
		if _, abort := t.Attributes.(*HTTPAbortAttrs); abort || !ft.roll(t) {
			continue
		}
		switch a := t.Attributes.(type) {
		case *HTTPDelayAttrs:
			if err := ft.delay(req.Context(), a); err != nil {
				return nil, err
			}
		case *HTTPHeaderAttrs:
			ft.p.stats.headersAltered.Add(1)
			alterHeader(req.Header, a)
		}
	}
	resp, err := ft.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	for _, t := range c.dirs[dirDown] {
		if _, abort := t.Attributes.(*HTTPAbortAttrs); abort || !ft.roll(t) {
			continue
		}
		switch a := t.Attributes.(type) {
		case *HTTPDelayAttrs:
			if err := ft.delay(req.Context(), a); err != nil {
				_ = resp.Body.Close()
				return nil, err
			}
		case *HTTPHeaderAttrs:
			ft.p.stats.headersAltered.Add(1)
			alterHeader(resp.Header, a)
		case *HTTPCorruptAttrs:
			if err := ft.corrupt(resp, a); err != nil {
				return nil, err
			}
		}
	}
	return resp, nil
}

// roll decides whether a toxic applies to this request.
func (ft *faultTransport) roll(t *Toxic) bool {
	return t.Toxicity >= 1 || (t.Toxicity > 0 && ft.p.float64() < t.Toxicity)
}

func (ft *faultTransport) delay(ctx context.Context, a *HTTPDelayAttrs) error {
	d := a.Delay
	if a.Jitter > 0 {
		d += ft.p.int64n(2*a.Jitter) - a.Jitter
	}
	ft.p.stats.delayed.Add(1)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(time.Duration(d) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func abortResponse(req *http.Request, a *HTTPAbortAttrs) *http.Response {
	h := http.Header{"Content-Type": {"text/plain; charset=utf-8"}, "X-Bulwark-Chaos": {"http_abort"}}
	return &http.Response{
		StatusCode: a.Status, Status: fmt.Sprintf("%d %s", a.Status, http.StatusText(a.Status)),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(strings.NewReader(a.Body)), ContentLength: int64(len(a.Body)),
		Request: req,
	}
}

func alterHeader(h http.Header, a *HTTPHeaderAttrs) {
	if a.Action == "set" {
		h.Set(a.Header, a.Value)
		return
	}
	h.Del(a.Header)
}

// corrupt flips a.Bytes distinct random bytes of the body (XOR with a
// non-zero value, so every flipped byte really changes). Headers,
// Content-Length and Content-Digest included, stay as the backend sent them.
func (ft *faultTransport) corrupt(resp *http.Response, a *HTTPCorruptAttrs) error {
	orig := resp.Body
	body, err := io.ReadAll(io.LimitReader(orig, maxCorruptBody))
	if err != nil {
		_ = orig.Close()
		return fmt.Errorf("read body to corrupt: %w", err)
	}
	s1, s2 := ft.p.seeds()
	flipped := flipBytes(rand.New(rand.NewPCG(s1, s2)), body, a.Bytes)
	if flipped > 0 {
		ft.p.stats.corruptedResponses.Add(1)
		ft.p.stats.corruptedBytes.Add(int64(flipped))
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), orig), orig}
	return nil
}

// flipBytes changes n distinct bytes of b (all of them if n ≥ len(b)) and
// returns how many it changed.
func flipBytes(rng *rand.Rand, b []byte, n int) int {
	if n <= 0 || len(b) == 0 {
		return 0
	}
	if n >= len(b) {
		for i := range b {
			b[i] ^= byte(1 + rng.IntN(255))
		}
		return len(b)
	}
	seen := make(map[int]bool, n)
	for len(seen) < n {
		i := rng.IntN(len(b))
		if seen[i] {
			continue
		}
		seen[i] = true
		b[i] ^= byte(1 + rng.IntN(255))
	}
	return n
}
