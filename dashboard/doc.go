// Package dashboard is Bulwark's live web UI: the place where a person
// watches the system hold, and, in a demo, breaks it on purpose.
//
// It plays the role of the Hystrix dashboard and the Eureka UI in one page:
// services and their instances coloured by health, with breaker state and
// EWMA latency; live charts of requests per second, success ratio and p50/p99
// latency; the registry's leader, nodes and index; the delivery queue's depth
// and dead letters; and a log of what happened (ejections, breaker trips,
// leader changes, chaos actions). With [Controls] configured, each instance
// card also carries chaos buttons (kill, slow, corrupt, lie, partition, restart)
// and the page a traffic on/off switch.
//
// # How it fits
//
// The dashboard only reads. It never imports proxy, registry or delivery:
// it declares the data it shows ([Snapshot]) and the interfaces it consumes
// ([Source], [Controls]), and cmd/bulwark adapts the components to them:
//
//	proxy.Upstreams() ─┐
//	registry status  ──┼─► cmd/bulwark adapter ─► Source.Snapshot ─┐
//	delivery stats   ──┘                                           │
//	gateway request path ─► Traffic.Record (lock-free) ────────────┼─► Dashboard ─► /api/*, SSE, page
//	component callbacks  ─► EventLog.Add ──────────────────────────┘
//	chaos monkey / demo  ◄─ Controls (optional) ◄─ POST /api/instances/{id}/…
//
// A node that runs only some components fills in only those parts of the
// snapshot; every section is optional and the page shows what is there.
//
// # Concurrency
//
// [Traffic.Record] is called on the gateway's request path from any number
// of goroutines: it does one or two atomic adds and never allocates, locks or
// reads the clock. One sampler goroutine, owned by the [Dashboard] (Start,
// Close), reads the counters once per interval, turns their differences into
// a [Point] of the series, refreshes the snapshot from the Source and wakes
// the Server-Sent-Event streams. Source.Snapshot is therefore called from the
// sampler goroutine and from GET /api/snapshot handlers, possibly at once;
// Controls methods are called from HTTP handlers. [EventLog] is safe for
// concurrent use; its Add takes a short mutex and is meant for events, not
// requests. Close stops the sampler, ends open streams and waits.
package dashboard
