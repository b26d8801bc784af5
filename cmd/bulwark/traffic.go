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

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newTrafficGen(base string, rate float64, t *dashboard.Traffic) *trafficGen {
	return &trafficGen{base: base, rate: rate, traffic: t,
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
}

// start runs the generator until stop; on says whether it sends.
func (g *trafficGen) start(on bool) {
	g.on.Store(on)
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	g.wg.Add(1)
	go g.loop(ctx)
}

func (g *trafficGen) loop(ctx context.Context) {
	defer g.wg.Done()
	t := time.NewTicker(time.Duration(float64(time.Second) / g.rate))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !g.on.Load() {
				continue
			}
			g.wg.Add(1)
			go func() { defer g.wg.Done(); g.one(ctx) }()
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

// SetTraffic switches the generator (dashboard control).
func (g *trafficGen) set(on bool) { g.on.Store(on) }

func (g *trafficGen) stop() {
	if g.cancel != nil {
		g.cancel()
	}
	g.wg.Wait()
}
