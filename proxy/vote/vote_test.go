package vote

import (
	"errors"
	"net/http"
	"testing"
)

func key(s string) Key {
	h := NewHasher()
	h.Reset(200, nil, nil)
	h.Write([]byte(s))
	return h.Key()
}

var errTimeout = errors.New("timeout")

func TestTally(t *testing.T) {
	a, b, c := key("a"), key("b"), key("c")
	ok := func(ep int, k Key) Ballot { return Ballot{Endpoint: ep, Key: k} }
	fail := func(ep int) Ballot { return Ballot{Endpoint: ep, Err: errTimeout} }
	tests := []struct {
		name       string
		f          int
		q          Quorum
		ballots    []Ballot
		decidedAt  int // 1-based ballot count at which the outcome is decided; 0 = never
		winnerEP   int // endpoint of the winning ballot; -1 = none
		err        error
		dissenters []int
	}{
		{name: "first two agree: no wait for the third", f: 1, ballots: []Ballot{ok(0, a), ok(1, a), ok(2, b)}, decidedAt: 2, winnerEP: 0, dissenters: []int{2}},
		{name: "liar first, then two honest", f: 1, ballots: []Ballot{ok(0, b), ok(1, a), ok(2, a)}, decidedAt: 3, winnerEP: 1, dissenters: []int{0}},
		{name: "three different: no majority", f: 1, ballots: []Ballot{ok(0, a), ok(1, b), ok(2, c)}, decidedAt: 3, winnerEP: -1, err: ErrNoMajority},
		{name: "one error, two agree", f: 1, ballots: []Ballot{fail(0), ok(1, a), ok(2, a)}, decidedAt: 3, winnerEP: 1},
		{name: "two errors: no majority as soon as it is certain", f: 1, ballots: []Ballot{fail(0), fail(1), ok(2, a)}, decidedAt: 2, winnerEP: -1, err: ErrNoMajority},
		{name: "error and a disagreement: no majority", f: 1, ballots: []Ballot{ok(0, a), fail(1), ok(2, b)}, decidedAt: 3, winnerEP: -1, err: ErrNoMajority},
		{name: "statuses differ: a 500 does not agree with a 200", f: 1, ballots: []Ballot{ok(0, a), {Endpoint: 1, Key: statusKey(500)}, ok(2, a)}, decidedAt: 3, winnerEP: 0, dissenters: []int{1}},
		{name: "f=2: three of five", f: 2, ballots: []Ballot{ok(0, a), ok(1, b), ok(2, a), ok(3, b), ok(4, a)}, decidedAt: 5, winnerEP: 0, dissenters: []int{1, 3}},
		{name: "f=2: early at three", f: 2, ballots: []Ballot{ok(0, a), ok(1, a), ok(2, a), ok(3, b), ok(4, c)}, decidedAt: 3, winnerEP: 0, dissenters: []int{3, 4}},
		{name: "f=2: a tie of two and two cannot win", f: 2, ballots: []Ballot{ok(0, a), ok(1, a), ok(2, b), ok(3, b), ok(4, c)}, decidedAt: 5, winnerEP: -1, err: ErrNoMajority},
		{name: "late dissenter after the decision is judged", f: 1, ballots: []Ballot{ok(0, a), ok(1, a), ok(2, c)}, decidedAt: 2, winnerEP: 0, dissenters: []int{2}},
		{name: "majority: two identical liars win (the f bound)", f: 1, ballots: []Ballot{ok(0, b), ok(1, a), ok(2, b)}, decidedAt: 3, winnerEP: 0, dissenters: []int{1}},
		{name: "strict: all three agree", f: 1, q: All, ballots: []Ballot{ok(0, a), ok(1, a), ok(2, a)}, decidedAt: 3, winnerEP: 0},
		{name: "strict: two agreeing do not decide", f: 1, q: All, ballots: []Ballot{ok(0, a), ok(1, a)}, decidedAt: 0, winnerEP: -1},
		{name: "strict: two identical liars, one honest: refused, nobody judged", f: 1, q: All, ballots: []Ballot{ok(0, b), ok(1, b), ok(2, a)}, decidedAt: 3, winnerEP: -1, err: ErrDisagree},
		{name: "strict: refused at the first difference, without the third", f: 1, q: All, ballots: []Ballot{ok(0, a), ok(1, b), ok(2, b)}, decidedAt: 2, winnerEP: -1, err: ErrDisagree},
		{name: "strict: a failed ballot refuses", f: 1, q: All, ballots: []Ballot{ok(0, a), fail(1), ok(2, a)}, decidedAt: 2, winnerEP: -1, err: ErrIncomplete},
		{name: "strict: a failed ballot first", f: 1, q: All, ballots: []Ballot{fail(0), ok(1, a), ok(2, b)}, decidedAt: 1, winnerEP: -1, err: ErrIncomplete},
		{name: "strict: a difference after a failed ballot is still incomplete (decided before it)", f: 1, q: All, ballots: []Ballot{ok(0, a), fail(1), ok(2, b)}, decidedAt: 2, winnerEP: -1, err: ErrIncomplete},
		{name: "strict: statuses differ", f: 1, q: All, ballots: []Ballot{ok(0, a), ok(1, a), {Endpoint: 2, Key: statusKey(404)}}, decidedAt: 3, winnerEP: -1, err: ErrDisagree},
		{name: "strict f=2: five agree", f: 2, q: All, ballots: []Ballot{ok(0, a), ok(1, a), ok(2, a), ok(3, a), ok(4, a)}, decidedAt: 5, winnerEP: 0},
		{name: "strict f=2: four identical liars, one honest last", f: 2, q: All, ballots: []Ballot{ok(0, b), ok(1, b), ok(2, b), ok(3, b), ok(4, a)}, decidedAt: 5, winnerEP: -1, err: ErrDisagree},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl, err := New(tt.f, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if tl.N() != 2*tt.f+1 {
				t.Fatalf("N = %d", tl.N())
			}
			decidedAt := 0
			for i, b := range tt.ballots {
				if o := tl.Add(b); o.Decided && decidedAt == 0 {
					decidedAt = i + 1
				}
			}
			if decidedAt != tt.decidedAt {
				t.Fatalf("decided after %d ballots, want %d", decidedAt, tt.decidedAt)
			}
			o := tl.Outcome()
			winnerEP := -1
			if o.Winner >= 0 {
				winnerEP = tl.Ballots()[o.Winner].Endpoint
			}
			if winnerEP != tt.winnerEP || !errors.Is(o.Err, tt.err) && o.Err != tt.err {
				t.Fatalf("winner endpoint %d err %v, want %d %v", winnerEP, o.Err, tt.winnerEP, tt.err)
			}
			var dis []int
			tl.Dissenters(func(b Ballot) { dis = append(dis, b.Endpoint) })
			if len(dis) != len(tt.dissenters) {
				t.Fatalf("dissenters %v, want %v", dis, tt.dissenters)
			}
			for i := range dis {
				if dis[i] != tt.dissenters[i] {
					t.Fatalf("dissenters %v, want %v", dis, tt.dissenters)
				}
			}
		})
	}
}

func statusKey(status int) Key {
	h := NewHasher()
	h.Reset(status, nil, nil)
	h.Write([]byte("a"))
	return h.Key()
}

func TestTallyBounds(t *testing.T) {
	for _, f := range []int{0, -1, 4} {
		if _, err := New(f, Majority); err == nil {
			t.Errorf("New(%d) accepted", f)
		}
	}
	if _, err := New(1, Quorum(7)); err == nil {
		t.Error("an unknown quorum was accepted")
	}
	tl, _ := New(1, Majority)
	for i := 0; i < 3; i++ {
		tl.Add(Ballot{Endpoint: i, Key: key("a")})
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a fourth ballot for three replicas did not panic")
		}
	}()
	tl.Add(Ballot{Endpoint: 3})
}

func TestGroups(t *testing.T) {
	a, b := key("a"), key("b")
	tl, _ := New(2, All)
	for i, bl := range []Ballot{{Key: b}, {Key: a}, {Err: errTimeout}, {Key: b}} {
		bl.Endpoint = i
		tl.Add(bl)
	}
	gs, failed := tl.Groups(nil)
	if failed != 1 || len(gs) != 2 || gs[0] != (Group{Key: b, Count: 2, First: 0}) || gs[1] != (Group{Key: a, Count: 1, First: 1}) {
		t.Fatalf("groups %+v, %d failed", gs, failed)
	}
}

func TestHasherHeaders(t *testing.T) {
	h := NewHasher()
	k := func(status int, hdr http.Header, include []string, body string) Key {
		h.Reset(status, hdr, include)
		h.Write([]byte(body))
		return h.Key()
	}
	base := k(200, http.Header{"Etag": {"v1"}, "Date": {"Mon"}}, []string{"ETag"}, "x")
	if k(200, http.Header{"Etag": {"v1"}, "Date": {"Tue"}}, []string{"ETag"}, "x") != base {
		t.Error("an excluded header (Date) changed the key")
	}
	if k(200, http.Header{"Etag": {"v2"}}, []string{"ETag"}, "x") == base {
		t.Error("an included header (ETag) did not change the key")
	}
	if k(200, http.Header{}, []string{"ETag"}, "x") == base {
		t.Error("a missing included header did not change the key")
	}
	if k(201, http.Header{"Etag": {"v1"}}, []string{"ETag"}, "x") == base {
		t.Error("the status did not change the key")
	}
	if k(200, http.Header{"Etag": {"v1"}}, []string{"ETag"}, "y") == base {
		t.Error("the body did not change the key")
	}
}

func BenchmarkTally3(b *testing.B) {
	a, c := key("a"), key("c")
	tl, _ := New(1, Majority)
	b.ReportAllocs()
	for b.Loop() {
		tl.Reset(1, Majority)
		tl.Add(Ballot{Endpoint: 0, Key: a})
		tl.Add(Ballot{Endpoint: 1, Key: c})
		tl.Add(Ballot{Endpoint: 2, Key: a})
	}
}

func BenchmarkHasher4K(b *testing.B) {
	body := make([]byte, 4096)
	h := NewHasher()
	hdr := http.Header{"Etag": {"v1"}}
	include := []string{"ETag"}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		h.Reset(200, hdr, include)
		h.Write(body)
		_ = h.Key()
	}
}
