package registry

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/bulwark-go/bulwark"
)

// maxBatch is the most renewals one POST /v1/renew may carry. 10,000
// entries of ~60 bytes stay well under maxBatchBytes.
const (
	maxBatch      = 10000
	maxBatchBytes = 2 << 20
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
func decodeRenewBatch(body []byte) (RenewBatchRequest, error) {
	var req RenewBatchRequest
	if len(body) > maxBatchBytes {
		return req, &FieldError{Field: "body", Msg: fmt.Sprintf("larger than %d bytes", maxBatchBytes)}
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

func (n *Node) handleRenewBatch(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBatchBytes+1))
	if err != nil {
		n.writeError(w, &FieldError{Field: "body", Msg: err.Error()})
		return
	}
	req, err := decodeRenewBatch(body)
	if err != nil {
		n.writeError(w, err)
		return
	}
	res, err := n.renewBatch(req.Instances)
	if err != nil {
		n.writeError(w, err)
		return
	}
	n.writeJSON(w, http.StatusOK, res.Index, res)
}

// renewBatch renews many leases with one catalog read lock and one lease
// table lock, then commits the (rare) suspect instances back to up one by
// one.
func (n *Node) renewBatch(keys []InstanceKey) (RenewBatchResponse, error) {
	if !n.leaseReady.Load() {
		return RenewBatchResponse{}, fmt.Errorf("%w: leader still catching up", ErrNotLeader)
	}
	type hit struct {
		k             leaseKey
		registerIndex uint64
		ttl           time.Duration
		suspect       bool
	}
	hits := make([]hit, 0, len(keys))
	var res RenewBatchResponse
	n.fsm.mu.RLock()
	for _, k := range keys {
		inst := n.fsm.cat.Services[k.Service][k.ID]
		if inst == nil {
			res.Missing = append(res.Missing, k)
			continue
		}
		hits = append(hits, hit{leaseKey{k.Service, k.ID}, inst.RegisterIndex, time.Duration(inst.TTL), inst.Health != bulwark.HealthUp})
	}
	res.Index = max(1, n.fsm.cat.Index)
	n.fsm.mu.RUnlock()

	now := time.Now()
	t := n.leases
	t.mu.Lock()
	for _, h := range hits {
		t.renewLocked(h.k, h.registerIndex, now.Add(h.ttl))
	}
	t.mu.Unlock()
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
