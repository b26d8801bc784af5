package main

import (
	"math"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
)

func TestPct(t *testing.T) {
	ds := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0, 1}, {0.5, 5}, {0.9, 9}, {0.99, 10}, {1, 10}} {
		if got := pct(ds, tc.q); got != tc.want {
			t.Errorf("pct(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := pct(nil, 0.5); got != 0 {
		t.Errorf("pct(nil) = %v, want 0", got)
	}
}

// TestTrackerEvents checks that successive watcher lists become the
// events the detection figures are computed from.
func TestTrackerEvents(t *testing.T) {
	tr := newTracker()
	up := func(id string) bulwark.Instance { return bulwark.Instance{ID: id, Health: bulwark.HealthUp} }
	sus := func(id string) bulwark.Instance { return bulwark.Instance{ID: id, Health: bulwark.HealthSuspect} }
	t0 := time.Now()
	steps := [][]bulwark.Instance{{up("a"), up("b")}, {sus("a"), up("b")}, {up("a"), up("b")}, {up("b")}, {sus("c")}}
	for _, s := range steps {
		tr.update(s)
	}
	var kinds []string
	for _, e := range tr.snapshot() {
		kinds = append(kinds, e.id+":"+e.kind)
	}
	want := []string{"a:added", "b:added", "a:unroutable", "a:routable", "a:removed", "c:added", "c:unroutable", "b:removed"}
	if len(kinds) != len(want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("events %v, want %v", kinds, want)
		}
	}
	if _, ok := tr.first("a", "removed", t0); !ok {
		t.Error("first(a, removed) not found")
	}
	if tr.routable("c") || tr.routable("a") {
		t.Error("c (suspect) or a (removed) reported routable")
	}
}

func TestUnroutableShare(t *testing.T) {
	base := time.Unix(1000, 0)
	at := func(s float64) time.Time { return base.Add(time.Duration(s * float64(time.Second))) }
	tests := []struct {
		name   string
		evs    []event
		killed map[string]time.Time
		want   float64
	}{
		{"always up", []event{{at(-1), "a", "added"}}, nil, 0},
		{"one second of ten", []event{{at(2), "a", "unroutable"}, {at(3), "a", "routable"}}, nil, 10},
		{"suspect until the end", []event{{at(5), "a", "unroutable"}}, nil, 50},
		{"time after the kill does not count", []event{{at(6), "a", "unroutable"}}, map[string]time.Time{"a": at(5)}, 0},
		{"suspect before the window", []event{{at(-3), "a", "unroutable"}, {at(1), "a", "routable"}}, nil, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := unroutableShare(tc.evs, []string{"a"}, tc.killed, base, at(10))
			if math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("got %.3f %%, want %.3f %%", got, tc.want)
			}
		})
	}
}
