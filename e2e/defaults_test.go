package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/demo"
)

// The defaults hold under every fault (issue 10): `bulwark proxy` run with
// nothing but --to and --health (and the address to listen on), three
// demo replicas as processes, a closed-loop client of 32 workers with a
// 3 s timeout, one fault per scenario, and exact counts.

const (
	defaultsWorkers = 32
	clientTimeout   = 3 * time.Second
)

// startDefaultProxy runs `bulwark proxy` with its defaults in front of bs.
func startDefaultProxy(t *testing.T, bs []*proc) string {
	t.Helper()
	args := []string{"proxy", "--listen", "127.0.0.1:0", "--health", "/health"}
	for _, b := range bs {
		args = append(args, "--to", b.url)
	}
	return startBinary(t, releaseBinary(t), args...).url
}

// releaseDemos is startDemos from the release build.
func releaseDemos(t *testing.T, n int) []*proc {
	ps := make([]*proc, n)
	for i := range ps {
		ps[i] = startBinary(t, releaseBinary(t), "demo", "--id", fmt.Sprintf("r%d", i+1), "--seed", fmt.Sprint(i+1))
	}
	return ps
}

// quantile returns the q-quantile (nearest rank) of the results' latencies.
func quantile(rs []result, q float64) time.Duration {
	if len(rs) == 0 {
		return 0
	}
	lat := make([]time.Duration, len(rs))
	for i, r := range rs {
		lat[i] = r.latency
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	k := int(q*float64(len(lat))+0.999999) - 1
	return lat[min(max(k, 0), len(lat)-1)]
}

// faultScenario starts three replicas and the default gateway, runs the
// closed-loop load for d, applies fault at faultAt and returns every
// result.
func faultScenario(t *testing.T, faultAt, d time.Duration, fault func(bs []*proc, l *load)) []result {
	bs := releaseDemos(t, 3)
	url := startDefaultProxy(t, bs)
	warm(t, url)
	l := runLoad(t.Context(), defaultsWorkers, url+"/read", demo.Body(100), clientTimeout)
	sleepUntil(l, faultAt)
	fault(bs, l)
	sleepUntil(l, d)
	rs := l.finish()
	for _, b := range bs {
		b.signal(syscall.SIGCONT)
	}
	return rs
}

// twinScenario is faultScenario with a control: a second, identical pool
// and gateway under the same load at the same time, never faulted. Its
// latency is the healthy reference, measured on the same machine at the
// same moment, so other tenants' load cannot pass for the fault's cost.
func twinScenario(t *testing.T, faultAt, d time.Duration, fault func(bs []*proc, l *load)) (faulted, control []result) {
	bs, cs := releaseDemos(t, 3), releaseDemos(t, 3)
	url, curl := startDefaultProxy(t, bs), startDefaultProxy(t, cs)
	warm(t, url)
	warm(t, curl)
	l := runLoad(t.Context(), defaultsWorkers, url+"/read", demo.Body(100), clientTimeout)
	cl := runLoad(t.Context(), defaultsWorkers, curl+"/read", demo.Body(100), clientTimeout)
	sleepUntil(l, faultAt)
	fault(bs, l)
	sleepUntil(l, d)
	faulted, control = l.finish(), cl.finish()
	return faulted, control
}

// warm sends a few requests so that the gateway has latency samples and
// connections before the measured load starts.
func warm(t *testing.T, url string) {
	t.Helper()
	c := &http.Client{Timeout: clientTimeout}
	for range 50 {
		resp, err := c.Get(url + "/read")
		if err != nil {
			t.Fatalf("warm-up: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func requireNoFailures(t *testing.T, rs []result) summary {
	t.Helper()
	s := summarize(rs)
	if s.failed != 0 || s.corrupt != 0 {
		t.Fatalf("%d of %d requests failed, %d corrupt:%s", s.failed, s.total, s.corrupt, failures(rs))
	}
	return s
}

// TestDefaultsHungReplica: a replica accepts connections and never
// answers; no request fails and none waits more than 250 ms.
func TestDefaultsHungReplica(t *testing.T) {
	rs := faultScenario(t, time.Second, 9*time.Second, func(bs []*proc, _ *load) {
		setFault(t, bs[2], demo.Fault{Mode: demo.ModeHang})
	})
	s := requireNoFailures(t, rs)
	t.Logf("r3 hung at 1s: %v, p999 %v", s, quantile(rs, 0.999))
	if s.max > 250*time.Millisecond {
		t.Fatalf("worst latency %v exceeds 250ms", s.max)
	}
}

// TestDefaultsStoppedReplica: a replica is SIGSTOPped (the kernel still
// accepts its connections); no request fails and none waits more than
// 250 ms.
func TestDefaultsStoppedReplica(t *testing.T) {
	rs := faultScenario(t, time.Second, 9*time.Second, func(bs []*proc, _ *load) {
		bs[1].signal(syscall.SIGSTOP)
	})
	s := requireNoFailures(t, rs)
	t.Logf("r2 stopped at 1s: %v, p999 %v", s, quantile(rs, 0.999))
	if s.max > 250*time.Millisecond {
		t.Fatalf("worst latency %v exceeds 250ms", s.max)
	}
}

// TestDefaultsCrashedAndHung: at the same moment one replica is killed
// and another hangs; the one left serves every request.
func TestDefaultsCrashedAndHung(t *testing.T) {
	rs := faultScenario(t, time.Second, 9*time.Second, func(bs []*proc, _ *load) {
		var wg sync.WaitGroup
		wg.Go(func() { bs[0].kill() })
		wg.Go(func() { setFault(t, bs[1], demo.Fault{Mode: demo.ModeHang}) })
		wg.Wait()
	})
	s := requireNoFailures(t, rs)
	t.Logf("r1 killed and r2 hung at 1s: %v, p999 %v", s, quantile(rs, 0.999))
}

// TestDefaultsErrorsEverywhere: every replica answers 500 to 5 % of its
// requests; retries within the budget hide every one.
func TestDefaultsErrorsEverywhere(t *testing.T) {
	rs := faultScenario(t, time.Second, 9*time.Second, func(bs []*proc, _ *load) {
		for _, b := range bs {
			setFault(t, b, demo.Fault{Mode: demo.ModeFail, Rate: 0.05})
		}
	})
	s := requireNoFailures(t, rs)
	t.Logf("5%% errors on all three from 1s: %v", s)
}

// TestDefaultsSlowReplica: one replica adds 20 ms; the tail barely moves:
// p999 at most 3 × the healthy p999.
func TestDefaultsSlowReplica(t *testing.T) {
	rs, cs := twinScenario(t, time.Second, 9*time.Second, func(bs []*proc, _ *load) {
		setFault(t, bs[0], demo.Fault{Mode: demo.ModeSlow, Delay: demo.Duration(20 * time.Millisecond)})
	})
	requireNoFailures(t, rs)
	requireNoFailures(t, cs)
	healthy, slow := window(cs, time.Second, 9*time.Second), window(rs, time.Second, 9*time.Second)
	hp, sp := quantile(healthy, 0.999), quantile(slow, 0.999)
	t.Logf("healthy twin: %v, p999 %v", summarize(healthy), hp)
	t.Logf("r1 +20ms: %v, p999 %v", summarize(slow), sp)
	if sp > 3*hp {
		t.Fatalf("p999 with a replica 20ms slower is %v, more than 3 × the healthy %v", sp, hp)
	}
}

// TestDefaultsFlappingReplica: for 20 s one replica alternates 2 s up and
// 2 s hung; nothing fails and p99 stays within 2 × the healthy p99.
func TestDefaultsFlappingReplica(t *testing.T) {
	const from, flapFor = time.Second, 20 * time.Second
	rs, cs := twinScenario(t, from, from+flapFor, func(bs []*proc, l *load) {
		for i := range time.Duration(5) {
			setFault(t, bs[1], demo.Fault{Mode: demo.ModeHang})
			sleepUntil(l, from+i*4*time.Second+2*time.Second)
			setFault(t, bs[1], demo.Fault{Mode: demo.ModeOK})
			sleepUntil(l, from+i*4*time.Second+4*time.Second)
		}
	})
	requireNoFailures(t, rs)
	requireNoFailures(t, cs)
	healthy, flap := window(cs, from, from+flapFor), window(rs, from, from+flapFor)
	hp, fp := quantile(healthy, 0.99), quantile(flap, 0.99)
	t.Logf("healthy twin: %v", summarize(healthy))
	t.Logf("r2 flapping 2s/2s for 20s: %v", summarize(flap))
	if fp > 2*hp {
		t.Fatalf("p99 while a replica flaps is %v, more than 2 × the healthy %v", fp, hp)
	}
}

// TestDefaultsOverload: a backend that serves 16 requests at a time, 100 ms
// each (capacity 160/s; latency grows with concurrency beyond 16), is sent
// twice its capacity by an open-loop client. The default concurrency limit
// keeps the admitted requests' p99 within 3 × the unloaded p99 and
// goodput at ≥ 80 % of capacity, and sheds the excess fast with 503 and
// Retry-After, instead of letting a queue grow until every request times
// out.
func TestDefaultsOverload(t *testing.T) {
	const (
		slots    = 16
		service  = 100 * time.Millisecond
		capacity = float64(slots) / 0.100 // requests per second
		overload = 10 * time.Second
		settle   = 3 * time.Second // the limiter's convergence, excluded from the latency bound
	)
	// The overloaded backend, and a twin that stays unloaded at the same
	// time (below its knee, closed loop): the twin's latency is the
	// unloaded reference, measured under the same machine load.
	bs := releaseDemos(t, 2)
	for _, b := range bs {
		setFault(t, b, demo.Fault{Mode: demo.ModeLimited, Slots: slots, Delay: demo.Duration(service)})
	}
	url := startDefaultProxy(t, bs[:1]) + "/read"
	curl := startDefaultProxy(t, bs[1:]) + "/read"
	control := runLoad(t.Context(), slots*3/4, curl, demo.Body(100), clientTimeout)
	// Normal traffic first (what the limiter learns "unloaded" from), then
	// twice the capacity.
	normal := runLoad(t.Context(), slots*3/4, url, demo.Body(100), clientTimeout)
	sleepUntil(normal, 4*time.Second)
	requireNoFailures(t, normal.finish())
	rs := openLoop(t.Context(), url, 2*capacity, overload)
	crs := control.finish()
	from := 4*time.Second + settle // on the control's clock
	unloaded := requireNoFailures(t, window(crs, from, from+overload-settle))
	up99 := unloaded.p99
	t.Logf("unloaded twin (%d clients) after %v: %v", slots*3/4, settle, unloaded)
	var admitted, shed, other []timedResult
	for _, r := range rs {
		switch {
		case r.status == 200:
			admitted = append(admitted, r)
		case r.status == 503:
			shed = append(shed, r)
		default:
			other = append(other, r)
		}
	}
	for b := time.Duration(0); b < overload; b += 500 * time.Millisecond {
		var a, sh []timedResult
		for _, r := range admitted {
			if r.at >= b && r.at < b+500*time.Millisecond {
				a = append(a, r)
			}
		}
		for _, r := range shed {
			if r.at >= b && r.at < b+500*time.Millisecond {
				sh = append(sh, r)
			}
		}
		t.Logf("at %v: %d admitted p50 %v p99 %v; %d shed p50 %v", b, len(a), tquantile(a, .5), tquantile(a, .99), len(sh), tquantile(sh, .5))
	}
	goodput := float64(len(admitted)) / overload.Seconds()
	var steady []timedResult
	for _, r := range admitted {
		if r.at >= settle {
			steady = append(steady, r)
		}
	}
	ap99, allp99 := tquantile(steady, 0.99), tquantile(admitted, 0.99)
	sp99, smax := tquantile(shed, 0.99), tquantile(shed, 1)
	t.Logf("2× capacity for %v: %d sent, %d admitted (%.0f/s of %.0f/s capacity), %d shed, %d other; admitted p99 %v after %v (%v overall); shed p99 %v, max %v",
		overload, len(rs), len(admitted), goodput, capacity, len(shed), len(other), ap99, settle, allp99, sp99, smax)
	if len(other) > 0 {
		t.Errorf("%d requests neither served nor shed with 503, e.g. status %d err %v", len(other), other[0].status, other[0].err)
	}
	if goodput < 0.8*capacity {
		t.Errorf("goodput %.0f/s is below 80%% of capacity %.0f/s", goodput, capacity)
	}
	if ap99 > 3*up99 {
		t.Errorf("admitted p99 %v exceeds 3 × the unloaded p99 %v", ap99, up99)
	}
	if len(shed) == 0 {
		t.Errorf("nothing was shed at twice the capacity")
	}
	for _, r := range shed {
		if r.retryAfter == "" || r.fallback != "" {
			t.Fatalf("a shed request lacked Retry-After (%q) or came from the fallback (%q)", r.retryAfter, r.fallback)
		}
	}
	// Fast: nobody is queued only to be refused. A shed answer takes a
	// fraction of the service time, and nearly all are quicker than the
	// typical admitted answer of the same moments (what remains is the
	// machine's scheduling stalls, which every process sees).
	sp50, sp95, admittedP50 := tquantile(shed, 0.5), tquantile(shed, 0.95), tquantile(steady, 0.5)
	if sp50 > service/10 || sp95 >= admittedP50 {
		t.Errorf("shedding is slow: p50 %v (want ≤ %v), p95 %v (want < the admitted p50 %v)", sp50, service/10, sp95, admittedP50)
	}
}

// timedResult is one open-loop request's outcome.
type timedResult struct {
	at, latency          time.Duration
	status               int
	err                  error
	retryAfter, fallback string
}

// openLoop sends GET url at rate per second for d, each request on its
// own, whatever the answers take, and returns every outcome.
func openLoop(ctx context.Context, url string, rate float64, d time.Duration) []timedResult {
	client := &http.Client{Timeout: clientTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 1024, DisableCompression: true}}
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	var out []timedResult
	var wg sync.WaitGroup
	t0 := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	for i := 0; ; i++ {
		at := time.Duration(i) * interval
		if at >= d || ctx.Err() != nil {
			break
		}
		if rest := at - time.Since(t0); rest > 0 {
			time.Sleep(rest)
		}
		wg.Go(func() {
			begin := time.Now()
			r := timedResult{at: begin.Sub(t0)}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := client.Do(req)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				r.status, r.retryAfter, r.fallback = resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("X-Bulwark-Fallback")
			}
			r.latency, r.err = time.Since(begin), err
			mu.Lock()
			out = append(out, r)
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

func tquantile(rs []timedResult, q float64) time.Duration {
	if len(rs) == 0 {
		return 0
	}
	lat := make([]time.Duration, len(rs))
	for i, r := range rs {
		lat[i] = r.latency
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	k := int(q*float64(len(lat))+0.999999) - 1
	return lat[min(max(k, 0), len(lat)-1)]
}
