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
