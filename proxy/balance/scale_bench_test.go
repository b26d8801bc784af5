package balance

import (
	"fmt"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
)

// A discovered upstream of 1,000 endpoints: what a pick costs (it must not
// grow with the endpoint count) and what a membership update costs when
// one endpoint changes.

const bigN = 1000

func bigSet(b *testing.B, p Policy) (*Set, []Member) {
	s, err := NewSet(Config{Policy: p, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	ms := make([]Member, bigN)
	for i := range ms {
		ms[i] = Member{ID: fmt.Sprintf("i-%04d", i), Address: fmt.Sprintf("http://10.0.%d.%d:8080", i/250, i%250)}
	}
	if err := s.Update(ms); err != nil {
		b.Fatal(err)
	}
	for i, e := range s.Endpoints() {
		e.Start()
		e.Done(time.Duration(1+i%7)*time.Millisecond, false)
	}
	return s, ms
}

func benchPickBig(b *testing.B, p Policy) {
	s, _ := bigSet(b, p)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Pick(PickRequest{Key: benchKeys[i&3]}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkPick1000P2C(b *testing.B)        { benchPickBig(b, P2C{}) }
func BenchmarkPick1000RoundRobin(b *testing.B) { benchPickBig(b, RoundRobin{}) }
func BenchmarkPick1000Maglev(b *testing.B)     { benchPickBig(b, Maglev{}) }

// BenchmarkPick1000P2CHalfDown: half the endpoints unroutable (a zone
// lost); picks stay O(1) on average.
func BenchmarkPick1000P2CHalfDown(b *testing.B) {
	s, ms := bigSet(b, P2C{})
	for i := 0; i < len(ms); i += 2 {
		s.SetHealth(ms[i].ID, bulwark.HealthSuspect)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Pick(PickRequest{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpdate1000Unchanged: the registry re-delivers the same 1,000
// members (a health change elsewhere arrives as a full list).
func benchUpdateUnchanged(b *testing.B, p Policy) {
	s, ms := bigSet(b, p)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Update(ms); err != nil {
			b.Fatal(err)
		}
	}
}

// benchUpdateReplaceOne: one of 1,000 endpoints is replaced by a new one
// (an instance died, another registered).
func benchUpdateReplaceOne(b *testing.B, p Policy) {
	s, ms := bigSet(b, p)
	alt := append([]Member(nil), ms...)
	alt[500] = Member{ID: "i-new", Address: "http://10.9.9.9:8080"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m := ms
		if i&1 == 0 {
			m = alt
		}
		if err := s.Update(m); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkSetHealth1000: one endpoint goes suspect and back, the path a
// registry health change takes.
func BenchmarkSetHealth1000(b *testing.B) {
	s, ms := bigSet(b, P2C{})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		h := bulwark.HealthSuspect
		if i&1 == 1 {
			h = bulwark.HealthUp
		}
		s.SetHealth(ms[500].ID, h)
		i++
	}
}

func BenchmarkUpdate1000UnchangedP2C(b *testing.B)     { benchUpdateUnchanged(b, P2C{}) }
func BenchmarkUpdate1000UnchangedMaglev(b *testing.B)  { benchUpdateUnchanged(b, Maglev{}) }
func BenchmarkUpdate1000ReplaceOneP2C(b *testing.B)    { benchUpdateReplaceOne(b, P2C{}) }
func BenchmarkUpdate1000ReplaceOneMaglev(b *testing.B) { benchUpdateReplaceOne(b, Maglev{}) }
