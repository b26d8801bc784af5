// Package vote decides a replicated read by majority, so that a replica
// whose data is wrong — and whose Content-Digest is therefore valid for
// its wrong body — is outvoted instead of believed.
//
// The gateway sends one request to n = 2f+1 distinct endpoints and feeds
// each answer to a [Tally] as it arrives, as a [Ballot]: the status, a
// hash of the body and of the headers the route says matter, or the error
// of a try that got no answer. The tally decides as soon as f+1 ballots
// agree (the gateway then answers and cancels the rest: it never waits
// for the slowest once a majority exists), or as soon as no value can
// reach f+1 any more (the gateway answers 502: never a guess). Once
// decided, every ballot that disagreed with the winner is a Byzantine
// outcome of its endpoint.
//
// Why f+1 of 2f+1: with at most f liars, f+1 identical answers include at
// least one honest replica, and the honest replicas (at least f+1) agree
// with each other, so the f+1 value is the honest one. With more than f
// liars that agree, they can win: voting needs replicas with independent
// state and at most f of them wrong at once. Errors (timeouts, refused
// connections) are fail-stop, not Byzantine: they count as no vote.
//
// A strict tally ([All]) needs every one of the 2f+1 to agree instead:
// it decides [ErrDisagree] at the first answer that differs (or
// [ErrIncomplete] at the first failed ballot that could not be
// replaced), so that more than f
// replicas telling the same lie still cannot win as long as one honest
// replica answers. It judges nobody: in a 2-against-1 split the one may
// be the honest replica.
//
// The package uses only the standard library and allocates nothing per
// ballot: a tally holds at most [MaxReplicas] ballots in an array.
package vote

import (
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"net/http"
	"strconv"
)

// MaxReplicas bounds n = 2f+1 (f ≤ 3). Beyond that the cost of a read
// grows with no practical gain in a gateway.
const MaxReplicas = 7

// ErrNoMajority means no f+1 replicas agreed and none can any more. The
// gateway answers 502 with a body that says so.
var ErrNoMajority = errors.New("vote: no majority among the replicas")

// ErrDisagree means a strict tally ([All]) saw answers that differ: not
// every replica agrees, so none is trusted.
var ErrDisagree = errors.New("vote: the replicas disagree")

// ErrIncomplete means a strict tally ([All]) got fewer than 2f+1 answers
// (a failed ballot that could not be replaced, too few endpoints), all
// that came agreeing: a missing replica might have been the honest one
// that disagrees, so none is trusted either.
var ErrIncomplete = errors.New("vote: not every replica answered")

// Quorum is how many of the 2f+1 answers must agree.
type Quorum int

const (
	// Majority decides at f+1 equal answers and outvotes the others: it
	// tolerates f wrong replicas and stays available while f replicas
	// are down.
	Majority Quorum = iota
	// All decides only when all 2f+1 answers are equal: any single
	// wrong replica (or any number of them, while one honest replica
	// answers) turns the read into a refusal. Safety over availability.
	All
)

// Key identifies an answer's content: what must be equal for two
// replicas to agree.
type Key [sha256.Size]byte

// Ballot is one replica's answer, or the error of a try without one.
type Ballot struct {
	// Endpoint is the caller's index of the endpoint that answered.
	Endpoint int
	// Key is the answer's content key (see Hasher); ignored when Err is set.
	Key Key
	// Err is set when the try got no answer to vote with.
	Err error
}

// Outcome is the decision of a tally.
type Outcome struct {
	// Decided is true once the tally reached a majority or showed none
	// is possible.
	Decided bool
	// Winner is the index (into the ballots, in arrival order) of the
	// first ballot of the majority value; -1 when there is none.
	Winner int
	// Err is ErrNoMajority when no majority is possible.
	Err error
}

// Tally counts ballots for one voted request. The zero value is not
// usable; call New. A Tally is used by one goroutine (the request's).
type Tally struct {
	n, quorum int
	strict    bool
	ballots   [MaxReplicas]Ballot
	got       int
	outcome   Outcome
}

// New returns a tally for n = 2f+1 replicas that decides by q.
func New(f int, q Quorum) (*Tally, error) {
	t := new(Tally)
	return t, t.Reset(f, q)
}

// Reset prepares t for a new request with the given f and quorum, so
// tallies can be pooled.
func (t *Tally) Reset(f int, q Quorum) error {
	if f < 1 || 2*f+1 > MaxReplicas {
		return errors.New("vote: f must be between 1 and " + strconv.Itoa((MaxReplicas-1)/2))
	}
	*t = Tally{n: 2*f + 1, quorum: f + 1, outcome: Outcome{Winner: -1}}
	switch q {
	case Majority:
	case All:
		t.quorum, t.strict = t.n, true
	default:
		return errors.New("vote: unknown quorum " + strconv.Itoa(int(q)))
	}
	return nil
}

// Strict reports whether the tally needs all 2f+1 answers to agree.
func (t *Tally) Strict() bool { return t.strict }

// N is the number of replicas the request goes to.
func (t *Tally) N() int { return t.n }

// Add records a ballot and returns the outcome so far. Ballots after the
// decision are still recorded (so late dissenters are judged too) but do
// not change it. Adding more than N ballots panics: the caller sent more
// tries than the vote allows.
func (t *Tally) Add(b Ballot) Outcome {
	if t.got >= t.n {
		panic("vote: more ballots than replicas")
	}
	t.ballots[t.got] = b
	t.got++
	if t.outcome.Decided {
		return t.outcome
	}
	// Count agreement with this ballot, and find the best any value can
	// still reach.
	if b.Err == nil {
		same := 0
		first := -1
		for i := 0; i < t.got; i++ {
			if t.ballots[i].Err == nil && t.ballots[i].Key == b.Key {
				if first < 0 {
					first = i
				}
				same++
			}
		}
		if same >= t.quorum {
			t.outcome = Outcome{Decided: true, Winner: first}
			return t.outcome
		}
	}
	if t.best()+(t.n-t.got) < t.quorum {
		err := ErrNoMajority
		if t.strict {
			err = ErrIncomplete
			if t.best() < t.answered() {
				err = ErrDisagree
			}
		}
		t.outcome = Outcome{Decided: true, Winner: -1, Err: err}
	}
	return t.outcome
}

// best is the largest number of equal answers so far.
func (t *Tally) best() int {
	best := 0
	for i := 0; i < t.got; i++ {
		if t.ballots[i].Err != nil {
			continue
		}
		c := 0
		for j := 0; j < t.got; j++ {
			if t.ballots[j].Err == nil && t.ballots[j].Key == t.ballots[i].Key {
				c++
			}
		}
		best = max(best, c)
	}
	return best
}

// answered is the number of ballots with an answer.
func (t *Tally) answered() int {
	n := 0
	for _, b := range t.ballots[:t.got] {
		if b.Err == nil {
			n++
		}
	}
	return n
}

// Outcome is the decision so far.
func (t *Tally) Outcome() Outcome { return t.outcome }

// Ballots are the ballots recorded, in arrival order.
func (t *Tally) Ballots() []Ballot { return t.ballots[:t.got] }

// Dissenters calls fn with each ballot that answered with a value other
// than the winner's: the Byzantine outcomes. With no winner, nobody is
// judged (a tie of honest-looking answers proves no single liar). A
// strict tally judges nobody either: its winner has no dissenters by
// definition, and when it refuses, the dissenting minority may be the
// only honest replica — ejecting it would hand the liars the pool.
func (t *Tally) Dissenters(fn func(Ballot)) {
	if t.outcome.Winner < 0 || t.strict {
		return
	}
	win := t.ballots[t.outcome.Winner].Key
	for _, b := range t.ballots[:t.got] {
		if b.Err == nil && b.Key != win {
			fn(b)
		}
	}
}

// Group is one distinct answer among a tally's ballots.
type Group struct {
	// Key is the answer's content key.
	Key Key
	// Count is how many ballots gave it.
	Count int
	// First is the index (into Ballots) of the first ballot that gave it.
	First int
}

// Groups appends to dst the distinct answers recorded, in order of first
// arrival, and returns it with the number of failed ballots. It is for
// explaining a refusal (which answers, how many of each), not the hot
// path.
func (t *Tally) Groups(dst []Group) ([]Group, int) {
	failed := 0
next:
	for i, b := range t.ballots[:t.got] {
		if b.Err != nil {
			failed++
			continue
		}
		for j := range dst {
			if dst[j].Key == b.Key {
				dst[j].Count++
				continue next
			}
		}
		dst = append(dst, Group{Key: b.Key, Count: 1, First: i})
	}
	return dst, failed
}

// Hasher computes an answer's Key from its status, the headers the route
// includes, and its body (written to it as it streams: only the first
// answer's body needs buffering, to be sent to the client).
type Hasher struct {
	h       hash.Hash
	scratch [24]byte // status digits and separators, off the heap
}

// NewHasher returns a hasher; reuse it with Reset.
func NewHasher() *Hasher { return &Hasher{h: sha256.New()} }

// Reset starts a new answer: status and the included header values
// (header names as configured; absent headers hash as empty, so an answer
// missing one differs from one that has it). Headers that legitimately
// differ between replicas (Date, Server, X-Replica, ...) are simply not
// included.
func (h *Hasher) Reset(status int, header http.Header, include []string) {
	h.h.Reset()
	b := append(strconv.AppendInt(h.scratch[:0], int64(status), 10), 0)
	h.h.Write(b)
	sep, end := h.scratch[20:21], h.scratch[21:22]
	sep[0], end[0] = 1, 0
	for _, name := range include {
		for _, v := range header.Values(name) {
			io.WriteString(h.h, v)
			h.h.Write(sep)
		}
		h.h.Write(end)
	}
}

// Write adds body bytes.
func (h *Hasher) Write(p []byte) (int, error) { return h.h.Write(p) }

// Key is the answer's content key.
func (h *Hasher) Key() (k Key) {
	h.h.Sum(k[:0])
	return k
}
