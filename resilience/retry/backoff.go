package retry

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// BackoffKind selects the formula that spaces retries. The values are
// stable: new kinds are appended.
type BackoffKind uint8

// The backoff formulas. n is the retry number (1 is the first retry), Base,
// Multiplier and Max come from [Backoff]. The jittered kinds follow AWS's
// "Exponential Backoff And Jitter"
// (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/).
const (
	// FullJitter (the default) waits random(0, min(Max, Base·Multiplier^(n−1))).
	// AWS found it spreads competing clients best for the least total work.
	FullJitter BackoffKind = iota
	// Exponential waits min(Max, Base·Multiplier^(n−1)), spread by ±Jitter.
	Exponential
	// Constant waits Base every time, spread by ±Jitter.
	Constant
	// DecorrelatedJitter waits min(Max, random(Base, previous·3)), where
	// previous is the last delay (Base before the first retry).
	DecorrelatedJitter
)

// String returns the kind's name as written in config files.
func (k BackoffKind) String() string {
	switch k {
	case FullJitter:
		return "full_jitter"
	case Exponential:
		return "exponential"
	case Constant:
		return "constant"
	case DecorrelatedJitter:
		return "decorrelated_jitter"
	}
	return fmt.Sprintf("backoff(%d)", uint8(k))
}

// Backoff says how long to wait before each retry. The zero value is full
// jitter over an exponential from 100 ms, doubling, capped at 10 s.
type Backoff struct {
	// Kind is the formula; default [FullJitter].
	Kind BackoffKind
	// Base is the first delay (Constant: every delay); default 100 ms.
	Base time.Duration
	// Multiplier is the growth per retry of Exponential and FullJitter;
	// default 2. It must be at least 1. DecorrelatedJitter always uses 3,
	// as AWS's formula does.
	Multiplier float64
	// Max caps every delay computed by the formula; default 10 s. A
	// server's Retry-After may ask for longer and is honoured.
	Max time.Duration
	// Jitter spreads Exponential and Constant delays uniformly over
	// ±Jitter·delay (gRPC A6 uses 0.2); default 0, no spread. It must be
	// in [0, 1]. The jittered kinds ignore it.
	Jitter float64
}

// Backoff defaults.
const (
	DefaultBase       = 100 * time.Millisecond
	DefaultMultiplier = 2.0
	DefaultMaxDelay   = 10 * time.Second
)

// validate reports the first invalid field of b.
func (b Backoff) validate() error {
	switch {
	case b.Kind > DecorrelatedJitter:
		return fmt.Errorf("backoff kind %d: want full_jitter, exponential, constant or decorrelated_jitter", b.Kind)
	case b.Base < 0:
		return fmt.Errorf("backoff base %v: must not be negative", b.Base)
	case b.Max < 0:
		return fmt.Errorf("backoff max %v: must not be negative", b.Max)
	case b.Multiplier != 0 && (b.Multiplier < 1 || math.IsNaN(b.Multiplier) || math.IsInf(b.Multiplier, 0)):
		return fmt.Errorf("backoff multiplier %v: must be at least 1 (or 0 for the default)", b.Multiplier)
	case b.Jitter < 0 || b.Jitter > 1 || math.IsNaN(b.Jitter):
		return fmt.Errorf("backoff jitter %v: must be in [0, 1]", b.Jitter)
	}
	d := b.withDefaults()
	if d.Max < d.Base {
		return fmt.Errorf("backoff max %v is below base %v", d.Max, d.Base)
	}
	return nil
}

func (b Backoff) withDefaults() Backoff {
	if b.Base == 0 {
		b.Base = DefaultBase
	}
	if b.Multiplier == 0 {
		b.Multiplier = DefaultMultiplier
	}
	if b.Max == 0 {
		b.Max = DefaultMaxDelay
	}
	return b
}

// backoff computes delays. Only the failure path calls it, so the mutex
// around the shared random source costs nothing on success.
type backoff struct {
	Backoff // with defaults applied

	mu  sync.Mutex // guards rnd: *rand.Rand is not safe for concurrent use
	rnd *rand.Rand
}

// delay returns the wait before retry n (1 is the first retry), given the
// previous delay (zero before the first retry).
func (b *backoff) delay(n int, prev time.Duration) time.Duration {
	switch b.Kind {
	case Constant:
		return b.spread(b.Base)
	case Exponential:
		return b.spread(b.exponential(n))
	case FullJitter:
		return b.uniform(0, b.exponential(n))
	default: // DecorrelatedJitter
		if prev < b.Base {
			prev = b.Base
		}
		hi := prev
		if hi < b.Max/3 {
			hi *= 3
		} else {
			hi = b.Max // prev·3 would pass the cap (or overflow)
		}
		return min(b.Max, b.uniform(b.Base, hi))
	}
}

// exponential returns min(Max, Base·Multiplier^(n−1)) without overflowing.
func (b *backoff) exponential(n int) time.Duration {
	f := float64(b.Base) * math.Pow(b.Multiplier, float64(max(n-1, 0)))
	if f >= float64(b.Max) || math.IsInf(f, 0) || math.IsNaN(f) {
		return b.Max
	}
	return time.Duration(f)
}

// spread applies ±Jitter to d.
func (b *backoff) spread(d time.Duration) time.Duration {
	if b.Jitter == 0 || d == 0 {
		return d
	}
	j := time.Duration(float64(d) * b.Jitter)
	return b.uniform(d-j, d+j)
}

// uniform returns a random duration in [lo, hi].
func (b *backoff) uniform(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	span := int64(hi - lo)
	if span < math.MaxInt64 {
		span++ // make hi itself reachable
	}
	b.mu.Lock()
	r := b.rnd.Int64N(span)
	b.mu.Unlock()
	return lo + time.Duration(r)
}
