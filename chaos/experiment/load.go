package experiment

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxBody bounds how much of a response body the load generator reads.
const maxBody = 10 << 20

// sample is one judged request. Times are offsets from the run's start.
type sample struct {
	start, end time.Duration
	ok         bool
	reason     string // why it failed; empty when ok
}

// recorder collects samples from the load generator's goroutines.
type recorder struct {
	t0      time.Time
	mu      sync.Mutex // guards samples
	samples []sample
}

func (r *recorder) add(s sample) {
	r.mu.Lock()
	r.samples = append(r.samples, s)
	r.mu.Unlock()
}

// snapshot returns the samples so far, sorted by completion.
func (r *recorder) snapshot() []sample {
	r.mu.Lock()
	out := slices.Clone(r.samples)
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b sample) int { return int(a.end - b.end) })
	return out
}

// generator sends the experiment's load and judges each response.
type generator struct {
	exp    *Experiment
	client *http.Client
	rec    *recorder
	seq    atomic.Uint64
}

// run sends load until ctx ends and waits for requests in flight; those
// cut short by the end of the run are not recorded.
func (g *generator) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	l := &g.exp.Load
	if l.Concurrency > 0 {
		for range l.Concurrency {
			wg.Go(func() {
				for ctx.Err() == nil {
					g.one(ctx)
				}
			})
		}
		return
	}
	// Open loop: a request every 1/rate s whatever the target's latency,
	// up to a bound on requests in flight (beyond it the target is so
	// slow that each missed send is recorded as a failure).
	interval := time.Duration(float64(time.Second) / l.Rate)
	maxInflight := int64(max(64, int(l.Rate*l.Timeout.Seconds()*2)))
	var inflight atomic.Int64
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if inflight.Load() >= maxInflight {
			now := time.Since(g.rec.t0)
			g.rec.add(sample{start: now, end: now, reason: "load generator saturated"})
			continue
		}
		inflight.Add(1)
		wg.Go(func() {
			defer inflight.Add(-1)
			g.one(ctx)
		})
	}
}

// one sends one request and records its judgement.
func (g *generator) one(ctx context.Context) {
	l := &g.exp.Load
	path := l.Paths[int(g.seq.Add(1)-1)%len(l.Paths)]
	start := time.Since(g.rec.t0)
	rctx, cancel := context.WithTimeout(ctx, l.Timeout)
	defer cancel()
	reason := g.do(rctx, path)
	if ctx.Err() != nil {
		return // the run ended under this request: not the target's fault
	}
	g.rec.add(sample{start: start, end: time.Since(g.rec.t0), ok: reason == "", reason: reason})
}

// do sends a request and returns why the response is bad ("" if good).
func (g *generator) do(ctx context.Context, path string) string {
	l := &g.exp.Load
	var reqBody io.Reader
	if l.Body != "" {
		reqBody = strings.NewReader(l.Body)
	}
	req, err := http.NewRequestWithContext(ctx, l.Method, strings.TrimSuffix(g.exp.Target, "/")+path, reqBody)
	if err != nil {
		return "bad request: " + err.Error()
	}
	for k, v := range l.Headers {
		req.Header.Set(k, v)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return "timeout"
		}
		return "transport error"
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return "timeout"
		}
		return "body read error"
	}
	if !statusOK(resp.StatusCode, l.Expect.Status) {
		return fmt.Sprintf("status %d", resp.StatusCode)
	}
	if bc := l.Expect.Body; bc != nil {
		return checkBody(bc, resp.Header, body)
	}
	return ""
}

func statusOK(code int, want []int) bool {
	if len(want) == 0 {
		return code >= 200 && code < 300
	}
	return slices.Contains(want, code)
}

func checkBody(bc *BodyCheck, h http.Header, body []byte) string {
	if bc.Exact != nil && string(body) != *bc.Exact {
		return "body mismatch"
	}
	if bc.Contains != "" && !bytes.Contains(body, []byte(bc.Contains)) {
		return "body mismatch"
	}
	if bc.Digest {
		return checkDigest(h.Get("Content-Digest"), body)
	}
	return ""
}

// checkDigest verifies an RFC 9530 Content-Digest field
// (`sha-256=:base64:, sha-512=:base64:`) against body. Every supported
// algorithm present must match; unknown ones are ignored.
func checkDigest(field string, body []byte) string {
	if field == "" {
		return "missing Content-Digest"
	}
	checked := 0
	for _, member := range strings.Split(field, ",") {
		alg, val, ok := strings.Cut(strings.TrimSpace(member), "=")
		if !ok {
			return "malformed Content-Digest"
		}
		var h hash.Hash
		switch strings.ToLower(alg) {
		case "sha-256":
			h = sha256.New()
		case "sha-512":
			h = sha512.New()
		default:
			continue
		}
		if len(val) < 2 || val[0] != ':' || val[len(val)-1] != ':' {
			return "malformed Content-Digest"
		}
		want, err := base64.StdEncoding.DecodeString(val[1 : len(val)-1])
		if err != nil {
			return "malformed Content-Digest"
		}
		h.Write(body)
		if !bytes.Equal(h.Sum(nil), want) {
			return "digest mismatch"
		}
		checked++
	}
	if checked == 0 {
		return "no supported Content-Digest algorithm"
	}
	return ""
}
