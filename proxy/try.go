package proxy

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/proxy/balance"
	"github.com/bulwark-go/bulwark/resilience"
)

// The try loop. A request's tries run like this:
//
//	forward: attempt 1, 2, … until one answers well, the retry conditions
//	         say stop, the budget is spent or attempts run out
//	  └─ hedged (idempotent, hedging on) or once
//	       └─ pick (an endpoint not yet tried; a new round once all were)
//	       └─ observe(send): outcome → balancer, breaker, passive health, pool latency
//
// A try's timeout is adaptive (see latency.go): when it expires and the
// request may still be retried elsewhere, the try is abandoned and its
// retry already paid for; otherwise it runs on to the ceiling, so that the
// last chance a request has is never cut short by a guess.

// request is one client request's state across its tries.
type request struct {
	rt       *route
	r        *http.Request
	body     []byte
	canRetry bool
	tried    balance.Tried // guarded by hedging.mu while a hedge timer is armed
	attempt  atomic.Int32  // the current attempt, 1-based
	cuts     atomic.Int32  // tries abandoned at the adaptive timeout
	fwd      []byte        // appendForwarded's lines for the fast path (nil: not on it)
	fwdBuf   [256]byte
}

// forward runs the tries and returns the one to answer with (which may be
// a failure).
func (rt *route) forward(ctx context.Context, r *http.Request, body []byte, canRetry bool) *try {
	rt.budget.Request()
	defer rt.budget.Done()
	req := &request{rt: rt, r: r, body: body, canRetry: canRetry}
	if rt.upstream.fast != nil && rt.gw.opts.Tracer == nil {
		req.fwd = appendForwarded(req.fwdBuf[:0], r)
	}
	hedge := canRetry && (rt.hedgeAuto || rt.hedgeDelay > 0 || rt.hedgeQuantile > 0)
	if hedge {
		rt.hedges.Request()
		defer rt.hedges.Done()
	}
	var last *try
	for attempt := 1; ; attempt++ {
		req.attempt.Store(int32(attempt))
		var t *try
		if hedge {
			t = rt.hedged(ctx, req)
		} else {
			t = rt.once(ctx, req)
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
		if !t.abandoned.Load() && !rt.budget.TryRetry() { // an abandoned try reserved its retry
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

// pick chooses the endpoint of the next try: one this request has not
// tried, or, once every endpoint has had a go, any (a new round), so that
// no endpoint gets a second try while another is untried. A pool of one
// gets no second round: re-sending at once to the endpoint that just
// failed only feeds its breaker (callers such as delivery retry later,
// with backoff).
func (rt *route) pick(req *request) (*balance.Endpoint, func(resilience.Outcome), error) {
	ep, done, err := rt.upstream.pick(req.r, &req.tried)
	if errors.Is(err, balance.ErrAllTried) && rt.upstream.set.Len() > 1 {
		req.tried.Reset()
		ep, done, err = rt.upstream.pick(req.r, &req.tried)
	}
	if err == nil {
		req.tried.Add(ep)
	}
	return ep, done, err
}

// once picks an endpoint and sends one try.
func (rt *route) once(ctx context.Context, req *request) *try {
	ep, done, err := rt.pick(req)
	if err != nil {
		return &try{err: err, kind: failOther}
	}
	tctx, cancel := context.WithCancel(ctx)
	return rt.observe(ep, done, func() *try { return rt.send(ctx, tctx, cancel, req, ep, nil) })
}

// tryTimeout returns a try's timeout and whether it is the adaptive one
// (below the ceiling) rather than the ceiling itself.
func (rt *route) tryTimeout() (time.Duration, bool) {
	if !rt.adaptive || rt.perTry <= 0 {
		return rt.perTry, false
	}
	return rt.upstream.latency.perTry(rt.perTry)
}

// mayAbandon decides, when a try's adaptive timeout expires, whether to
// abandon it for a retry elsewhere. It says no, letting the try run on to
// the ceiling, when the request cannot be retried, has no attempt left, the
// retry budget is spent, or the adaptive timeout already cut a try on
// every other endpoint of the pool: then the pool is slow, not this
// endpoint, and cutting more tries would fail requests that a patient try
// completes (and the success teaches the pool's latency the new normal).
// On yes the retry is paid for.
func (req *request) mayAbandon() bool {
	rt := req.rt
	if !req.canRetry || !rt.abandonable || int(req.attempt.Load()) >= rt.attempts {
		return false
	}
	if int(req.cuts.Add(1)) >= rt.upstream.set.Len() {
		return false
	}
	return rt.budget.TryRetry()
}

// observe runs send and reports its outcome to the balancer, the
// endpoint's breaker, passive health and the pool's latency.
func (rt *route) observe(ep *balance.Endpoint, done func(resilience.Outcome), send func() *try) *try {
	ep.Start()
	start := time.Now()
	t := send()
	lat := time.Since(start)
	// A try that lost to a hedge it had a head start on was slow: the
	// balancer counts it as failed, so traffic leaves an endpoint that
	// keeps losing (a hung one loses every time). Health and the breaker
	// are not told: losing a race is not an error, and ejecting for it
	// would take capacity away for a GC pause.
	failed := (t.kind != failNone && t.kind != failOther) || t.lost
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
	if t.kind == failNone {
		rt.upstream.latency.record(lat)
		if rt.latencies != nil {
			rt.latencies.Record(lat)
		}
	}
	rt.upstream.metrics.try(t.kind, lat)
	return t
}

// hedgeDelayNow returns how long a try may run before a hedge is sent, or
// false when no delay is known yet (too few samples). The default is the
// pool's p99, not its p95: hedging at p95 spends 5 % of requests on the
// healthy tail alone, the whole default budget, and leaves nothing for
// the moment a replica hangs, which is what hedging is for.
func (rt *route) hedgeDelayNow() (time.Duration, bool) {
	switch {
	case rt.hedgeDelay > 0:
		return rt.hedgeDelay, true
	case rt.hedgeQuantile > 0:
		return rt.latencies.Value()
	}
	p99, ok := rt.upstream.latency.quantile()
	if !ok {
		return 0, false
	}
	if d, _ := rt.tryTimeout(); d > 0 && d < p99 {
		p99 = d
	}
	return p99, true
}

// hedging is the state of one hedged try: the first try runs on the
// request's goroutine; a timer launches hedges on other endpoints while it
// is slow, each on its own goroutine; the first good answer wins.
type hedging struct {
	rt    *route
	req   *request
	ctx   context.Context
	delay time.Duration
	timer *time.Timer

	mu          sync.Mutex
	done        bool // the first try returned: launch no more, cancel it no more
	launched    int
	cancels     []context.CancelFunc
	results     chan *try
	firstCancel context.CancelFunc
	won         atomic.Bool // a hedge answered well first (set under mu)

	shared atomic.Pointer[time.Timer] // the first try's timer, when it also fires the hedge (arm)
	fired  atomic.Bool                // that timer has fired the hedge; its next expiry is the timeout
}

// hedged sends a try and, while it has not answered, up to hedgeMax more
// on other endpoints, one per hedge delay, within the hedge budget. The
// fast path (no hedge needed) costs a timer and no goroutine. Losing tries
// end with the request: their contexts are cancelled and a goroutine
// releases their connections when they return.
func (rt *route) hedged(ctx context.Context, req *request) *try {
	delay, ok := rt.hedgeDelayNow()
	if !ok {
		return rt.once(ctx, req) // too few samples to know what slow means
	}
	ep, done, err := rt.pick(req)
	if err != nil {
		return &try{err: err, kind: failOther}
	}
	fctx, fcancel := context.WithCancel(ctx)
	h := &hedging{rt: rt, req: req, ctx: ctx, delay: delay, firstCancel: fcancel}
	t := rt.observe(ep, done, func() *try {
		t := rt.send(ctx, fctx, fcancel, req, ep, h) // send arms the hedge on the try's timer
		t.lost = h.won.Load()
		return t
	})
	h.mu.Lock()
	h.done = true
	if h.timer != nil {
		h.timer.Stop()
	}
	launched, won := h.launched, h.won.Load()
	h.mu.Unlock()
	if launched == 0 {
		return t
	}
	if t.kind == failNone && !won {
		h.cancelExcept(-1)
		go h.drain(launched)
		return t
	}
	// The first try lost or failed: wait for the hedges.
	var best *try
	for i := range launched {
		res := <-h.results
		if res.kind == failNone {
			best = res
			h.cancelExcept(res.hedge) // the rest lost
			go h.drain(launched - i - 1)
			break
		}
		res.discard()
	}
	if best == nil {
		return t
	}
	t.discard()
	return best
}

// arm starts the first try's timer. With hedgeMax 1 (the default) one
// timer serves the try: at the hedge delay it fires the hedge, then it is
// re-armed for the rest of the per-try timeout (timeout ≤ 0: none), whose
// expiry runs expire. Otherwise the hedges get a timer of their own and
// the try's timeout one too. timeout < 0 with a nil expire means the
// try's own timeout comes first: hedge timer only if more hedges would
// follow (they never do then), so nothing is armed: the caller arms the
// timeout alone.
func (h *hedging) arm(timeout time.Duration, expire func()) *time.Timer {
	if expire == nil {
		return nil
	}
	if h.rt.hedgeMax > 1 {
		h.mu.Lock()
		h.timer = time.AfterFunc(h.delay, h.fire)
		h.mu.Unlock()
		if timeout > 0 {
			return time.AfterFunc(timeout, expire)
		}
		return nil
	}
	t := time.AfterFunc(h.delay, func() {
		if h.fired.CompareAndSwap(false, true) { // the first expiry fires the hedge, the second is the timeout
			h.fire()
			if timeout > 0 {
				for h.shared.Load() == nil { // AfterFunc has not returned yet: only for a tiny delay
					runtime.Gosched()
				}
				h.shared.Load().Reset(timeout - h.delay)
			}
			return
		}
		expire()
	})
	h.shared.Store(t)
	return t
}

// fire launches a hedge, if the first try is still running, a hedge is
// left and the budget allows, and re-arms the timer for the next.
func (h *hedging) fire() {
	rt, req := h.rt, h.req
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done || h.launched >= rt.hedgeMax || !rt.hedges.TryRetry() {
		return
	}
	rt.hedges.RetryDone()
	ep, done, err := rt.upstream.pick(req.r, &req.tried) // only an untried endpoint is worth a hedge
	if err != nil {
		return
	}
	req.tried.Add(ep)
	hctx, hcancel := context.WithCancel(h.ctx)
	idx := len(h.cancels)
	h.cancels = append(h.cancels, hcancel)
	if h.results == nil {
		h.results = make(chan *try, rt.hedgeMax)
	}
	h.launched++
	rt.gw.metrics.hedge(rt.name)
	go func() {
		t := rt.observe(ep, done, func() *try { return rt.send(h.ctx, hctx, hcancel, req, ep, nil) })
		t.hedge = idx
		if t.kind == failNone {
			h.mu.Lock()
			if !h.done && !h.won.Load() {
				h.won.Store(true)
				h.firstCancel() // the first try lost the race
			}
			h.mu.Unlock()
		}
		h.results <- t
	}()
	if h.launched < rt.hedgeMax && h.timer != nil {
		h.timer.Reset(h.delay)
	}
}

// cancelExcept cancels every hedge but the one with index keep (-1: all).
// The kept one's body is read under its context, ended when it finishes.
func (h *hedging) cancelExcept(keep int) {
	h.mu.Lock()
	cs := h.cancels
	h.mu.Unlock()
	for i, c := range cs {
		if i != keep {
			c()
		}
	}
}

// drain releases n hedge results nobody will answer with.
func (h *hedging) drain(n int) {
	for range n {
		(<-h.results).discard()
	}
}
