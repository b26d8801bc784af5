package registry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/bulwark-go/bulwark"
)

// maxBatch is the most renewals one POST /v1/renew may carry. 10,000
// entries of ~60 bytes stay well under maxBatchBytes. maxRegisterBatch is
// the most registrations one POST /v1/register may carry: they become one
// Raft entry, which every follower must receive and fsync.
const (
	maxBatch         = 10000
	maxRegisterBatch = 1000
	maxBatchBytes    = 2 << 20
)

// InstanceKey names one instance in a batch.
type InstanceKey struct {
	Service string `json:"service"`
	ID      string `json:"id"`
}

// RenewBatchRequest is the body of POST /v1/renew: many renewals in one
// request, for a process (a sidecar, an agent, a load generator) that holds
// the leases of many instances.
type RenewBatchRequest struct {
	Instances []InstanceKey `json:"instances"`
}

// RenewBatchResponse answers POST /v1/renew. Missing lists the instances
// the catalog does not hold (expired or never registered): their owner must
// register them again.
type RenewBatchResponse struct {
	Index   uint64        `json:"index"`
	Renewed int           `json:"renewed"`
	Missing []InstanceKey `json:"missing,omitempty"`
}

// decodeRenewBatch parses and validates a batch renewal.
func decodeRenewBatch(body []byte) (RenewBatchRequest, error) { return decodeRenewBatchInto(body, nil) }

// decodeRenewBatchInto is decodeRenewBatch appending the instances to dst
// (a reused slice) when the fast path takes the body.
func decodeRenewBatchInto(body []byte, dst []InstanceKey) (RenewBatchRequest, error) {
	var req RenewBatchRequest
	if len(body) > maxBatchBytes {
		return req, &FieldError{Field: "body", Msg: fmt.Sprintf("larger than %d bytes", maxBatchBytes)}
	}
	if dst == nil {
		dst = make([]InstanceKey, 0, min(maxBatch, len(body)/24))
	}
	if keys, ok := parseRenewBatchFast(body, dst[:0]); ok {
		req.Instances = keys // every name already checked
		if len(keys) > maxBatch {
			return req, &FieldError{Field: "instances", Msg: fmt.Sprintf("%d entries, at most %d", len(keys), maxBatch)}
		}
		return req, nil
	}
	if err := decodeStrictN(bytes.NewReader(body), &req, maxBatchBytes); err != nil {
		return req, err
	}
	if len(req.Instances) > maxBatch {
		return req, &FieldError{Field: "instances", Msg: fmt.Sprintf("%d entries, at most %d", len(req.Instances), maxBatch)}
	}
	for i, k := range req.Instances {
		if !validName(k.Service) {
			return req, &FieldError{Field: fmt.Sprintf("instances[%d].service", i), Msg: fmt.Sprintf("%q: %s", k.Service, fieldInvalidFn)}
		}
		if !validName(k.ID) {
			return req, &FieldError{Field: fmt.Sprintf("instances[%d].id", i), Msg: fmt.Sprintf("%q: %s", k.ID, fieldInvalidFn)}
		}
	}
	return req, nil
}

// renewScratch is what one batch renewal needs besides its answer: the
// body, the decoded keys and the catalog hits. Nodes keep them in a pool,
// so that at 100 batches/s the leader does not allocate ~250 KB per batch
// (a garbage collection every ~2 s at 100,000 instances, each with a
// stop-the-world pause that a busy machine stretches to 100 ms or more).
type renewScratch struct {
	body bytes.Buffer
	keys []InstanceKey
	hits []renewHit
}

// renewHit is one renewal that found its instance in the catalog.
type renewHit struct {
	k             leaseKey
	registerIndex uint64
	ttl           time.Duration
	suspect       bool
}

func (n *Node) handleRenewBatch(w http.ResponseWriter, r *http.Request) {
	var tm renewTiming
	tm.start = time.Now()
	sc, _ := n.renewBufs.Get().(*renewScratch)
	if sc == nil {
		sc = new(renewScratch)
	}
	defer func() {
		sc.body.Reset()
		clear(sc.keys) // drop the strings, keep the arrays
		clear(sc.hits)
		sc.keys, sc.hits = sc.keys[:0], sc.hits[:0]
		n.renewBufs.Put(sc)
	}()
	if _, err := sc.body.ReadFrom(io.LimitReader(r.Body, maxBatchBytes+1)); err != nil {
		n.writeError(w, &FieldError{Field: "body", Msg: err.Error()})
		return
	}
	tm.read = time.Now()
	req, err := decodeRenewBatchInto(sc.body.Bytes(), sc.keys)
	if err != nil {
		n.writeError(w, err)
		return
	}
	sc.keys = req.Instances // reused by the next batch (cleared first)
	tm.decode = time.Now()
	res, err := n.renewBatchInto(req.Instances, &tm, sc)
	if err != nil {
		n.writeError(w, err)
		return
	}
	w.Header().Set("Server-Timing", tm.header())
	n.writeJSON(w, http.StatusOK, res.Index, res)
}

// renewTiming records where a batch renewal spent its time on the leader;
// it answers in a Server-Timing header (W3C Server Timing), so a client
// or benchmark can split its own latency into network and scheduling
// delay (the rest) and the leader's work. The stamps cost one clock read
// each, about 40 ns.
type renewTiming struct {
	start, read, decode    time.Time // handler entered, body read, decoded
	catLocked, catalog     time.Time // catalog read lock held, lookups done
	leaseLocked, leaseDone time.Time // lease table read lock held, deadlines stored
}

// header formats the stages in milliseconds.
func (tm *renewTiming) header() string {
	ms := func(a, b time.Time) string {
		if a.IsZero() || b.IsZero() {
			return "0"
		}
		return strconv.FormatFloat(float64(b.Sub(a))/1e6, 'f', 3, 64)
	}
	return "read;dur=" + ms(tm.start, tm.read) +
		", decode;dur=" + ms(tm.read, tm.decode) +
		", catalog-wait;dur=" + ms(tm.decode, tm.catLocked) +
		", catalog;dur=" + ms(tm.catLocked, tm.catalog) +
		", lease-wait;dur=" + ms(tm.catalog, tm.leaseLocked) +
		", lease;dur=" + ms(tm.leaseLocked, tm.leaseDone) +
		", total;dur=" + ms(tm.start, tm.leaseDone)
}

// renewBatch renews many leases with one catalog read lock and one lease
// table read lock (renewals of known incarnations only store a deadline),
// then commits the (rare) suspect instances back to up one by one. tm may
// be nil.
func (n *Node) renewBatch(keys []InstanceKey, tm *renewTiming) (RenewBatchResponse, error) {
	return n.renewBatchInto(keys, tm, nil)
}

// renewBatchInto is renewBatch with reusable scratch space (nil: none).
func (n *Node) renewBatchInto(keys []InstanceKey, tm *renewTiming, sc *renewScratch) (RenewBatchResponse, error) {
	if !n.leaseReady.Load() {
		return RenewBatchResponse{}, fmt.Errorf("%w: leader still catching up", ErrNotLeader)
	}
	if tm == nil {
		tm = new(renewTiming)
	}
	type hit = renewHit
	var hits []hit
	if sc != nil && cap(sc.hits) >= len(keys) {
		hits = sc.hits[:0]
	} else {
		hits = make([]hit, 0, len(keys))
	}
	if sc != nil {
		defer func() { sc.hits = hits }() // reused by the next batch (cleared first)
	}
	var res RenewBatchResponse
	n.fsm.mu.RLock()
	tm.catLocked = time.Now()
	for _, k := range keys {
		inst := n.fsm.cat.Services[k.Service][k.ID]
		if inst == nil {
			res.Missing = append(res.Missing, k)
			continue
		}
		// The catalog's strings, not the request's: a lease added below
		// keeps its key for as long as the instance lives.
		hits = append(hits, hit{leaseKey{inst.Service, inst.ID}, inst.RegisterIndex, time.Duration(inst.TTL), inst.Health != bulwark.HealthUp})
	}
	res.Index = max(1, n.fsm.cat.Index)
	n.fsm.mu.RUnlock()

	now := time.Now()
	tm.catalog = now
	t := n.leases
	var slow []hit
	t.mu.RLock()
	tm.leaseLocked = time.Now()
	var svc map[string]*lease
	var svcName string
	for i, h := range hits {
		if i == 0 || h.k.service != svcName {
			svc, svcName = t.leases[h.k.service], h.k.service
		}
		if !renewIn(svc, h.k.id, h.registerIndex, t.mono(now.Add(h.ttl))) {
			slow = append(slow, h)
		}
	}
	t.mu.RUnlock()
	if len(slow) > 0 { // first renewals after a registration raced the lease loop, or a reset
		t.mu.Lock()
		t.wmu.Lock()
		for _, h := range slow {
			t.renewLocked(h.k, h.registerIndex, t.mono(now.Add(h.ttl)))
		}
		t.wmu.Unlock()
		t.mu.Unlock()
	}
	tm.leaseDone = time.Now()
	res.Renewed = len(hits)

	for _, h := range hits {
		if !h.suspect {
			continue
		}
		ar, err := n.apply(&command{Op: opHealth, Service: h.k.service, ID: h.k.id, Health: bulwark.HealthUp, RegisterIndex: h.registerIndex})
		if err != nil {
			return res, err
		}
		res.Index = max(res.Index, ar.index)
	}
	return res, nil
}

// RegisterBatchRequest is the body of POST /v1/register: many
// registrations committed as one Raft entry, for a process (an agent, a
// sidecar, a platform's controller) that registers many instances at once.
type RegisterBatchRequest struct {
	Instances []RegisterRequest `json:"instances"`
}

// RegisterBatchResponse answers POST /v1/register: the Raft index of the
// entry, which is every registered instance's register_index.
type RegisterBatchResponse struct {
	Index      uint64 `json:"index"`
	Registered int    `json:"registered"`
}

// decodeRegisterBatch parses and validates a batch registration: each
// entry as PUT /v1/instances checks it, at most maxRegisterBatch of them,
// no instance twice. Errors name the entry (instances[3].address).
func decodeRegisterBatch(body []byte, minTTL, maxTTL, defTTL time.Duration) (RegisterBatchRequest, error) {
	var req RegisterBatchRequest
	if len(body) > maxBatchBytes {
		return req, &FieldError{Field: "body", Msg: fmt.Sprintf("larger than %d bytes", maxBatchBytes)}
	}
	if err := decodeStrictN(bytes.NewReader(body), &req, maxBatchBytes); err != nil {
		return req, err
	}
	switch {
	case len(req.Instances) == 0:
		return req, &FieldError{Field: "instances", Msg: "empty: want 1 or more registrations"}
	case len(req.Instances) > maxRegisterBatch:
		return req, &FieldError{Field: "instances", Msg: fmt.Sprintf("%d entries, at most %d", len(req.Instances), maxRegisterBatch)}
	}
	seen := make(map[InstanceKey]int, len(req.Instances))
	for i := range req.Instances {
		r := &req.Instances[i]
		if err := validateRegister(r, minTTL, maxTTL, defTTL); err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				return req, &FieldError{Field: fmt.Sprintf("instances[%d].%s", i, fe.Field), Msg: fe.Msg}
			}
			return req, err
		}
		k := InstanceKey{r.Service, r.ID}
		if j, dup := seen[k]; dup {
			return req, &FieldError{Field: fmt.Sprintf("instances[%d]", i), Msg: fmt.Sprintf("%s/%s is also instances[%d]", r.Service, r.ID, j)}
		}
		seen[k] = i
	}
	return req, nil
}

func (n *Node) handleRegisterBatch(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBatchBytes+1))
	if err != nil {
		n.writeError(w, &FieldError{Field: "body", Msg: err.Error()})
		return
	}
	req, err := decodeRegisterBatch(body, n.cfg.MinTTL, n.cfg.MaxTTL, n.cfg.DefaultTTL)
	if err != nil {
		n.writeError(w, err)
		return
	}
	res, err := n.registerBatch(req.Instances)
	if err != nil {
		n.writeError(w, err)
		return
	}
	n.writeJSON(w, http.StatusOK, res.Index, res)
}

// registerBatch commits many registrations as one Raft entry and starts
// their leases.
func (n *Node) registerBatch(reqs []RegisterRequest) (RegisterBatchResponse, error) {
	c := command{Op: opRegisterBatch, Batch: make([]command, len(reqs))}
	for i, r := range reqs {
		c.Batch[i] = command{Op: opRegister, Service: r.Service, ID: r.ID, Address: r.Address,
			Metadata: r.Metadata, HealthURL: r.HealthURL, TTL: r.TTL}
	}
	res, err := n.apply(&c)
	if err != nil {
		return RegisterBatchResponse{}, err
	}
	now := time.Now()
	t := n.leases
	t.mu.Lock()
	t.wmu.Lock()
	for _, r := range reqs {
		t.renewLocked(leaseKey{r.Service, r.ID}, res.index, t.mono(now.Add(time.Duration(r.TTL))))
	}
	t.wmu.Unlock()
	t.mu.Unlock()
	return RegisterBatchResponse{Index: res.index, Registered: len(reqs)}, nil
}
