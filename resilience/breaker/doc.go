// Package breaker is a circuit breaker: it stops sending calls to a callee
// that is failing or slow, so the caller fails fast instead of queueing
// behind it and the callee gets room to recover. The gateway keeps one per
// upstream endpoint; any Go program can put one in a resilience pipeline.
//
// # States
//
//	          failure or slow-call rate ≥ threshold
//	closed ────────────────────────────────────────► open
//	  ▲                                               │ open duration passed
//	  │ all probes finished, rates below thresholds   ▼ (on the next call)
//	  └──────────────────────────────────────────── half_open
//	                                    probes failed, or HalfOpenMaxWait passed ─► open (for longer)
//
// In detail:
//
//   - closed: calls flow; their outcomes fill a sliding window. Once the
//     window holds MinimumCalls calls, the breaker opens when the failure
//     rate reaches FailureRateThreshold or, with SlowCallDuration set, the
//     slow-call rate reaches SlowCallRateThreshold.
//   - open: calls are rejected with an error wrapping [ErrOpen] (which wraps
//     resilience.ErrRejected) for OpenDuration. With OpenDurationMultiplier
//     above 1, each consecutive opening lasts longer, up to
//     MaxOpenDuration; OpenJitter spreads it so that many callers do not
//     probe in lockstep.
//   - half_open: HalfOpenCalls probe calls are admitted; others are
//     rejected. The breaker decides only when all of them have finished:
//     closed if their rates are below the thresholds, open otherwise.
//     (Resilience4j decides as soon as its minimum is met, which surprises
//     its users: issues #1523, #1351.) An ignored probe frees its permit
//     for another. If the probes do not all finish within HalfOpenMaxWait
//     (lost, hung), the next call reopens the breaker.
//   - forced_open and disabled: set by hand ([Breaker.ForceOpen],
//     [Breaker.Disable]) until [Breaker.Reset] closes the breaker again.
//
// Timed transitions happen on the next call, not on a timer: a breaker
// owns no goroutine and needs no Close.
//
// # Windows
//
// A CountWindow is a ring of the last WindowSize outcomes with running
// totals. It never reads the clock. A TimeWindow keeps WindowBuckets slices
// of WindowDuration and subtracts a slice's totals when it falls out of the
// window; it reads the clock once per call. Both are updated with atomics,
// without a lock. Every state change starts a fresh window.
//
// # Outcomes
//
// A call succeeds, fails or is ignored. A nil error is a success (slow if
// its latency reached SlowCallDuration). By default every other error is a
// failure, except errors wrapping context.Canceled (the caller gave up) and
// resilience.ErrRejected (a policy inside the breaker, such as a full
// bulkhead, said no: that is our own back-pressure, not the callee's
// health); those are ignored. IsIgnored and IsFailure replace the defaults.
//
// Each state change starts a new generation. A permit carries the
// generation it was taken in, and an outcome of an older generation is
// dropped: a slow call admitted while closed cannot close or reopen the
// breaker after it has moved on (as gobreaker does; Polly does not).
//
// # Using it
//
// In a pipeline (resilience.Policies.Breaker), the pipeline calls
// [Breaker.Admit] before the call and releases the permit with the outcome
// after it, measuring latency only if slow-call detection is on
// ([Breaker.ObservesLatency]). Retry sits outside the breaker there, so
// every attempt is one sample and an open breaker ends the retries.
// [Breaker.Execute] and [Do] wrap one function; [Breaker.Allow] returns a
// done func for proxies that learn the outcome elsewhere.
//
// # Cost
//
// In the closed state, admitting and recording a success with a count
// window takes no lock, reads no clock and allocates nothing: one atomic
// load of the state, and, while the window holds a failure or a slow call,
// one atomic add to claim a ring position (see the benchmarks). Rejecting
// reads the clock once and does not allocate. State changes take a mutex.
package breaker
