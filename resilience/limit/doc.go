// Package limit provides adaptive concurrency limits: a [Limiter] admits a
// call only while fewer than limit calls are in flight, and an [Algorithm]
// moves the limit from the round-trip times it observes, after Netflix's
// concurrency-limits (the Java code is the reference; see
// https://netflixtechblog.medium.com/performance-under-load-3e6fa9a60581).
//
// By Little's law (L = λW) a service that is not queueing keeps its RTT
// flat as concurrency grows; past its knee, more concurrency only adds
// queueing delay. The algorithms look for that rise:
//
//   - [Vegas] estimates the queue as limit·(1 − rtt_noload/rtt) (the
//     default, as in the Java library);
//   - [Gradient2] compares each window's RTT with a long-term average;
//   - [AIMD] backs off on drops and timeouts and otherwise creeps up.
//
// All three hold the limit when the service is app-limited (fewer than
// limit/2 calls in flight), so a quiet period cannot inflate it.
//
// # Sampling
//
// Release feeds each call's RTT ([resilience.Outcome.Latency]) and drop
// flag into a window, as Netflix's WindowedLimit does: samples under MinRTT
// are ignored; a window lasts clamp(2·its minimum RTT, MinWindow,
// MaxWindow) and needs WindowSize samples; the algorithm then sees the
// window's average RTT, its maximum in-flight count and whether anything
// was dropped. One goroutine updates at a time (TryLock); the others keep
// adding samples. Releases do not read the clock: the RTT comes with the
// outcome, and only some samples check whether the window has ended, about
// sixteen per window (one in eight at first), so a window may close a
// little after it is due. Samples are
// spread over eight cache-line stripes by their admission count, so
// concurrent releases seldom write the same line. Acquire and release are
// a few atomic operations and allocate nothing; RTTs are summed in whole
// microseconds.
//
// # Queueing and partitions
//
// With MaxWait > 0, callers that find the limit reached wait, up to
// MaxQueue of them, FIFO or LIFO (LIFO serves the callers most likely still
// waiting for an answer; see Netflix's LifoBlockingLimiter). Partitions
// reserve shares of the limit for traffic classes, e.g. 90% live and 10%
// batch: a partition may exceed its share only while the total is under the
// limit.
//
// # In the pipeline
//
// A Limiter is a [resilience.Guard] and reports
// [resilience.LatencyObserver], so the pipeline times calls for it. Its
// place in [resilience.New]'s order is
//
//	Fallback → Retry → Hedge → Breaker → RateLimit → Bulkhead → Limit → Timeout → call
//
// innermost among the guards, right around the timed call: the RTT it
// learns from is the callee's, and a call that times out (the Timeout
// inside it) is reported as a drop, the congestion signal. Its rejections
// wrap [ErrLimited] and [resilience.ErrRejected], so an outer breaker does
// not count them as callee failures and the HTTP edge maps them to 503.
package limit
