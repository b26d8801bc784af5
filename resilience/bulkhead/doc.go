// Package bulkhead caps the number of concurrent calls to a dependency at
// a fixed number, so that one slow dependency cannot take every goroutine,
// connection or file descriptor of the process with it (the ship's
// bulkhead: a flooded compartment does not sink the ship). Callers that
// find it full are rejected at once or wait, up to MaxWait, in a bounded
// FIFO queue.
//
// The fast path is one atomic add to take a slot and one to give it back;
// the queue's mutex is touched only when the bulkhead is full. Use
// [github.com/bulwark-go/bulwark/resilience/limit] instead when the right
// number is not known in advance or changes with the dependency's health.
//
// # In the pipeline
//
// A [Bulkhead] is a [resilience.Guard]. [resilience.New] places it after
// the rate limiter and before the adaptive limiter:
//
//	Fallback → Retry → Hedge → Breaker → RateLimit → Bulkhead → Limit → Timeout → call
//
// so each retry attempt takes (and returns) its own slot, and the breaker,
// being outside, does not count the bulkhead's rejections ([ErrFull] wraps
// [resilience.ErrRejected]) as failures of the callee: a full bulkhead is
// our own back-pressure.
package bulkhead
