package proxy

import (
	"crypto/ed25519"
	"fmt"
	"testing"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/pki"
)

// TestPoolUpdateIncremental: successive registry lists (added, removed,
// moved, health changes, signature keys) leave the pool as a fresh pool
// given the last list would be: the same endpoints with the registry's
// health, breakers kept for members that stayed, none for those that left.
func TestPoolUpdateIncremental(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	key := pki.PublicKeyString(pub)
	inst := func(id, addr string, h bulwark.Health, md ...string) bulwark.Instance {
		in := bulwark.Instance{Service: "s", ID: id, Address: "http://" + addr, Health: h}
		if len(md) > 0 {
			in.Metadata = map[string]string{MetadataSignatureKey: md[0]}
		}
		return in
	}
	up, sus := bulwark.HealthUp, bulwark.HealthSuspect
	steps := [][]bulwark.Instance{
		{inst("a", "h1", up), inst("b", "h2", up), inst("c", "h3", up)},
		{inst("a", "h1", up), inst("b", "h2", sus), inst("c", "h3", up)},                        // health only
		{inst("a", "h1", up), inst("ab", "h9", sus), inst("b", "h2", sus), inst("c", "h3", up)}, // added, suspect
		{inst("a", "h1", up), inst("ab", "h9", up), inst("c", "h3", up)},                        // b left, ab up
		{inst("a", "h1", up, key), inst("ab", "h9", up), inst("c", "h4", sus)},                  // c moved, a signs
		{inst("a", "h1", up, "junk"), inst("c", "h4", up)},                                      // bad key clears it
		{inst("a", "h1", up), inst("b", "h2", sus), inst("c", "h4", up)},                        // b is back, suspect
	}
	p, err := newPool(Upstream{Name: "s", Discover: "s"}, &Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	prev := map[string]*member{}
	for i, insts := range steps {
		if err := p.update(insts); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		fresh, _ := newPool(Upstream{Name: "s", Discover: "s"}, &Options{})
		if err := fresh.update(insts); err != nil {
			t.Fatal(err)
		}
		got, want := fmt.Sprint(endpointStates(p)), fmt.Sprint(endpointStates(fresh))
		fresh.close()
		if got != want {
			t.Fatalf("step %d: %s, want %s", i, got, want)
		}
		if len(p.members) != len(insts) {
			t.Fatalf("step %d: %d members for %d instances", i, len(p.members), len(insts))
		}
		for _, in := range insts {
			m := p.members[in.ID]
			if e := p.set.Get(in.ID); e == nil || e.Data().(*member) != m {
				t.Fatalf("step %d: %s: member and endpoint disagree", i, in.ID)
			}
			if old := prev[in.ID]; old != nil && old.addr == m.addr && old != m {
				t.Fatalf("step %d: %s stayed but got a new member (its breaker lost)", i, in.ID)
			}
			if hasKey := m.sigKey.Load() != nil; hasKey != (in.Metadata[MetadataSignatureKey] == key) {
				t.Fatalf("step %d: %s: signature key %v", i, in.ID, hasKey)
			}
		}
		prev = map[string]*member{}
		for id, m := range p.members {
			prev[id] = m
		}
	}
}

// endpointStates lists a pool's endpoints as id@address:health.
func endpointStates(p *pool) []string {
	var out []string
	for _, e := range p.set.Endpoints() {
		out = append(out, fmt.Sprintf("%s@%s:%v", e.ID(), e.Address(), e.Health()))
	}
	return out
}
