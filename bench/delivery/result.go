package main

import (
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// result is one phase's figures.
type result struct {
	Policy, Phase, Offered string
	Conns                  int
	Seconds                float64
	Sent, Accepted         int
	Codes                  map[string]int // status code ("0" = transport error) → count
	AcceptedPerSec         float64
	// Accept is the client's latency until the 202 was read (open loop:
	// from the scheduled send time).
	Accept dist
	// E2E is from the client reading the 202 to the backend receiving the
	// delivery; ArrivedBefore202 counts deliveries that beat their own 202
	// to the client (counted as 0).
	E2E              dist
	ArrivedBefore202 int
	// E2EFromSend is from the client starting the POST to the delivery.
	E2EFromSend dist
	// DeliveredInPhasePerSec is deliveries of this phase's requests that
	// arrived before the load stopped, per second of load.
	DeliveredInPhasePerSec float64
	// Undelivered counts accepted requests not delivered within -drain.
	Undelivered int
	// DrainAfterLoad is how long after the load stopped the last accepted
	// request was delivered.
	DrainAfterLoad time.Duration
	// GatewayCPUPerReq and BenchCPUPerReq are CPU µs per accepted request
	// of bulwark and of this process (client + backend).
	GatewayCPUPerReq, BenchCPUPerReq float64
	GatewayLogErrors                 int
}

// waitDelivered waits until every accepted request in ss has reached the
// recorder, or limit; it returns when that happened (zero on timeout).
func waitDelivered(rec *recorder, ss []sample, limit time.Duration) time.Time {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-rec.expect(keysOf(ss)):
		return time.Now()
	case <-t.C:
		return time.Time{}
	}
}

func analyse(rec *recorder, ss []sample, start, end time.Time, drain time.Duration) result {
	r := result{Sent: len(ss), Codes: map[string]int{}, Seconds: end.Sub(start).Seconds()}
	var acc []time.Duration
	for _, s := range ss {
		r.Codes[strconv.Itoa(s.code)]++
		if s.code == 202 {
			r.Accepted++
			acc = append(acc, s.done.Sub(s.intended))
		}
	}
	r.AcceptedPerSec = float64(r.Accepted) / r.Seconds
	r.Accept = newDist(acc)
	if t := waitDelivered(rec, ss, drain); !t.IsZero() {
		r.DrainAfterLoad = t.Sub(end).Round(10 * time.Millisecond)
	}
	var e2e, fromSend []time.Duration
	inPhase := 0
	for _, s := range ss {
		if s.code != 202 {
			continue
		}
		at, ok := rec.arrival(s.key)
		if !ok {
			r.Undelivered++
			continue
		}
		if !at.After(end) {
			inPhase++
		}
		d := at.Sub(s.done)
		if d < 0 {
			r.ArrivedBefore202++
			d = 0
		}
		e2e = append(e2e, d)
		fromSend = append(fromSend, at.Sub(s.sent))
	}
	r.E2E, r.E2EFromSend = newDist(e2e), newDist(fromSend)
	r.DeliveredInPhasePerSec = float64(inPhase) / r.Seconds
	return r
}

func printTable(rs []result) {
	fmt.Println("| sync policy | phase | offered | accepted/s | non-202 | accept p50 / p99 (ms) | e2e 202→backend p50 / p99 / max (ms) | delivered/s during load | drain after load | bulwark CPU µs/req | client+backend CPU µs/req |")
	fmt.Println("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		pol := "default (fsync every 2 min)"
		if r.Policy == "always" {
			pol = "sync_always (fsync per write)"
		}
		fmt.Printf("| %s | %s | %s | %.0f | %d | %s / %s | %s / %s / %s | %.0f | %v | %.0f | %.0f |\n",
			pol, r.Phase, r.Offered, r.AcceptedPerSec, r.Sent-r.Accepted, ms(r.Accept.P50), ms(r.Accept.P99),
			ms(r.E2E.P50), ms(r.E2E.P99), ms(r.E2E.Max), r.DeliveredInPhasePerSec, r.DrainAfterLoad,
			r.GatewayCPUPerReq, r.BenchCPUPerReq)
	}
}

// profilePhase repeats the closed phase with `perf record -g` attached to
// bulwark (perf's sampling slows it, so its figures are not reported).
func profilePhase(o options, policy string, gw *gateway, ld *loader, rec *recorder) error {
	if err := os.MkdirAll(o.profile, 0o755); err != nil {
		return err
	}
	data := filepath.Join(o.profile, "perf-"+policy+".data")
	secs := max(int(o.duration.Seconds())-2, 1)
	perf := exec.Command("perf", "record", "-F", "499", "-g", "-p", strconv.Itoa(gw.pid()), "-o", data, "--", "sleep", strconv.Itoa(secs))
	perf.Stdout, perf.Stderr = os.Stderr, os.Stderr
	done := make(chan []sample, 1)
	go func() { done <- ld.closedLoop(policy+"-prof", o.conns, o.duration) }()
	time.Sleep(time.Second)
	err := perf.Run()
	ss := <-done
	waitDelivered(rec, ss, o.drain)
	return err
}

// splitPhase measures accepting without delivery work, then delivering
// the resulting backlog without accept work.
func splitPhase(o options, policy string, gw *gateway, ld *loader, rec *recorder) []result {
	release := rec.hold()
	cpu0, self0 := cpuTime(gw.pid()), selfCPU()
	start := time.Now()
	ss := ld.closedLoop(policy+"-split", o.conns, o.duration)
	end := time.Now()
	cpu1, self1 := cpuTime(gw.pid()), selfCPU()
	acc := result{Policy: policy, Phase: "accept only", Offered: fmt.Sprintf("closed loop, %d conns, deliveries held", o.conns),
		Conns: o.conns, Sent: len(ss), Codes: map[string]int{}, Seconds: end.Sub(start).Seconds()}
	var lat []time.Duration
	for _, s := range ss {
		acc.Codes[strconv.Itoa(s.code)]++
		if s.code == 202 {
			acc.Accepted++
			lat = append(lat, s.done.Sub(s.sent))
		}
	}
	acc.AcceptedPerSec = float64(acc.Accepted) / acc.Seconds
	acc.Accept = newDist(lat)
	acc.GatewayCPUPerReq = perReq(cpu1-cpu0, acc.Accepted)
	acc.BenchCPUPerReq = perReq(self1-self0, acc.Accepted)

	opened := time.Now()
	release()
	t := waitDelivered(rec, ss, o.drain)
	del := result{Policy: policy, Phase: "deliver only", Offered: fmt.Sprintf("backlog of %d, released", acc.Accepted), Conns: o.conns}
	if !t.IsZero() {
		del.Seconds = t.Sub(opened).Seconds()
		del.DeliveredInPhasePerSec = float64(acc.Accepted) / del.Seconds
		del.DrainAfterLoad = t.Sub(opened).Round(10 * time.Millisecond)
	} else {
		del.Undelivered = acc.Accepted - rec.count(keysOf(ss))
	}
	del.GatewayCPUPerReq = perReq(cpuTime(gw.pid())-cpu1, acc.Accepted)
	del.BenchCPUPerReq = perReq(selfCPU()-self1, acc.Accepted)
	for _, r := range []result{acc, del} {
		log.Printf("%s/%s: accepted %.0f/s, delivered %.0f/s, gateway CPU %.0f µs/req", policy, r.Phase, r.AcceptedPerSec, r.DeliveredInPhasePerSec, r.GatewayCPUPerReq)
	}
	return []result{acc, del}
}

func keysOf(ss []sample) []string {
	var ks []string
	for _, s := range ss {
		if s.code == 202 {
			ks = append(ks, s.key)
		}
	}
	return ks
}
