// Package resilience is what every call in Bulwark is wrapped in: a
// Pipeline of policies composed once and executed many times without
// allocating on the success path.
//
// # Policies
//
// Each policy lives in its own package and exports its own sentinel error:
//
//   - [github.com/bulwark-go/bulwark/resilience/breaker]: circuit breaker (breaker.ErrOpen)
//   - [github.com/bulwark-go/bulwark/resilience/retry]: retries with backoff and a retry budget
//   - [github.com/bulwark-go/bulwark/resilience/limit]: adaptive concurrency limits (limit.ErrLimited)
//   - [github.com/bulwark-go/bulwark/resilience/bulkhead]: fixed concurrency with bounded wait (bulkhead.ErrFull)
//   - [github.com/bulwark-go/bulwark/resilience/ratelimit]: token bucket (ratelimit.ErrLimited)
//   - [github.com/bulwark-go/bulwark/resilience/hedge]: hedged requests
//   - [Timeout] and [Fallback], defined here because the pipeline runs them inline.
//
// Every rejection sentinel wraps [ErrRejected], so a caller (the gateway's
// HTTP edge, for one) can map "a policy said no" to one status code with a
// single errors.Is.
//
// # The contract
//
// A [Policy] has one general method, Execute(ctx, next), so anyone can write
// one. The built-in policies also implement one of two fast-path interfaces
// that let the pipeline run them without closures or boxing:
//
//   - [Guard]: admit-or-reject before the call, learn the [Outcome] after it
//     (breaker, bulkhead, limiter, rate limiter). The two steps are exactly
//     what a proxy needs: it learns a call's outcome only when the response
//     arrives, possibly in another function.
//   - [Retrier]: the pipeline runs the attempt loop and asks the policy after
//     each failed attempt whether, and when, to try again.
//
// # Order
//
// [New] composes the policies of a [Policies] value in a fixed order,
// outermost first:
//
//	Fallback → Retry → Hedge → Breaker → RateLimit → Bulkhead → Limit → Timeout → call
//
// Why this order:
//   - The fallback is outermost so it sees the final error, after retries
//     gave up, including the breaker's and the limiters' rejections.
//   - Retry is outside the breaker, so every attempt is one breaker sample
//     and an open breaker stops the retries at once (its ErrOpen is not
//     retried by default). Put the breaker outside retry with [Compose] if
//     you want one sample per call instead.
//   - The breaker is outside the bulkhead and limiters so their rejections
//     (which wrap [ErrRejected]) do not reach its window: a full bulkhead is
//     our own back-pressure, not evidence that the callee failed. Breakers
//     ignore errors wrapping ErrRejected by default.
//   - Timeout is innermost, so it bounds each attempt; the caller's context
//     bounds the whole execution, retries included.
//
// [Compose] takes any order, outermost first, and any [Policy], including
// another Pipeline.
//
// # Observing
//
// Policies report what they do (state changes, rejections, retries, limit
// changes, timeouts, fallbacks, hedges) as [Event] values to an [Observer]
// set in their config. Observers run synchronously on the calling goroutine
// and must be fast; the gateway uses them to update Prometheus metrics.
package resilience
