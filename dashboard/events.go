package dashboard

import (
	"sync"
	"time"
)

// Event kinds the components and the dashboard itself use. Kind is free
// text; these are the ones the page gives a colour.
const (
	KindEjection  = "ejection"  // outlier detection took an endpoint out or let it back
	KindBreaker   = "breaker"   // a breaker changed state
	KindByzantine = "byzantine" // an answer outvoted by the other replicas, or badly signed
	KindLeader    = "leader"    // the registry elected a leader or lost one
	KindChaos     = "chaos"     // a chaos action (from the page or elsewhere)
	KindTraffic   = "traffic"   // the traffic generator was turned on or off
	KindSupervise = "supervise" // a supervisor started, restarted, stopped or gave up on a child
	KindInfo      = "info"      // anything else
)

// Event is one entry of the event log.
type Event struct {
	// Seq numbers events from 1 in the order they were added.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	Kind string    `json:"kind"`
	Text string    `json:"text"`
}

// DefaultEventCapacity is how many events an EventLog keeps when its
// capacity is not set.
const DefaultEventCapacity = 256

// EventLog is a bounded ring of events, fed by the components' callbacks
// (OnStateChange, ejections, leader changes) and by the dashboard's own
// chaos actions. When full, the oldest event is dropped. The zero value
// keeps DefaultEventCapacity events; a nil *EventLog ignores Add. Safe for
// concurrent use.
type EventLog struct {
	mu    sync.Mutex
	buf   []Event
	first int // index of the oldest event in buf
	n     int // events held
	seq   uint64
}

// NewEventLog returns a log that keeps the last capacity events
// (DefaultEventCapacity when capacity <= 0).
func NewEventLog(capacity int) *EventLog {
	if capacity <= 0 {
		capacity = DefaultEventCapacity
	}
	return &EventLog{buf: make([]Event, capacity)}
}

// Add appends an event stamped with the current time.
func (l *EventLog) Add(kind, text string) {
	if l == nil {
		return
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf == nil {
		l.buf = make([]Event, DefaultEventCapacity)
	}
	l.seq++
	e := Event{Seq: l.seq, Time: now, Kind: kind, Text: text}
	if l.n < len(l.buf) {
		l.buf[(l.first+l.n)%len(l.buf)] = e
		l.n++
		return
	}
	l.buf[l.first] = e
	l.first = (l.first + 1) % len(l.buf)
}

// Since returns the events after seq that are still held, oldest first.
// Since(0) returns them all.
func (l *EventLog) Since(seq uint64) []Event {
	out := []Event{}
	if l == nil {
		return out
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.n {
		e := l.buf[(l.first+i)%len(l.buf)]
		if e.Seq > seq {
			out = append(out, e)
		}
	}
	return out
}

// Len returns the number of events held.
func (l *EventLog) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}
