package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/hashicorp/raft"
)

// The linearizability tests drive concurrent register / deregister / read
// operations against a real three-node cluster (Raft over loopback TCP,
// the HTTP API) while a seeded schedule partitions and stops nodes, record
// every operation's invocation and response times, and check the history
// with porcupine against a sequential model of one service's catalog.

// linKeys is how many instance IDs the clients contend on: few, so that
// operations conflict often.
const linKeys = 5

const linService = "lin"

// catalogState is the model's state: each key's address, "" when absent.
// An array, so states compare with == and hash cheaply.
type catalogState [linKeys]string

type linOpKind int

const (
	linRegister linOpKind = iota
	linDeregister
	linRead
)

type linInput struct {
	kind linOpKind
	key  int
	addr string // register: a unique address, so reads tell writes apart
}

// linOutcome of a write: definite success, a definite "not found"
// (deregister of an absent instance), or unknown (timeout, 5xx, broken
// connection: the write may or may not have taken effect).
type linOutcome int

const (
	linOK linOutcome = iota
	linNotFound
	linUnknown
)

type linOutput struct {
	outcome linOutcome
	state   catalogState // reads
}

// catalogModel is the sequential specification of one service's catalog.
var catalogModel = porcupine.Model{
	Init: func() any { return catalogState{} },
	Step: func(st, in, out any) (bool, any) {
		s, i, o := st.(catalogState), in.(linInput), out.(linOutput)
		switch i.kind {
		case linRegister:
			s[i.key] = i.addr
			return true, s
		case linDeregister:
			switch o.outcome {
			case linOK:
				if s[i.key] == "" {
					return false, s
				}
			case linNotFound:
				if s[i.key] != "" {
					return false, s
				}
			}
			s[i.key] = ""
			return true, s
		default:
			if i.key >= 0 { // a read projected onto one key (see Partition)
				return o.state[i.key] == s[i.key], s
			}
			return o.state == s, s
		}
	},
	// Partition checks each instance ID on its own (porcupine's key-value
	// model does the same per key): writes go to their key's partition,
	// and every read is projected onto each key. This checks that each
	// instance's history is linearizable, not that a read's snapshot is
	// atomic across instances; it keeps the check to seconds where the
	// whole-catalog search, with writes of unknown outcome open to the end
	// of the history, does not finish.
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		parts := make([][]porcupine.Operation, linKeys)
		for _, op := range history {
			in := op.Input.(linInput)
			if in.kind != linRead {
				parts[in.key] = append(parts[in.key], op)
				continue
			}
			for k := range linKeys {
				p := op
				in.key = k
				p.Input = in
				parts[k] = append(parts[k], p)
			}
		}
		return parts
	},
	DescribeOperation: func(in, out any) string {
		i, o := in.(linInput), out.(linOutput)
		res := map[linOutcome]string{linOK: "ok", linNotFound: "not found", linUnknown: "unknown"}[o.outcome]
		switch i.kind {
		case linRegister:
			return fmt.Sprintf("register(i%d, %s) → %s", i.key, i.addr, res)
		case linDeregister:
			return fmt.Sprintf("deregister(i%d) → %s", i.key, res)
		}
		if i.key >= 0 {
			return fmt.Sprintf("read i%d → %q", i.key, o.state[i.key])
		}
		return fmt.Sprintf("read → %v", o.state)
	},
	DescribeState: func(st any) string { return fmt.Sprintf("%q", st.(catalogState)) },
}

// linRun is the configuration of one recorded run.
type linRun struct {
	seed    uint64
	cycles  int    // partition/stop cycles
	clients int    // concurrent clients
	read    string // query string of reads: "?consistent" or "" (local state)
}

// linHistory records operations from concurrent clients.
type linHistory struct {
	t0  time.Time
	mu  sync.Mutex
	ops []porcupine.Operation
	// counters for the log line
	reads, writes, unknown, dropped int
}

func (h *linHistory) now() int64 { return int64(time.Since(h.t0)) }

func (h *linHistory) add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// runLinearizability runs the clients and the fault schedule and returns
// the history.
func runLinearizability(t *testing.T, run linRun) *linHistory {
	tc := newCluster(t, 3, nil)
	addrs := tc.addrs()
	h := &linHistory{t0: time.Now()}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var seq sync.Mutex
	next := 0
	uniq := func() string {
		seq.Lock()
		defer seq.Unlock()
		next++
		return "h:" + strconv.Itoa(next)
	}
	for c := range run.clients {
		tr := &http.Transport{MaxIdleConnsPerHost: 4}
		t.Cleanup(tr.CloseIdleConnections)
		hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}
		rng := rand.New(rand.NewPCG(run.seed, uint64(c)+1))
		wg.Go(func() {
			for ctx.Err() == nil {
				in := linInput{key: rng.IntN(linKeys)}
				switch p := rng.IntN(100); {
				case p < 45:
					in.kind, in.key = linRead, -1
				case p < 80:
					in.kind, in.addr = linRegister, uniq()
				default:
					in.kind = linDeregister
				}
				ok := linStep(ctx, hc, addrs[rng.IntN(len(addrs))], run.read, c, in, h)
				// A client backs off after a failure, as real ones do,
				// instead of filling the history with refusals.
				pause := time.Duration(1+rng.IntN(3)) * time.Millisecond
				if !ok {
					pause = time.Duration(20+rng.IntN(30)) * time.Millisecond
				}
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
			}
		})
	}

	rng := rand.New(rand.NewPCG(run.seed, 0))
	for cycle := range run.cycles {
		l := tc.leader()
		victim := l
		if rng.IntN(2) == 0 {
			victim = (l + 1 + rng.IntN(2)) % 3
		}
		hold := time.Duration(300+rng.IntN(400)) * time.Millisecond
		if rng.IntN(2) == 0 {
			tc.layers[victim].setCut(true)
			time.Sleep(hold) // the fault's duration, not a wait for state
			tc.layers[victim].setCut(false)
			t.Logf("cycle %d: partitioned node %d (leader %d) for %v", cycle, victim, l, hold)
		} else {
			tc.stop(victim)
			time.Sleep(hold)
			tc.restart(victim)
			t.Logf("cycle %d: stopped and restarted node %d (leader %d) after %v", cycle, victim, l, hold)
		}
		tc.leader()
		time.Sleep(time.Duration(100+rng.IntN(200)) * time.Millisecond) // healthy stretch between faults
	}
	cancel()
	wg.Wait()
	// Writes whose outcome is unknown may take effect at any time after
	// their invocation: their response time is the end of the history.
	// A register of unknown outcome whose (unique) address a read
	// returned took effect before that read returned: its response time
	// is bounded by the earliest such read (etcd's robustness tests patch
	// their histories the same way).
	end := h.now() + 1
	seen := map[string]int64{}
	for _, op := range h.ops {
		if in := op.Input.(linInput); in.kind == linRead {
			for _, a := range op.Output.(linOutput).state {
				if r, ok := seen[a]; a != "" && (!ok || op.Return < r) {
					seen[a] = op.Return
				}
			}
		}
	}
	for i := range h.ops {
		if h.ops[i].Return != math.MaxInt64 {
			continue
		}
		h.ops[i].Return = end
		if in := h.ops[i].Input.(linInput); in.kind == linRegister {
			if r, ok := seen[in.addr]; ok {
				h.ops[i].Return = max(r, h.ops[i].Call)
			}
		}
	}
	t.Logf("history: %d operations (%d reads, %d writes of which %d with unknown outcome), %d dropped (refused or failed reads)",
		len(h.ops), h.reads, h.writes, h.unknown, h.dropped)
	return h
}

// definiteFailure reports whether a 503 body says the write was refused
// before it reached the Raft log (no leader to forward to, raft's
// ErrNotLeader or ErrEnqueueTimeout): such a write has no effect and is
// left out of the history. Any other failure leaves the outcome unknown.
func definiteFailure(status int, body []byte) bool {
	if status != http.StatusServiceUnavailable {
		return false
	}
	b := string(body)
	return strings.Contains(b, "no known leader to forward to") || strings.Contains(b, raft.ErrNotLeader.Error()) ||
		strings.Contains(b, raft.ErrEnqueueTimeout.Error())
}

// linStep performs one operation against node addr and records it; it
// reports whether the operation succeeded.
func linStep(ctx context.Context, hc *http.Client, addr, readQuery string, client int, in linInput, h *linHistory) bool {
	key := "i" + strconv.Itoa(in.key)
	var req *http.Request
	switch in.kind {
	case linRegister:
		body := fmt.Sprintf(`{"service":%q,"id":%q,"address":%q,"ttl":"1h"}`, linService, key, in.addr)
		req, _ = http.NewRequestWithContext(ctx, http.MethodPut, "http://"+addr+"/v1/instances", strings.NewReader(body))
	case linDeregister:
		req, _ = http.NewRequestWithContext(ctx, http.MethodDelete, "http://"+addr+"/v1/instances/"+linService+"/"+key, nil)
	default:
		req, _ = http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/services/"+linService+readQuery, nil)
	}
	call := h.now()
	resp, err := hc.Do(req)
	var status int
	var body []byte
	if err == nil {
		status = resp.StatusCode
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	ret := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if ctx.Err() != nil && err != nil {
		// Cancelled at the end of the run: a write may still apply.
		if in.kind != linRead {
			h.unknown++
			h.writes++
			h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: linOutput{outcome: linUnknown}, Return: math.MaxInt64})
		}
		return false
	}
	if errors.Is(err, syscall.ECONNREFUSED) || (err == nil && definiteFailure(status, body)) {
		h.dropped++ // the node is stopped, or refused the write: no effect
		return false
	}
	op := porcupine.Operation{ClientId: client, Input: in, Call: call, Return: ret}
	switch {
	case in.kind == linRead:
		if err != nil || status != http.StatusOK {
			h.dropped++ // a failed read has no effect
			return false
		}
		var sr ServiceResponse
		if err := json.Unmarshal(body, &sr); err != nil {
			h.dropped++
			return false
		}
		var st catalogState
		for _, inst := range sr.Instances {
			if k, err := strconv.Atoi(strings.TrimPrefix(inst.ID, "i")); err == nil && k >= 0 && k < linKeys {
				st[k] = inst.Address
			}
		}
		op.Output = linOutput{state: st}
		h.reads++
	case err == nil && status == http.StatusOK:
		op.Output = linOutput{outcome: linOK}
		h.writes++
	case err == nil && status == http.StatusNotFound && in.kind == linDeregister:
		op.Output = linOutput{outcome: linNotFound}
		h.writes++
	default:
		op.Output = linOutput{outcome: linUnknown}
		op.Return = math.MaxInt64
		h.writes++
		h.unknown++
	}
	h.ops = append(h.ops, op)
	return op.Return != math.MaxInt64
}

// checkHistory runs porcupine; on a result other than want it writes the
// visualization next to the test's temporary files and fails.
func checkHistory(t *testing.T, h *linHistory, want porcupine.CheckResult) {
	t.Helper()
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(catalogModel, h.ops, 2*time.Minute)
	t.Logf("porcupine: %s in %v", res, time.Since(start).Round(time.Millisecond))
	if res == want {
		return
	}
	path := filepath.Join(os.TempDir(), fmt.Sprintf("registry-linearizability-%d.html", time.Now().UnixNano()))
	if err := porcupine.VisualizePath(catalogModel, info, path); err == nil {
		t.Logf("history visualized in %s", path)
	}
	t.Fatalf("porcupine: %s, want %s", res, want)
}

// TestLinearizableConsistentReads: with ?consistent reads, the history of
// 20+ partition/stop cycles is linearizable.
func TestLinearizableConsistentReads(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-node cluster through 20 partition/stop cycles")
	}
	checkLeaks(t)
	h := runLinearizability(t, linRun{seed: 17, cycles: 20, clients: 4, read: "?consistent"})
	if h.reads < 100 || h.writes < 100 {
		t.Fatalf("too few operations to say anything: %d reads, %d writes", h.reads, h.writes)
	}
	checkHistory(t, h, porcupine.Ok)
}

// TestLinearizabilityCheckCatchesLocalReads shows the check can fail: the
// same run, with reads served from whichever node's local state (the
// default read mode, documented as possibly stale), is rejected.
func TestLinearizabilityCheckCatchesLocalReads(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-node cluster through partition/stop cycles")
	}
	checkLeaks(t)
	h := runLinearizability(t, linRun{seed: 17, cycles: 6, clients: 4, read: ""})
	checkHistory(t, h, porcupine.Illegal)
}
