// Package chaos injects faults from outside the system under test: the
// Toxiproxy role. A [Server] holds named proxies, each a listener in front
// of an upstream, with toxics (latency, bandwidth, slow_close, timeout,
// reset_peer, slicer, limit_data for TCP; http_abort, http_delay,
// http_corrupt, http_header for HTTP proxies) that can be added, changed
// and removed while connections stay open. Its HTTP API is Toxiproxy's
// (same paths and JSON field names), so Toxiproxy clients drive it.
//
// Where it sits in Bulwark's data flow: between two hops, e.g.
//
//	client ─► chaos proxy ─► gateway ─► chaos proxy (http, corrupting) ─► replica
//
// Every random decision (toxicity rolls, jitter, slice sizes, which bytes
// to corrupt) comes from a rand seeded from [Config.Seed], so a run with a
// given seed and the same sequence of connections replays. Subpackages:
// chaos/experiment drives load and judges a steady-state hypothesis while
// a method injects faults; chaos/monkey kills instances on a schedule.
//
// Differences from Toxiproxy, on purpose: no init()-time toxic registry
// and no global rand; toxic attributes with unknown names are errors; a
// toxic's toxicity is rolled per connection for TCP and per request for
// HTTP toxics.
package chaos

import "errors"

// Sentinel errors; the API maps them to HTTP statuses in one table.
var (
	// ErrProxyNotFound means no proxy has the name.
	ErrProxyNotFound = errors.New("proxy not found")
	// ErrProxyExists means a proxy with the name exists already.
	ErrProxyExists = errors.New("proxy already exists")
	// ErrInvalidProxy means a proxy configuration is invalid.
	ErrInvalidProxy = errors.New("invalid proxy")
	// ErrToxicNotFound means the proxy has no toxic with the name.
	ErrToxicNotFound = errors.New("toxic not found")
	// ErrToxicExists means the proxy has a toxic with the name already.
	ErrToxicExists = errors.New("toxic already exists")
	// ErrInvalidToxic means a toxic's type, stream, toxicity or attributes are invalid.
	ErrInvalidToxic = errors.New("invalid toxic")
	// ErrClosed means the server was closed.
	ErrClosed = errors.New("chaos server closed")
)
