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
	// RebuildDelay lets a [Maglev] table lag behind membership changes, so
	// that an endpoint joining or leaving costs O(changes) instead of a
	// table rebuild (milliseconds at 1,000 endpoints, seconds at 100,000)
	// on the membership source's goroutine. Update then keeps the current
	// table, whose removed endpoints are skipped at once (their keys walk on
	// to the next slots, as for an unhealthy endpoint) and whose newcomers
	// get no hashed keys yet, and a background rebuild follows this long
	// after the first such change, once for all the changes in between.
	// Close stops it. Default 0: rebuild within Update. Other policies build
	// in O(n) without hashing and ignore it.
	RebuildDelay time.Duration
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
	case c.RebuildDelay < 0:
		return fmt.Errorf("balance: RebuildDelay %v is negative", c.RebuildDelay)
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
	delay  time.Duration // Config.RebuildDelay

	mu      sync.Mutex // serializes Update and the rebuild
	snap    atomic.Pointer[snapshot]
	ready   bool        // an update has happened, so new members slow-start (guarded by mu)
	gen     uint64      // Update's generation, marks the endpoints it saw (guarded by mu)
	rebuild *time.Timer // pending deferred rebuild (guarded by mu)
	closed  bool        // guarded by mu
	wg      sync.WaitGroup

	idMu sync.RWMutex         // guards ids; written under mu
	ids  map[string]*Endpoint // current endpoints by ID, changed in place
}

// NewSet returns an empty set configured by cfg, or an error if cfg is
// invalid.
func NewSet(cfg Config) (*Set, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Set{policy: cfg.Policy, panic: cfg.Panic, delay: cfg.RebuildDelay, ids: map[string]*Endpoint{}}
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
//
// Cost: one pass over members that compares IDs with the current
// membership in order (a registry lists instances sorted, so one endpoint
// joining or leaving keeps the two in step), plus work in proportion to
// what changed: no map is rebuilt. The policy's picker is rebuilt only when
// membership or weights changed, and a Maglev table not at all within
// [Config.RebuildDelay].
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
	s.gen++
	gen := s.gen
	eps := make([]*Endpoint, len(members))
	var added []*Endpoint
	var fresh map[string]struct{} // IDs of added endpoints, for duplicates among them
	var skipped []*Endpoint       // endpoints of old.eps passed over: left, or listed elsewhere
	same := len(members) == len(old.eps)
	reweigh := false
	j := 0 // next endpoint of old.eps expected in members
	for i := range members {
		m := &members[i]
		id := m.ID
		if id == "" {
			id = m.Address
		}
		switch {
		case id == "":
			return fmt.Errorf("balance: member %d has neither ID nor Address", i)
		case m.Weight < 0 || m.Weight > MaxWeight:
			return fmt.Errorf("balance: member %q: weight %d is outside 0..%d", id, m.Weight, MaxWeight)
		}
		w := uint32(max(m.Weight, 1))
		var e *Endpoint
		if j < len(old.eps) && old.eps[j].id == id {
			e = old.eps[j]
			j++
		} else if e = s.ids[id]; e != nil && e.pos < len(old.eps) && old.eps[e.pos] == e {
			// Back in step after an insertion or a removal.
			if e.pos >= j {
				skipped = append(skipped, old.eps[j:e.pos]...)
			}
			j = e.pos + 1
		}
		if e != nil && e.mark == gen {
			return fmt.Errorf("balance: duplicate member ID %q", id)
		}
		if e != nil && e.addr != m.Address {
			skipped = append(skipped, e) // a new endpoint under an old ID: the old one leaves
			e = nil
		}
		if e == nil {
			if _, dup := fresh[id]; dup {
				return fmt.Errorf("balance: duplicate member ID %q", id)
			}
			if fresh == nil {
				fresh = map[string]struct{}{}
			}
			fresh[id] = struct{}{}
			e = &Endpoint{id: id, addr: m.Address, data: m.Data, p: s.p, pool: s.pool}
			e.weight.Store(w)
			added = append(added, e)
		} else if e.weight.Load() != w {
			reweigh = true
		}
		e.mark = gen
		eps[i] = e
		if same && old.eps[i] != e {
			same = false
		}
	}
	// Valid: apply. Weights change only now, so a rejected update leaves
	// the old snapshot's endpoints untouched.
	var removed []*Endpoint
	for _, e := range append(skipped, old.eps[min(j, len(old.eps)):]...) {
		if e.mark != gen {
			e.mark = gen // counted once
			removed = append(removed, e)
		}
	}
	for i, e := range eps {
		if e.pos != i {
			e.pos = i
		}
	}
	if reweigh {
		same = false
		for i, e := range eps {
			e.weight.Store(uint32(max(members[i].Weight, 1)))
		}
	}
	for _, e := range added {
		if s.ready {
			e.startRamp()
		}
	}
	if len(removed) > 0 || len(added) > 0 {
		same = false
		s.idMu.Lock()
		for _, e := range removed {
			e.gone.Store(true)
			if s.ids[e.id] == e {
				delete(s.ids, e.id)
			}
		}
		for _, e := range added {
			s.ids[e.id] = e
		}
		s.idMu.Unlock()
	}
	s.ready = true
	if same {
		return nil // same endpoints, order and weights: the picker stands
	}
	next := &snapshot{eps: eps}
	if len(eps) > 0 {
		next.picker = s.picker(old.picker, eps)
	}
	s.snap.Store(next)
	return nil
}

// keeper is implemented by policies whose Build is costly (Maglev): keep
// returns a picker that serves eps from old's precomputed state until the
// next rebuild, or false when that would serve eps badly.
type keeper interface {
	keep(old Picker, eps []*Endpoint) (Picker, bool)
}

// picker returns the picker for a new membership eps: the old one kept
// with a rebuild scheduled (see Config.RebuildDelay), or a new one. s.mu
// is held.
func (s *Set) picker(old Picker, eps []*Endpoint) Picker {
	if k, ok := s.policy.(keeper); ok && s.delay > 0 && old != nil && !s.closed {
		if p, ok := k.keep(old, eps); ok {
			if s.rebuild == nil { // one rebuild for all the changes of the delay
				s.wg.Add(1)
				s.rebuild = time.AfterFunc(s.delay, s.rebuildNow)
			}
			return p
		}
	}
	return s.policy.Build(eps, s.rnd)
}

// rebuildNow builds the picker for the current membership, off the
// membership source's goroutine, and swaps it in unless membership changed
// meanwhile (that change scheduled a rebuild of its own, or built one).
func (s *Set) rebuildNow() {
	defer s.wg.Done()
	s.mu.Lock()
	s.rebuild = nil
	sn := s.snap.Load()
	closed := s.closed
	s.mu.Unlock()
	if closed || len(sn.eps) == 0 {
		return
	}
	p := s.policy.Build(sn.eps, s.rnd)
	s.mu.Lock()
	if s.snap.Load() == sn {
		s.snap.Store(&snapshot{eps: sn.eps, picker: p})
	}
	s.mu.Unlock()
}

// Close stops a pending deferred rebuild and waits for one that is
// running. The set stays usable; later updates rebuild within Update.
func (s *Set) Close() {
	s.mu.Lock()
	s.closed = true
	if s.rebuild != nil && s.rebuild.Stop() {
		s.wg.Done()
	}
	s.rebuild = nil
	s.mu.Unlock()
	s.wg.Wait()
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
func (s *Set) Get(id string) *Endpoint {
	s.idMu.RLock()
	defer s.idMu.RUnlock()
	return s.ids[id]
}

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
