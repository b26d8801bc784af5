// Package health decides which upstream endpoints the gateway should route
// to: active probes ([Checker]) and passive outlier detection from real
// traffic ([Detector]), in the manner of Envoy and HAProxy.
//
// # Where it sits
//
//	proxy ─► resilience policies ─► balance.Set.Pick ─► endpoint breaker ─► upstream
//	                                       ▲                                   │
//	      Endpoint.SetHealth (OnChange) ───┤                                   │ outcome:
//	      Detector.Panic (Config.Panic) ───┘                                   │ status, error,
//	                                                                           │ latency, digest
//	Checker ──probe health──► Detector ◄──── Detector.Report ◄─────────────────┘
//
// The proxy reports every try's [Outcome] to [Detector.Report]. A run of
// consecutive gateway failures or 5xx ejects the endpoint at once; every
// Interval, [Detector.Tick] ejects success-rate and latency outliers of the
// pool and un-ejects endpoints whose ejection time is over. The n-th
// ejection lasts n × BaseEjectionTime (capped), so an endpoint that keeps
// failing stays out longer; at most MaxEjectionPercent of the pool is ever
// ejected, because when most endpoints look bad the fault is more likely in
// the gateway or the network than in the endpoints.
//
// The [Checker] probes each endpoint (HTTP with a status range, or a TCP
// connect) with rise/fall thresholds. Its OnChange feeds
// [Detector.SetProbeHealth], so the Detector's OnChange reports one
// effective health per endpoint (down by probe, ejected, or up) for the
// balancer's Endpoint.SetHealth. Active probes find endpoints that get no
// traffic and hung endpoints whose clients give up before any timeout
// fires; passive detection finds what probes miss: an endpoint that answers
// /health but fails or crawls on real requests, or returns wrong bodies.
//
// When fewer than PanicThreshold percent of the endpoints are routable,
// [Detector.Panic] reports true and the balancer spreads load over all of
// them (Envoy's panic mode), instead of crushing the last healthy ones.
// A returning endpoint gets the balancer's slow start.
//
// # Concurrency
//
// Report is lock-free unless it ejects: per-endpoint atomics found through
// an immutable map behind an atomic pointer. Ejection state is guarded by
// one mutex; OnChange callbacks run outside it, serialized and in order.
// The Checker owns one goroutine per endpoint and the Detector one analysis
// goroutine (or none, when the owner calls Tick); Close stops them and
// waits.
package health
