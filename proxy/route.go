package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
	"github.com/bulwark-go/bulwark/resilience/hedge"
	"github.com/bulwark-go/bulwark/resilience/limit"
	"github.com/bulwark-go/bulwark/resilience/ratelimit"
	"github.com/bulwark-go/bulwark/resilience/retry"
)

// route is a compiled Route: its matcher, policies and upstream.
type route struct {
	gw            *Gateway
	name          string
	cfg           Route
	upstream      *pool
	attempts      int
	retryOn       []retryCond
	nonIdem       bool
	maxBody       int64
	budget        retry.Budget
	hedges        retry.Budget  // hedges' own budget, DefaultHedgeBudget of requests
	perTry, total time.Duration // perTry is the ceiling of a try
	adaptive      bool          // per-try timeouts adapt below perTry (timeouts.fixed_per_try unset)
	abandonable   bool          // a try cut by the adaptive timeout may be retried ("timeout" in retries.on)
	hedgeAuto     bool          // hedge after min(pool p95, adaptive timeout)
	hedgeDelay    time.Duration
	hedgeQuantile float64
	hedgeMax      int
	latencies     *hedge.LatencyQuantile // for quantile hedging
	metrics       *routeMetrics
	accessLog     bool
	limiter       *limit.Limiter
	rate          *ratelimit.Keyed
	fallback      Fallback
	requireDigest bool
	host          string
	hostWildcard  bool
	methods       map[string]bool
	vote          *voting // nil: no voting
}

func (g *Gateway) compileRoute(i int, rc Route, pools map[string]*pool) (*route, error) {
	rc = routeDefaults(rc, i)
	rt := &route{gw: g, name: rc.Name, cfg: rc, upstream: pools[rc.Upstream], attempts: rc.Retries.Attempts,
		metrics: g.metrics.route(rc.Name),
		nonIdem: rc.Retries.NonIdempotent, maxBody: int64(rc.Retries.MaxBody), perTry: rc.Timeouts.PerTry,
		total: rc.Timeouts.Total, fallback: rc.Fallback, requireDigest: rc.RequireDigest}
	if rt.upstream == nil {
		return nil, fmt.Errorf("route %s: no upstream %q", rc.Name, rc.Upstream)
	}
	for _, on := range rc.Retries.On {
		c, err := parseRetryOn(on)
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", rc.Name, err)
		}
		rt.retryOn = append(rt.retryOn, c)
	}
	var err error
	rt.budget, err = retry.NewRateBudget(retry.RateBudgetConfig{Ratio: rc.Retries.Budget.Ratio, MinPerSecond: float64(rc.Retries.Budget.MinPerSecond)})
	if err != nil {
		return nil, fmt.Errorf("route %s: retry budget: %w", rc.Name, err)
	}
	if rt.hedgeDelay, rt.hedgeQuantile, err = parseHedgeDelay(rc.Hedge.Delay); err != nil {
		return nil, fmt.Errorf("route %s: %w", rc.Name, err)
	}
	rt.hedgeAuto = rc.Hedge.Delay == ""
	hb := rc.Hedge.Budget
	if hb == 0 {
		hb = DefaultHedgeBudget
	}
	if rt.hedges, err = retry.NewRateBudget(retry.RateBudgetConfig{Ratio: hb, MinPerSecond: defaultHedgeReserve}); err != nil {
		return nil, fmt.Errorf("route %s: hedge budget: %w", rc.Name, err)
	}
	rt.adaptive = !rc.Timeouts.FixedPerTry
	for _, c := range rt.retryOn {
		rt.abandonable = rt.abandonable || c.kind == "timeout"
	}
	rt.hedgeMax = max(rc.Hedge.Max, 1)
	rt.vote = compileVote(rc.Vote)
	if rt.hedgeQuantile > 0 {
		rt.latencies = hedge.NewLatencyQuantile(512, 20, rt.hedgeQuantile)
	}
	if rc.Limit.Algorithm != "off" {
		if rt.limiter, err = newLimiter(rc); err != nil {
			return nil, fmt.Errorf("route %s: limit: %w", rc.Name, err)
		}
	}
	if rc.RateLimit.PerClient > 0 {
		burst := rc.RateLimit.Burst
		if burst == 0 {
			burst = int(rc.RateLimit.PerClient + 0.999)
		}
		if rt.rate, err = ratelimit.NewKeyed(ratelimit.KeyedConfig{Config: ratelimit.Config{Name: rc.Name, Rate: rc.RateLimit.PerClient, Burst: burst}}); err != nil {
			return nil, fmt.Errorf("route %s: rate limit: %w", rc.Name, err)
		}
	}
	host := strings.ToLower(rc.Match.Host)
	rt.host, rt.hostWildcard = strings.TrimPrefix(host, "*."), strings.HasPrefix(host, "*.")
	if len(rc.Match.Methods) > 0 {
		rt.methods = map[string]bool{}
		for _, m := range rc.Match.Methods {
			rt.methods[m] = true
		}
	}
	return rt, nil
}

// matches reports whether r is for this route.
func (rt *route) matches(r *http.Request) bool {
	m := &rt.cfg.Match
	if rt.methods != nil && !rt.methods[r.Method] {
		return false
	}
	if !strings.HasPrefix(r.URL.Path, m.PathPrefix) {
		return false
	}
	if rt.host != "" {
		h := strings.ToLower(r.Host)
		if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
			h = h[:i]
		}
		if rt.hostWildcard {
			if !strings.HasSuffix(h, "."+rt.host) {
				return false
			}
		} else if h != rt.host {
			return false
		}
	}
	for k, v := range m.Headers {
		if r.Header.Get(k) != v {
			return false
		}
	}
	return true
}

// idempotent reports whether a request may be sent more than once.
func (rt *route) idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return rt.nonIdem || r.Header.Get("Idempotency-Key") != ""
}

// serve forwards r: admission (rate limit, concurrency limit), then tries
// on endpoints until one answers well, the retry conditions say stop, or
// the attempts or the budget run out.
func (rt *route) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := rt.metrics.begin()
	if rt.rate != nil {
		if !rt.rate.Allow(clientIP(r).String()) {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "rate limit exceeded for your address; slow down", http.StatusTooManyRequests)
			rec.end(http.StatusTooManyRequests, start)
			return
		}
	}
	code := 0 // the answer's status, for the limiter's sample
	if rt.limiter != nil {
		release, err := rt.limiter.Acquire(r.Context())
		if err != nil {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "gateway overloaded: "+rt.name+" is at its concurrency limit; retry later", http.StatusServiceUnavailable)
			rec.end(http.StatusServiceUnavailable, start)
			return
		}
		defer func() {
			o := resilience.Outcome{Latency: time.Since(start)}
			if code == 0 || code >= 500 {
				// Not a latency sample: a fast failure says nothing about
				// queueing, and a panic (an aborted stream) left code 0.
				o.Err = errTry
			}
			release(o)
		}()
	}
	ctx := r.Context()
	if rt.total > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rt.total)
		defer cancel()
	}
	body, bodyErr := rt.bufferBody(r)
	if bodyErr != nil {
		http.Error(w, "reading the request body: "+bodyErr.Error(), http.StatusBadRequest)
		rec.end(http.StatusBadRequest, start)
		return
	}
	var t *try
	if rt.votes(r) {
		t, code = rt.serveVoted(ctx, w, r)
	} else {
		canRetry := rt.idempotent(r) && (body != nil || r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody)
		t = rt.forward(ctx, r, body, canRetry)
		code = rt.respond(w, r, t)
	}
	rec.end(code, start)
	if rt.accessLog {
		rt.logAccess(r, t, code, start)
	}
}

// logAccess writes one structured line per request.
func (rt *route) logAccess(r *http.Request, t *try, code int, start time.Time) {
	ep := ""
	if t.ep != nil {
		ep = t.ep.ID()
	}
	attrs := []slog.Attr{slog.String("method", r.Method), slog.String("host", r.Host), slog.String("path", r.URL.Path),
		slog.Int("status", code), slog.Duration("duration", time.Since(start)), slog.String("route", rt.name),
		slog.String("endpoint", ep), slog.Int("tries", t.tries), slog.String("outcome", t.kind.String()),
		slog.String("client", clientIP(r).String())}
	if tr := rt.gw.opts.Tracer; tr != nil {
		attrs = append(attrs, slog.String("trace_id", tr.TraceID(r.Context())))
	}
	rt.gw.logger.LogAttrs(r.Context(), slog.LevelInfo, "access", attrs...)
}

// bufferBody reads the request body for replay when it is small enough.
// It returns nil when there is no body or it is too large (then r.Body
// still holds it, unread, for a single try).
func (rt *route) bufferBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, nil
	}
	if r.ContentLength > rt.maxBody {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, rt.maxBody+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > rt.maxBody { // unknown length and too large: stitch it back
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(strings.NewReader(string(b)), r.Body), r.Body}
		return nil, nil
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// respond writes t to the client: the endpoint's response, or the
// fallback when no endpoint answered usefully.
func (rt *route) respond(w http.ResponseWriter, r *http.Request, t *try) int {
	defer t.finish()
	if t.resp == nil || t.kind == failDigest || t.kind == failByzantine || t.kind == failTimeout || t.kind == failReset {
		if t.resp != nil && t.body == nil {
			t.resp.Body.Close()
		}
		rt.gw.logger.Debug("no endpoint answered", "route", rt.name, "err", t.err, "kind", t.kind.String())
		return rt.writeFallback(w, t)
	}
	resp := t.resp
	h := w.Header()
	removeHopHeaders(resp.Header, false)
	for k, v := range resp.Header {
		h[k] = v
	}
	if len(resp.Trailer) > 0 {
		names := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			names = append(names, k)
		}
		h["Trailer"] = []string{strings.Join(names, ", ")}
	}
	w.WriteHeader(resp.StatusCode)
	if t.body != nil { // verified and buffered
		w.Write(t.body)
		for k, v := range resp.Trailer {
			h[http.TrailerPrefix+k] = v
		}
		return resp.StatusCode
	}
	if err := copyBody(w, resp); err != nil {
		resp.Body.Close()
		if errors.Is(err, ErrDigestMismatch) {
			rt.upstream.passive.observe(t.ep, failDigest, resp.StatusCode, 0)
			rt.gw.logger.Warn("streamed body failed its digest; aborting the response", "route", rt.name, "endpoint", t.ep.ID())
		}
		panic(http.ErrAbortHandler) // the client must not see a complete, wrong body
	}
	resp.Body.Close()
	for k, v := range resp.Trailer {
		h[http.TrailerPrefix+k] = v
	}
	return resp.StatusCode
}

func copyBody(w http.ResponseWriter, resp *http.Response) error {
	flush := resp.ContentLength == -1 || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	rc := http.NewResponseController(w)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if flush {
				rc.Flush()
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (rt *route) writeFallback(w http.ResponseWriter, t *try) int {
	f := rt.fallback
	h := w.Header()
	h.Set("Content-Type", f.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(f.Body)))
	h.Set("X-Bulwark-Fallback", t.kind.String())
	if f.Status == http.StatusServiceUnavailable || f.Status == http.StatusTooManyRequests {
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(f.Status)
	io.WriteString(w, f.Body)
	return f.Status
}
