package e2e

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/demo"
	"github.com/bulwark-go/bulwark/proxy"
)

// TestVotingOutvotesALyingReplica is issue 13's scenario (a): one of three
// replicas (real processes) answers 20 % of its reads with wrong data and
// a valid Content-Digest. Without voting, wrong bodies reach the client
// (so the test can fail); with vote {f: 1}, none do over ≥ 5,000
// requests, and the liar is ejected within a second of the first vote.
func TestVotingOutvotesALyingReplica(t *testing.T) {
	bs := startDemos(t, 3)
	setFault(t, bs[2], demo.Fault{Mode: demo.ModeLie, Rate: 0.2})

	var mu sync.Mutex
	var ejectedAt time.Time
	var byzantine int
	cfg := proxy.Config{
		Listeners: []proxy.Listener{{Address: "127.0.0.1:0"}},
		Routes:    []proxy.Route{{Name: "r", Upstream: "u"}},
		Upstreams: []proxy.Upstream{{Name: "u"}},
	}
	for _, b := range bs {
		cfg.Upstreams[0].Endpoints = append(cfg.Upstreams[0].Endpoints, proxy.Endpoint{URL: b.url})
	}
	gw, base := listenGateway(t, cfg, proxy.Options{Seed: 42, OnEvent: func(e proxy.Event) {
		if !strings.HasPrefix(e.Endpoint, bs[2].url) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		switch e.Kind {
		case "byzantine":
			byzantine++
		case "ejected":
			if ejectedAt.IsZero() {
				ejectedAt = time.Now()
			}
		}
	}})
	url := base + "/read"

	// Voting off: the lie gets through (the digest is valid for it).
	l := runLoad(t.Context(), workers, url, demo.Body(100), 10*time.Second)
	sleepUntil(l, 2*time.Second)
	off := summarize(l.finish())
	t.Logf("voting off: %v", off)
	if off.corrupt == 0 {
		t.Fatalf("no wrong body got through without voting in %d requests: the test proves nothing", off.total)
	}

	// Voting on.
	cfg.Routes[0].Vote = proxy.Vote{F: 1}
	if err := gw.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	votingFrom := time.Now()
	l = runLoad(t.Context(), workers, url, demo.Body(100), 10*time.Second)
	deadline := time.Now().Add(60 * time.Second)
	for {
		time.Sleep(200 * time.Millisecond)
		l.mu.Lock()
		n := len(l.results)
		l.mu.Unlock()
		if n >= 5000 || time.Now().After(deadline) {
			break
		}
	}
	rs := l.finish()
	on := summarize(rs)
	t.Logf("voting on: %v", on)
	if on.total < 5000 {
		t.Fatalf("only %d requests in 60s", on.total)
	}
	if on.corrupt != 0 {
		t.Fatalf("%d wrong bodies reached the client with voting on:%s", on.corrupt, failures(rs))
	}
	if on.failed != 0 {
		t.Fatalf("%d of %d requests failed:%s", on.failed, on.total, failures(rs))
	}
	mu.Lock()
	defer mu.Unlock()
	if byzantine == 0 || ejectedAt.IsZero() {
		t.Fatalf("the liar was not reported (%d byzantine outcomes) or not ejected", byzantine)
	}
	if d := ejectedAt.Sub(votingFrom); d > time.Second {
		t.Fatalf("the liar was ejected %v after voting began, want ≤ 1s", d)
	}
	t.Logf("liar ejected %v after voting began; %d byzantine outcomes", ejectedAt.Sub(votingFrom).Round(time.Millisecond), byzantine)
}
