package proxy

import (
	"fmt"
	"testing"

	"github.com/bulwark-go/bulwark"
)

// BenchmarkPoolUpdate1000: a discovered upstream of 1,000 instances
// receives the registry's full list after one instance changed health
// (the list a watch delivers on every change).
func BenchmarkPoolUpdate1000HealthChange(b *testing.B) {
	p, err := newPool(Upstream{Name: "big", Discover: "big"}, &Options{})
	if err != nil {
		b.Fatal(err)
	}
	insts := make([]bulwark.Instance, 1000)
	for i := range insts {
		insts[i] = bulwark.Instance{Service: "big", ID: fmt.Sprintf("i-%04d", i), Address: fmt.Sprintf("http://10.0.%d.%d:8080", i/250, i%250), Health: bulwark.HealthUp}
	}
	if err := p.update(insts); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		h := bulwark.HealthSuspect
		if i&1 == 1 {
			h = bulwark.HealthUp
		}
		insts[500].Health = h
		if err := p.update(insts); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if e := p.set.Get("i-0500"); e == nil {
		b.Fatal("endpoint lost")
	}
}

// BenchmarkPoolAddRemove: a discovered upstream of 1k, 10k or 100k
// instances gains or loses one (the registry's full, sorted list, the
// newcomer in the middle), through the pool's whole update: members,
// breakers, passive health and the balancer.
func BenchmarkPoolAddRemove(b *testing.B) {
	for _, bal := range []string{"p2c-ewma", "hash"} {
		for _, n := range []int{1000, 10000, 100000} {
			b.Run(fmt.Sprintf("%s/%dk", bal, n/1000), func(b *testing.B) {
				p, err := newPool(Upstream{Name: "big", Discover: "big", Balance: bal}, &Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer p.close()
				without := make([]bulwark.Instance, n)
				for i := range without {
					without[i] = bulwark.Instance{Service: "big", ID: fmt.Sprintf("i-%06d", 2*i), Address: fmt.Sprintf("http://10.%d.%d.%d:8080", i>>16, (i>>8)&255, i&255), Health: bulwark.HealthUp}
				}
				with := append(append(append([]bulwark.Instance(nil), without[:n/2]...),
					bulwark.Instance{Service: "big", ID: fmt.Sprintf("i-%06d", n+1), Address: "http://10.255.0.1:8080", Health: bulwark.HealthUp}), without[n/2:]...)
				if err := p.update(without); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					in := without
					if i&1 == 0 {
						in = with
					}
					if err := p.update(in); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}
