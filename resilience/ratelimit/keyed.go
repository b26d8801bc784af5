package ratelimit

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
)

// KeyedConfig configures [NewKeyed]: one bucket of Config's Rate, Burst and
// MaxWait per key.
type KeyedConfig struct {
	Config
	// MaxKeys bounds the number of keys tracked; default 10000. When it is
	// reached, the least recently used key is forgotten.
	MaxKeys int
}

// Validate reports whether the config is usable.
func (c KeyedConfig) Validate() error {
	if c.MaxKeys < 0 {
		return fmt.Errorf("%w: negative MaxKeys", errInvalid)
	}
	return c.Config.Validate()
}

const keyShards = 16

// Keyed is a set of token buckets, one per key (a client IP for the
// gateway), kept in an LRU of at most MaxKeys keys so memory stays bounded
// however many distinct keys arrive. The keys are spread over 16 shards,
// each with its own lock and LRU of MaxKeys/16 keys.
//
// Forgetting a key refills its bucket: a forgotten key that returns gets a
// fresh burst. Keys idle for Burst/Rate seconds have full buckets anyway,
// so this only matters when more than MaxKeys keys are active at once; size
// MaxKeys above the number of concurrently active clients.
type Keyed struct {
	g      gcra
	start  time.Time
	seed   maphash.Seed
	shards [keyShards]keyShard
}

type keyShard struct {
	mu      sync.Mutex
	m       map[string]*keyEntry
	lru     keyEntry // sentinel: lru.next is the most recent, lru.prev the least
	max     int
	evicted atomic.Int64
	_       [40]byte
}

type keyEntry struct {
	key        string
	tat        int64
	prev, next *keyEntry
}

// NewKeyed returns a keyed limiter for cfg.
func NewKeyed(cfg KeyedConfig) (*Keyed, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g, err := newGCRA(cfg.Config)
	if err != nil {
		return nil, err
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = 10000
	}
	k := &Keyed{g: g, start: time.Now(), seed: maphash.MakeSeed()}
	per := max(1, (cfg.MaxKeys+keyShards-1)/keyShards)
	for i := range k.shards {
		s := &k.shards[i]
		s.m = make(map[string]*keyEntry)
		s.max = per
		s.lru.next, s.lru.prev = &s.lru, &s.lru
	}
	return k, nil
}

func (k *Keyed) now() int64 { return int64(time.Since(k.start)) }

// reserve takes a token for key if one is free within budget ns.
func (k *Keyed) reserve(key string, now, budget int64) (int64, bool) {
	s := &k.shards[maphash.String(k.seed, key)%keyShards]
	s.mu.Lock()
	e := s.lookup(key)
	tat, wait := k.g.next(e.tat, now)
	ok := wait <= budget
	if ok {
		e.tat = tat
	}
	s.mu.Unlock()
	return wait, ok
}

// lookup returns key's entry, most recent in the LRU, creating it (and
// evicting the least recent key when full) if absent.
func (s *keyShard) lookup(key string) *keyEntry {
	e := s.m[key]
	if e != nil {
		if s.lru.next != e { // move to front
			e.prev.next, e.next.prev = e.next, e.prev
			e.prev, e.next = &s.lru, s.lru.next
			s.lru.next.prev = e
			s.lru.next = e
		}
		return e
	}
	if len(s.m) >= s.max {
		e = s.lru.prev // reuse the least recent entry
		e.prev.next, e.next.prev = e.next, e.prev
		delete(s.m, e.key)
		s.evicted.Add(1)
		*e = keyEntry{}
	} else {
		e = new(keyEntry)
	}
	e.key = key
	e.prev, e.next = &s.lru, s.lru.next
	s.lru.next.prev = e
	s.lru.next = e
	s.m[key] = e
	return e
}

// Allow reports whether a call for key may start now, and if so takes its
// token.
func (k *Keyed) Allow(key string) bool {
	_, ok := k.reserve(key, k.now(), 0)
	return ok
}

// Wait takes a token for key, waiting for it up to MaxWait (and ctx's
// deadline); it returns an error wrapping [ErrLimited] when the token
// would come too late. A cancelled wait does not give its token back.
func (k *Keyed) Wait(ctx context.Context, key string) error {
	now := k.now()
	wait, ok := k.reserve(key, now, k.g.budget(ctx, k.start, now))
	switch {
	case !ok && k.g.maxWait <= 0:
		return k.g.reject(errLimited)
	case !ok:
		return k.g.reject(errTooLong)
	case wait <= 0:
		return nil
	}
	return sleep(ctx, wait)
}

type keyCtx struct{}

// WithKey returns a context whose calls [Keyed.Admit] counts against key.
func WithKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, keyCtx{}, key)
}

// Admit implements [resilience.Guard] for the key set by [WithKey] (the
// empty key when none is set). The permit's Release does nothing.
func (k *Keyed) Admit(ctx context.Context) (resilience.Permit, error) {
	key, _ := ctx.Value(keyCtx{}).(string)
	return resilience.Permit{}, k.Wait(ctx, key)
}

// Release implements [resilience.Releaser]; outcomes are ignored.
func (k *Keyed) Release(uint64, resilience.Outcome) {}

// Execute runs next once the ctx key's token is taken.
func (k *Keyed) Execute(ctx context.Context, next resilience.Next) (any, error) {
	if _, err := k.Admit(ctx); err != nil {
		return nil, err
	}
	return next(ctx)
}

// KeyedStats counts a [Keyed]'s keys.
type KeyedStats struct {
	Keys    int   // keys tracked now
	Evicted int64 // keys forgotten to make room, ever
}

// Stats returns the current counts.
func (k *Keyed) Stats() KeyedStats {
	var st KeyedStats
	for i := range k.shards {
		s := &k.shards[i]
		s.mu.Lock()
		st.Keys += len(s.m)
		s.mu.Unlock()
		st.Evicted += s.evicted.Load()
	}
	return st
}

var (
	_ resilience.Guard = (*Limiter)(nil)
	_ resilience.Guard = (*Keyed)(nil)
)
