package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/dashboard"
)

// trafficGen is `bulwark up`'s gentle built-in client: reads (checked
// against their Content-Digest by the gateway) and an occasional async
// write, at a fixed rate, each recorded in the dashboard's traffic stats.
type trafficGen struct {
	base    string
	rate    float64
	traffic *dashboard.Traffic
	on      atomic.Bool
	client  *http.Client
	seq     atomic.Uint64
	hook    *panicHook // test-only fault injection (BULWARK_TEST_PANIC=traffic)
}

func newTrafficGen(base string, rate float64, on bool, t *dashboard.Traffic) *trafficGen {
	g := &trafficGen{base: base, rate: rate, traffic: t,
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	g.on.Store(on)
	return g
}

// Serve runs the generator until ctx ends (a supervised child). Requests
// in flight are waited for.
func (g *trafficGen) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(time.Duration(float64(time.Second) / g.rate))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			g.hook.maybe("traffic")
			if !g.on.Load() {
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); g.one(ctx) }()
		}
	}
}

func (g *trafficGen) one(ctx context.Context) {
	n := g.seq.Add(1)
	var req *http.Request
	if n%10 == 0 {
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, g.base+"/write", bytes.NewReader([]byte(fmt.Sprintf(`{"order": %d}`, n))))
		req.Header.Set("Idempotency-Key", fmt.Sprintf("up-%d-%d", time.Now().UnixNano(), n))
	} else {
		req, _ = http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/read", nil)
	}
	start := time.Now()
	resp, err := g.client.Do(req)
	ok := false
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		ok = resp.StatusCode < 400
	}
	if ctx.Err() != nil {
		return
	}
	g.traffic.Record(time.Since(start), ok)
}

// set switches the generator (dashboard control).
func (g *trafficGen) set(on bool) { g.on.Store(on) }
