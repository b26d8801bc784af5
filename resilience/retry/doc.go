// Package retry re-runs failed calls: a bounded number of attempts, spaced
// by a backoff with jitter, within the caller's deadline and a retry budget
// shared by every caller of the same callee.
//
// # In the pipeline
//
// A [Policy] is a [resilience.Retrier]: put it in [resilience.Policies].Retry
// and the pipeline runs the attempt loop inline, asking the policy after
// each failed attempt whether and when to try again. The per-execution
// state lives in a [resilience.RetryState] on the caller's stack, so the
// success path allocates nothing and does not read the clock (unless
// MaxDuration is set or the context has a deadline, when Begin reads it
// once to time the first attempt).
//
// Retry sits outside the breaker (resilience.New's order is Fallback →
// Retry → Hedge → Breaker → limiters → Timeout): every attempt is one
// breaker sample, and an open breaker stops the retries at once because
// its error wraps [resilience.ErrRejected], which is not retried by
// default. A [resilience.Timeout] in the same pipeline bounds each attempt;
// its expiry is retried, while the caller's own cancellation or deadline is
// not. Use [resilience.Compose] to put the breaker outside instead (one
// sample per call).
//
// Outside a pipeline, [Policy.Execute] runs the same loop around a
// [resilience.Next].
//
// # When retries stop
//
// An execution ends with the last attempt's error when the error is not
// retryable (RetryIf, AbortIf, a rejection, the caller's context done, a
// negative Retry-After). It ends with the last error wrapped with a
// sentinel when the policy gives up: [ErrExhausted] (MaxAttempts or
// MaxDuration), [ErrDeadline] (the next attempt, after its delay, would not
// finish before the context deadline if it took as long as the previous
// one) or [ErrBudgetExhausted] (the shared [Budget] is spent; a spent
// budget never blocks). errors.Is sees both the sentinel and the last error.
//
// # Delays
//
// [Backoff] offers constant, exponential, full-jitter and decorrelated-jitter
// delays (AWS's formulas). An error that carries a server's Retry-After
// ([RetryAfterError], made with [After]; [ParseRetryAfter] reads the HTTP
// header) makes the delay max(backoff, retry-after).
//
// # Budgets
//
// A retry budget bounds the extra load retries put on a failing callee,
// across all callers that share it. [RateBudget] is the rate family
// (Finagle, gRPC: retries ≤ 20% of recent requests + 10/s); [ConcurrencyBudget]
// is the concurrency family (Envoy: concurrent retries ≤ 20% of concurrent
// requests, at least 3). Both implement [Budget], whose method set the
// hedge package's budget interface shares, so one budget can cap retries
// and hedges together.
//
// # Events
//
// The Observer receives [resilience.EventRetry] before each retry (Attempt
// is the attempt that failed, Delay the wait, Err its error) and
// [resilience.EventRetriesExhausted] when the policy gives up for one of the
// three reasons above (Attempt is the number of attempts made, Err the
// error returned).
package retry
