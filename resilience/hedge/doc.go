// Package hedge cuts tail latency by sending a second (hedged) attempt
// when the first has not answered within a delay, and taking whichever
// answers first ("The Tail at Scale", Dean and Barroso, 2013; gRPC A6
// hedging).
//
// # In the pipeline
//
// A [Policy] is a general [resilience.Policy]: put it in
// [resilience.Policies].Hedge. resilience.New's order is Fallback → Retry →
// Hedge → Breaker → limiters → Timeout, so:
//
//   - the retry is outside: it sees one result per hedged execution, and
//     retries the call only when every attempt the hedge sent has failed;
//   - the breaker and the limiters are inside: each hedged attempt is one
//     breaker sample and takes its own limiter permit, and a loser cancelled
//     by the hedge ends with an error wrapping context.Canceled (cause
//     [ErrLost]), which breakers should not count as the callee's failure;
//   - the timeout is inside: it bounds each attempt, not the hedge's wait.
//
// Hedging only helps idempotent calls; the gateway hedges only requests it
// may retry.
//
// # The delay
//
// Fixed (Config.Delay), or adaptive (Config.Adaptive): the Quantile (p95
// by default) of recent successful attempt latencies, used once MinSamples
// have been seen, with Delay as the fallback until then. The quantile is
// recomputed every Window/8 samples, so reading it costs one atomic load.
//
// # Budget
//
// Hedges add load exactly as retries do, so they draw on the same retry
// budget: Config.Budget takes retry.RateBudget or retry.ConcurrencyBudget
// (this package declares its own [Budget] interface with the same method
// set, so it does not import retry). No hedge is sent when the budget is
// spent; the call goes on with the attempts already sent.
//
// # Goroutines
//
// Each attempt runs in a goroutine started by Execute, with its own child
// context. When an attempt succeeds the others are cancelled and Execute
// returns at once; an attempt that ignores its context runs to completion
// in the background, sends its result into a buffered channel nobody reads,
// and exits. No goroutine outlives the slowest attempt of its call. A panic
// in an attempt is re-raised on the caller's goroutine when the caller is
// still waiting for it; a loser that panics after Execute returned crashes
// the program, as an unrecovered panic in any goroutine does.
//
// # Events
//
// The Observer receives [resilience.EventHedge] for each hedge sent, with
// Attempt the number of the new attempt (2 for the first hedge).
package hedge
