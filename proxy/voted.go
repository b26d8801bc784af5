package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/proxy/balance"
	"github.com/bulwark-go/bulwark/proxy/vote"
	"github.com/bulwark-go/bulwark/resilience"
)

// DefaultVoteMaxBody is the largest answer voted on when Vote.MaxBody is 0.
const DefaultVoteMaxBody = 1 << 20

// errVoteTooLarge marks a ballot whose body exceeds Vote.MaxBody.
var errVoteTooLarge = errors.New("answer too large to vote on (raise vote.max_body)")

// voting is a route's compiled Vote.
type voting struct {
	f       int
	quorum  vote.Quorum
	include []string // canonical header names
	maxBody int64

	// Disagreement events are limited to one a second per route (the
	// rest are counted into the next one): with two liars every read
	// disagrees, and the event log would hold nothing else.
	lastEvent  atomic.Int64 // unix nanoseconds of the last event
	suppressed atomic.Int64
}

func compileVote(v Vote) *voting {
	f := v.f()
	if f == 0 {
		return nil
	}
	vt := &voting{f: f, maxBody: int64(v.MaxBody)}
	if v.Quorum == "all" {
		vt.quorum = vote.All
	}
	if vt.maxBody == 0 {
		vt.maxBody = DefaultVoteMaxBody
	}
	for _, h := range v.IncludeHeaders {
		vt.include = append(vt.include, http.CanonicalHeaderKey(h))
	}
	return vt
}

// votes reports whether r is decided by a vote on this route: GET and HEAD
// only, since other methods change state and must not run 2f+1 times.
func (rt *route) votes(r *http.Request) bool {
	return rt.vote != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead)
}

// ballot is one replica's answer as the vote sees it.
type ballot struct {
	t   *try
	key vote.Key
	err error // set when the try gave no answer to vote with
	idx int   // index into the cancels
}

var tallyPool = sync.Pool{New: func() any { return new(vote.Tally) }}

// voted sends r to 2f+1 distinct endpoints at once and returns the try
// whose answer f+1 of them agree on (its body buffered), or
// vote.ErrNoMajority. A ballot that fails without an answer (transport
// error, 5xx, timeout) is replaced by a try on another endpoint while the
// retry budget allows; the others are cancelled as soon as the vote is
// decided. Endpoints outvoted by the majority are reported as Byzantine.
func (rt *route) voted(ctx context.Context, r *http.Request) (*try, *vote.Tally, error) {
	rt.budget.Request()
	defer rt.budget.Done()
	tl := tallyPool.Get().(*vote.Tally)
	if err := tl.Reset(rt.vote.f, rt.vote.quorum); err != nil {
		return nil, nil, err
	}
	n := tl.N()
	// A ballot is never retried on its endpoint and never abandoned for a
	// retry (canRetry false): the vote itself replaces failed ballots.
	req := &request{rt: rt, r: r}
	var tried balance.Tried
	results := make(chan ballot, 2*n)
	cancels := make([]context.CancelFunc, 0, 2*n)
	strict := rt.vote.quorum == vote.All
	launch := func() bool {
		ep, done, err := rt.upstream.pick(r, &tried)
		if err != nil && strict {
			ep, done, err = rt.upstream.pickEjected(&tried)
		}
		if err != nil {
			return false
		}
		tried.Add(ep)
		bctx, cancel := context.WithCancel(ctx)
		idx := len(cancels)
		cancels = append(cancels, cancel)
		go func() {
			var key vote.Key
			var berr error
			t := rt.observe(ep, done, func() *try {
				t := rt.send(ctx, bctx, cancel, req, ep, nil)
				key, berr = rt.readBallot(t)
				return t
			})
			results <- ballot{t: t, key: key, err: berr, idx: idx}
		}()
		return true
	}
	running := 0
	for range n {
		if !launch() {
			break
		}
		running++
	}
	// Endpoints the pool does not have are ballots that never come.
	for range n - running {
		if tl.Add(vote.Ballot{Endpoint: -1, Err: balance.ErrNoEndpoint}).Decided {
			break
		}
	}
	ballots := make([]ballot, 0, n)
	for running > 0 && !tl.Outcome().Decided {
		b := <-results
		running--
		if b.err != nil && ctx.Err() == nil && rt.budget.TryRetry() {
			rt.budget.RetryDone()
			if launch() {
				rt.gw.metrics.retry(rt.name, b.t.kind)
				running++
				b.t.discard()
				continue
			}
		}
		ballots = append(ballots, b)
		tl.Add(vote.Ballot{Endpoint: len(ballots) - 1, Key: b.key, Err: b.err})
	}
	out := tl.Outcome()
	if !out.Decided { // every ballot returned, none decided: cannot happen with n ballots, but be safe
		out.Err = vote.ErrNoMajority
	}
	var winner *try
	if out.Winner >= 0 {
		winner = ballots[tl.Ballots()[out.Winner].Endpoint].t
	}
	tl.Dissenters(func(vb vote.Ballot) {
		b := ballots[vb.Endpoint]
		rt.upstream.outvoted(b.t.ep, b.t.resp.StatusCode)
	})
	for _, b := range ballots {
		if b.t != winner {
			b.t.discard()
		}
	}
	for i, c := range cancels {
		if winner == nil || ballots[tl.Ballots()[out.Winner].Endpoint].idx != i {
			c()
		}
	}
	for range running { // cancelled losers release their connections when they return
		go func() { (<-results).t.discard() }()
	}
	rt.gw.metrics.vote(rt.name, out, tl)
	if winner == nil {
		err := &voteError{err: out.Err, detail: explainVote(tl, ballots, false)}
		if errors.Is(out.Err, vote.ErrDisagree) {
			rt.disagreement(func() string { return explainVote(tl, ballots, true) })
		}
		tallyPool.Put(tl)
		return nil, nil, err
	}
	inner, outer := winner.cancel, cancels[ballots[tl.Ballots()[out.Winner].Endpoint].idx]
	winner.cancel = func() {
		if inner != nil {
			inner()
		}
		outer()
	}
	return winner, tl, nil
}

// voteError is a refused vote with what the ballots were.
type voteError struct {
	err    error // vote.ErrNoMajority, ErrDisagree or ErrIncomplete
	detail string
}

func (e *voteError) Error() string { return e.err.Error() + ": " + e.detail }
func (e *voteError) Unwrap() error { return e.err }

// explainVote describes a refused vote's ballots: each distinct answer
// by status and the first 12 hex digits of its key (a hash: no body
// leaks), how many gave it, and the failed ballots. With endpoints (for
// the event log, not for the client: the 502 body must not publish the
// upstreams' addresses) it names who gave each answer. The ballots are
// those received until the refusal: a strict vote refuses at the first
// difference without waiting for the rest.
func explainVote(tl *vote.Tally, ballots []ballot, endpoints bool) string {
	var groups [vote.MaxReplicas]vote.Group
	gs, failed := tl.Groups(groups[:0])
	var b strings.Builder
	for i, g := range gs {
		if i > 0 {
			b.WriteString("; ")
		}
		t := ballots[tl.Ballots()[g.First].Endpoint].t
		fmt.Fprintf(&b, "%d × status %d sha256:%x", g.Count, t.resp.StatusCode, g.Key[:6])
		if !endpoints {
			continue
		}
		sep := " ("
		for _, vb := range tl.Ballots() {
			if vb.Err == nil && vb.Key == g.Key {
				b.WriteString(sep)
				b.WriteString(ballots[vb.Endpoint].t.ep.ID())
				sep = ", "
			}
		}
		b.WriteString(")")
	}
	if failed > 0 {
		if len(gs) > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%d without an answer (", failed)
		sep := ""
		for _, vb := range tl.Ballots() {
			if vb.Err == nil {
				continue
			}
			b.WriteString(sep)
			sep = ", "
			if vb.Endpoint < 0 {
				b.WriteString("no endpoint left to ask")
				continue
			}
			bt := ballots[vb.Endpoint].t
			b.WriteString(bt.kind.String())
			if endpoints {
				b.WriteString(" from " + bt.ep.ID() + ": " + vb.Err.Error())
			}
		}
		b.WriteString(")")
	}
	if asked := len(tl.Ballots()); asked < tl.N() {
		fmt.Fprintf(&b, "; %d of %d not waited for", tl.N()-asked, tl.N())
	}
	return b.String()
}

// disagreement reports a strict vote refused because the replicas
// disagree: an event (at most one a second per route, with the count of
// those left out), never an ejection (the minority may be the honest
// replica).
func (rt *route) disagreement(explain func() string) {
	now := time.Now().UnixNano()
	last := rt.vote.lastEvent.Load()
	if now-last < int64(time.Second) || !rt.vote.lastEvent.CompareAndSwap(last, now) {
		rt.vote.suppressed.Add(1)
		return
	}
	detail := explain()
	if n := rt.vote.suppressed.Swap(0); n > 0 {
		detail += fmt.Sprintf(" (and %d more disagreements in the last second)", n)
	}
	p := rt.upstream
	p.events(Event{Kind: "disagreement", Upstream: p.name, Detail: "route " + rt.name + ": replicas disagree, answered 502: " + detail})
}

// pickEjected picks an endpoint not yet tried among those outlier
// detection or health checks took out (panic routing, as Envoy does below
// its panic threshold), for a strict vote that has no routable endpoint
// left to ask. Strict voting needs every one of the 2f+1 to answer: a
// replica not asked is a certain refusal, while one ejected for being
// slow or failing may still answer, and if it fails the refusal is the
// same. Open breakers are still respected (they protect the upstream).
// Signature checks still apply to its answer.
func (p *pool) pickEjected(tried *balance.Tried) (*balance.Endpoint, func(resilience.Outcome), error) {
	return p.pickWith(balance.PickRequest{Tried: *tried, AnyHealth: true}, tried)
}

// readBallot turns a try into a vote: the key of its status, included
// headers and body (which it buffers into t.body). Tries without a usable
// answer — transport errors, timeouts, digest mismatches and 5xx — are
// failed ballots, not votes: they are fail-stop, not Byzantine.
func (rt *route) readBallot(t *try) (vote.Key, error) {
	if t.kind != failNone {
		if t.err == nil {
			return vote.Key{}, errTry
		}
		return vote.Key{}, t.err
	}
	resp := t.resp
	h := vote.NewHasher()
	h.Reset(resp.StatusCode, resp.Header, rt.vote.include)
	if t.body == nil {
		limit := rt.vote.maxBody
		if resp.ContentLength > limit {
			t.kind, t.err = failOther, errVoteTooLarge
			return vote.Key{}, t.err
		}
		var buf bytes.Buffer
		if resp.ContentLength > 0 {
			buf.Grow(int(resp.ContentLength))
		}
		n, err := io.Copy(&buf, io.LimitReader(resp.Body, limit+1))
		resp.Body.Close()
		switch {
		case err != nil:
			t.kind, t.err = failReset, err
			return vote.Key{}, err
		case n > limit:
			t.kind, t.err = failOther, errVoteTooLarge
			return vote.Key{}, t.err
		}
		t.body = buf.Bytes()
	}
	h.Write(t.body)
	return h.Key(), nil
}

// outvoted reports an endpoint outvoted by the majority: outlier
// detection ejects it, metrics count it, and an event names it.
func (p *pool) outvoted(ep *balance.Endpoint, status int) {
	p.passive.observe(ep, failByzantine, status, 0)
	p.byzantine(ep, "outvoted by the other replicas")
}

// byzantine counts a Byzantine outcome of ep and reports it as an event.
func (p *pool) byzantine(ep *balance.Endpoint, why string) {
	p.metrics.byzantine()
	p.events(Event{Kind: "byzantine", Upstream: p.name, Endpoint: ep.ID(), Detail: why})
}

// serveVoted answers r by a vote.
func (rt *route) serveVoted(ctx context.Context, w http.ResponseWriter, r *http.Request) (*try, int) {
	t, tl, err := rt.voted(ctx, r)
	if err != nil {
		msg, tag := err.Error(), "error"
		var ve *voteError
		switch {
		case errors.Is(err, vote.ErrDisagree):
			msg, tag = "the replicas disagree: quorum is all (strict), and not every replica gave the same answer, so none can be trusted; retry later", "disagree"
		case errors.Is(err, vote.ErrIncomplete):
			msg, tag = "not every replica answered: quorum is all (strict), and a replica that did not answer might disagree, so none can be trusted; retry later", "incomplete"
		case errors.Is(err, vote.ErrNoMajority):
			msg, tag = "no majority: the replicas' answers disagree, so none can be trusted; retry later", "no-majority"
		}
		if errors.As(err, &ve) && ve.detail != "" {
			msg += "\nanswers: " + ve.detail
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Bulwark-Vote", tag)
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprintln(w, msg)
		return &try{err: err, kind: failOther}, http.StatusBadGateway
	}
	agree, answered := 0, 0
	win := tl.Ballots()[tl.Outcome().Winner].Key
	for _, b := range tl.Ballots() {
		if b.Err == nil {
			answered++
			if b.Key == win {
				agree++
			}
		}
	}
	tallyPool.Put(tl)
	w.Header().Set("X-Bulwark-Vote", strconv.Itoa(agree)+"/"+strconv.Itoa(answered))
	return t, rt.respond(w, r, t)
}
