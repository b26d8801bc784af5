// Command registry benchmarks a three-node Bulwark registry cluster run as
// separate `bulwark run` processes: registrations/s and renewals/s
// (closed-loop workers using registry.Client and the renewal endpoint), the
// time from SIGKILL of an instance (`bulwark demo --registry`) to the
// instance leaving a watching registry.Client's routable set and list, and
// the false suspicions and evictions of live instances under random TCP
// packet loss (nftables, inside a private network namespace).
//
// Run it through run.sh, which builds the binaries and starts this program
// under `unshare -n` so neither the host's shaped loopback nor the packet
// loss touches anything else on the machine. Every process it starts is
// stopped before it exits.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	bin, work, jsonOut string
	phases             []string
	workers            []int
	window             time.Duration
	renewPerWorker     int
	ttl, suspect       time.Duration
	instances, kills   int
	lossPct            int
	lossObserve        time.Duration
	detectObserve      time.Duration
	lossInstances      int
	lossKills          int
	seed               uint64
	allowHostNetns     bool
	demoLeader         bool
	scale              scaleOpts
}

// results is everything one run measured, written as JSON.
type results struct {
	Start    time.Time      `json:"start"`
	Settings map[string]any `json:"settings"`
	Rates    []rate         `json:"rates"`
	Detect   []detectResult `json:"detect"`
	Scale    *scaleResult   `json:"scale,omitempty"`
	Etcd     *etcdResult    `json:"etcd,omitempty"`
	EtcdSkip string         `json:"etcd_skipped,omitempty"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "regbench:", err)
		os.Exit(1)
	}
}

func parseFlags() (options, error) {
	var o options
	var phases, workers string
	flag.StringVar(&o.bin, "bin", "", "bulwark binary (required)")
	flag.StringVar(&o.work, "work", "", "working directory for configs, data and logs (default: a new temp dir)")
	flag.StringVar(&o.jsonOut, "json", "", "write results as JSON to this file")
	flag.StringVar(&phases, "phases", "register,renew,detect,loss", "phases to run")
	flag.StringVar(&workers, "workers", "1,16", "closed-loop worker counts for register and renew")
	flag.DurationVar(&o.window, "window", 8*time.Second, "measurement window of each throughput run")
	flag.IntVar(&o.renewPerWorker, "renew-per-worker", 32, "instances each renew worker cycles over")
	flag.DurationVar(&o.ttl, "ttl", time.Second, "lease TTL (registry ttl and demo --ttl)")
	flag.DurationVar(&o.suspect, "suspect", 2*time.Second, "registry suspect_timeout")
	flag.IntVar(&o.kills, "kills", 30, "instances killed in the detect phase")
	flag.IntVar(&o.instances, "instances", 34, "instances started in the detect phase")
	flag.DurationVar(&o.detectObserve, "detect-observe", 10*time.Second, "time all instances run before the kills in the detect phase (baseline for false suspicions)")
	flag.IntVar(&o.lossPct, "loss", 20, "percent of TCP packets dropped in the loss phase")
	flag.DurationVar(&o.lossObserve, "loss-observe", 60*time.Second, "time all instances run under loss before kills")
	flag.IntVar(&o.lossInstances, "loss-instances", 20, "instances in the loss phase")
	flag.IntVar(&o.lossKills, "loss-kills", 12, "instances killed under loss")
	flag.BoolVar(&o.demoLeader, "instances-at-leader", false, "detect/loss: register every instance with the leader instead of spreading them over the nodes")
	flag.Uint64Var(&o.seed, "seed", 1, "seed for kill timing")
	flag.BoolVar(&o.allowHostNetns, "allow-host-netns", false, "run even in the host's network namespace (throughput then measures its loopback shaping)")
	flag.IntVar(&o.scale.services, "scale-services", 1000, "scale: services")
	flag.IntVar(&o.scale.perService, "scale-per-service", 100, "scale: instances per service")
	flag.DurationVar(&o.scale.ttl, "scale-ttl", 3*time.Second, "scale: lease TTL")
	flag.DurationVar(&o.scale.every, "scale-every", time.Second, "scale: renewal interval of every instance")
	flag.IntVar(&o.scale.batch, "scale-batch", 1000, "scale: instances per POST /v1/renew")
	flag.IntVar(&o.scale.shards, "scale-shards", 100, "scale: renewal goroutines, instances split evenly (100 × 1,000: one batch per goroutine per interval, so one slow batch delays no other)")
	flag.IntVar(&o.scale.regWorkers, "scale-register-workers", 64, "scale: concurrent registrations while filling the catalog")
	flag.IntVar(&o.scale.regBatch, "scale-register-batch", 0, "scale: fill the catalog with POST /v1/register batches of this many registrations (0: one PUT /v1/instances each)")
	flag.DurationVar(&o.scale.window, "scale-window", 20*time.Second, "scale: steady-state measurement window")
	flag.IntVar(&o.scale.watchers, "scale-watchers", 100, "scale: blocking-query watchers of one service")
	flag.IntVar(&o.scale.changes, "scale-changes", 10, "scale: changes to the watched service")
	flag.DurationVar(&o.scale.failoverObserve, "scale-failover-observe", 15*time.Second, "scale: observation after the leader kill")
	flag.Parse()
	if o.bin == "" {
		return o, fmt.Errorf("-bin is required")
	}
	o.phases = strings.Split(phases, ",")
	for _, w := range strings.Split(workers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 1 {
			return o, fmt.Errorf("-workers %q: want positive integers", workers)
		}
		o.workers = append(o.workers, n)
	}
	return o, nil
}

func run() error {
	o, err := parseFlags()
	if err != nil {
		return err
	}
	if !inNetns() && !o.allowHostNetns {
		return fmt.Errorf("not in a private network namespace: run under `unshare -n` (see run.sh) or pass -allow-host-netns")
	}
	if o.work == "" {
		if o.work, err = os.MkdirTemp("", "regbench-"); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := newProcs()
	defer p.killAll(3 * time.Second)

	res := results{Start: time.Now().UTC(), Settings: map[string]any{
		"ttl": o.ttl.String(), "suspect_timeout": o.suspect.String(), "lease_check_interval": "100ms (default)",
		"raft":   "heartbeat 1s, election 1s, leader lease 500ms (defaults; not settable from YAML)",
		"window": o.window.String(), "workers": o.workers, "renew_instances_per_worker": o.renewPerWorker,
		"detect_instances": o.instances, "detect_kills": o.kills, "detect_observe": o.detectObserve.String(), "loss_pct": o.lossPct,
		"loss_observe": o.lossObserve.String(), "loss_instances": o.lossInstances, "loss_kills": o.lossKills, "instances_at_leader": o.demoLeader,
		"work_dir": o.work,
	}}
	for _, ph := range o.phases {
		fmt.Printf("== phase %s\n", ph)
		if err := runPhase(ctx, p, o, ph, &res); err != nil {
			return fmt.Errorf("phase %s: %w", ph, err)
		}
	}
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	printSummary(res)
	return nil
}

// runPhase runs one phase against a fresh cluster, so catalog size and
// Raft log length from one phase do not weigh on the next.
func runPhase(ctx context.Context, p *procs, o options, ph string, res *results) error {
	dir := filepath.Join(o.work, ph)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if ph == "etcd" { // the same workload on etcd, no Bulwark cluster
		if err := etcdAvailable(); err != nil {
			fmt.Println("  etcd skipped:", err)
			res.EtcdSkip = err.Error()
			return nil
		}
		r, err := runEtcd(ctx, p, dir, o.scale)
		if err != nil {
			return err
		}
		r.print()
		res.Etcd = &r
		return nil
	}
	c, err := startCluster(ctx, p, o.bin, dir, 3, o.ttl, o.suspect)
	if err != nil {
		return err
	}
	defer c.stop()
	switch ph {
	case "register":
		for _, w := range o.workers {
			for _, leaderOnly := range []bool{true, false} {
				reg, dereg, err := benchRegister(ctx, c, w, o.window, leaderOnly)
				if err != nil {
					return err
				}
				fmt.Println(" ", reg)
				fmt.Println(" ", dereg)
				res.Rates = append(res.Rates, reg, dereg)
			}
		}
	case "renew":
		for _, w := range o.workers {
			for _, leaderOnly := range []bool{true, false} {
				r, err := benchRenew(ctx, c, w, o.renewPerWorker, o.window, leaderOnly)
				if err != nil {
					return err
				}
				fmt.Println(" ", r)
				res.Rates = append(res.Rates, r)
			}
		}
	case "detect", "loss":
		opts := detectOpts{name: ph, bin: o.bin, dir: dir, instances: o.instances, kills: o.kills, ttl: o.ttl, seed: o.seed, observe: o.detectObserve, leaderOnly: o.demoLeader}
		if ph == "loss" {
			opts.instances, opts.kills, opts.lossPct, opts.observe = o.lossInstances, o.lossKills, o.lossPct, o.lossObserve
		}
		d, err := runDetect(ctx, c, p, opts)
		if err != nil {
			return err
		}
		res.Detect = append(res.Detect, d)
	case "scale":
		r, err := runScale(ctx, c, o.scale)
		if err != nil {
			return err
		}
		r.print()
		res.Scale = &r
	default:
		return fmt.Errorf("unknown phase (want register, renew, detect, loss, scale, etcd)")
	}
	return nil
}

func printSummary(res results) {
	fmt.Println("\n| operation | workers | target | ops/s | p50 ms | p99 ms | max ms | errors |")
	fmt.Println("|---|---:|---|---:|---:|---:|---:|---:|")
	for _, r := range res.Rates {
		fmt.Printf("| %s | %d | %s | %.0f | %.2f | %.2f | %.2f | %d |\n", r.Name, r.Workers, r.Target, r.PerSecond, r.P50ms, r.P99ms, r.Maxms, r.Errors)
	}
	fmt.Println("\n| run | instances register with | loss | kills | kill→unroutable p50 / p90 / p99 (max) ms | kill→removed p50 / p90 / p99 (max) ms | missed | false suspect (watcher events/instances, leader log) | false removal (watcher events/instances, leader log) | elections |")
	fmt.Println("|---|---|---:|---:|---|---|---:|---|---|---:|")
	for _, d := range slices.Clone(res.Detect) {
		fmt.Printf("| %s | %s | %d%% | %d | %.0f / %.0f / %.0f (%.0f) | %.0f / %.0f / %.0f (%.0f) | %d | %d/%d, %d | %d/%d, %d | %d |\n",
			d.Name, d.Target, d.LossPct, d.Kills, d.Unroutable.P50ms, d.Unroutable.P90ms, d.Unroutable.P99ms, d.Unroutable.Maxms,
			d.Removed.P50ms, d.Removed.P90ms, d.Removed.P99ms, d.Removed.Maxms, d.Missed,
			d.FalseSuspectEvents, d.FalseSuspectInstances, d.LogFalseSuspect,
			d.FalseRemovedEvents, d.FalseRemovedInstances, d.LogFalseExpire, d.LeaderElections)
		fmt.Printf("  (%s: %d instances, observed %.0f s before the kills; %d already suspect when killed; live instances unroutable %.2f %% of the time)\n",
			d.Name, d.Instances, d.ObservedSec, d.AlreadySuspect, d.UnroutablePct)
	}
}
