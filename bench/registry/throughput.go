package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/registry"
)

// rate is one throughput measurement: operations that succeeded in a
// closed loop of workers over a fixed window, with their latencies.
type rate struct {
	Name      string  `json:"name"`
	Workers   int     `json:"workers"`
	Target    string  `json:"target"` // "leader" or "all nodes"
	Seconds   float64 `json:"seconds"`
	OK        int     `json:"ok"`
	Errors    int     `json:"errors"`
	PerSecond float64 `json:"per_second"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
	Maxms     float64 `json:"max_ms"`
}

func (r rate) String() string {
	return fmt.Sprintf("%-14s workers=%-3d target=%-9s ok=%-7d err=%-4d %9.0f/s  p50 %6.2f ms  p99 %6.2f ms  max %7.2f ms",
		r.Name, r.Workers, r.Target, r.OK, r.Errors, r.PerSecond, r.P50ms, r.P99ms, r.Maxms)
}

// pct returns the q-quantile (nearest rank) of sorted durations.
func pct(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// closedLoop runs workers calling op(worker, seq) back to back for d and
// collects the latencies of the calls that succeeded.
func closedLoop(ctx context.Context, name, target string, workers int, d time.Duration, op func(ctx context.Context, w, seq int) error) rate {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu   sync.Mutex
		lats []time.Duration
		errs atomic.Int64
		wg   sync.WaitGroup
	)
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			var mine []time.Duration
			for seq := 0; ctx.Err() == nil; seq++ {
				t0 := time.Now()
				err := op(ctx, w, seq)
				if ctx.Err() != nil {
					break // the window closed mid-call: count nothing
				}
				if err != nil {
					errs.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(lats)
	return rate{Name: name, Workers: workers, Target: target, Seconds: el.Seconds(), OK: len(lats), Errors: int(errs.Load()),
		PerSecond: float64(len(lats)) / el.Seconds(), P50ms: ms(pct(lats, 0.5)), P99ms: ms(pct(lats, 0.99)), Maxms: ms(pct(lats, 1))}
}

// benchRegister measures registrations through registry.Client.Register:
// one Client per worker, distinct instance IDs, a one-hour lease so the
// renewal goroutines each Registration starts stay idle during the window.
// Afterwards it deregisters them all (Registration.Close) with the same
// workers and reports that rate too.
func benchRegister(ctx context.Context, c *cluster, workers int, d time.Duration, leaderOnly bool) (rate, rate, error) {
	lead, err := c.leader(ctx)
	if err != nil {
		return rate{}, rate{}, err
	}
	target := "all nodes"
	clients := make([]*registry.Client, workers)
	for w := range clients {
		addrs := c.addrs(w)
		if leaderOnly {
			addrs, target = []string{lead}, "leader"
		}
		cl, err := registry.NewClient(registry.ClientConfig{Addrs: addrs,
			HTTPClient: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}}})
		if err != nil {
			return rate{}, rate{}, err
		}
		clients[w] = cl
	}
	regs := make([][]*registry.Registration, workers)
	reg := closedLoop(ctx, "register", target, workers, d, func(ctx context.Context, w, seq int) error {
		inst := bulwark.Instance{Service: fmt.Sprintf("bench-%d", w%8), ID: fmt.Sprintf("w%d-%d", w, seq), Address: "http://127.0.0.1:9"}
		r, err := clients[w].Register(ctx, inst, time.Hour)
		if err != nil {
			return err
		}
		regs[w] = append(regs[w], r)
		return nil
	})
	var all [][]*registry.Registration
	for w := range regs {
		for _, r := range regs[w] {
			r.Pause(true)
		}
		all = append(all, regs[w])
	}
	// Deregister everything, each worker its own registrations, counting
	// the rate of Close (a Raft entry each, like a registration).
	var (
		mu   sync.Mutex
		lats []time.Duration
		errs int
		wg   sync.WaitGroup
	)
	start := time.Now()
	for w := range all {
		wg.Go(func() {
			for _, r := range all[w] {
				t0 := time.Now()
				err := r.Close()
				mu.Lock()
				if err != nil {
					errs++
				} else {
					lats = append(lats, time.Since(t0))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(lats)
	dereg := rate{Name: "deregister", Workers: workers, Target: target, Seconds: el.Seconds(), OK: len(lats), Errors: errs,
		PerSecond: float64(len(lats)) / el.Seconds(), P50ms: ms(pct(lats, 0.5)), P99ms: ms(pct(lats, 0.99)), Maxms: ms(pct(lats, 1))}
	for _, cl := range clients {
		cl.Close()
	}
	return reg, dereg, nil
}

// benchRenew registers instances (paused Registrations, one-hour lease) and
// then measures renewals — PUT /v1/instances/{s}/{id}/renew, exactly the
// request a Registration's loop sends; the Client has no public Renew — in
// a closed loop, each worker cycling over its own instances.
func benchRenew(ctx context.Context, c *cluster, workers, perWorker int, d time.Duration, leaderOnly bool) (rate, error) {
	lead, err := c.leader(ctx)
	if err != nil {
		return rate{}, err
	}
	setup, err := registry.NewClient(registry.ClientConfig{Addrs: []string{lead}})
	if err != nil {
		return rate{}, err
	}
	defer setup.Close()
	paths := make([][]string, workers)
	var regs []*registry.Registration
	defer func() { closeAll(regs, workers) }()
	for w := range workers {
		for i := range perWorker {
			inst := bulwark.Instance{Service: fmt.Sprintf("renew-%d", w%8), ID: fmt.Sprintf("r%d-%d", w, i), Address: "http://127.0.0.1:9"}
			r, err := setup.Register(ctx, inst, time.Hour)
			if err != nil {
				return rate{}, err
			}
			r.Pause(true)
			regs = append(regs, r)
			paths[w] = append(paths[w], "/v1/instances/"+inst.Service+"/"+inst.ID+"/renew")
		}
	}
	target := "all nodes"
	hcs := make([]*http.Client, workers)
	bases := make([]string, workers)
	for w := range workers {
		hcs[w] = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}, Timeout: 2 * time.Second}
		bases[w] = "http://" + c.addrs(w)[0]
		if leaderOnly {
			bases[w], target = "http://"+lead, "leader"
		}
	}
	res := closedLoop(ctx, "renew", target, workers, d, func(ctx context.Context, w, seq int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, bases[w]+paths[w][seq%len(paths[w])], nil)
		if err != nil {
			return err
		}
		resp, err := hcs[w].Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("renew: HTTP %d", resp.StatusCode)
		}
		return nil
	})
	for _, hc := range hcs {
		hc.CloseIdleConnections()
	}
	return res, nil
}

// closeAll closes registrations with n goroutines (deregistering them and
// stopping their renewal goroutines).
func closeAll(regs []*registry.Registration, n int) {
	var wg sync.WaitGroup
	ch := make(chan *registry.Registration)
	for range n {
		wg.Go(func() {
			for r := range ch {
				_ = r.Close()
			}
		})
	}
	for _, r := range regs {
		ch <- r
	}
	close(ch)
	wg.Wait()
}
