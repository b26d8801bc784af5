// Package ratelimit caps how often calls start: a token bucket of Burst
// tokens refilled at Rate per second. A call that finds the bucket empty is
// rejected with [ErrLimited] or, with MaxWait set, waits for its token.
//
// [Limiter] is the generic cell rate algorithm (GCRA), the token bucket
// expressed as one "theoretical arrival time" in an atomic word: admitting
// a call is one monotonic clock read and one compare-and-swap, with no
// lock, so it scales across cores (golang.org/x/time/rate takes a mutex
// and reads the wall clock; see BenchmarkXTimeRateAllow for the
// comparison). [Keyed] keeps one such bucket per key (a client IP, an API
// key) in a bounded LRU, so a flood of new keys cannot grow memory without
// bound.
//
// # In the pipeline
//
// Both are [resilience.Guard]s. [resilience.New] places the rate limiter
// inside the breaker and outside the concurrency limits:
//
//	Fallback → Retry → Hedge → Breaker → RateLimit → Bulkhead → Limit → Timeout → call
//
// so every attempt, retries included, spends a token, and its rejections
// ([ErrLimited] wraps [resilience.ErrRejected]) never reach the breaker's
// failure count. A rate limiter learns nothing from outcomes: its permits'
// Release does nothing.
package ratelimit
