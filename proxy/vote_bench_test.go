package proxy

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// BenchmarkPlain and BenchmarkVote3 measure what replica voting adds to a
// read: the same route over the same three endpoints, without and with
// vote {f: 1}. "inmem" leaves the sockets out (the gateway's own work:
// three tries, three hashes, the tally); "loopback" includes them. The
// voted request's ns/op on loopback is wall time with its three tries in
// parallel; compare CPU with bench/proxy.
//
//	go test -run '^$' -bench 'Plain|Vote3' -benchmem ./proxy/
func BenchmarkPlain(b *testing.B) { benchVoting(b, Vote{}) }

// BenchmarkVote3 is BenchmarkPlain with voting over 3 replicas.
func BenchmarkVote3(b *testing.B) { benchVoting(b, Vote{F: 1}) }

// BenchmarkVote3Strict is BenchmarkVote3 with quorum all: every read
// waits for all three answers instead of the first two that agree.
func BenchmarkVote3Strict(b *testing.B) { benchVoting(b, Vote{F: 1, Quorum: "all"}) }

func benchVoting(b *testing.B, v Vote) {
	body := bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz0123456789"), 3)[:100]
	digest := ContentDigest(body)
	var urls []string
	for range 3 {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h["Content-Digest"] = []string{digest}
			h["Content-Length"] = []string{strconv.Itoa(len(body))}
			w.Write(body)
		}))
		b.Cleanup(s.Close)
		urls = append(urls, s.URL)
	}
	gateway := func(b *testing.B) *Gateway {
		return benchGateway(b, urls, func(c *Config) { c.Routes[0].Vote = v })
	}
	b.Run("inmem", func(b *testing.B) {
		gw := gateway(b)
		memHook(gw, &memUpstream{body: body, digest: []string{digest}, clen: []string{strconv.Itoa(len(body))}})
		benchHandler(b, gw, len(body))
	})
	b.Run("loopback", func(b *testing.B) {
		benchHandler(b, gateway(b), len(body))
	})
}
