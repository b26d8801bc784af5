package balance

import (
	"testing"
	"time"
)

// benchSet is a 16-endpoint set with measured latencies, as a gateway's
// pool looks after warm-up.
func benchSet(b *testing.B, p Policy) *Set {
	s := newSet(b, Config{Policy: p}, 16)
	for i, e := range s.Endpoints() {
		e.Start()
		e.Done(time.Duration(1+i)*time.Millisecond, false)
	}
	return s
}

var benchKeys = [...]string{"10.0.0.1", "10.0.0.2", "user-4711", "session=abcdef0123456789"}

func benchPick(b *testing.B, p Policy) {
	s := benchSet(b, p)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		e, err := s.Pick(PickRequest{Key: benchKeys[i&3]})
		if err != nil {
			b.Fatal(err)
		}
		i++
		_ = e
	}
}

func benchPickParallel(b *testing.B, p Policy) {
	s := benchSet(b, p)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.Pick(PickRequest{Key: benchKeys[i&3]}); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

func BenchmarkPickP2C(b *testing.B)                  { benchPick(b, P2C{}) }
func BenchmarkPickLeastRequest(b *testing.B)         { benchPick(b, LeastRequest{}) }
func BenchmarkPickRoundRobin(b *testing.B)           { benchPick(b, RoundRobin{}) }
func BenchmarkPickMaglev(b *testing.B)               { benchPick(b, Maglev{}) }
func BenchmarkPickMaglevBounded(b *testing.B)        { benchPick(b, Maglev{LoadFactor: 1.25}) }
func BenchmarkPickP2CParallel(b *testing.B)          { benchPickParallel(b, P2C{}) }
func BenchmarkPickRoundRobinParallel(b *testing.B)   { benchPickParallel(b, RoundRobin{}) }
func BenchmarkPickMaglevParallel(b *testing.B)       { benchPickParallel(b, Maglev{}) }
func BenchmarkPickLeastRequestParallel(b *testing.B) { benchPickParallel(b, LeastRequest{}) }

// BenchmarkPickRetry picks with two endpoints already tried, as a retry
// does.
func BenchmarkPickRetry(b *testing.B) {
	s := benchSet(b, P2C{})
	var req PickRequest
	req.Tried.Add(s.Get("e0"))
	req.Tried.Add(s.Get("e1"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Pick(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStartDone is the per-try bookkeeping the proxy adds around each
// upstream call.
func BenchmarkStartDone(b *testing.B) {
	s := benchSet(b, P2C{})
	e := s.Get("e3")
	b.ReportAllocs()
	for b.Loop() {
		e.Start()
		e.Done(2*time.Millisecond, false)
	}
}

// BenchmarkUpdateMaglev is the cost of a membership change with a Maglev
// table (off the hot path).
func BenchmarkUpdateMaglev(b *testing.B) {
	s := benchSet(b, Maglev{})
	ms := members(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Update(ms); err != nil {
			b.Fatal(err)
		}
	}
}
