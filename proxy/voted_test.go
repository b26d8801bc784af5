package proxy

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// answer makes a backend serve body with a valid Content-Digest: a liar's
// digest is as valid as an honest one's.
func answer(b *backend, body string) {
	b.set(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Digest", ContentDigest([]byte(body)))
		io.WriteString(w, body)
	})
}

// votingGateway is a gateway over bs with vote f=1 and its events.
func votingGateway(t *testing.T, bs ...*backend) (*Gateway, *prometheus.Registry, func() []Event) {
	t.Helper()
	return votingGatewayWith(t, Vote{F: 1}, bs...)
}

// votingGatewayWith is votingGateway with the given vote.
func votingGatewayWith(t *testing.T, v Vote, bs ...*backend) (*Gateway, *prometheus.Registry, func() []Event) {
	t.Helper()
	return votingGatewayUpstream(t, v, Upstream{Name: "u"}, bs...)
}

// votingGatewayUpstream is votingGatewayWith with the upstream's config.
func votingGatewayUpstream(t *testing.T, v Vote, up Upstream, bs ...*backend) (*Gateway, *prometheus.Registry, func() []Event) {
	t.Helper()
	reg := prometheus.NewRegistry()
	var mu sync.Mutex
	var events []Event
	cfg := Config{Routes: []Route{{Name: "r", Upstream: "u", Vote: v}}, Upstreams: []Upstream{up}}
	for _, b := range bs {
		cfg.Upstreams[0].Endpoints = append(cfg.Upstreams[0].Endpoints, Endpoint{URL: b.URL})
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	gw, err := New(cfg, Options{Seed: 1, Registry: reg, OnEvent: func(e Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	return gw, reg, func() []Event {
		mu.Lock()
		defer mu.Unlock()
		return append([]Event(nil), events...)
	}
}

func TestVoteOutvotesALiar(t *testing.T) {
	a, b, liar := newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "liar")
	answer(a, "the truth")
	answer(b, "the truth")
	answer(liar, "a lie")
	gw, reg, events := votingGateway(t, a, b, liar)
	for i := range 50 {
		w := do(gw, "GET", "http://gw/x", nil)
		if w.Code != 200 || w.Body.String() != "the truth" {
			t.Fatalf("request %d: %d %q", i, w.Code, w.Body.String())
		}
	}
	if liar.hits.Load() == 0 {
		t.Fatal("the liar was never asked; the test proves nothing")
	}
	var byz, ejected bool
	for _, e := range events() {
		byz = byz || e.Kind == "byzantine" && strings.HasPrefix(e.Endpoint, liar.URL)
		ejected = ejected || e.Kind == "ejected" && strings.HasPrefix(e.Endpoint, liar.URL)
	}
	if !byz || !ejected {
		t.Fatalf("the liar was not reported (byzantine %v) and ejected (%v): %+v", byz, ejected, events())
	}
	if n := counterValue(t, gw.metrics.byzantine.WithLabelValues("u")); n < 1 {
		t.Fatalf("byzantine_total = %v", n)
	}
	if n := counterValue(t, gw.metrics.votes.WithLabelValues("r", "majority")); n < 1 {
		t.Fatalf("votes_total{result=majority} = %v", n)
	}
	_ = reg
}

// Without voting the same liar's answers reach the client: the digest is
// valid, so nothing else catches them. This is what makes the test above
// able to fail.
func TestWithoutVoteTheLieGetsThrough(t *testing.T) {
	a, b, liar := newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "liar")
	answer(a, "the truth")
	answer(b, "the truth")
	answer(liar, "a lie")
	gw := gateway(t, func(c *Config) { c.Upstreams[0].Balance = "round-robin" }, a, b, liar)
	lies := 0
	for range 30 {
		if w := do(gw, "GET", "http://gw/x", nil); w.Body.String() == "a lie" {
			lies++
		}
	}
	if lies == 0 {
		t.Fatal("no lie got through without voting; the voting test proves nothing")
	}
}

func TestVoteOutcomes(t *testing.T) {
	tests := []struct {
		name     string
		answers  []string // "" = 503, "hang" = never answers (until the request ends)
		wantCode int
		wantBody string
		wantVote string
	}{
		{name: "agreement: answers at f+1 without the third", answers: []string{"x", "x", "x"}, wantCode: 200, wantBody: "x", wantVote: "2/2"},
		{name: "three different answers", answers: []string{"x", "y", "z"}, wantCode: 502, wantVote: "no-majority"},
		{name: "a 5xx is no vote, two agree", answers: []string{"x", "", "x"}, wantCode: 200, wantBody: "x"},
		{name: "two fail: no majority", answers: []string{"x", "", ""}, wantCode: 502, wantVote: "no-majority"},
		{name: "one hangs: two agreeing answer without waiting", answers: []string{"x", "x", "hang"}, wantCode: 200, wantBody: "x", wantVote: "2/2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			bs := scriptedBackends(t, tt.answers, release)
			defer close(release)
			gw, _, _ := votingGateway(t, bs...)
			// Retries of failed ballots go to endpoints already asked: none are left.
			start := time.Now()
			w := do(gw, "GET", "http://gw/x", nil)
			if w.Code != tt.wantCode || tt.wantBody != "" && w.Body.String() != tt.wantBody {
				t.Fatalf("%d %q, want %d %q", w.Code, w.Body.String(), tt.wantCode, tt.wantBody)
			}
			if tt.wantVote != "" && w.Header().Get("X-Bulwark-Vote") != tt.wantVote {
				t.Fatalf("X-Bulwark-Vote = %q, want %q", w.Header().Get("X-Bulwark-Vote"), tt.wantVote)
			}
			if tt.wantCode == 502 && !strings.Contains(w.Body.String(), "no majority") {
				t.Fatalf("502 body does not say why: %q", w.Body.String())
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("took %v: the vote waited for the slowest", d)
			}
		})
	}
}

// A POST is never voted (it would run three times).
func TestVoteOnlyReads(t *testing.T) {
	a, b, c := newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")
	for _, x := range []*backend{a, b, c} {
		answer(x, "ok")
	}
	gw, _, _ := votingGateway(t, a, b, c)
	if w := do(gw, "POST", "http://gw/x", strings.NewReader("p")); w.Code != 200 {
		t.Fatalf("POST: %d", w.Code)
	}
	if n := a.hits.Load() + b.hits.Load() + c.hits.Load(); n != 1 {
		t.Fatalf("a POST reached %d replicas, want 1", n)
	}
}

// Voting's bound (docs/byzantine.md): f = 2 over five replicas outvotes
// two replicas that tell the same lie; f = 1 over three could not, since
// the two liars would be a majority.
func TestVoteF2OutvotesTwoIdenticalLiars(t *testing.T) {
	var bs []*backend
	for i, a := range []string{"truth", "lie", "truth", "lie", "truth"} {
		b := newBackend(t, string(rune('a'+i)))
		answer(b, a)
		bs = append(bs, b)
	}
	cfg := Config{Routes: []Route{{Name: "r", Upstream: "u", Vote: Vote{Replicas: 5}}}, Upstreams: []Upstream{{Name: "u"}}}
	for _, b := range bs {
		cfg.Upstreams[0].Endpoints = append(cfg.Upstreams[0].Endpoints, Endpoint{URL: b.URL})
	}
	cfg.Upstreams[0].Outlier.MaxEjectionPercent = 100
	gw, err := New(cfg, Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	for i := range 30 {
		if w := do(gw, "GET", "http://gw/x", nil); w.Code != 200 || w.Body.String() != "truth" {
			t.Fatalf("request %d: %d %q", i, w.Code, w.Body.String())
		}
	}
	if bs[1].hits.Load() == 0 && bs[3].hits.Load() == 0 {
		t.Fatal("the liars were never asked")
	}
}

func TestVoteConfig(t *testing.T) {
	for _, tt := range []struct {
		vote Vote
		want string
	}{
		{Vote{F: 4}, "vote.f"},
		{Vote{Replicas: 4}, "vote.replicas"},
		{Vote{F: 1, Replicas: 5}, "does not match"},
		{Vote{F: 1, Quorum: "unanimous"}, "vote.quorum"},
		{Vote{Quorum: "all"}, "voting is off"},
	} {
		cfg := Config{Routes: []Route{{Upstream: "u", Vote: tt.vote}}, Upstreams: []Upstream{{Name: "u", Endpoints: []Endpoint{{URL: "http://127.0.0.1:1"}}}}}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want an error about %s", tt.vote, err, tt.want)
		}
	}
	cfg := Config{Routes: []Route{{Upstream: "u", Async: true, Vote: Vote{F: 1}}}, Upstreams: []Upstream{{Name: "u", Endpoints: []Endpoint{{URL: "http://127.0.0.1:1"}}}}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "async") {
		t.Errorf("async + vote: %v", err)
	}
}

// Strict voting (quorum: all) against two replicas that tell the same
// lie: issue 13's acceptance (b) at the unit level. Majority voting
// serves the lie (two of three agree: the f bound); strict voting
// answers 502 every time, names the answers by hash and count without
// their bodies, ejects nobody, counts each refusal and reports it.
func TestStrictVoteRefusesTwoIdenticalLiars(t *testing.T) {
	mk := func() []*backend {
		var bs []*backend
		for i, a := range []string{"a lie", "the truth", "a lie"} {
			b := newBackend(t, string(rune('a'+i)))
			answer(b, a)
			bs = append(bs, b)
		}
		return bs
	}

	gw, _, _ := votingGateway(t, mk()...)
	lies := 0
	for range 10 {
		if w := do(gw, "GET", "http://gw/x", nil); w.Code == 200 && w.Body.String() == "a lie" {
			lies++
		}
	}
	if lies == 0 {
		t.Fatal("majority voting never served the two liars' answer; the strict test below proves nothing")
	}

	bs := mk()
	gw, _, events := votingGatewayWith(t, Vote{F: 1, Quorum: "all"}, bs...)
	const n = 40
	for i := range n {
		w := do(gw, "GET", "http://gw/x", nil)
		body := w.Body.String()
		if w.Code != 502 || w.Header().Get("X-Bulwark-Vote") != "disagree" {
			t.Fatalf("request %d: %d %q (vote %q), want 502 disagree", i, w.Code, body, w.Header().Get("X-Bulwark-Vote"))
		}
		if strings.Contains(body, "lie") || strings.Contains(body, "truth") || strings.Contains(body, "127.0.0.1") {
			t.Fatalf("the 502 body leaks an answer or an upstream's address: %q", body)
		}
		if !strings.Contains(body, "replicas disagree") || !strings.Contains(body, "status 200 sha256:") {
			t.Fatalf("the 502 body does not say why: %q", body)
		}
	}
	if h := bs[1].hits.Load(); h != n {
		t.Fatalf("the honest replica answered %d of %d reads: it was ejected or skipped", h, n)
	}
	for _, e := range events() {
		if e.Kind == "ejected" || e.Kind == "byzantine" {
			t.Fatalf("strict voting judged a replica: %+v", e)
		}
	}
	if got := counterValue(t, gw.metrics.votes.WithLabelValues("r", "disagreement")); got != n {
		t.Fatalf("votes_total{result=disagreement} = %v, want %d", got, n)
	}
	if got := counterValue(t, gw.metrics.byzantine.WithLabelValues("u")); got != 0 {
		t.Fatalf("byzantine_total = %v, want 0", got)
	}
	dis := 0
	for _, e := range events() {
		if e.Kind == "disagreement" {
			dis++
			// Refused at the first difference: the detail counts the
			// answers received until then.
			if strings.Count(e.Detail, "× status 200 sha256:") < 2 || !strings.Contains(e.Detail, bs[1].URL) {
				t.Fatalf("event detail %q does not count the answers", e.Detail)
			}
		}
	}
	if dis == 0 || dis > n/2 {
		t.Fatalf("%d disagreement events for %d refusals, want at least one and rate-limited", dis, n)
	}
}

func TestStrictVoteOutcomes(t *testing.T) {
	tests := []struct {
		name     string
		answers  []string // "" = 503, "hang" = never answers (until the request ends)
		wantCode int
		wantBody string
		wantVote string
		wantText string // in the 502 body
	}{
		{name: "all three agree", answers: []string{"x", "x", "x"}, wantCode: 200, wantBody: "x", wantVote: "3/3"},
		{name: "one differs", answers: []string{"x", "x", "y"}, wantCode: 502, wantVote: "disagree", wantText: "1 × status 200 sha256:"},
		{name: "a 503 that cannot be replaced refuses", answers: []string{"x", "", "x"}, wantCode: 502, wantVote: "incomplete", wantText: "without an answer"},
		{name: "a failed ballot is replaced from the budget", answers: []string{"x", "", "x", "x"}, wantCode: 200, wantBody: "x", wantVote: "3/3"},
		{name: "refused at the first difference, without waiting for a hung one", answers: []string{"x", "y", "hang"}, wantCode: 502, wantVote: "disagree", wantText: "not waited for"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			bs := scriptedBackends(t, tt.answers, release)
			defer close(release)
			gw, _, _ := votingGatewayWith(t, Vote{F: 1, Quorum: "all"}, bs...)
			// Four backends: the 503 may be left out by the balancer on
			// one request, so ask until it was asked.
			for i := 0; i < 20; i++ {
				w := do(gw, "GET", "http://gw/x", nil)
				if w.Code != tt.wantCode || tt.wantBody != "" && w.Body.String() != tt.wantBody {
					t.Fatalf("%d %q, want %d %q", w.Code, w.Body.String(), tt.wantCode, tt.wantBody)
				}
				if v := w.Header().Get("X-Bulwark-Vote"); v != tt.wantVote {
					t.Fatalf("X-Bulwark-Vote = %q, want %q", v, tt.wantVote)
				}
				if !strings.Contains(w.Body.String(), tt.wantText) {
					t.Fatalf("502 body %q does not say %q", w.Body.String(), tt.wantText)
				}
				if len(tt.answers) < 4 || bs[1].hits.Load() > 0 {
					return
				}
			}
			t.Fatal("the failing replica was never asked: the case proves nothing")
		})
	}
}

// A strict vote asks an ejected replica when no routable one is left: a
// replica not asked is a certain refusal, one ejected for failing may
// answer again (and is still only believed if it agrees).
func TestStrictVoteAsksEjectedReplicas(t *testing.T) {
	a, b, c := newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")
	answer(a, "x")
	answer(b, "x")
	c.set(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 503) })
	// The breaker off: it would (rightly) open on c's past failures and
	// keep it out; this test is about ejection.
	gw, _, events := votingGatewayUpstream(t, Vote{F: 1, Quorum: "all"}, Upstream{Name: "u", Breaker: Breaker{Disabled: true}}, a, b, c)
	ejected := func() bool {
		for _, e := range events() {
			if e.Kind == "ejected" && strings.HasPrefix(e.Endpoint, c.URL) {
				return true
			}
		}
		return false
	}
	for i := 0; !ejected(); i++ {
		if i == 100 {
			t.Fatal("the failing replica was not ejected after 100 reads")
		}
		if w := do(gw, "GET", "http://gw/x", nil); w.Code != 502 || w.Header().Get("X-Bulwark-Vote") != "incomplete" {
			t.Fatalf("read %d with a replica answering 503: %d %q", i, w.Code, w.Header().Get("X-Bulwark-Vote"))
		}
	}
	// It recovers while still ejected: strict reads answer again.
	answer(c, "x")
	before := c.hits.Load()
	for i := range 5 {
		if w := do(gw, "GET", "http://gw/x", nil); w.Code != 200 || w.Header().Get("X-Bulwark-Vote") != "3/3" {
			t.Fatalf("read %d after the ejected replica recovered: %d %q %q", i, w.Code, w.Header().Get("X-Bulwark-Vote"), w.Body.String())
		}
	}
	if c.hits.Load()-before != 5 {
		t.Fatalf("the ejected replica was asked %d times for 5 reads", c.hits.Load()-before)
	}
	// An ejected replica that disagrees is still refused.
	answer(c, "y")
	if w := do(gw, "GET", "http://gw/x", nil); w.Code != 502 || w.Header().Get("X-Bulwark-Vote") != "disagree" {
		t.Fatalf("an ejected replica's different answer: %d %q %q", w.Code, w.Header().Get("X-Bulwark-Vote"), w.Body.String())
	}
}

// scriptedBackends starts one backend per answer: "" answers 503, "hang"
// waits for the request's end or release, anything else is the body.
func scriptedBackends(t *testing.T, answers []string, release <-chan struct{}) []*backend {
	t.Helper()
	var bs []*backend
	for i, a := range answers {
		b := newBackend(t, string(rune('a'+i)))
		switch a {
		case "":
			b.set(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 503) })
		case "hang":
			b.set(func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-release:
				}
			})
		default:
			answer(b, a)
		}
		bs = append(bs, b)
	}
	return bs
}
