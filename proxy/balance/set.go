package balance

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
)

// MaxWeight is the largest [Member.Weight]. Weights are relative, so a
// bound costs nothing and keeps round-robin schedules and Maglev fills small.
const MaxWeight = 10000

// Config configures a [Set]. The zero value is a P2C peak-EWMA balancer with
// a 10 s decay, failures counted as ≥ 2 × the estimate (≥ 10 ms) and
// 30 s slow start.
type Config struct {
	// Policy is the balancing algorithm. Default: [P2C] (power of two
	// choices over peak-EWMA latency × in-flight, as Linkerd does).
	Policy Policy
	// Seed seeds the set's random source, so that a run can be replayed.
	// Default 0: a random seed (different gateways then make different
	// choices, which is what spreads their load).
	Seed uint64
	// DecayTime is the peak EWMA's time constant τ: a latency sample's
	// weight falls to 1/e after τ. Default 10 s (Finagle, Linkerd).
	DecayTime time.Duration
	// FailureLatency is the least latency a failed try counts as in the
	// peak EWMA. Default 10 ms; negative: no floor.
	FailureLatency time.Duration
	// FailurePenalty makes a failed try count as at least this multiple of
	// the endpoint's current estimate (capped at 10 s), so that failures in a
	// row raise its cost geometrically. Default 2; 1 turns it off.
	FailurePenalty float64
	// SlowStart is the window over which an endpoint that joins the set
	// (after the first update) or comes back from an unroutable health state
	// ramps its weight from SlowStartMin to full, so that a cold JVM or an
	// empty cache is not handed a full share at once (envoy#11050). Default
	// 30 s; negative turns slow start off. [Maglev] ignores it (changing a
	// hashed endpoint's share would move keys), as Envoy does.
	SlowStart time.Duration
	// SlowStartMin is the fraction of its weight an endpoint gets when slow
	// start begins, in (0, 1]. Default 0.1.
	SlowStartMin float64
	// Panic, when set, is consulted on every pick; while it reports true,
	// unavailable endpoints are picked as if they were healthy (Envoy's
	// panic threshold: better to spread load over doubtful endpoints than to
	// crush the few healthy ones). Wire it to health.Detector.Panic. It must
	// be cheap and safe for concurrent use. Default nil: never.
	Panic func() bool
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	switch {
	case c.DecayTime < 0:
		return fmt.Errorf("balance: DecayTime %v is negative", c.DecayTime)
	case c.FailurePenalty != 0 && !(c.FailurePenalty >= 1 && c.FailurePenalty <= 1e6):
		return fmt.Errorf("balance: FailurePenalty %v is outside [1, 1e6]", c.FailurePenalty)
	case c.SlowStartMin < 0 || c.SlowStartMin > 1:
		return fmt.Errorf("balance: SlowStartMin %v is outside [0, 1]", c.SlowStartMin)
	}
	if v, ok := c.Policy.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("balance: %w", err)
		}
	}
	return nil
}

// Member is one endpoint as a membership source (registry, config file)
// describes it.
type Member struct {
	// ID identifies the endpoint. Default: Address.
	ID string
	// Address is where the endpoint serves (a URL or host:port). The
	// balancer only keeps it for the proxy.
	Address string
	// Weight is the endpoint's relative share, 1..[MaxWeight]. Default 1.
	Weight int
	// Data is carried on the [Endpoint] for the proxy (a parsed URL, a
	// transport, a breaker). It is fixed when the endpoint is created: a
	// later update with the same ID and Address keeps the first Data.
	Data any
}

// snapshot is an immutable view of a set's membership.
type snapshot struct {
	eps    []*Endpoint
	byID   map[string]*Endpoint
	picker Picker // nil when eps is empty
}

// Set is a pool of endpoints and the policy that picks among them. Picks
// read an immutable snapshot through one atomic load and take no lock;
// [Set.Update] builds a new snapshot and swaps it in, keeping the load state
// of endpoints that stay. Safe for concurrent use.
type Set struct {
	policy Policy
	panic  func() bool
	p      *params
	rnd    *Rand
	pool   *atomic.Int64

	mu    sync.Mutex // serializes Update
	snap  atomic.Pointer[snapshot]
	ready bool // an update has happened, so new members slow-start (guarded by mu)
}

// NewSet returns an empty set configured by cfg, or an error if cfg is
// invalid.
func NewSet(cfg Config) (*Set, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Set{policy: cfg.Policy, panic: cfg.Panic}
	if s.policy == nil {
		s.policy = P2C{}
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	s.rnd = NewRand(seed)
	p := &params{epoch: time.Now(), tau: float64(cmp0(cfg.DecayTime, 10*time.Second)),
		rampMin: cfg.SlowStartMin}
	if p.rampMin == 0 {
		p.rampMin = 0.1
	}
	if cfg.FailureLatency >= 0 {
		p.failLatency = float64(cmp0(cfg.FailureLatency, 10*time.Millisecond))
	}
	p.failFactor = cfg.FailurePenalty
	if p.failFactor == 0 {
		p.failFactor = 2
	}
	if cfg.SlowStart >= 0 {
		p.rampWindow = int64(cmp0(cfg.SlowStart, 30*time.Second))
	}
	s.p = p
	if lt, ok := s.policy.(interface{ tracksTotalLoad() bool }); ok && lt.tracksTotalLoad() {
		s.pool = new(atomic.Int64)
	}
	s.snap.Store(&snapshot{})
	return s, nil
}

// cmp0 returns v, or def when v is zero.
func cmp0(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

// Update replaces the set's membership. Endpoints whose ID and Address are
// unchanged keep their state (in-flight count, latency, health); their
// weight is updated. New endpoints start with health unknown (routable) and,
// except in the first update, in slow start. It returns an error, and
// changes nothing, for a member with neither ID nor Address, a duplicate ID,
// or a weight outside 0..[MaxWeight].
func (s *Set) Update(members []Member) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.snap.Load()
	if s.ready && sameMembers(old.eps, members) {
		// The registry re-delivers the full list on every change, most of
		// which (a health flip, another instance's renewal state) leave
		// membership and weights as they are: keep the snapshot and its
		// picker (a Maglev table costs milliseconds to rebuild).
		return nil
	}
	next := &snapshot{eps: make([]*Endpoint, 0, len(members)), byID: make(map[string]*Endpoint, len(members))}
	for i, m := range members {
		id := m.ID
		if id == "" {
			id = m.Address
		}
		switch {
		case id == "":
			return fmt.Errorf("balance: member %d has neither ID nor Address", i)
		case m.Weight < 0 || m.Weight > MaxWeight:
			return fmt.Errorf("balance: member %q: weight %d is outside 0..%d", id, m.Weight, MaxWeight)
		case next.byID[id] != nil:
			return fmt.Errorf("balance: duplicate member ID %q", id)
		}
		e := old.byID[id]
		if e == nil || e.addr != m.Address {
			e = &Endpoint{id: id, addr: m.Address, data: m.Data, p: s.p, pool: s.pool}
			if s.ready {
				e.startRamp()
			}
		}
		next.eps = append(next.eps, e)
		next.byID[id] = e
	}
	// Weights change only after validation passed, so a rejected update
	// leaves the old snapshot's endpoints untouched.
	for i, m := range members {
		next.eps[i].weight.Store(uint32(max(m.Weight, 1)))
	}
	if len(next.eps) > 0 {
		next.picker = s.policy.Build(next.eps, s.rnd)
	}
	s.snap.Store(next)
	s.ready = true
	return nil
}

// Pick chooses an endpoint for one try with the set's policy. It returns
// [ErrNoEndpoint] (or [ErrAllTried], which wraps it) when none is allowed.
func (s *Set) Pick(req PickRequest) (*Endpoint, error) {
	sn := s.snap.Load()
	if sn.picker == nil {
		return nil, ErrNoEndpoint
	}
	if !req.AnyHealth && s.panic != nil && s.panic() {
		req.AnyHealth = true
	}
	return sn.picker.Pick(req)
}

// Get returns the endpoint with the given ID, or nil.
func (s *Set) Get(id string) *Endpoint { return s.snap.Load().byID[id] }

// SetHealth sets the health of the endpoint with the given ID, reporting
// whether it exists. Its signature fits the health package's OnChange
// callbacks.
func (s *Set) SetHealth(id string, h bulwark.Health) bool {
	e := s.Get(id)
	if e == nil {
		return false
	}
	e.SetHealth(h)
	return true
}

// Endpoints returns the current endpoints in membership order.
func (s *Set) Endpoints() []*Endpoint { return slices.Clone(s.snap.Load().eps) }

// Len returns the number of endpoints.
func (s *Set) Len() int { return len(s.snap.Load().eps) }

// Stats returns every endpoint's [Stats], in membership order.
func (s *Set) Stats() []Stats {
	eps := s.snap.Load().eps
	out := make([]Stats, len(eps))
	for i, e := range eps {
		out[i] = e.Stats()
	}
	return out
}

// errPolicy is wrapped by policy validation errors.
var errPolicy = errors.New("invalid policy")

// sameMembers reports whether members name exactly eps, in order, with the
// same addresses and weights (so no new snapshot is needed; Update keeps
// an existing endpoint's Data either way). It does not allocate.
func sameMembers(eps []*Endpoint, members []Member) bool {
	if len(eps) != len(members) || len(eps) == 0 {
		return false
	}
	for i, m := range members {
		id := m.ID
		if id == "" {
			id = m.Address
		}
		e := eps[i]
		if e.id != id || e.addr != m.Address || e.weight.Load() != uint32(max(m.Weight, 1)) || m.Weight < 0 || m.Weight > MaxWeight {
			return false
		}
	}
	return true
}
