package resilienthttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
)

// Defaults for the zero [Config].
const (
	// DefaultMaxReplayBody is the default [Config.MaxReplayBody]: 1 MiB.
	DefaultMaxReplayBody = 1 << 20
	// DefaultMaxDrain is the default [Config.MaxDrain]: 64 KiB.
	DefaultMaxDrain = 64 << 10
)

// ErrNotReplayable is returned, wrapped, when a pipeline tries to send a
// request a second time that must be sent at most once: a non-idempotent
// request, or one whose body was too large to buffer. Nothing is sent. It
// wraps [resilience.ErrRejected], so breakers ignore it and retry policies
// do not retry it; seeing it means a pipeline with a hedge, or with a retry
// policy that ignores [StatusError.RetryAfter]'s "do not retry", runs such
// requests: set [Config.NonIdempotent] (see [Pipelines]).
var ErrNotReplayable = fmt.Errorf("request must not be sent twice: %w", resilience.ErrRejected)

// Config configures a [Transport]. The zero value sends requests through
// http.DefaultTransport with no policies.
type Config struct {
	// Base sends each attempt. Default http.DefaultTransport.
	Base http.RoundTripper
	// Pipeline runs requests that may be sent more than once: those with
	// an idempotent method (GET, HEAD, OPTIONS, TRACE, PUT, DELETE), an
	// Idempotency-Key (or X-Idempotency-Key) header, or a context from
	// [WithIdempotent], and whose body can be replayed (see MaxReplayBody).
	// Default nil: no policies.
	Pipeline *resilience.Pipeline
	// NonIdempotent runs every other request; it must not retry or hedge,
	// because such a request may have taken effect even when its attempt
	// failed. Build it from the same guards as Pipeline without the retry
	// and hedge policies; [Pipelines] does that.
	//
	// Default nil: Pipeline runs them too, and the transport keeps them
	// from being sent twice in two ways. Every error their attempt returns
	// (a failure status, a transport error) carries a negative
	// RetryAfter(), which resilience/retry reads as "do not retry"; and a
	// second attempt that a retry policy ignoring that, or a hedge, starts
	// anyway fails with [ErrNotReplayable] without sending anything. A
	// hedge in Pipeline therefore still costs such requests a rejected
	// attempt: set NonIdempotent when Pipeline hedges.
	NonIdempotent *resilience.Pipeline
	// MaxReplayBody is the largest request body buffered in memory so that
	// retries can send it again; a larger body is sent once, through the
	// NonIdempotent pipeline. A request with GetBody set (http.NewRequest
	// sets it for in-memory bodies) and a ContentLength within the limit is
	// replayed through GetBody without a copy. Default DefaultMaxReplayBody
	// (1 MiB); must not be negative.
	MaxReplayBody int64
	// MaxDrain bounds how much of a failed attempt's response body is read
	// into memory. A body within the bound is read whole and its connection
	// goes back to the pool at once, so that the retry can reuse it; the
	// response keeps an in-memory copy in case it is the last. A longer
	// body stays open until the call ends and its connection is closed.
	// Default DefaultMaxDrain (64 KiB); must not be negative.
	MaxDrain int64
	// Classify reports which responses the policies count as failures:
	// it returns nil for a success and an error (retried, counted by
	// breakers) for a failure. Default [DefaultClassify]: 429 and 5xx
	// except 501, as a *[StatusError]. It must not read the body.
	Classify func(*http.Response) error
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if c.MaxReplayBody < 0 {
		return fmt.Errorf("resilienthttp: max replay body %d: must not be negative", c.MaxReplayBody)
	}
	if c.MaxDrain < 0 {
		return fmt.Errorf("resilienthttp: max drain %d: must not be negative", c.MaxDrain)
	}
	return nil
}

// Pipelines composes ps into the two pipelines a [Transport] needs: all of
// them for requests that may be sent again, and the same policies without
// Retry and Hedge for those that must be sent at most once. The guards are
// shared, so both pipelines count against the same breaker and limits.
func Pipelines(ps resilience.Policies) (retrying, once *resilience.Pipeline) {
	retrying = resilience.New(ps)
	ps.Retry, ps.Hedge = nil, nil
	return retrying, resilience.New(ps)
}

// Transport is an http.RoundTripper that sends each request under a
// resilience pipeline: guards admit or reject it, retries resend it (with
// its body replayed), a timeout bounds each attempt. It is safe for
// concurrent use.
//
// Response bodies stay readable after RoundTrip returns (failsafe-go #65,
// #123): each attempt runs under a context of its own, derived from the
// request's, which carries the attempt's deadline but is cancelled only
// when the body is closed or read to the end, not when the pipeline's
// timeout stage returns.
type Transport struct {
	base      http.RoundTripper
	retrying  *resilience.Pipeline
	once      *resilience.Pipeline
	maxReplay int64
	maxDrain  int64
	classify  func(*http.Response) error
}

var _ http.RoundTripper = (*Transport)(nil)

// NewTransport returns a Transport configured by cfg.
func NewTransport(cfg Config) (*Transport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Transport{
		base:      cfg.Base,
		retrying:  cfg.Pipeline,
		once:      cfg.NonIdempotent,
		maxReplay: cfg.MaxReplayBody,
		maxDrain:  cfg.MaxDrain,
		classify:  cfg.Classify,
	}
	if t.base == nil {
		t.base = http.DefaultTransport
	}
	if t.once == nil {
		t.once = t.retrying
	}
	if t.maxReplay == 0 {
		t.maxReplay = DefaultMaxReplayBody
	}
	if t.maxDrain == 0 {
		t.maxDrain = DefaultMaxDrain
	}
	if t.classify == nil {
		t.classify = DefaultClassify
	}
	return t, nil
}

// CloseIdleConnections closes the idle connections of the base transport,
// when it has them; http.Client.CloseIdleConnections calls it.
func (t *Transport) CloseIdleConnections() {
	if ci, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

type idempotentKey struct{}

// WithIdempotent returns a context that marks the requests made with it as
// safe to send more than once, whatever their method: the caller promises
// that the server deduplicates them (or that duplicates do no harm).
func WithIdempotent(ctx context.Context) context.Context {
	return context.WithValue(ctx, idempotentKey{}, true)
}

// idempotent reports whether req may be sent more than once. The header
// rule is net/http's own (see Request.isReplayable): a present key counts,
// even with no value.
func idempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	if _, ok := req.Header["Idempotency-Key"]; ok {
		return true
	}
	if _, ok := req.Header["X-Idempotency-Key"]; ok {
		return true
	}
	v, _ := req.Context().Value(idempotentKey{}).(bool)
	return v
}

// RoundTrip sends req under the transport's pipeline. It returns:
//   - the response, when an attempt succeeded;
//   - the last attempt's response, when attempts failed with a response
//     (a failure status per Classify) and no policy rejected the last one,
//     so the caller sees the backend's status and body, not an error;
//   - an error otherwise: a policy's rejection (wrapping
//     resilience.ErrRejected), a transport error, the caller's
//     cancellation.
//
// Like every RoundTripper, it closes req.Body, even on errors.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	c := &call{t: t, req: req}
	if err := c.prepareBody(); err != nil {
		return nil, err
	}
	p := t.once
	if c.resend = c.replayable && idempotent(req); c.resend {
		p = t.retrying
	}
	resp, err := resilience.Do(req.Context(), p, c.attempt)
	return c.finish(resp, err)
}

// call is one RoundTrip: the request, how to replay its body, and the
// responses its attempts produced, which it closes when they lose.
type call struct {
	t          *Transport
	req        *http.Request
	replayable bool // the body can be sent again
	resend     bool // and the request may be

	first      io.ReadCloser // the original body, for the first attempt that takes it
	firstTaken atomic.Bool
	replay     []byte                        // the buffered body, or nil
	getBody    func() (io.ReadCloser, error) // the request's own GetBody, or nil
	length     int64                         // ContentLength of a replayed body

	attempts atomic.Int32

	mu    sync.Mutex
	done  bool             // finish ran: later responses are closed at once
	resps []*http.Response // every response an attempt returned
	inl   [2]*http.Response
}

// attempt sends one attempt. ctx is the attempt's context from the
// pipeline: it carries the timeout's deadline and a hedge's cancellation,
// and is cancelled when the pipeline's stage returns, which is why the
// request is sent under a context of its own (see attemptContext).
func (c *call) attempt(ctx context.Context) (*http.Response, error) {
	if c.attempts.Add(1) > 1 && !c.resend {
		return nil, fmt.Errorf("resilienthttp: %s %s: %w", c.req.Method, c.req.URL.Redacted(), ErrNotReplayable)
	}
	var (
		reqCtx = c.req.Context()
		cancel context.CancelFunc
		stop   func() bool
	)
	if ctx != reqCtx {
		reqCtx, cancel, stop = attemptContext(reqCtx, ctx)
	}
	areq, err := c.attemptRequest(reqCtx)
	if err != nil {
		if cancel != nil {
			stop()
			cancel()
		}
		return nil, c.mark(err)
	}
	resp, err := c.t.base.RoundTrip(areq)
	if stop != nil && !stop() {
		// The pipeline cancelled the attempt while it was under way (a
		// timeout, a losing hedge); the response, if any, is dead.
		if err == nil {
			resp.Body.Close()
			err = context.Cause(ctx)
		}
		cancel()
		return nil, c.mark(err)
	}
	if err != nil {
		if cancel != nil {
			c.awaitExpiry(ctx, reqCtx)
			cancel()
		}
		return nil, c.mark(err)
	}
	if cancel != nil {
		resp.Body = wrapBody(resp.Body, cancel)
	}
	cerr := c.t.classify(resp)
	if cerr != nil {
		c.buffer(resp)
	}
	if !c.track(resp) {
		return nil, context.Canceled // the call is over; nobody will look
	}
	return resp, c.mark(cerr)
}

// attemptContext derives the context an attempt's request is sent under
// from the caller's: it has the pipeline context's deadline, and the
// pipeline's cancellation reaches it only until stop is called, once the
// response headers are in. After that only cancel (called when the body is
// closed or read to the end) or the caller's own context end it.
func attemptContext(caller, pipeline context.Context) (context.Context, context.CancelFunc, func() bool) {
	var ctx context.Context
	var cancel context.CancelFunc
	if d, ok := pipeline.Deadline(); ok {
		ctx, cancel = context.WithDeadline(caller, d)
	} else {
		ctx, cancel = context.WithCancel(caller)
	}
	return ctx, cancel, context.AfterFunc(pipeline, cancel)
}

// awaitExpiry handles an attempt that failed because its own context,
// which shares the pipeline context's deadline, expired first: the two
// timers are due at the same instant, and the Timeout stage reports the
// expiry (ErrTimeout, EventTimeout) only if it sees its context expired when
// the attempt returns. Its timer is due, so the wait is momentary.
func (c *call) awaitExpiry(pipeline, attempt context.Context) {
	if attempt.Err() != context.DeadlineExceeded {
		return
	}
	if _, ok := pipeline.Deadline(); ok {
		<-pipeline.Done()
	}
}

// mark makes the error of an attempt that must not be retried say so to
// retry policies that read RetryAfter (see Config.NonIdempotent).
func (c *call) mark(err error) error {
	if err == nil || c.resend {
		return err
	}
	return &noRetryError{err: err}
}

// noRetryError asks retry policies not to retry: a negative RetryAfter is
// resilience/retry's "do not retry" (gRPC's negative pushback).
type noRetryError struct{ err error }

func (e *noRetryError) Error() string             { return e.err.Error() }
func (e *noRetryError) Unwrap() error             { return e.err }
func (e *noRetryError) RetryAfter() time.Duration { return -1 }

// track records resp so that finish can close it if it is not the winner.
// It reports false, having closed resp, when the call is already over (a
// hedge that lost after the execution returned).
func (c *call) track(resp *http.Response) bool {
	c.mu.Lock()
	if c.done {
		c.mu.Unlock()
		resp.Body.Close()
		return false
	}
	if c.resps == nil {
		c.resps = c.inl[:0]
	}
	c.resps = append(c.resps, resp)
	c.mu.Unlock()
	return true
}

// finish closes every response but the one returned, closes the request
// body if no attempt took it, and turns the pipeline's result into
// RoundTrip's (see RoundTrip).
func (c *call) finish(resp *http.Response, err error) (*http.Response, error) {
	c.mu.Lock()
	c.done = true
	resps := c.resps
	c.mu.Unlock()
	for _, r := range resps {
		if r != resp {
			r.Body.Close()
		}
	}
	if c.first != nil && c.firstTaken.CompareAndSwap(false, true) {
		c.first.Close()
	}
	if err == nil {
		if resp == nil {
			return nil, errors.New("resilienthttp: pipeline returned no response and no error")
		}
		return resp, nil
	}
	if resp != nil && c.req.Context().Err() == nil {
		return resp, nil // a failure status: the backend's answer is the caller's
	}
	if resp != nil {
		resp.Body.Close()
	}
	if nr, ok := err.(*noRetryError); ok {
		err = nr.err // the marker was for the policies
	}
	return nil, err
}
