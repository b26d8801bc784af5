// Package bulwark holds the vocabulary shared by Bulwark's components:
// services, their instances, and the health states an instance moves
// through. It imports only the standard library, and every component may
// import it; the components never import each other.
//
// Bulwark keeps a system of networked services correct and available when
// parts of it stop (fail-stop faults) or answer wrongly (Byzantine faults).
// A request flows through it like this:
//
//	client ─► proxy (route) ─► resilience policies ─► proxy/balance ─► endpoint breaker ─► upstream
//	            │                                           ▲                       │
//	            │ async route                  proxy/health (probes + outcomes) ◄───┘
//	            ▼
//	         delivery (NATS JetStream) ─► 202 + id; workers ─► the same forwarding path
//
//	instances ─register/renew─► registry (Raft) ─watch─► proxy (last-known-good cache)
//	chaos ─► injects faults from outside and judges the steady state
//	dashboard ◄─ read-only snapshots of all of the above
//
// The packages, in the order a request meets them:
//   - resilience and its subpackages: circuit breaker, retry with budgets,
//     adaptive concurrency limits, bulkhead, rate limit, hedging, timeouts,
//     fallbacks, composed into one pipeline. Standard library only.
//   - proxy: the gateway (routes, upstream pools, forwarding), with
//     proxy/balance (endpoint selection) and proxy/health (active probes and
//     passive outlier detection).
//   - registry: service discovery replicated with hashicorp/raft.
//   - delivery: durable asynchronous requests on NATS JetStream.
//   - chaos: fault injection and self-verifying experiments.
//   - dashboard: the live web UI.
//
// cmd/bulwark is the one binary, and the only place that wires components
// together.
package bulwark
