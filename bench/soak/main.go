// Command soak runs a whole Bulwark stack as separate processes — three
// registry nodes, three demo replicas, two gateways (bulwark run) and
// delivery on a three-member embedded JetStream cluster (two members in
// the gateways, one delivery-only process) — under a client mixing sync reads and async
// writes, while a seeded schedule SIGKILLs, SIGSTOPs/SIGCONTs and restarts
// processes of every kind (never more than one of a kind at once). It
// reports accepted async writes, how many were delivered exactly once by
// key, lost ones (must be 0), duplicates seen by the backend, the sync
// success ratio, wrong bodies (must be 0) and per-fault recovery times, as
// JSON and a short HTML page. The same seed replays the same schedule.
//
// Usage: go run ./soak -bulwark /path/to/bulwark -duration 60s -seed 1 -out DIR
// (bench/soak/run.sh builds the binary and runs this).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bulwark-go/bulwark/demo"
)

func main() {
	bin := flag.String("bulwark", "bulwark", "the bulwark binary")
	duration := flag.Duration("duration", 60*time.Second, "how long faults are injected")
	seed := flag.Uint64("seed", 1, "seed of the fault schedule and the client's choices")
	out := flag.String("out", "", "directory for report.json, report.html and the processes' logs (default: a temp dir)")
	clients := flag.Int("clients", 4, "concurrent clients")
	settle := flag.Duration("settle", 90*time.Second, "how long to wait after the faults for every accepted write to be delivered")
	withCuts := flag.Bool("cuts", true, "also cut processes' network with nftables (needs root and a private network namespace: run.sh provides one; skipped with a message otherwise)")
	flag.Parse()
	if err := run(*bin, *duration, *seed, *out, *clients, *settle, *withCuts); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// sink is the async writes' backend: it counts deliveries per
// Idempotency-Key. It runs in this process, outside the fault schedule: it
// is the measuring instrument.
type sink struct {
	mu   sync.Mutex
	seen map[string]int
}

func (k *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	key := r.Header.Get("Idempotency-Key")
	k.mu.Lock()
	k.seen[key]++
	k.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// counts is what the clients observed.
type counts struct {
	syncOK, syncFail, wrongBody atomic.Int64
	asyncRefused                atomic.Int64
	mu                          sync.Mutex
	accepted                    []accepted
}

// accepted is one async write a gateway answered 202 to: when (from the
// start), which gateway, after how many tries, and the message id it
// returned, so that a lost write's journey can be traced.
type accepted struct {
	key, gateway, id string
	at               time.Duration
	tries            int
}

// client sends reads and writes to the gateways, failing over between
// them, until ctx ends.
func client(ctx context.Context, id int, s *stack, rng *rand.Rand, c *counts, hc *http.Client, t0 time.Time) {
	n := 0
	for ctx.Err() == nil {
		n++
		gw := s.gwURLs[rng.IntN(len(s.gwURLs))]
		if rng.IntN(2) == 0 {
			size := 1 + rng.IntN(4096)
			ok := false
			for _, u := range []string{gw, other(s.gwURLs, gw)} {
				if r := read(ctx, hc, u, size); r == readOK {
					ok = true
					break
				} else if r == readWrong {
					c.wrongBody.Add(1)
					break
				}
			}
			if ok {
				c.syncOK.Add(1)
			} else if ctx.Err() == nil {
				c.syncFail.Add(1)
			}
		} else {
			key := fmt.Sprintf("c%d-%d", id, n)
			var acc *accepted
			// A client retries a write on the other gateway with the same
			// key: the response may have been lost after it was stored.
			for i, u := range []string{gw, other(s.gwURLs, gw)} {
				start := time.Since(t0)
				if ok, msgID := write(ctx, hc, u, key); ok {
					acc = &accepted{key: key, gateway: s.gwName(u), id: msgID, at: start, tries: i + 1}
					break
				}
			}
			if acc != nil {
				c.mu.Lock()
				c.accepted = append(c.accepted, *acc)
				c.mu.Unlock()
			} else if ctx.Err() == nil {
				c.asyncRefused.Add(1)
			}
		}
		time.Sleep(time.Duration(5+rng.IntN(10)) * time.Millisecond) // pacing, not a wait for state
	}
}

func other(urls []string, u string) string {
	for _, o := range urls {
		if o != u {
			return o
		}
	}
	return u
}

type readResult int

const (
	readOK readResult = iota
	readFailed
	readWrong
)

// read fetches /read?size=N and checks the body against Content-Digest and
// the payload the demo serves for that size.
func read(ctx context.Context, hc *http.Client, gw string, size int) readResult {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gw+"/read?size="+strconv.Itoa(size), nil)
	resp, err := hc.Do(req)
	if err != nil {
		return readFailed
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return readFailed
	}
	sum := sha256.Sum256(body)
	want := "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
	if resp.Header.Get("Content-Digest") != want || string(body) != string(demo.Body(size)) {
		return readWrong
	}
	return readOK
}

// write posts an async write; true when the gateway accepted it (202),
// with the message id it answered.
func write(ctx context.Context, hc *http.Client, gw, key string) (bool, string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw+"/write", strings.NewReader("payload "+key))
	req.Header.Set("Idempotency-Key", key)
	resp, err := hc.Do(req)
	if err != nil {
		return false, ""
	}
	defer resp.Body.Close()
	var body struct {
		ID string `json:"id"`
	}
	if resp.StatusCode != http.StatusAccepted {
		io.Copy(io.Discard, resp.Body)
		return false, ""
	}
	json.NewDecoder(resp.Body).Decode(&body)
	return true, body.ID
}

// fault is one injected fault and how long its victim took to recover.
type fault struct {
	At         string `json:"at"`     // offset from the start
	AtMS       int64  `json:"at_ms"`  // the same, in ms
	EndMS      int64  `json:"end_ms"` // offset at which the victim was healthy again (or gave up)
	Kind       string `json:"kind"`
	Victim     string `json:"victim"`
	Action     string `json:"action"`
	HeldMS     int64  `json:"held_ms"`
	RecoveryMS int64  `json:"recovery_ms"` // from the end of the fault until healthy again
	Recovered  bool   `json:"recovered"`
	Error      string `json:"error,omitempty"` // the fault could not be injected
	// ReachableWhileCut: whether the victim's health endpoint answered
	// during a cut (it must not).
	ReachableWhileCut *bool   `json:"reachable_while_cut,omitempty"`
	_                 [0]bool // no positional literals
}

// schedule injects faults until ctx ends: every 2-5 s, one process of a
// random kind is SIGKILLed (and restarted), SIGSTOPped (and continued) or
// restarted (SIGTERM); with a cutter, a second loop cuts one process's
// network every 3-8 s for 1-4 s. Faults of one kind never overlap (cuts
// included), so at most one of the three registry nodes, one of the three
// demos and one of the three JetStream members (two gateways and the
// delivery-only process) is down at a time; clients fail over to the other
// gateway. The cut loop has its own random stream, so the kill/stop/restart
// draws are the same with and without cuts.
func schedule(ctx context.Context, s *stack, rng *rand.Rand, cutRng *rand.Rand, cuts *cutter, hc *http.Client, t0 time.Time) []fault {
	kinds := map[string][]*proc{"registry": s.regs, "demo": s.demos, "gateway": s.gws, "delivery": s.jss}
	names := []string{"registry", "demo", "gateway", "delivery"}
	// The gateways and the delivery-only process are the three JetStream
	// members: at most one of them is down at a time.
	group := map[string]string{"registry": "registry", "demo": "demo", "gateway": "jetstream", "delivery": "jetstream"}
	var mu sync.Mutex
	var faults []fault
	var wg sync.WaitGroup
	busy := map[string]bool{}
	inject := func(kind string, victim *proc, action string, hold time.Duration) {
		at := time.Since(t0)
		f := fault{At: at.Round(time.Millisecond).String(), AtMS: at.Milliseconds(), Kind: kind, Victim: victim.name, Action: action, HeldMS: hold.Milliseconds()}
		switch action {
		case "sigkill":
			victim.kill()
			time.Sleep(hold)
			victim.start()
		case "sigstop":
			victim.signal(syscall.SIGSTOP)
			time.Sleep(hold)
			victim.signal(syscall.SIGCONT)
		case "restart":
			victim.terminate(10 * time.Second)
			time.Sleep(hold)
			victim.start()
		case "cut":
			reachable, err := cuts.cut(victim, hold)
			if err != nil {
				f.Error = err.Error()
			}
			f.ReachableWhileCut = &reachable
		}
		d, ok := victim.waitHealthy(hc, 60*time.Second)
		f.RecoveryMS, f.Recovered = d.Milliseconds(), ok
		f.EndMS = time.Since(t0).Milliseconds()
		mu.Lock()
		faults = append(faults, f)
		busy[group[kind]] = false
		mu.Unlock()
	}
	claim := func(kind string) bool {
		mu.Lock()
		defer mu.Unlock()
		if busy[group[kind]] {
			return false
		}
		busy[group[kind]] = true
		return true
	}
	if cuts != nil {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Duration(3000+cutRng.IntN(5000)) * time.Millisecond):
				}
				kind := names[cutRng.IntN(len(names))]
				procs := kinds[kind]
				victim := procs[cutRng.IntN(len(procs))]
				hold := time.Duration(1000+cutRng.IntN(3000)) * time.Millisecond
				if claim(kind) {
					wg.Go(func() { inject(kind, victim, "cut", hold) })
				}
			}
		})
	}
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return faults
		case <-time.After(time.Duration(2000+rng.IntN(3000)) * time.Millisecond):
		}
		kind := names[rng.IntN(len(names))]
		if !claim(kind) {
			continue
		}
		procs := kinds[kind]
		victim := procs[rng.IntN(len(procs))]
		action := []string{"sigkill", "sigstop", "restart"}[rng.IntN(3)]
		hold := time.Duration(500+rng.IntN(2500)) * time.Millisecond
		wg.Go(func() { inject(kind, victim, action, hold) })
	}
}

// Report is report.json.
type Report struct {
	Seed             uint64         `json:"seed"`
	Duration         string         `json:"duration"`
	Accepted         int            `json:"accepted"`
	DeliveredOnce    int            `json:"delivered_exactly_once_by_key"`
	Lost             int            `json:"lost"`
	BackendDups      int            `json:"duplicates_at_backend"`
	AsyncRefused     int64          `json:"async_refused"`
	SyncOK           int64          `json:"sync_ok"`
	SyncFailed       int64          `json:"sync_failed"`
	SyncSuccessRatio float64        `json:"sync_success_ratio"`
	WrongBodies      int64          `json:"wrong_bodies"`
	Faults           []fault        `json:"faults"`
	RecoveryP50MS    map[string]int `json:"recovery_p50_ms"`
	RecoveryMaxMS    map[string]int `json:"recovery_max_ms"`
	SettleMS         int64          `json:"settle_ms"`
	NetworkCuts      string         `json:"network_cuts"`             // on, or why not
	CutsIneffective  int            `json:"cuts_reachable_while_cut"` // cuts during which the victim still answered (must be 0)
	LostKeys         []string       `json:"lost_keys,omitempty"`
	// Lost traces each lost write: when and where it was accepted, the
	// faults around it, and where the JetStream cluster has it at the end.
	LostDetail []lostWrite `json:"lost_detail,omitempty"`
	JetStream  *jsState    `json:"jetstream_at_end,omitempty"`
	LoadAvg    []string    `json:"load_average,omitempty"` // at the start and the end (/proc/loadavg)
}

// lostWrite is the journey of one accepted write the backend never saw.
type lostWrite struct {
	Key          string   `json:"key"`
	ID           string   `json:"id"`
	AcceptedAtMS int64    `json:"accepted_at_ms"`
	Gateway      string   `json:"gateway"`
	Tries        int      `json:"tries"`
	FaultsNear   []string `json:"faults_within_5s"`
	InWork       bool     `json:"in_work_stream"`
	WorkSeq      uint64   `json:"work_seq,omitempty"`
	InDead       bool     `json:"in_dead_letters"`
	Status       string   `json:"status_record"` // the delivery status bucket's value, or why none
}

func run(bin string, duration time.Duration, seed uint64, out string, nclients int, settle time.Duration, withCuts bool) error {
	if out == "" {
		var err error
		if out, err = os.MkdirTemp("", "bulwark-soak-"); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	snk := &sink{seen: map[string]int{}}
	load0 := loadAvg()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: snk}
	go srv.Serve(ln)
	defer srv.Close()

	s, err := build(bin, out, "http://"+ln.Addr().String())
	if err != nil {
		return err
	}
	defer s.down()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	if err := s.up(hc); err != nil {
		return err
	}
	// The gateways route reads once the demos are registered.
	deadline := time.Now().Add(60 * time.Second)
	for read(context.Background(), hc, s.gwURLs[0], 10) != readOK || read(context.Background(), hc, s.gwURLs[1], 10) != readOK {
		if time.Now().After(deadline) {
			return errors.New("the gateways never served a read from the demos")
		}
		time.Sleep(50 * time.Millisecond) // polling
	}
	var cuts *cutter
	cutsNote := "on"
	if withCuts {
		var err error
		if cuts, err = newCutter(); err != nil {
			cutsNote = "skipped: " + err.Error()
			fmt.Fprintf(os.Stderr, "soak: network cuts skipped: %v\n", err)
		} else {
			defer cuts.close()
		}
	} else {
		cutsNote = "off (-cuts=false)"
	}
	fmt.Fprintf(os.Stderr, "soak: stack up (logs in %s); %v of faults, seed %d, network cuts %s\n", out, duration, seed, cutsNote)

	var c counts
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var wg sync.WaitGroup
	for i := range nclients {
		rng := rand.New(rand.NewPCG(seed, uint64(i)+1))
		wg.Go(func() { client(ctx, i, s, rng, &c, hc, t0) })
	}
	faults := schedule(ctx, s, rand.New(rand.NewPCG(seed, 0)), rand.New(rand.NewPCG(seed, 1000)), cuts, hc, t0)
	wg.Wait()

	// Every accepted write must arrive once the stack is whole again.
	settled := time.Now()
	var lost []string
	var lostAcc []accepted
	for {
		lost, lostAcc = lost[:0], lostAcc[:0]
		snk.mu.Lock()
		for _, a := range c.accepted {
			if snk.seen[a.key] == 0 {
				lost = append(lost, a.key)
				lostAcc = append(lostAcc, a)
			}
		}
		snk.mu.Unlock()
		if len(lost) == 0 || time.Since(settled) > settle {
			break
		}
		time.Sleep(200 * time.Millisecond) // polling
	}
	r := Report{Seed: seed, Duration: duration.String(), Accepted: len(c.accepted), Lost: len(lost), LostKeys: lost,
		AsyncRefused: c.asyncRefused.Load(), SyncOK: c.syncOK.Load(), SyncFailed: c.syncFail.Load(),
		WrongBodies: c.wrongBody.Load(), Faults: faults, SettleMS: time.Since(settled).Milliseconds(), NetworkCuts: cutsNote}
	// Where the cluster has the lost writes (and what it still holds).
	ids := map[string]string{}
	for _, a := range lostAcc {
		ids[a.key] = a.id
	}
	js, where := inspectJetStream(s, ids)
	r.JetStream = js
	for _, a := range lostAcc {
		r.LostDetail = append(r.LostDetail, trace(a, faults, where))
	}
	r.LoadAvg = []string{load0, loadAvg()}
	for _, f := range faults {
		if f.ReachableWhileCut != nil && *f.ReachableWhileCut {
			r.CutsIneffective++
		}
	}
	snk.mu.Lock()
	for _, a := range c.accepted {
		if snk.seen[a.key] == 1 {
			r.DeliveredOnce++
		}
	}
	for _, n := range snk.seen {
		if n > 1 {
			r.BackendDups += n - 1
		}
	}
	snk.mu.Unlock()
	if t := r.SyncOK + r.SyncFailed + r.WrongBodies; t > 0 {
		r.SyncSuccessRatio = float64(r.SyncOK) / float64(t)
	}
	r.RecoveryP50MS, r.RecoveryMaxMS = recoveryStats(faults)
	b, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "report.json"), b, 0o644); err != nil {
		return err
	}
	if err := writeHTML(filepath.Join(out, "report.html"), r); err != nil {
		return err
	}
	fmt.Printf("%s\n", b)
	fmt.Fprintf(os.Stderr, "soak: report in %s\n", filepath.Join(out, "report.html"))
	if r.CutsIneffective > 0 {
		return fmt.Errorf("%d network cuts did not isolate their victim (seed %d)", r.CutsIneffective, seed)
	}
	if r.Lost > 0 || r.WrongBodies > 0 {
		for _, l := range r.LostDetail {
			fmt.Fprintf(os.Stderr, "soak: lost %s (id %s) accepted at %v by %s (try %d); in work stream %v, in dead letters %v, status %s; faults within 5 s: %v\n",
				l.Key, l.ID, time.Duration(l.AcceptedAtMS)*time.Millisecond, l.Gateway, l.Tries, l.InWork, l.InDead, l.Status, l.FaultsNear)
		}
		return fmt.Errorf("%d accepted writes lost, %d wrong bodies (seed %d)", r.Lost, r.WrongBodies, seed)
	}
	return nil
}

// trace describes a lost write's journey.
func trace(a accepted, faults []fault, where map[string]jsWhere) lostWrite {
	l := lostWrite{Key: a.key, ID: a.id, AcceptedAtMS: a.at.Milliseconds(), Gateway: a.gateway, Tries: a.tries}
	for _, f := range faults {
		if f.AtMS <= l.AcceptedAtMS+5000 && f.EndMS >= l.AcceptedAtMS-5000 {
			l.FaultsNear = append(l.FaultsNear, fmt.Sprintf("%s %s %s at %dms held %dms healthy at %dms",
				f.Kind, f.Victim, f.Action, f.AtMS, f.HeldMS, f.EndMS))
		}
	}
	w := where[a.key]
	l.InWork, l.WorkSeq, l.InDead, l.Status = w.workSeq > 0, w.workSeq, w.dead, w.status
	return l
}

// loadAvg is /proc/loadavg's first three fields.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func recoveryStats(fs []fault) (p50, maxv map[string]int) {
	by := map[string][]int{}
	for _, f := range fs {
		k := f.Kind + "/" + f.Action
		by[k] = append(by[k], int(f.RecoveryMS))
	}
	p50, maxv = map[string]int{}, map[string]int{}
	for k, v := range by {
		sort.Ints(v)
		p50[k], maxv[k] = v[len(v)/2], v[len(v)-1]
	}
	return p50, maxv
}
