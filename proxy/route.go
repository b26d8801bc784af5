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

	"github.com/bulwark-go/bulwark/proxy/balance"
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
	perTry, total time.Duration
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
	rt.hedgeMax = max(rc.Hedge.Max, 1)
	rt.vote = compileVote(rc.Vote)
	if rt.hedgeQuantile > 0 {
		rt.latencies = hedge.NewLatencyQuantile(512, 20, rt.hedgeQuantile)
	}
	if rc.Limit.Algorithm != "" {
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
	if rt.limiter != nil {
		release, err := rt.limiter.Acquire(r.Context())
		if err != nil {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "gateway overloaded: "+rt.name+" is at its concurrency limit; retry later", http.StatusServiceUnavailable)
			rec.end(http.StatusServiceUnavailable, start)
			return
		}
		defer func() { release(resilience.Outcome{Latency: time.Since(start)}) }()
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
	var code int
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

// forward runs the tries and returns the one to answer with (which may be
// a failure). With hedging, a second try starts when the first is slow.
func (rt *route) forward(ctx context.Context, r *http.Request, body []byte, canRetry bool) *try {
	rt.budget.Request()
	defer rt.budget.Done()
	var tried balance.Tried
	hedge := canRetry && (rt.hedgeDelay > 0 || rt.hedgeQuantile > 0)
	var last *try
	for attempt := 1; ; attempt++ {
		var t *try
		if hedge {
			t = rt.hedged(ctx, r, body, &tried)
		} else {
			t = rt.once(ctx, r, body, &tried)
		}
		t.tries = attempt
		if t.kind == failNone {
			if last != nil {
				last.discard()
			}
			return t
		}
		if t.ep == nil && last != nil {
			return last // no other endpoint to try: answer with what the last one said
		}
		if last != nil {
			last.discard()
		}
		last = t
		if !canRetry || attempt >= rt.attempts || ctx.Err() != nil || !rt.retryable(t) || t.ep == nil {
			return last
		}
		if !rt.budget.TryRetry() {
			rt.gw.metrics.budgetExhausted(rt.name)
			return last
		}
		rt.budget.RetryDone()
		rt.gw.metrics.retry(rt.name, t.kind)
		if b := rt.cfg.Retries.Backoff; b > 0 {
			select {
			case <-ctx.Done():
				return last
			case <-time.After(b):
			}
		}
	}
}

// once picks an endpoint and sends one try.
func (rt *route) once(ctx context.Context, r *http.Request, body []byte, tried *balance.Tried) *try {
	ep, done, err := rt.upstream.pick(r, tried)
	if err != nil {
		return &try{err: err, kind: failOther}
	}
	tried.Add(ep)
	return rt.observe(ep, done, func() *try { return rt.send(ctx, r, body, ep) })
}

// observe runs send and reports its outcome to the balancer, the
// endpoint's breaker and passive health.
func (rt *route) observe(ep *balance.Endpoint, done func(resilience.Outcome), send func() *try) *try {
	ep.Start()
	start := time.Now()
	t := send()
	lat := time.Since(start)
	failed := t.kind != failNone && t.kind != failOther
	ep.Done(lat, failed)
	if done != nil {
		if t.kind == failOther {
			done(resilience.Outcome{Latency: lat}) // not the endpoint's fault (the client left): neutral
		} else {
			done(resilience.Outcome{Err: t.err, Latency: lat})
		}
	}
	if t.kind != failOther {
		status := 0
		if t.resp != nil {
			status = t.resp.StatusCode
		}
		rt.upstream.passive.observe(ep, t.kind, status, lat)
	}
	if rt.latencies != nil && t.kind == failNone {
		rt.latencies.Record(lat)
	}
	rt.upstream.metrics.try(t.kind, lat)
	return t
}

// hedged sends a try and, if it has not answered after the hedge delay,
// up to hedgeMax more on other endpoints; the first good answer wins and
// the others are cancelled. Losing tries end with the request: their
// contexts are cancelled and a goroutine per loser releases their
// connection when they return.
func (rt *route) hedged(ctx context.Context, r *http.Request, body []byte, tried *balance.Tried) *try {
	delay := rt.hedgeDelay
	if rt.hedgeQuantile > 0 {
		d, ok := rt.latencies.Value()
		if !ok {
			return rt.once(ctx, r, body, tried) // too few samples to know what slow means
		}
		delay = d
	}
	type result struct {
		t   *try
		idx int
	}
	results := make(chan result, rt.hedgeMax+1)
	cancels := make([]context.CancelFunc, 0, rt.hedgeMax+1)
	launch := func() bool {
		ep, done, err := rt.upstream.pick(r, tried)
		if err != nil {
			return false
		}
		tried.Add(ep)
		hctx, hcancel := context.WithCancel(ctx)
		idx := len(cancels)
		cancels = append(cancels, hcancel)
		go func() {
			results <- result{rt.observe(ep, done, func() *try { return rt.send(hctx, r, body, ep) }), idx}
		}()
		return true
	}
	if !launch() {
		return &try{err: balance.ErrNoEndpoint, kind: failOther}
	}
	running, hedges := 1, 0
	timer := time.NewTimer(delay)
	defer timer.Stop()
	var first, winner result
loop:
	for running > 0 {
		select {
		case res := <-results:
			running--
			if res.t.kind == failNone {
				winner = res
				break loop
			}
			if first.t == nil {
				first = res
			} else {
				res.t.discard()
				cancels[res.idx]()
			}
		case <-timer.C:
			if hedges < rt.hedgeMax && rt.budget.TryRetry() {
				rt.budget.RetryDone()
				if launch() {
					running++
					hedges++
					rt.gw.metrics.hedge(rt.name)
				}
				timer.Reset(delay)
			}
		}
	}
	keep := first
	if winner.t != nil {
		keep = winner
		if first.t != nil {
			first.t.discard()
			cancels[first.idx]()
		}
	}
	for i, c := range cancels {
		if i != keep.idx {
			c()
		}
	}
	for range running {
		go func() { (<-results).t.discard() }()
	}
	inner, outer := keep.t.cancel, cancels[keep.idx]
	keep.t.cancel = func() {
		if inner != nil {
			inner()
		}
		outer()
	}
	return keep.t
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
