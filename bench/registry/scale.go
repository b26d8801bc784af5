package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bulwark-go/bulwark/registry"
)

// scaleOpts configure the "scale" phase: many leased instances renewed in
// batches (POST /v1/renew), the leader's cost, watch fan-out, and a leader
// kill.
type scaleOpts struct {
	services, perService int
	ttl, every           time.Duration
	batch, shards        int
	regWorkers           int
	regBatch             int // > 0: fill with POST /v1/register batches of this size
	window               time.Duration
	watchers, changes    int
	failoverObserve      time.Duration
}

// scaleResult is what the scale phase measured.
type scaleResult struct {
	Instances       int     `json:"instances"`
	TTL             string  `json:"ttl"`
	RenewEvery      string  `json:"renew_every"`
	Batch           int     `json:"batch"`
	RegisterSeconds float64 `json:"register_seconds"`
	RegisterPerSec  float64 `json:"register_per_second"`
	RegisterBatch   int     `json:"register_batch,omitempty"`

	WindowSeconds  float64 `json:"window_seconds"`
	RenewalsPerSec float64 `json:"renewals_per_second"`
	BatchesPerSec  float64 `json:"batches_per_second"`
	BatchP50ms     float64 `json:"batch_p50_ms"`
	BatchP99ms     float64 `json:"batch_p99_ms"`
	BatchMaxms     float64 `json:"batch_max_ms"`
	RenewErrors    int     `json:"renew_errors"`
	// Breakdown of the batch latency: the leader's own time (its
	// Server-Timing answer header), the rest of the exchange (network,
	// HTTP and waiting for a CPU on either side), and the driver's JSON
	// work; and, for the slowest 1 % of batches, the mean of each stage.
	ServerP50ms      float64            `json:"server_p50_ms"`
	ServerP99ms      float64            `json:"server_p99_ms"`
	OutsideP50ms     float64            `json:"outside_p50_ms"`
	OutsideP99ms     float64            `json:"outside_p99_ms"`
	ClientP99ms      float64            `json:"client_json_p99_ms"`
	TailStagesMs     map[string]float64 `json:"tail_stages_mean_ms"`
	MissingSteady    int                `json:"missing_in_steady_state"`
	LeaderCPUCores   float64            `json:"leader_cpu_cores"`
	LeaderRSSMiB     float64            `json:"leader_rss_mib"`
	FollowerCPUCores []float64          `json:"follower_cpu_cores"`
	FollowerRSSMiB   []float64          `json:"follower_rss_mib"`
	DriverCPUCores   float64            `json:"driver_cpu_cores"`
	LoadAvg          string             `json:"loadavg"`

	Watchers        int     `json:"watchers"`
	WatchDeliveries int     `json:"watch_deliveries"`
	WatchMissed     int     `json:"watch_missed"`
	WatchWriteP50ms float64 `json:"watch_write_ack_p50_ms"`
	WatchP50ms      float64 `json:"watch_fanout_p50_ms"`
	WatchP99ms      float64 `json:"watch_fanout_p99_ms"`
	WatchMaxms      float64 `json:"watch_fanout_max_ms"`

	KilledLeader       string  `json:"killed_leader"`
	NewLeaderMs        float64 `json:"kill_to_new_leader_ms"`
	WritesAgainMs      float64 `json:"kill_to_writes_again_ms"`
	RenewalsAgainMs    float64 `json:"kill_to_renewals_again_ms"`
	FalseSuspicions    int     `json:"false_suspicions_after_failover"`
	FalseExpirations   int     `json:"false_expirations_after_failover"`
	MissingAfterKill   int     `json:"missing_in_renewals_after_failover"`
	CatalogAfterKill   int     `json:"catalog_instances_after_failover"`
	FailoverObserveSec float64 `json:"failover_observe_seconds"`
}

func (r scaleResult) print() {
	how := "one PUT /v1/instances each"
	if r.RegisterBatch > 0 {
		how = fmt.Sprintf("POST /v1/register batches of %d", r.RegisterBatch)
	}
	fmt.Printf("  instances %d (ttl %s, renewed every %s in batches of %d), registered in %.1f s (%.0f/s, %s)\n",
		r.Instances, r.TTL, r.RenewEvery, r.Batch, r.RegisterSeconds, r.RegisterPerSec, how)
	fmt.Printf("  steady %.0f s: %.0f renewals/s (%.0f batches/s), batch latency p50 %.2f p99 %.2f max %.2f ms, errors %d, missing %d\n",
		r.WindowSeconds, r.RenewalsPerSec, r.BatchesPerSec, r.BatchP50ms, r.BatchP99ms, r.BatchMaxms, r.RenewErrors, r.MissingSteady)
	fmt.Printf("  batch breakdown: leader p50 %.2f p99 %.2f ms, outside the leader (network, HTTP, CPU wait) p50 %.2f p99 %.2f ms, driver JSON p99 %.2f ms\n",
		r.ServerP50ms, r.ServerP99ms, r.OutsideP50ms, r.OutsideP99ms, r.ClientP99ms)
	fmt.Printf("  slowest 1%% of batches, mean ms per stage: %s\n", fmtStages(r.TailStagesMs))
	fmt.Printf("  leader CPU %.2f cores, RSS %.0f MiB; followers CPU %v, RSS %v MiB; driver CPU %.2f cores; load %s\n",
		r.LeaderCPUCores, r.LeaderRSSMiB, r.FollowerCPUCores, r.FollowerRSSMiB, r.DriverCPUCores, r.LoadAvg)
	fmt.Printf("  watch fan-out to %d watchers: %d deliveries (%d missed), write ack p50 %.2f ms, delivery p50 %.2f p99 %.2f max %.2f ms\n",
		r.Watchers, r.WatchDeliveries, r.WatchMissed, r.WatchWriteP50ms, r.WatchP50ms, r.WatchP99ms, r.WatchMaxms)
	fmt.Printf("  kill -9 leader %s: new leader after %.0f ms, writes again after %.0f ms, renewals again after %.0f ms;\n",
		r.KilledLeader, r.NewLeaderMs, r.WritesAgainMs, r.RenewalsAgainMs)
	fmt.Printf("    over %.0f s: false suspicions %d, false expirations %d, missing in renewals %d, catalog holds %d\n",
		r.FailoverObserveSec, r.FalseSuspicions, r.FalseExpirations, r.MissingAfterKill, r.CatalogAfterKill)
}

// latencies collects durations from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) take() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.d
	l.d = nil
	slices.Sort(out)
	return out
}

// batchSample is one measured batch: its latency and the stages of it.
type batchSample struct {
	total  time.Duration
	stages map[string]float64 // ms: client-json, outside, and the leader's Server-Timing stages
}

// samples collects batch samples from many goroutines.
type samples struct {
	mu sync.Mutex
	s  []batchSample
}

func (b *samples) add(x batchSample) {
	b.mu.Lock()
	b.s = append(b.s, x)
	b.mu.Unlock()
}

// parseServerTiming reads "name;dur=ms, …" into m.
func parseServerTiming(h string, m map[string]float64) {
	for _, part := range strings.Split(h, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		for _, p := range strings.Split(params, ";") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(p), "dur="); ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					m[name] = f
				}
			}
		}
	}
}

// stageOrder is the order stages are printed in.
var stageOrder = []string{"client-json", "outside", "read", "decode", "catalog-wait", "catalog", "lease-wait", "lease", "total"}

func fmtStages(m map[string]float64) string {
	var b strings.Builder
	for _, k := range stageOrder {
		if v, ok := m[k]; ok {
			fmt.Fprintf(&b, "%s %.2f  ", k, v)
		}
	}
	return strings.TrimSpace(b.String())
}

// breakdown fills res's breakdown fields from the window's samples.
func breakdown(ss []batchSample, res *scaleResult) {
	if len(ss) == 0 {
		return
	}
	var server, outside, client []time.Duration
	for _, x := range ss {
		server = append(server, time.Duration(x.stages["total"]*1e6))
		outside = append(outside, time.Duration(x.stages["outside"]*1e6))
		client = append(client, time.Duration(x.stages["client-json"]*1e6))
	}
	for _, l := range [][]time.Duration{server, outside, client} {
		slices.Sort(l)
	}
	res.ServerP50ms, res.ServerP99ms = ms(pct(server, 0.5)), ms(pct(server, 0.99))
	res.OutsideP50ms, res.OutsideP99ms = ms(pct(outside, 0.5)), ms(pct(outside, 0.99))
	res.ClientP99ms = ms(pct(client, 0.99))
	slices.SortFunc(ss, func(a, b batchSample) int { return int(a.total - b.total) })
	tail := ss[len(ss)*99/100:]
	res.TailStagesMs = map[string]float64{}
	for _, x := range tail {
		for k, v := range x.stages {
			res.TailStagesMs[k] += v / float64(len(tail))
		}
	}
	for k, v := range res.TailStagesMs {
		res.TailStagesMs[k] = round2(v)
	}
}

// shard is one slice of the instances, renewed by one goroutine.
type shard struct {
	keys       []registry.InstanceKey
	registered []atomic.Bool
}

// scaleRun holds the state shared by the phase's goroutines.
type scaleRun struct {
	c      *cluster
	o      scaleOpts
	hc     *http.Client
	leader atomic.Pointer[string]
	shards []*shard

	measuring   atomic.Bool
	lat         latencies
	samples     samples
	renewed     atomic.Int64
	batches     atomic.Int64
	errs        atomic.Int64
	missing     atomic.Int64
	lastOK      atomic.Int64 // unix nanos of the latest successful batch
	killedAt    atomic.Int64
	firstOKKill atomic.Int64 // first successful batch after the kill
}

func (s *scaleRun) target() string { return *s.leader.Load() }

// post sends a JSON body and decodes the answer.
func (s *scaleRun) do(ctx context.Context, method, addr, path string, body, out any) error {
	b, _ := json.Marshal(body)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// rediscover points the renewers at whichever live node leads.
func (s *scaleRun) rediscover(ctx context.Context) {
	for _, nd := range s.c.nodes {
		if nd.proc.exited() {
			continue
		}
		st, err := status(ctx, nd.http)
		if err == nil && st.State == "Leader" {
			a := nd.http
			s.leader.Store(&a)
			return
		}
	}
}

func (s *scaleRun) register(ctx context.Context, key registry.InstanceKey, ttl time.Duration) error {
	req := registry.RegisterRequest{Service: key.Service, ID: key.ID, Address: "http://127.0.0.1:9", TTL: registry.Duration(ttl)}
	return s.do(ctx, http.MethodPut, s.target(), "/v1/instances", req, nil)
}

// renewLoop renews one shard every o.every, in batches, from the start of
// the phase to its end.
func (s *scaleRun) renewLoop(ctx context.Context, sh *shard, offset time.Duration) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(offset):
	}
	t := time.NewTicker(s.o.every)
	defer t.Stop()
	batch := make([]registry.InstanceKey, 0, s.o.batch)
	for {
		batch = batch[:0]
		for i := range sh.keys {
			if !sh.registered[i].Load() {
				continue
			}
			batch = append(batch, sh.keys[i])
			if len(batch) == s.o.batch {
				s.renewBatch(ctx, batch)
				batch = batch[:0]
			}
		}
		if len(batch) > 0 {
			s.renewBatch(ctx, batch)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *scaleRun) renewBatch(ctx context.Context, keys []registry.InstanceKey) {
	for attempt := 0; ctx.Err() == nil; attempt++ {
		t0 := time.Now()
		body, _ := json.Marshal(registry.RenewBatchRequest{Instances: keys})
		t1 := time.Now()
		data, hdr, err := s.post(ctx, s.target(), "/v1/renew", body)
		t2 := time.Now()
		var res registry.RenewBatchResponse
		if err == nil {
			err = json.Unmarshal(data, &res)
		}
		if err != nil {
			s.errs.Add(1)
			s.rediscover(ctx)
			if attempt > 50 {
				return // give up on this batch; the next tick retries
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		d := time.Since(t0)
		now := time.Now().UnixNano()
		s.lastOK.Store(now)
		if k := s.killedAt.Load(); k != 0 && now > k {
			s.firstOKKill.CompareAndSwap(0, now)
		}
		if s.measuring.Load() {
			s.lat.add(d)
			st := map[string]float64{}
			parseServerTiming(hdr.Get("Server-Timing"), st)
			st["client-json"] = float64(d-t2.Sub(t1)) / 1e6
			st["outside"] = max(0, float64(t2.Sub(t1))/1e6-st["total"])
			s.samples.add(batchSample{total: d, stages: st})
			s.renewed.Add(int64(res.Renewed))
			s.batches.Add(1)
		}
		if len(res.Missing) > 0 {
			s.missing.Add(int64(len(res.Missing)))
			for _, k := range res.Missing {
				s.register(ctx, k, s.o.ttl)
			}
		}
		return
	}
}

// post sends a JSON body and returns the answer's body and header.
func (s *scaleRun) post(ctx context.Context, addr, path string, body []byte) ([]byte, http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("POST %s: %s: %s", path, resp.Status, bytes.TrimSpace(data))
	}
	return data, resp.Header, nil
}

// cpuTicks returns a process's user+system clock ticks (100 Hz).
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

func rssMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// runScale runs the scale phase against a fresh cluster c.
func runScale(ctx context.Context, c *cluster, o scaleOpts) (scaleResult, error) {
	res := scaleResult{RegisterBatch: o.regBatch, Instances: o.services * o.perService, TTL: o.ttl.String(), RenewEvery: o.every.String(), Batch: o.batch, Watchers: o.watchers}
	s := &scaleRun{c: c, o: o, hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 0, IdleConnTimeout: time.Minute}}}
	defer s.hc.CloseIdleConnections()
	lead, err := c.leader(ctx)
	if err != nil {
		return res, err
	}
	s.leader.Store(&lead)

	// Instances: service svc-NNNN, instance i-NNN; shard k holds every
	// shards-th service.
	s.shards = make([]*shard, o.shards)
	for k := range s.shards {
		s.shards[k] = &shard{}
	}
	for sv := range o.services {
		sh := s.shards[sv%o.shards]
		for i := range o.perService {
			sh.keys = append(sh.keys, registry.InstanceKey{Service: fmt.Sprintf("svc-%04d", sv), ID: fmt.Sprintf("i-%03d", i)})
		}
	}
	for _, sh := range s.shards {
		sh.registered = make([]atomic.Bool, len(sh.keys))
	}
	runCtx, stopRenew := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopRenew(); wg.Wait() }()
	for k, sh := range s.shards {
		wg.Go(func() { s.renewLoop(runCtx, sh, time.Duration(k)*o.every/time.Duration(o.shards)) })
	}

	// Register everything, renewals already running for what is in.
	type job struct{ sh, i int }
	jobs := make(chan job, 1024)
	var regErr atomic.Int64
	var rwg sync.WaitGroup
	t0 := time.Now()
	for range o.regWorkers {
		rwg.Go(func() {
			if o.regBatch > 0 { // POST /v1/register: o.regBatch registrations per Raft entry
				var batch []job
				flush := func() {
					if len(batch) == 0 {
						return
					}
					var req registry.RegisterBatchRequest
					for _, j := range batch {
						req.Instances = append(req.Instances, registry.RegisterRequest{Service: s.shards[j.sh].keys[j.i].Service,
							ID: s.shards[j.sh].keys[j.i].ID, Address: "http://127.0.0.1:9", TTL: registry.Duration(o.ttl)})
					}
					for try := 0; ; try++ {
						if err := s.do(ctx, http.MethodPost, s.target(), "/v1/register", req, nil); err == nil {
							for _, j := range batch {
								s.shards[j.sh].registered[j.i].Store(true)
							}
							break
						} else if try > 20 || ctx.Err() != nil {
							regErr.Add(int64(len(batch)))
							break
						}
						s.rediscover(ctx)
						time.Sleep(50 * time.Millisecond)
					}
					batch = batch[:0]
				}
				for j := range jobs {
					if batch = append(batch, j); len(batch) == o.regBatch {
						flush()
					}
				}
				flush()
				return
			}
			for j := range jobs {
				sh := s.shards[j.sh]
				for try := 0; ; try++ {
					if err := s.register(ctx, sh.keys[j.i], o.ttl); err == nil {
						sh.registered[j.i].Store(true)
						break
					} else if try > 20 || ctx.Err() != nil {
						regErr.Add(1)
						break
					}
					s.rediscover(ctx)
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	for i := range o.perService * o.services / o.shards {
		for k := range s.shards {
			if i < len(s.shards[k].keys) {
				jobs <- job{k, i}
			}
		}
	}
	close(jobs)
	rwg.Wait()
	res.RegisterSeconds = time.Since(t0).Seconds()
	res.RegisterPerSec = float64(res.Instances) / res.RegisterSeconds
	if n := regErr.Load(); n > 0 {
		return res, fmt.Errorf("%d registrations failed", n)
	}
	fmt.Printf("  registered %d instances in %.1f s\n", res.Instances, res.RegisterSeconds)

	// Let renewals settle into their cycle, then measure.
	time.Sleep(2 * o.every)
	s.missing.Store(0)
	s.errs.Store(0)
	pids := map[*node]int{}
	ticks := map[*node]int64{}
	for _, nd := range c.nodes {
		pids[nd] = nd.proc.cmd.Process.Pid
		ticks[nd] = cpuTicks(pids[nd])
	}
	selfTicks := cpuTicks(os.Getpid())
	s.measuring.Store(true)
	w0 := time.Now()
	time.Sleep(o.window)
	s.measuring.Store(false)
	el := time.Since(w0).Seconds()
	lats := s.lat.take()
	s.samples.mu.Lock()
	breakdown(s.samples.s, &res)
	s.samples.s = nil
	s.samples.mu.Unlock()
	res.WindowSeconds = el
	res.RenewalsPerSec = float64(s.renewed.Load()) / el
	res.BatchesPerSec = float64(s.batches.Load()) / el
	res.BatchP50ms, res.BatchP99ms, res.BatchMaxms = ms(pct(lats, 0.5)), ms(pct(lats, 0.99)), ms(pct(lats, 1))
	res.RenewErrors = int(s.errs.Load())
	res.MissingSteady = int(s.missing.Load())
	res.LoadAvg = loadavg()
	res.DriverCPUCores = float64(cpuTicks(os.Getpid())-selfTicks) / 100 / el
	for _, nd := range c.nodes {
		cores := float64(cpuTicks(pids[nd])-ticks[nd]) / 100 / el
		rss := rssMiB(pids[nd])
		if nd.http == s.target() {
			res.LeaderCPUCores, res.LeaderRSSMiB = cores, rss
		} else {
			res.FollowerCPUCores = append(res.FollowerCPUCores, round2(cores))
			res.FollowerRSSMiB = append(res.FollowerRSSMiB, float64(int(rss)))
		}
	}

	if err := s.fanout(ctx, &res); err != nil {
		return res, err
	}
	if err := s.failover(ctx, &res); err != nil {
		return res, err
	}
	return res, nil
}

func round2(f float64) float64 { return float64(int(f*100+0.5)) / 100 }

// fanout parks o.watchers blocking queries on one service (spread over the
// nodes), changes the service o.changes times, and measures the time from
// the start of each write to each watcher's answer.
func (s *scaleRun) fanout(ctx context.Context, res *scaleResult) error {
	const service = "svc-0000"
	var (
		lat    latencies
		acks   latencies
		missed atomic.Int64
	)
	for k := range s.o.changes {
		before := s.serviceIndex(ctx, service)
		var wg sync.WaitGroup
		var parked sync.WaitGroup
		var start atomic.Int64
		for w := range s.o.watchers {
			addr := s.c.nodes[w%len(s.c.nodes)].http
			parked.Add(1)
			wg.Go(func() {
				url := fmt.Sprintf("http://%s/v1/services/%s?index=%d&wait=20s", addr, service, before)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				parked.Done()
				resp, err := s.hc.Do(req)
				at := time.Now()
				if err != nil {
					missed.Add(1)
					return
				}
				var sr registry.ServiceResponse
				json.NewDecoder(resp.Body).Decode(&sr)
				resp.Body.Close()
				if sr.Index <= before || start.Load() == 0 {
					missed.Add(1)
					return
				}
				lat.add(at.Sub(time.Unix(0, start.Load())))
			})
		}
		parked.Wait()
		time.Sleep(500 * time.Millisecond) // the queries reach their nodes and block
		t0 := time.Now()
		start.Store(t0.UnixNano())
		// A loaded host can lose the leader for a moment: retry, pointing at
		// whichever node leads (the time counts from the first attempt).
		var err error
		for try := 0; try < 100; try++ {
			if err = s.register(ctx, registry.InstanceKey{Service: service, ID: fmt.Sprintf("fan-%d", k)}, time.Hour); err == nil {
				break
			}
			s.rediscover(ctx)
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("fan-out change %d: %w", k, err)
		}
		acks.add(time.Since(t0))
		wg.Wait()
	}
	l := lat.take()
	res.WatchDeliveries, res.WatchMissed = len(l), int(missed.Load())
	res.WatchP50ms, res.WatchP99ms, res.WatchMaxms = ms(pct(l, 0.5)), ms(pct(l, 0.99)), ms(pct(l, 1))
	res.WatchWriteP50ms = ms(pct(acks.take(), 0.5))
	return nil
}

func (s *scaleRun) serviceIndex(ctx context.Context, service string) uint64 {
	var sr registry.ServiceResponse
	s.do(ctx, http.MethodGet, s.target(), "/v1/services/"+service, nil, &sr)
	return sr.Index
}

// failover SIGKILLs the leader while renewals run and measures how long
// the cluster takes to elect, accept writes and renewals again, and
// whether any live instance was marked suspect or expired.
func (s *scaleRun) failover(ctx context.Context, res *scaleResult) error {
	lead := s.target()
	var victim *node
	for _, nd := range s.c.nodes {
		if nd.http == lead {
			victim = nd
		}
	}
	if victim == nil {
		return fmt.Errorf("leader %s is not one of the nodes", lead)
	}
	res.KilledLeader = victim.id
	s.missing.Store(0)
	kill := time.Now()
	s.killedAt.Store(kill.UnixNano())
	s.c.p.kill(victim.proc, syscall.SIGKILL)
	<-victim.proc.done

	// Probe writes through any live node (followers forward to the leader).
	var newLeader, writes time.Duration
	probeCtx, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	for i := 0; probeCtx.Err() == nil && (newLeader == 0 || writes == 0); i++ {
		for _, nd := range s.c.nodes {
			if nd == victim {
				continue
			}
			if newLeader == 0 {
				if st, err := status(probeCtx, nd.http); err == nil && st.LeaderHTTP != "" && st.LeaderHTTP != lead {
					newLeader = time.Since(kill)
				}
			}
			if writes == 0 {
				req := registry.RegisterRequest{Service: "probe", ID: fmt.Sprintf("p-%d", i), Address: "http://127.0.0.1:9", TTL: registry.Duration(time.Hour)}
				if err := s.do(probeCtx, http.MethodPut, nd.http, "/v1/instances", req, nil); err == nil {
					writes = time.Since(kill)
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.NewLeaderMs, res.WritesAgainMs = ms(newLeader), ms(writes)
	obs := s.o.failoverObserve
	time.Sleep(obs - min(obs, time.Since(kill)))
	res.FailoverObserveSec = time.Since(kill).Seconds()
	if f := s.firstOKKill.Load(); f != 0 {
		res.RenewalsAgainMs = ms(time.Duration(f - kill.UnixNano()))
	}
	res.MissingAfterKill = int(s.missing.Load())
	for _, l := range s.c.readLogs() {
		if l.msg != "transition" || l.t.Before(kill) || !strings.HasPrefix(l.service, "svc-") {
			continue
		}
		switch l.op {
		case "health":
			res.FalseSuspicions++
		case "expire":
			res.FalseExpirations++
		}
	}
	var svcs registry.ServicesResponse
	if err := s.do(ctx, http.MethodGet, s.target(), "/v1/services", nil, &svcs); err == nil {
		for name, n := range svcs.Services {
			if strings.HasPrefix(name, "svc-") {
				res.CatalogAfterKill += n
			}
		}
		res.CatalogAfterKill -= s.o.changes // the fan-out instances
	}
	return nil
}
