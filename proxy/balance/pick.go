package balance

import (
	"errors"
	"fmt"
)

// ErrNoEndpoint is returned by Pick when no endpoint may take the request:
// the set is empty, or every endpoint is unavailable (ejected, down) or was
// already tried. The balancer does not guess what to do then; the caller
// decides: fail fast with 503, set [PickRequest.AnyHealth] and route to an
// unavailable endpoint anyway (panic routing), or clear [PickRequest.Tried]
// to retry an endpoint it already used.
var ErrNoEndpoint = errors.New("no endpoint available")

// ErrAllTried wraps [ErrNoEndpoint]. Pick returns it when endpoints are
// available but every one of them is in [PickRequest.Tried], so a retry
// policy can tell "nobody is up" from "everybody has had a go".
var ErrAllTried = fmt.Errorf("every available endpoint was already tried: %w", ErrNoEndpoint)

// MaxTried is how many endpoints a [Tried] set remembers. Retries rarely go
// beyond three attempts; a fixed array keeps [PickRequest] a plain value that
// never allocates, even when it crosses the [Picker] interface.
const MaxTried = 8

// Tried is the set of endpoints a request has already been sent to, so that a
// retry goes to a different endpoint (Envoy's previous_hosts predicate,
// HAProxy's redispatch; the first thing users ask of failover, see
// ray-project/ray#63159). The zero value is empty. When more than [MaxTried]
// endpoints are added the oldest is forgotten.
type Tried struct {
	n   uint32 // endpoints ever added; the newest is at (n-1) % MaxTried
	eps [MaxTried]*Endpoint
}

// Add records e as tried. A nil e is ignored.
func (t *Tried) Add(e *Endpoint) {
	if e == nil || t.Has(e) {
		return
	}
	t.eps[t.n%MaxTried] = e
	t.n++
}

// Has reports whether e was tried.
func (t *Tried) Has(e *Endpoint) bool {
	if t.n == 0 {
		return false
	}
	for _, x := range &t.eps {
		if x == e {
			return true
		}
	}
	return false
}

// Len returns how many endpoints the set holds (at most [MaxTried]).
func (t *Tried) Len() int { return int(min(t.n, MaxTried)) }

// Reset empties the set.
func (t *Tried) Reset() { *t = Tried{} }

// PickRequest is what a [Picker] needs to know about one try. It is passed by
// value: it holds no pointer to the caller's stack, so picking never
// allocates.
type PickRequest struct {
	// Key is the hash key for consistent hashing (a header, cookie or client
	// address chosen by the proxy). Other policies ignore it; an empty key
	// with [Maglev] falls back to a random endpoint.
	Key string
	// Tried holds the endpoints this request was already sent to; they are
	// skipped.
	Tried Tried
	// AnyHealth treats unavailable endpoints as available: panic routing.
	// [Set.Pick] sets it when [Config.Panic] reports true; a caller may set
	// it itself after [ErrNoEndpoint] when it prefers a doubtful endpoint to
	// a certain error.
	AnyHealth bool
}

// Allows reports whether e may take the request: routable (or AnyHealth)
// and not yet tried. Custom [Policy] implementations filter with it.
func (r *PickRequest) Allows(e *Endpoint) bool { return r.allowed(e) }

// allowed reports whether e may take req: routable (or AnyHealth) and not
// yet tried.
func (r *PickRequest) allowed(e *Endpoint) bool {
	return (r.AnyHealth || e.available()) && !r.Tried.Has(e)
}

// Picker chooses an endpoint for one try. Implementations are immutable
// apart from atomics and safe for concurrent use; Pick must not block and
// should not allocate. It returns an error wrapping [ErrNoEndpoint] when no
// endpoint is allowed.
type Picker interface {
	Pick(req PickRequest) (*Endpoint, error)
}

// Policy is a balancing algorithm. Build is called by [Set.Update] with
// every new membership, off the hot path, so it may precompute (a Maglev
// table, a round-robin schedule); the Picker it returns serves picks until
// the next membership change. eps is never empty and must not be modified.
// rnd is the set's random source, safe for concurrent use.
type Policy interface {
	Build(eps []*Endpoint, rnd *Rand) Picker
}

// noEndpoint builds the error for a failed pick: ErrAllTried when some
// endpoint would have been allowed had it not been tried, ErrNoEndpoint
// otherwise.
func noEndpoint(eps []*Endpoint, req *PickRequest) error {
	if req.Tried.n > 0 {
		for _, e := range eps {
			if req.AnyHealth || e.available() {
				return ErrAllTried
			}
		}
	}
	return ErrNoEndpoint
}

// scanFrom returns the first allowed endpoint at or after index start
// (wrapping), or nil. It is the slow path every policy falls back to when
// its fast path meets only unavailable or tried endpoints.
func scanFrom(eps []*Endpoint, start int, req *PickRequest) *Endpoint {
	n := len(eps)
	for i := range n {
		e := eps[(start+i)%n]
		if req.allowed(e) {
			return e
		}
	}
	return nil
}
