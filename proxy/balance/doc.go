// Package balance chooses the upstream endpoint for each try of a proxied
// request.
//
// # Where it sits
//
//	proxy (route) ─► resilience policies (rate limit, limit, retry, hedge)
//	      ─► balance.Set.Pick ─► endpoint breaker ─► upstream
//	                  ▲                                 │
//	                  │ Endpoint.SetHealth              │ Endpoint.Done(latency, failed)
//	      proxy/health (probes + outlier detection) ◄───┘ outcomes
//
// A [Set] holds the endpoints of one upstream pool and a [Policy] (the
// algorithm). For every try the proxy calls [Set.Pick], then
// [Endpoint.Start] before sending and [Endpoint.Done] when the answer (or
// the error) is in. A retry adds the endpoints already used to
// [PickRequest.Tried], so it goes to a different endpoint. The health
// package decides which endpoints are available and reports it through
// [Endpoint.SetHealth] (or [Set.SetHealth], whose signature fits its
// callbacks); unavailable endpoints are never picked unless the caller asks
// for it ([PickRequest.AnyHealth], or [Config.Panic] during a health
// panic). When nothing may be picked, Pick returns [ErrNoEndpoint] and the
// proxy decides.
//
// # Policies
//
//   - [P2C] (default): power of two choices over peak-EWMA latency ×
//     in-flight ÷ weight, as in Finagle and Linkerd.
//   - [LeastRequest]: power of two choices over in-flight ÷ weight.
//   - [RoundRobin]: nginx's smooth weighted round robin.
//   - [Maglev]: consistent hashing on [PickRequest.Key], optionally with
//     bounded load.
//
// An endpoint that joins a running set or comes back into rotation ramps
// its weight up over [Config.SlowStart] (all but Maglev).
//
// # Concurrency
//
// Picks take no lock and do not allocate. The membership is an immutable
// snapshot behind an atomic pointer; [Set.Update] (serialized by a mutex,
// off the hot path) builds the next snapshot, precomputing what the policy
// needs (a round-robin cycle, a Maglev table), and swaps it in. Endpoints
// that stay keep their pointer and state. Per-endpoint state (in-flight,
// EWMA, health, slow start) is atomics; randomness comes from [Rand], a
// lock-free seedable generator. Endpoint methods may be called from any
// goroutine, including after the endpoint left the set (a try that
// outlives an update).
package balance
