package ratelimit

import (
	"strconv"
	"testing"

	"golang.org/x/time/rate"
)

// The limits are high enough that every call is allowed: these measure
// the success path.

func BenchmarkRateLimitAllow(b *testing.B) {
	l := newLimiter(b, Config{Rate: 1e9, Burst: 1 << 30})
	b.ReportAllocs()
	for b.Loop() {
		if !l.Allow() {
			b.Fatal("rejected")
		}
	}
}

func BenchmarkRateLimitAllowParallel(b *testing.B) {
	l := newLimiter(b, Config{Rate: 1e9, Burst: 1 << 30})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow()
		}
	})
}

// BenchmarkXTimeRateAllow is golang.org/x/time/rate for comparison.
func BenchmarkXTimeRateAllow(b *testing.B) {
	l := rate.NewLimiter(1e9, 1<<30)
	b.ReportAllocs()
	for b.Loop() {
		l.Allow()
	}
}

func BenchmarkXTimeRateAllowParallel(b *testing.B) {
	l := rate.NewLimiter(1e9, 1<<30)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow()
		}
	})
}

func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256)
	}
	return keys
}

// BenchmarkKeyed spreads calls over 1000 client keys, all tracked.
func BenchmarkKeyed(b *testing.B) {
	k, _ := NewKeyed(KeyedConfig{Config: Config{Rate: 1e9, Burst: 1 << 30}})
	keys := benchKeys(1000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k.Allow(keys[i%len(keys)])
		i++
	}
}

func BenchmarkKeyedParallel(b *testing.B) {
	k, _ := NewKeyed(KeyedConfig{Config: Config{Rate: 1e9, Burst: 1 << 30}})
	keys := benchKeys(1000)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			k.Allow(keys[i%len(keys)])
			i += 7
		}
	})
}

// BenchmarkKeyedChurn has twice as many keys as MaxKeys: every call
// evicts, the worst case.
func BenchmarkKeyedChurn(b *testing.B) {
	k, _ := NewKeyed(KeyedConfig{Config: Config{Rate: 1e9, Burst: 1 << 30}, MaxKeys: 1000})
	keys := benchKeys(2000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k.Allow(keys[i%len(keys)])
		i++
	}
}
