package balance

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkAddRemove is one endpoint joining or leaving a discovered
// upstream of 1k, 10k or 100k endpoints: the membership source (the
// registry) delivers the whole sorted list, with the newcomer in the
// middle, and each op alternates between the list with it and without it.
// For Maglev this measures Update itself; with Config.RebuildDelay the
// table is rebuilt later, once for all the changes within the delay (an
// hour here, so that no rebuild runs during the loop), and
// BenchmarkMaglevBuild gives that cost.
func BenchmarkAddRemove(b *testing.B) {
	for _, pol := range []struct {
		name string
		p    Policy
	}{{"P2C", P2C{}}, {"RoundRobin", RoundRobin{}}, {"Maglev", Maglev{}}} {
		for _, n := range []int{1000, 10000, 100000} {
			b.Run(fmt.Sprintf("%s/%dk", pol.name, n/1000), func(b *testing.B) {
				s, err := NewSet(Config{Policy: pol.p, Seed: 1, RebuildDelay: time.Hour})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				without := make([]Member, n)
				for i := range without {
					without[i] = Member{ID: fmt.Sprintf("i-%06d", 2*i), Address: fmt.Sprintf("http://10.%d.%d.%d:8080", i>>16, (i>>8)&255, i&255)}
				}
				with := make([]Member, 0, n+1)
				with = append(with, without[:n/2]...)
				with = append(with, Member{ID: fmt.Sprintf("i-%06d", n+1), Address: "http://10.255.0.1:8080"})
				with = append(with, without[n/2:]...)
				if err := s.Update(without); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					m := without
					if i&1 == 0 {
						m = with
					}
					if err := s.Update(m); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

// BenchmarkMaglevBuild is the cost of one Maglev table for n endpoints
// (the table has ≥ 100 × n slots), which Update pays at once without a
// RebuildDelay and the rebuild pays later with one.
func BenchmarkMaglevBuild(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			eps := make([]*Endpoint, n)
			for i := range eps {
				eps[i] = &Endpoint{id: fmt.Sprintf("i-%06d", i)}
				eps[i].weight.Store(1)
			}
			b.ReportAllocs()
			for b.Loop() {
				Maglev{}.Build(eps, NewRand(1))
			}
		})
	}
}
