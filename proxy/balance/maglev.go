package balance

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
)

// DefaultMaglevTableSize is the smallest Maglev table: a prime, and ≥ 100 ×
// the endpoints for up to 655 endpoints (the paper's bound for a balance
// within 1%).
const DefaultMaglevTableSize = 65537

// Maglev is consistent hashing with Google's Maglev lookup table (Eisenbud
// et al., "Maglev: A Fast and Reliable Software Network Load Balancer",
// NSDI 2016), weighted as in Envoy's maglev_lb: a key always maps to the
// same endpoint while membership is stable, a membership change moves
// about 1/N of the keys, and a pick is one hash and one table read.
//
// The key is [PickRequest.Key]; an empty key picks a random slot. When the
// key's endpoint is unavailable, tried or over its load bound, the pick
// walks the following table slots, which gives every key its own stable
// order of fallbacks.
//
// With LoadFactor c > 1 it also bounds load (Mirrokni, Thorup, Zadimoghaddam,
// "Consistent Hashing with Bounded Loads", 2018; HAProxy's
// hash-balance-factor): an endpoint takes a request only while its
// in-flight count stays within c × its weighted share of the set's total,
// so one hot key cannot overload one endpoint.
//
// Hashes are deterministic (no per-process seed): every gateway maps a key
// to the same endpoint. Slow start does not apply.
type Maglev struct {
	// TableSize is the lookup table's size, a prime. Default: the smallest
	// prime ≥ max(65537, 100 × endpoints).
	TableSize int
	// LoadFactor is the bounded-load factor c, > 1 (1.25 is the paper's
	// example). Default 0: no bound.
	LoadFactor float64
}

// Validate reports an invalid field.
func (m Maglev) Validate() error {
	if m.TableSize != 0 && (m.TableSize < 2 || !isPrime(uint64(m.TableSize))) {
		return fmt.Errorf("%w: Maglev TableSize %d is not a prime", errPolicy, m.TableSize)
	}
	if m.LoadFactor != 0 && (m.LoadFactor <= 1 || math.IsNaN(m.LoadFactor) || math.IsInf(m.LoadFactor, 0)) {
		return fmt.Errorf("%w: Maglev LoadFactor %v must be > 1", errPolicy, m.LoadFactor)
	}
	return nil
}

// tracksTotalLoad tells [NewSet] to keep a set-wide in-flight count.
func (m Maglev) tracksTotalLoad() bool { return m.LoadFactor > 0 }

// Build implements [Policy].
func (m Maglev) Build(eps []*Endpoint, rnd *Rand) Picker {
	size := uint64(m.TableSize)
	if size == 0 || size < uint64(len(eps)) {
		size = nextPrime(max(DefaultMaglevTableSize, 100*uint64(len(eps))))
	}
	p := &maglevPicker{eps: eps, rnd: rnd, table: maglevTable(eps, size), factor: m.LoadFactor}
	for _, e := range eps {
		p.totalWeight += float64(e.weight.Load())
	}
	return p
}

// keep implements keeper: the old table goes on serving the new
// membership eps until the set's deferred rebuild, skipping endpoints that
// left. It declines (the set rebuilds at once) when half or more of the
// table's endpoints have left, since their keys would crowd onto their
// table neighbours.
func (m Maglev) keep(old Picker, eps []*Endpoint) (Picker, bool) {
	p, ok := old.(*maglevPicker)
	if !ok {
		return nil, false
	}
	live := 0
	for _, e := range p.eps {
		if !e.gone.Load() {
			live++
		}
	}
	if 2*live <= len(p.eps) {
		return nil, false
	}
	k := *p
	k.cur = eps
	return &k, true
}

// maglevPicker looks keys up in a prebuilt table.
type maglevPicker struct {
	eps         []*Endpoint
	rnd         *Rand
	table       []uint32 // endpoint indices
	factor      float64
	totalWeight float64
	// cur is the set's membership when the table was built for an earlier
	// one (kept until a deferred rebuild): endpoints of eps that have left
	// are skipped, and the slow path scans cur. Nil for a fresh table.
	cur []*Endpoint
}

// maglevWalk bounds the walk over following slots before the slow path.
const maglevWalk = 64

// Pick implements [Picker].
func (p *maglevPicker) Pick(req PickRequest) (*Endpoint, error) {
	m := uint64(len(p.table))
	var slot uint64
	if req.Key == "" {
		slot = uint64(p.rnd.IntN(int(m)))
	} else {
		slot, _ = bits.Mul64(hashString(req.Key, 0), m)
	}
	loadCap := math.Inf(1)
	if pool := p.eps[0].pool; p.factor > 0 && pool != nil {
		total := pool.Load()
		loadCap = p.factor * float64(total+1) / p.totalWeight
	}
	var prev *Endpoint
	for k := range uint64(maglevWalk) {
		e := p.eps[p.table[(slot+k)%m]]
		if e == prev {
			continue
		}
		prev = e
		if req.allowed(e) && p.fits(e, loadCap) && (p.cur == nil || !e.gone.Load()) {
			return e, nil
		}
	}
	// Slow path: scan in membership order from a key-dependent start, first
	// within the load bound, then ignoring it (the bound is best effort).
	eps := p.eps
	if p.cur != nil {
		eps = p.cur
	}
	n := len(eps)
	for i := range n {
		e := eps[(int(slot)+i)%n]
		if req.allowed(e) && p.fits(e, loadCap) {
			return e, nil
		}
	}
	if e := scanFrom(eps, int(slot%uint64(n)), &req); e != nil {
		return e, nil
	}
	return nil, noEndpoint(eps, &req)
}

// fits reports whether one more request keeps e within its load bound:
// in-flight + 1 ≤ ⌈c × (total + 1) × weight ÷ Σweight⌉.
func (p *maglevPicker) fits(e *Endpoint, capPerWeight float64) bool {
	if p.factor == 0 {
		return true
	}
	limit := math.Ceil(capPerWeight * float64(e.weight.Load()))
	return float64(e.inflight.Load()+1) <= limit
}

// maglevTable fills a table of the given prime size: each endpoint walks
// its own permutation of the slots (offset + j × skip mod size, both from
// hashes of its ID) and claims its next free slot in turn. An endpoint with
// weight w takes a turn in about w/maxWeight of the rounds (Envoy's weighted
// Maglev).
func maglevTable(eps []*Endpoint, size uint64) []uint32 {
	n := len(eps)
	const empty = math.MaxUint32
	table := make([]uint32, size)
	for i := range table {
		table[i] = empty
	}
	pos := make([]uint64, n)
	skip := make([]uint64, n)
	weight := make([]uint64, n)
	target := make([]uint64, n)
	var maxW uint64
	for i, e := range eps {
		pos[i] = hashString(e.id, 0x6d61676c65763031) % size
		skip[i] = hashString(e.id, 0x6d61676c65763032)%(size-1) + 1
		weight[i] = uint64(e.weight.Load())
		maxW = max(maxW, weight[i])
	}
	// Endpoints take turns in ID order, not membership order, so that every
	// gateway builds the same table whatever order its membership source
	// lists the endpoints in.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(eps[a].id, eps[b].id) })
	filled := uint64(0)
	for round := uint64(1); filled < size; round++ {
		for _, i := range order {
			if filled == size {
				break
			}
			if round*weight[i] < target[i] {
				continue
			}
			target[i] += maxW
			for table[pos[i]] != empty {
				pos[i] = (pos[i] + skip[i]) % size
			}
			table[pos[i]] = uint32(i)
			pos[i] = (pos[i] + skip[i]) % size
			filled++
		}
	}
	return table
}

// hashString is a deterministic 64-bit hash in the style of wyhash: eight
// bytes at a time through a 128-bit multiply, then a final mix. It must not
// change between releases: gateways rely on agreeing on key placement.
func hashString(s string, seed uint64) uint64 {
	n := uint64(len(s))
	h := seed ^ wyp1
	for len(s) >= 8 {
		v := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
		h = wymix(v^wyp1, h^wyp0)
		s = s[8:]
	}
	var tail uint64
	for i := range len(s) {
		tail |= uint64(s[i]) << (8 * i)
	}
	h = wymix(tail^wyp1, h^wyp0^n)
	return wymix(h^wyp0, wyp1^n)
}

// wymix is wyhash's 128-bit multiply-and-fold.
func wymix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// isPrime reports whether n is prime, by trial division (table sizes are
// at most a few million).
func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	for d := uint64(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

// nextPrime returns the smallest prime ≥ n.
func nextPrime(n uint64) uint64 {
	for !isPrime(n) {
		n++
	}
	return n
}
