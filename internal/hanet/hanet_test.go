package hanet

import "testing"

func TestStaleOwner(t *testing.T) {
	tests := []struct {
		name string
		pid  int
		ok   bool
	}{
		{"bwup123-sw", 123, true},
		{"bwup123-g1", 123, true},
		{"bwup7-", 7, true},
		{"bwup123sw", 0, false},  // no separator: New's names, not Open's
		{"bwup-sw", 0, false},    // no pid
		{"bwupx1-sw", 0, false},  // not digits
		{"bwup0-sw", 0, false},   // no such pid
		{"bwha123-sw", 0, false}, // another prefix
		{"bwup", 0, false},
	}
	for _, tt := range tests {
		pid, ok := staleOwner("bwup", tt.name)
		if pid != tt.pid || ok != tt.ok {
			t.Errorf("staleOwner(%q) = %d, %v; want %d, %v", tt.name, pid, ok, tt.pid, tt.ok)
		}
	}
}
