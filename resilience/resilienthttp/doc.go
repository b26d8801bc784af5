// Package resilienthttp applies Bulwark's resilience policies to HTTP, on
// both sides of a call.
//
// On the client side, [Transport] is an http.RoundTripper that sends every
// request under a [resilience.Pipeline]: guards (breaker, rate limit,
// bulkhead, adaptive limit) admit or reject it, a retry policy resends it,
// a [resilience.Timeout] bounds each attempt. It adds what HTTP needs on top
// of the pipeline contract:
//
//   - Which responses are failures. [Config.Classify] turns them into
//     errors the policies see; by default 429 and 5xx except 501 become a
//     *[StatusError] whose RetryAfter method carries the server's
//     Retry-After, which resilience/retry honours. When the last attempt
//     failed that way, the caller still gets the response, not the error.
//   - Which requests may be sent twice. Only idempotent ones (by method,
//     Idempotency-Key header or [WithIdempotent]) whose body can be
//     replayed run under the retrying pipeline; request bodies up to
//     [Config.MaxReplayBody] are buffered for that. Others run under
//     [Config.NonIdempotent] and are never sent twice (see [Pipelines]).
//   - Bodies that outlive the call. The pipeline cancels an attempt's
//     context when its timeout stage returns, which would kill the body the
//     caller has yet to read (failsafe-go #65, #123). Each attempt is sent
//     under a context of its own that keeps the deadline but ends only when
//     the body is closed or read to the end. Failed attempts' bodies are
//     drained (up to [Config.MaxDrain]) so their connections are reused.
//
// On the server side, [Shedder] (built by [Shed]) is middleware that sheds
// load with an adaptive limiter (resilience/limit): a request the limiter
// does not admit gets 503 and Retry-After at once, before it costs anything;
// an admitted one is released with its measured latency and whether it was
// dropped, which is what the limiter moves its limit on.
//
// The Bulwark gateway forwards with its own proxy code; this package is for
// Go programs that call or serve HTTP and want the same policies.
package resilienthttp
