// Command delivery measures Bulwark's async path end to end: requests
// accepted per second by `bulwark run` on an async route backed by the
// embedded JetStream file store, the client's accept latency (until the
// 202), and the delivery latency from the 202 to the backend's receipt.
//
// It plays both the client and the backend (a recorder noting each
// Idempotency-Key's arrival time, so both ends share one monotonic clock),
// and starts one `bulwark run` per sync policy with a fresh data directory.
// Per policy it runs three phases, each followed by a wait until every
// accepted request has been delivered:
//
//   - closed: -conns workers on keep-alive connections, each sending its
//     next POST when the previous is answered (saturation);
//   - rate: an open-loop schedule of -rate requests per second;
//   - split: closed loop while the backend holds deliveries (so, past the
//     gateway's in-flight limit, no delivery work competes: accepting
//     alone), then the backend lets go and the backlog drains (delivering
//     alone);
//   - near: an open-loop schedule at -near times the rate the closed phase
//     delivered at (what accepting and delivering together sustain).
//
// run.sh builds everything and runs this inside a private network
// namespace, away from the host's (sometimes shaped) loopback.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"
)

type options struct {
	bulwark  string
	work     string
	duration time.Duration
	conns    int
	rate     float64
	near     float64
	body     int
	policies []string
	drain    time.Duration
	profile  string
	out      string
	env      []string
	split    bool
}

func main() {
	var o options
	var policies string
	flag.StringVar(&o.bulwark, "bulwark", "bulwark", "bulwark binary")
	flag.StringVar(&o.work, "work", "", "scratch directory for configs, data and logs (default: a new temp dir)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measured phase")
	flag.IntVar(&o.conns, "conns", 64, "client connections (closed-loop workers; open-loop concurrency cap)")
	flag.Float64Var(&o.rate, "rate", 1000, "requests/s of the moderate open-loop phase")
	flag.Float64Var(&o.near, "near", 0.8, "near-saturation phase rate, as a fraction of the closed phase's delivered/s (0: skip)")
	flag.IntVar(&o.body, "body", 128, "request body bytes")
	flag.StringVar(&policies, "policies", "default,always", "sync policies: default (nats-server's 2 min fsync interval), always (sync_always: true)")
	flag.DurationVar(&o.drain, "drain", 3*time.Minute, "how long to wait for a phase's deliveries to complete")
	flag.StringVar(&o.profile, "profile", "", "if set, after the phases run a closed-loop phase under `perf record -g` and write perf data here")
	flag.StringVar(&o.out, "out", "", "write results as JSON to this file")
	flag.BoolVar(&o.split, "split", true, "also measure accepting alone (backend holds deliveries) and then delivering the backlog alone")
	var env string
	flag.StringVar(&env, "gateway-env", "", "comma-separated NAME=VALUE added to bulwark's environment (e.g. GOGC=400)")
	flag.Parse()
	o.policies = strings.Split(policies, ",")
	if env != "" {
		o.env = strings.Split(env, ",")
	}
	if o.work == "" {
		d, err := os.MkdirTemp("", "delivery-bench-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		o.work = d
	}
	var all []result
	for _, p := range o.policies {
		rs, err := runPolicy(o, p)
		all = append(all, rs...)
		if err != nil {
			log.Printf("policy %s: %v", p, err)
			break
		}
	}
	printTable(all)
	if o.out != "" {
		b, _ := json.MarshalIndent(all, "", "  ")
		if err := os.WriteFile(o.out, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

// runPolicy starts a gateway with the policy and runs the phases on it.
func runPolicy(o options, policy string) ([]result, error) {
	if policy != "default" && policy != "always" {
		return nil, fmt.Errorf("unknown policy %q", policy)
	}
	rec, err := startRecorder()
	if err != nil {
		return nil, err
	}
	defer rec.close()
	dir := filepath.Join(o.work, policy)
	gw, err := startGateway(o.bulwark, dir, rec.addr, policy == "always", o.env)
	if err != nil {
		return nil, err
	}
	defer gw.stop()
	ld := newLoader(gw.url+"/write", o.conns, o.body)
	if err := gw.waitReady(ld, 30*time.Second); err != nil {
		return nil, err
	}
	// A short unmeasured warm-up: connections, JIT-free but cache- and
	// page-cache-warming, and the first file-store blocks.
	warm := ld.closedLoop(policy+"-warm", o.conns, 2*time.Second)
	waitDelivered(rec, warm, o.drain)

	var out []result
	run := func(name string, offered string, f func() []sample) result {
		cpu0, self0 := cpuTime(gw.pid()), selfCPU()
		start := time.Now()
		ss := f()
		end := time.Now()
		r := analyse(rec, ss, start, end, o.drain)
		r.Policy, r.Phase, r.Offered, r.Conns = policy, name, offered, o.conns
		r.GatewayCPUPerReq = perReq(cpuTime(gw.pid())-cpu0, r.Accepted)
		r.BenchCPUPerReq = perReq(selfCPU()-self0, r.Accepted)
		r.GatewayLogErrors = gw.logErrors()
		log.Printf("%s/%s: %d accepted, %.0f/s; accept %v; e2e %v; drained in %v", policy, name, r.Accepted, r.AcceptedPerSec, r.Accept, r.E2E, r.DrainAfterLoad)
		out = append(out, r)
		return r
	}
	closed := run("closed", fmt.Sprintf("closed loop, %d conns", o.conns), func() []sample {
		return ld.closedLoop(policy+"-closed", o.conns, o.duration)
	})
	run("rate", fmt.Sprintf("%.0f/s open loop", o.rate), func() []sample {
		return ld.openLoop(policy+"-rate", o.rate, o.conns, o.duration)
	})
	// Saturation in steady state is what accepting and delivering together
	// sustain: the closed phase's delivery rate (its accept rate is a burst
	// that leaves a backlog when deliveries lag).
	if base := min(closed.AcceptedPerSec, closed.DeliveredInPhasePerSec); o.near > 0 && base > 0 {
		nr := o.near * base
		run("near", fmt.Sprintf("%.0f/s open loop (%.0f%% of closed phase's delivered/s)", nr, o.near*100), func() []sample {
			return ld.openLoop(policy+"-near", nr, o.conns, o.duration)
		})
	}
	if o.split {
		out = append(out, splitPhase(o, policy, gw, ld, rec)...)
	}
	if o.profile != "" {
		if err := profilePhase(o, policy, gw, ld, rec); err != nil {
			log.Printf("profile: %v", err)
		}
	}
	distinct, dups := rec.total()
	log.Printf("%s: backend received %d distinct keys, %d duplicate deliveries", policy, distinct, dups)
	return out, nil
}

func perReq(d time.Duration, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(n)
}
