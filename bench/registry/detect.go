package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/registry"
)

// event is one change the watching client saw.
type event struct {
	t    time.Time
	id   string
	kind string // added, unroutable, routable, removed
}

// tracker turns the watcher's successive instance lists into timestamped
// per-instance events. The timestamp is taken when Watch delivers the
// list, so it includes every delay a real consumer would see.
type tracker struct {
	mu     sync.Mutex
	state  map[string]bool // id → routable, for present instances
	events []event
}

func newTracker() *tracker { return &tracker{state: map[string]bool{}} }

func (tr *tracker) update(insts []bulwark.Instance) {
	now := time.Now()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	seen := map[string]bool{}
	for _, in := range insts {
		seen[in.ID] = true
		r := in.Health.Routable()
		was, ok := tr.state[in.ID]
		switch {
		case !ok:
			tr.events = append(tr.events, event{now, in.ID, "added"})
			if !r {
				tr.events = append(tr.events, event{now, in.ID, "unroutable"})
			}
		case was && !r:
			tr.events = append(tr.events, event{now, in.ID, "unroutable"})
		case !was && r:
			tr.events = append(tr.events, event{now, in.ID, "routable"})
		}
		tr.state[in.ID] = r
	}
	for id := range tr.state {
		if !seen[id] {
			tr.events = append(tr.events, event{now, id, "removed"})
			delete(tr.state, id)
		}
	}
}

// routable reports whether id is present and routable.
func (tr *tracker) routable(id string) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.state[id]
}

// first returns the first event of kind for id at or after t.
func (tr *tracker) first(id, kind string, t time.Time) (time.Time, bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, e := range tr.events {
		if e.id == id && e.kind == kind && !e.t.Before(t) {
			return e.t, true
		}
	}
	return time.Time{}, false
}

func (tr *tracker) snapshot() []event {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.events)
}

// detectOpts configures one detection run.
type detectOpts struct {
	name      string
	bin, dir  string
	instances int           // demo processes started
	kills     int           // of which this many are SIGKILLed, one at a time
	observe   time.Duration // quiet period before the kills (loss: the false-eviction window)
	lossPct   int           // TCP packets dropped on lo while observing and killing (0 = none)
	ttl       time.Duration
	seed      uint64
	// leaderOnly registers every instance with the leader's address
	// instead of spreading them over the nodes (a follower forwards
	// renewals to the leader: two lossy hops instead of one).
	leaderOnly bool
}

// dist summarises durations.
type dist struct {
	N     int     `json:"n"`
	P50ms float64 `json:"p50_ms"`
	P90ms float64 `json:"p90_ms"`
	P99ms float64 `json:"p99_ms"`
	Minms float64 `json:"min_ms"`
	Maxms float64 `json:"max_ms"`
}

func summarise(ds []time.Duration) dist {
	s := slices.Clone(ds)
	slices.Sort(s)
	return dist{N: len(s), P50ms: ms(pct(s, 0.5)), P90ms: ms(pct(s, 0.9)), P99ms: ms(pct(s, 0.99)), Minms: ms(pct(s, 0)), Maxms: ms(pct(s, 1))}
}

// detectResult is what one detection run measured.
type detectResult struct {
	Name      string `json:"name"`
	Target    string `json:"instances_register_with"`
	LossPct   int    `json:"loss_pct"`
	Instances int    `json:"instances"`
	Kills     int    `json:"kills"`
	// Unroutable and Removed: kill → first watcher list without the
	// instance routable / without the instance.
	Unroutable dist `json:"kill_to_unroutable"`
	Removed    dist `json:"kill_to_removed"`
	// Missed counts kills whose removal the watcher did not see within
	// 30 s; AlreadySuspect those whose instance was not routable when killed.
	Missed         int `json:"missed"`
	AlreadySuspect int `json:"already_suspect_at_kill"`
	// Observed is the quiet window with every instance alive.
	ObservedSec float64 `json:"observed_seconds"`
	// False*: events for instances that were alive at the time, as seen by
	// the watcher and as logged by the leader(s).
	FalseSuspectEvents    int `json:"false_suspect_events_watcher"`
	FalseSuspectInstances int `json:"false_suspect_instances_watcher"`
	FalseRemovedEvents    int `json:"false_removed_events_watcher"`
	FalseRemovedInstances int `json:"false_removed_instances_watcher"`
	LogFalseSuspect       int `json:"false_suspect_leader_log"`
	LogFalseExpire        int `json:"false_expire_leader_log"`
	LeaderElections       int `json:"leader_elections_during_run"`
	// UnroutablePct is the share of live instance-time (from the start of
	// the observed window until each instance's kill) during which the
	// watcher saw a live instance as not routable.
	UnroutablePct float64 `json:"live_unroutable_time_pct"`
}

// inNetns reports whether this process runs in a network namespace other
// than the host's, so that firewall rules cannot touch the host's
// loopback. The host's is init's, or — inside a PID namespace that cannot
// see init — the one run.sh recorded in REGBENCH_HOST_NETNS.
func inNetns() bool {
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return false
	}
	// run.sh passes the host's namespace: under its --mount-proc, /proc/1
	// is the namespace's own first process.
	host := os.Getenv("REGBENCH_HOST_NETNS")
	if host == "" {
		host, _ = os.Readlink("/proc/1/ns/net")
	}
	return host != "" && self != host
}

const lossTable = "regbench_loss"

// setLoss installs (pct > 0) or removes (pct == 0) an nftables rule that
// drops pct % of TCP packets leaving any interface of this namespace.
func setLoss(pct int) error {
	if pct == 0 {
		return exec.Command("nft", "delete", "table", "inet", lossTable).Run()
	}
	if !inNetns() {
		return fmt.Errorf("refusing to add packet loss in the host's network namespace (run under unshare -n)")
	}
	for _, args := range [][]string{
		{"add", "table", "inet", lossTable},
		{"add", "chain", "inet", lossTable, "out", "{ type filter hook output priority 0 ; }"},
		{"add", "rule", "inet", lossTable, "out", "meta", "l4proto", "tcp", "numgen", "random", "mod", "100", "<", fmt.Sprint(pct), "drop"},
	} {
		if out, err := exec.Command("nft", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("nft %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// runDetect starts demo instances registered with the cluster, watches
// them, optionally adds packet loss and waits, then SIGKILLs instances one
// at a time and times how long the watcher takes to see each go.
func runDetect(ctx context.Context, c *cluster, p *procs, o detectOpts) (detectResult, error) {
	res := detectResult{Name: o.name, Target: "all nodes", LossPct: o.lossPct, Instances: o.instances, Kills: o.kills}
	if o.leaderOnly {
		res.Target = "leader"
	}
	const service = "detect"
	tr := newTracker()
	wc, err := registry.NewClient(registry.ClientConfig{Addrs: c.addrs(0)})
	if err != nil {
		return res, err
	}
	defer wc.Close()
	wctx, stopWatch := context.WithCancel(ctx)
	var wwg sync.WaitGroup
	wwg.Go(func() { _ = wc.Watch(wctx, service, tr.update) })
	defer func() { stopWatch(); wwg.Wait() }()

	lead, err := c.leader(ctx)
	if err != nil {
		return res, err
	}
	ids := make([]string, o.instances)
	insts := make([]*proc, o.instances)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%02d", o.name, i)
		target := c.nodes[i%len(c.nodes)].http
		if o.leaderOnly {
			target = lead
		}
		args := []string{"demo", "--listen", "127.0.0.1:0", "--id", ids[i], "--service", service,
			"--registry", target, "--ttl", o.ttl.String()}
		pr, err := p.start(o.bin, args, "", filepath.Join(o.dir, ids[i]+".log"))
		if err != nil {
			return res, err
		}
		insts[i] = pr
	}
	defer func() {
		for _, pr := range insts {
			p.kill(pr, syscall.SIGKILL)
		}
	}()
	if err := waitUntil(ctx, 60*time.Second, func() bool {
		for _, id := range ids {
			if !tr.routable(id) {
				return false
			}
		}
		return true
	}); err != nil {
		return res, fmt.Errorf("instances never all routable: %w", err)
	}
	runStart := time.Now()
	if o.lossPct > 0 {
		if err := setLoss(o.lossPct); err != nil {
			return res, err
		}
		defer setLoss(0)
	}
	if o.observe > 0 {
		fmt.Printf("  %s: %d instances up, observing %v (loss %d%%)\n", o.name, o.instances, o.observe, o.lossPct)
		if !sleepCtx(ctx, o.observe) {
			return res, ctx.Err()
		}
	}
	res.ObservedSec = time.Since(runStart).Seconds()

	rng := rand.New(rand.NewPCG(o.seed, o.seed^0x5eed))
	killedAt := map[string]time.Time{}
	var toUnroutable, toRemoved []time.Duration
	for k := range min(o.kills, o.instances) {
		// A random offset so kills land at every point of the renewal cycle.
		if !sleepCtx(ctx, time.Duration(rng.Int64N(int64(time.Second)))) {
			return res, ctx.Err()
		}
		id := ids[k]
		wasRoutable := tr.routable(id)
		t0 := time.Now()
		p.kill(insts[k], syscall.SIGKILL)
		killedAt[id] = t0
		if err := waitUntil(ctx, 30*time.Second, func() bool { _, ok := tr.first(id, "removed", t0); return ok }); err != nil {
			res.Missed++
			fmt.Printf("  %s: kill %d (%s): removal not seen in 30 s\n", o.name, k+1, id)
			continue
		}
		tRem, _ := tr.first(id, "removed", t0)
		toRemoved = append(toRemoved, tRem.Sub(t0))
		if !wasRoutable {
			res.AlreadySuspect++
		} else if tU, ok := tr.first(id, "unroutable", t0); ok {
			toUnroutable = append(toUnroutable, tU.Sub(t0))
		} else {
			toUnroutable = append(toUnroutable, tRem.Sub(t0)) // went straight from up to gone
		}
		fmt.Printf("  %s: kill %2d (%s): unroutable after %v, removed after %v\n", o.name, k+1, id,
			last(toUnroutable).Round(time.Millisecond), tRem.Sub(t0).Round(time.Millisecond))
	}
	runEnd := time.Now()
	res.Unroutable, res.Removed = summarise(toUnroutable), summarise(toRemoved)
	alive := func(id string, t time.Time) bool {
		k, ok := killedAt[id]
		return !ok || t.Before(k)
	}
	fs, fr := map[string]bool{}, map[string]bool{}
	for _, e := range tr.snapshot() {
		if !e.t.After(runStart) || !alive(e.id, e.t) {
			continue
		}
		switch e.kind {
		case "unroutable":
			res.FalseSuspectEvents++
			fs[e.id] = true
		case "removed":
			res.FalseRemovedEvents++
			fr[e.id] = true
		}
	}
	res.FalseSuspectInstances, res.FalseRemovedInstances = len(fs), len(fr)
	res.UnroutablePct = unroutableShare(tr.snapshot(), ids, killedAt, runStart, runEnd)
	for _, l := range c.readLogs() {
		if l.t.Before(runStart) || l.t.After(runEnd) {
			continue
		}
		switch {
		case l.msg == "leader":
			res.LeaderElections++
		case l.service == service && alive(l.id, l.t) && l.op == "health":
			res.LogFalseSuspect++
		case l.service == service && alive(l.id, l.t) && l.op == "expire":
			res.LogFalseExpire++
		}
	}
	return res, nil
}

// unroutableShare is the percentage of live instance-time in [from, to)
// (each instance's ends at its kill) that the watcher saw it not routable.
func unroutableShare(evs []event, ids []string, killedAt map[string]time.Time, from, to time.Time) float64 {
	var live, down time.Duration
	for _, id := range ids {
		end := to
		if k, ok := killedAt[id]; ok {
			end = k
		}
		live += end.Sub(from)
		var since time.Time // zero while routable
		for _, e := range evs {
			if e.id != id || e.t.After(end) {
				continue
			}
			switch e.kind {
			case "unroutable":
				if since.IsZero() {
					since = e.t
				}
			case "routable", "removed", "added":
				if !since.IsZero() {
					down += e.t.Sub(maxTime(since, from))
					since = time.Time{}
				}
			}
		}
		if !since.IsZero() {
			down += end.Sub(maxTime(since, from))
		}
	}
	if live <= 0 {
		return 0
	}
	return 100 * float64(down) / float64(live)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func last(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[len(ds)-1]
}

func waitUntil(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v", limit)
		}
		if !sleepCtx(ctx, 5*time.Millisecond) {
			return ctx.Err()
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
