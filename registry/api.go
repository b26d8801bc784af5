package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/bulwark-go/bulwark/internal/writeauth"
)

// HTTP headers of the API.
const (
	// HeaderIndex carries the catalog index on every response (the
	// service's index on service reads, usable as ?index= of the next
	// blocking query).
	HeaderIndex = "X-Bulwark-Index"
	// HeaderStale is "true" when the answering node has lost contact with
	// the leader and its reads may be out of date.
	HeaderStale = "X-Bulwark-Stale"
	// headerForwarded marks a write a follower forwarded, so it is never
	// forwarded twice.
	headerForwarded = "X-Bulwark-Forwarded"
)

// ServiceResponse is the body of GET /v1/services/{service} and of each
// event of GET /v1/watch/{service}.
type ServiceResponse struct {
	Service   string         `json:"service"`
	Index     uint64         `json:"index"`
	Stale     bool           `json:"stale"`
	Instances []InstanceInfo `json:"instances"`
}

// ServicesResponse is the body of GET /v1/services.
type ServicesResponse struct {
	Index    uint64         `json:"index"`
	Stale    bool           `json:"stale"`
	Services map[string]int `json:"services"` // name → instance count
}

// WriteResponse is the body answering register, renew and deregister.
type WriteResponse struct {
	Index    uint64        `json:"index"`
	Instance *InstanceInfo `json:"instance,omitempty"`
}

// NodeStatus describes one member of the Raft configuration.
type NodeStatus struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr,omitempty"`
	Voter    bool   `json:"voter"`
}

// StatusResponse is the body of GET /v1/status.
type StatusResponse struct {
	NodeID      string       `json:"node_id"`
	State       string       `json:"state"` // Leader, Follower, Candidate, Shutdown
	LeaderID    string       `json:"leader_id"`
	LeaderHTTP  string       `json:"leader_http,omitempty"`
	Index       uint64       `json:"index"`
	Stale       bool         `json:"stale"`
	LastContact string       `json:"last_contact"` // time since the leader was last heard from
	Nodes       []NodeStatus `json:"nodes"`
}

// errorResponse is the body of every error.
type errorResponse struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// Handler returns the node's HTTP API. Open serves it on Config.HTTPAddr;
// it is exported so it can also be mounted elsewhere.
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/instances", n.write(n.handleRegister))
	mux.HandleFunc("PUT /v1/instances/{service}/{id}/renew", n.write(n.handleRenew))
	mux.HandleFunc("DELETE /v1/instances/{service}/{id}", n.write(n.handleDeregister))
	mux.HandleFunc("POST /v1/join", n.write(n.handleJoin))
	mux.HandleFunc("GET /v1/services", n.handleServices)
	mux.HandleFunc("GET /v1/services/{service}", n.handleService)
	mux.HandleFunc("GET /v1/watch/{service}", n.handleWatch)
	mux.HandleFunc("GET /v1/status", n.handleStatus)
	mux.HandleFunc("POST /v1/renew", n.write(n.handleRenewBatch))
	mux.HandleFunc("POST /v1/register", n.write(n.handleRegisterBatch))
	deny := func(w http.ResponseWriter, status int, msg string) {
		n.writeJSON(w, status, n.fsm.index(), errorResponse{Error: "registry: " + msg})
	}
	// Every write needs the token when one is set (401 without, 403 when
	// wrong), and browsers cannot send writes cross-origin.
	own := writeauth.Protect(mux, writeauth.Config{Token: n.cfg.Token, Realm: "bulwark-registry", Deny: deny})
	if n.cfg.Mount == nil {
		return own
	}
	// Mounted APIs (Consul's, Eureka's) take the token the way their
	// clients send it (X-Consul-Token, basic auth) and check it through
	// Node.CheckToken themselves; the cross-origin rule applies to them too.
	ext := http.NewServeMux()
	n.cfg.Mount(n, ext)
	mounted := writeauth.Protect(ext, writeauth.Config{Realm: "bulwark-registry", Deny: deny})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := ext.Handler(r); pattern != "" {
			mounted.ServeHTTP(w, r)
			return
		}
		own.ServeHTTP(w, r)
	})
}

// statusOf is the one table from errors to HTTP status codes.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrNotLeader), errors.Is(err, ErrClosed), errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, ErrDiskFull):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func (n *Node) writeJSON(w http.ResponseWriter, status int, index uint64, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(HeaderIndex, strconv.FormatUint(index, 10))
	if n.stale() {
		w.Header().Set(HeaderStale, "true")
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (n *Node) writeError(w http.ResponseWriter, err error) {
	body := errorResponse{Error: err.Error()}
	var fe *FieldError
	if errors.As(err, &fe) {
		body.Field = fe.Field
	}
	if errors.Is(err, ErrUnauthorized) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="bulwark-registry"`)
	}
	n.writeJSON(w, statusOf(err), n.fsm.index(), body)
}

// write wraps a mutating handler (already authenticated by Handler):
// either handle it here (leader) or forward it to the leader's HTTP
// address.
func (n *Node) write(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// A node whose own disk is full cannot take part in a write (the
		// leader appends, followers replicate): say so rather than fail
		// in Raft.
		if err := n.disk.Check(); err != nil {
			n.writeError(w, fmt.Errorf("%w: %w", ErrDiskFull, err))
			return
		}
		if n.raft.State() == raft.Leader {
			h(w, r)
			return
		}
		leader, ok := n.leaderHTTP()
		if !ok || r.Header.Get(headerForwarded) != "" || leader == n.httpAddr {
			n.writeError(w, fmt.Errorf("%w: no known leader to forward to", ErrNotLeader))
			return
		}
		n.forward(w, r, leader)
	}
}

// forward reverse-proxies a write to the leader.
func (n *Node) forward(w http.ResponseWriter, r *http.Request, leader string) {
	target := &url.URL{Scheme: n.scheme(), Host: leader}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set(headerForwarded, n.id)
		},
		Transport: n.fwd.Transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			n.writeError(w, fmt.Errorf("%w: forward to leader %s: %v", ErrNotLeader, leader, err))
		},
	}
	rp.ServeHTTP(w, r)
}

func (n *Node) handleRegister(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		n.writeError(w, &FieldError{Field: "body", Msg: err.Error()})
		return
	}
	req, err := decodeRegister(body, n.cfg.MinTTL, n.cfg.MaxTTL, n.cfg.DefaultTTL)
	if err != nil {
		n.writeError(w, err)
		return
	}
	res, err := n.register(req)
	if err != nil {
		n.writeError(w, err)
		return
	}
	n.writeJSON(w, http.StatusOK, res.index, WriteResponse{Index: res.index, Instance: &res.info})
}

// register commits a registration and starts its lease.
func (n *Node) register(req RegisterRequest) (applyResult, error) {
	res, err := n.apply(&command{Op: opRegister, Service: req.Service, ID: req.ID, Address: req.Address,
		Metadata: req.Metadata, HealthURL: req.HealthURL, TTL: req.TTL})
	if err != nil {
		return res, err
	}
	n.leases.renew(leaseKey{req.Service, req.ID}, res.info.RegisterIndex, time.Now(), time.Duration(req.TTL))
	return res, nil
}

func pathNames(r *http.Request) (service, id string, err error) {
	service, id = r.PathValue("service"), r.PathValue("id")
	if !validName(service) {
		return "", "", &FieldError{Field: "service", Msg: fmt.Sprintf("%q: %s", service, fieldInvalidFn)}
	}
	if id != "" && !validName(id) {
		return "", "", &FieldError{Field: "id", Msg: fmt.Sprintf("%q: %s", id, fieldInvalidFn)}
	}
	return service, id, nil
}

func (n *Node) handleRenew(w http.ResponseWriter, r *http.Request) {
	service, id, err := pathNames(r)
	if err != nil {
		n.writeError(w, err)
		return
	}
	info, index, err := n.renew(service, id)
	if err != nil {
		n.writeError(w, err)
		return
	}
	n.writeJSON(w, http.StatusOK, index, WriteResponse{Index: index, Instance: &info})
}

func (n *Node) handleDeregister(w http.ResponseWriter, r *http.Request) {
	service, id, err := pathNames(r)
	if err != nil {
		n.writeError(w, err)
		return
	}
	res, err := n.apply(&command{Op: opDeregister, Service: service, ID: id})
	if err != nil {
		n.writeError(w, err)
		return
	}
	if !res.changed {
		n.writeError(w, fmt.Errorf("%w: %s/%s", ErrNotFound, service, id))
		return
	}
	n.writeJSON(w, http.StatusOK, res.index, WriteResponse{Index: res.index})
}

func (n *Node) handleJoin(w http.ResponseWriter, r *http.Request) {
	var j joinRequest
	if err := decodeStrict(r.Body, &j); err != nil {
		n.writeError(w, err)
		return
	}
	switch {
	case !validName(j.ID):
		n.writeError(w, &FieldError{Field: "id", Msg: fieldInvalidFn})
		return
	case j.RaftAddr == "":
		n.writeError(w, &FieldError{Field: "raft_addr", Msg: "required"})
		return
	case j.HTTPAddr == "":
		n.writeError(w, &FieldError{Field: "http_addr", Msg: "required"})
		return
	}
	if err := n.addMember(j); err != nil {
		n.writeError(w, err)
		return
	}
	n.writeJSON(w, http.StatusOK, n.fsm.index(), struct{}{})
}

func (n *Node) handleServices(w http.ResponseWriter, r *http.Request) {
	if c, err := wantConsistent(r); err != nil {
		n.writeError(w, err)
		return
	} else if c && !n.consistent(w, r) {
		return
	}
	svcs, index := n.fsm.services()
	n.writeJSON(w, http.StatusOK, index, ServicesResponse{Index: index, Stale: n.stale(), Services: svcs})
}

// handleService answers a read, or a blocking query when ?index= is given:
// it waits until the service's index exceeds it or wait elapses.
func (n *Node) handleService(w http.ResponseWriter, r *http.Request) {
	service, _, err := pathNames(r)
	if err != nil {
		n.writeError(w, err)
		return
	}
	index, wait, err := blockingParams(r.URL.Query())
	if err != nil {
		n.writeError(w, err)
		return
	}
	minIndex, err := minIndexParam(r.URL.Query())
	if err != nil {
		n.writeError(w, err)
		return
	}
	if c, err := wantConsistent(r); err != nil {
		n.writeError(w, err)
		return
	} else if c && !n.consistent(w, r) {
		return
	}
	if !n.waitCatalog(r.Context(), minIndex, minIndexWait) {
		return
	}
	v, ok := n.waitService(r.Context(), service, index, wait, true)
	if !ok {
		return // client went away or node closing
	}
	n.writeJSON(w, http.StatusOK, v.index, n.serviceResponse(service, v))
}

func (n *Node) serviceResponse(service string, v serviceView) ServiceResponse {
	inst := v.instances
	if inst == nil {
		inst = []InstanceInfo{}
	}
	return ServiceResponse{Service: service, Index: v.index, Stale: n.stale(), Instances: inst}
}

// minIndexWait bounds how long a read waits for this node to apply a
// write its client has already seen acknowledged.
const minIndexWait = 2 * time.Second

// waitCatalog waits until the catalog index reaches min (read-your-writes
// for clients that pass ?min_index= with the index of their last write) or
// until wait elapses; then the read proceeds anyway. ok is false when ctx
// or the node ended first.
func (n *Node) waitCatalog(ctx context.Context, min uint64, wait time.Duration) bool {
	if min == 0 {
		return true
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		idx, changed := n.fsm.catalogIndex()
		if idx >= min {
			return true
		}
		select {
		case <-changed:
		case <-timer.C:
			return true
		case <-ctx.Done():
			return false
		case <-n.ctx.Done():
			return false
		}
	}
}

// waitService returns the service once its index passes index, or at the
// end of wait, or (with leaveOnStale) as soon as this node is stale. ok is
// false when ctx or the node ended first.
func (n *Node) waitService(ctx context.Context, service string, index uint64, wait time.Duration, leaveOnStale bool) (serviceView, bool) {
	cur, changed := n.fsm.serviceIndex(service)
	if cur > index || wait <= 0 || (leaveOnStale && n.stale()) {
		return n.fsm.service(service), true
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	// A node cut off from the leader would otherwise hold the query for
	// the whole wait with nothing to report; answering (marked stale) lets
	// the client move to a node that can see changes.
	var staleCheck <-chan time.Time
	if leaveOnStale {
		t := time.NewTicker(n.cfg.HeartbeatTimeout / 2)
		defer t.Stop()
		staleCheck = t.C
	}
	for cur <= index {
		select {
		case <-changed:
			cur, changed = n.fsm.serviceIndex(service)
		case <-staleCheck:
			if n.stale() {
				return n.fsm.service(service), true
			}
		case <-timer.C:
			return n.fsm.service(service), true
		case <-ctx.Done():
			return serviceView{}, false
		case <-n.ctx.Done():
			return serviceView{}, false
		}
	}
	return n.fsm.service(service), true
}

// handleWatch streams the service as Server-Sent Events: one "instances"
// event now and one per change, with a comment every 15 s to keep proxies
// from closing the stream.
func (n *Node) handleWatch(w http.ResponseWriter, r *http.Request) {
	service, _, err := pathNames(r)
	if err != nil {
		n.writeError(w, err)
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	v := n.fsm.service(service)
	w.Header().Set(HeaderIndex, strconv.FormatUint(v.index, 10))
	w.WriteHeader(http.StatusOK)
	var last uint64
	for {
		if v.index > last {
			b, _ := json.Marshal(n.serviceResponse(service, v))
			fmt.Fprintf(w, "id: %d\nevent: instances\ndata: %s\n\n", v.index, b)
			last = v.index
		} else {
			io.WriteString(w, ": keepalive\n\n")
		}
		if err := rc.Flush(); err != nil {
			return
		}
		var ok bool
		// SSE does not leave on stale (it would spin); each event carries
		// the stale flag as of its change.
		if v, ok = n.waitService(r.Context(), service, last, 15*time.Second, false); !ok {
			return
		}
	}
}

func (n *Node) handleStatus(w http.ResponseWriter, r *http.Request) {
	n.writeJSON(w, http.StatusOK, n.fsm.index(), n.Status())
}

// Status reports this node's view of the cluster.
func (n *Node) Status() StatusResponse {
	_, leaderID := n.raft.LeaderWithID()
	s := StatusResponse{NodeID: n.id, State: n.raft.State().String(), LeaderID: string(leaderID),
		Index: n.fsm.index(), Stale: n.stale(), LastContact: "never"}
	if a, ok := n.leaderHTTP(); ok {
		s.LeaderHTTP = a
	}
	if n.raft.State() == raft.Leader {
		s.LastContact = "0s"
	} else if lc := n.raft.LastContact(); !lc.IsZero() {
		s.LastContact = time.Since(lc).Round(time.Millisecond).String()
	}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			a, _ := n.fsm.member(string(srv.ID))
			s.Nodes = append(s.Nodes, NodeStatus{ID: string(srv.ID), RaftAddr: string(srv.Address), HTTPAddr: a, Voter: srv.Suffrage == raft.Voter})
		}
	}
	return s
}
