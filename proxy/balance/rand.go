package balance

import (
	"math/bits"
	"sync/atomic"
)

// Rand is a lock-free pseudo-random source for the hot path: wyrand
// (Wang Yi's counter-based generator) with its counter in an atomic, so
// concurrent picks never take a lock, and a given seed and call order
// replay the same sequence (chaos runs replay). It is not for security.
//
// Why not *rand.Rand behind a mutex: under parallel picks the mutex costs
// more than the pick itself. Why not the runtime's per-thread rand: it
// cannot be seeded.
type Rand struct {
	state atomic.Uint64
}

// wyrand constants (github.com/wangyi-fudan/wyhash).
const (
	wyp0 = 0xa0761d6478bd642f
	wyp1 = 0xe7037ed1a0b428db
)

// NewRand returns a source seeded with seed.
func NewRand(seed uint64) *Rand {
	r := &Rand{}
	r.state.Store(seed)
	return r
}

// Uint64 returns a pseudo-random 64-bit value.
func (r *Rand) Uint64() uint64 {
	s := r.state.Add(wyp0)
	hi, lo := bits.Mul64(s, s^wyp1)
	return hi ^ lo
}

// IntN returns a pseudo-random int in [0, n). n must be > 0. It uses
// Lemire's multiply-shift, whose bias is below 2^-32 for the small n a
// balancer sees.
func (r *Rand) IntN(n int) int {
	hi, _ := bits.Mul64(r.Uint64(), uint64(n))
	return int(hi)
}

// Float64 returns a pseudo-random float64 in [0, 1).
func (r *Rand) Float64() float64 {
	return float64(r.Uint64()>>11) / (1 << 53)
}
