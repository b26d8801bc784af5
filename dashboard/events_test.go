package dashboard

import (
	"fmt"
	"testing"
)

func TestEventLogBound(t *testing.T) {
	tests := []struct {
		name     string
		capacity int
		add      int
		wantLen  int
		wantOld  uint64 // seq of the oldest event held
	}{
		{"empty", 4, 0, 0, 0},
		{"under capacity", 4, 3, 3, 1},
		{"exactly full", 4, 4, 4, 1},
		{"wraps", 4, 10, 4, 7},
		{"default capacity", 0, DefaultEventCapacity + 5, DefaultEventCapacity, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewEventLog(tt.capacity)
			for i := range tt.add {
				l.Add(KindInfo, fmt.Sprint("event ", i+1))
			}
			all := l.Since(0)
			if len(all) != tt.wantLen || l.Len() != tt.wantLen {
				t.Fatalf("held %d (Len %d), want %d", len(all), l.Len(), tt.wantLen)
			}
			for i, e := range all {
				want := tt.wantOld + uint64(i)
				if e.Seq != want || e.Text != fmt.Sprint("event ", want) || e.Kind != KindInfo || e.Time.IsZero() {
					t.Errorf("event %d = %+v, want seq %d", i, e, want)
				}
			}
			if tt.add > 0 {
				if got := l.Since(uint64(tt.add - 1)); len(got) != 1 || got[0].Seq != uint64(tt.add) {
					t.Errorf("Since(last-1) = %+v, want the last event only", got)
				}
			}
		})
	}
}

func TestEventLogZeroAndNil(t *testing.T) {
	var l EventLog
	l.Add(KindChaos, "killed a")
	if got := l.Since(0); len(got) != 1 || got[0].Text != "killed a" {
		t.Errorf("zero-value log holds %+v", got)
	}
	var nl *EventLog
	nl.Add(KindInfo, "ignored")
	if nl.Len() != 0 || len(nl.Since(0)) != 0 {
		t.Error("nil log is not empty")
	}
}
