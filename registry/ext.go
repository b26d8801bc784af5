package registry

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/hashicorp/raft"
)

// This file is the Node's surface for API translations (registry/consulapi,
// registry/eureka; see Config.Mount). Writes go through the same Raft
// commands and lease table as the node's own API; reads come from this
// node's catalog, like GET /v1/services/{s}.

// OnLeader wraps a mutating handler of a translated API: on the leader it
// runs h; on a follower it reverse-proxies the request unchanged to the
// leader (which serves the same mounted paths), as the node's own writes
// are. It does no authentication: the translation checks its own token
// header first (see CheckToken).
func (n *Node) OnLeader(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
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

// CheckToken reports whether token grants writes: always when the node has
// no Config.Token, otherwise when it matches (constant time).
func (n *Node) CheckToken(token string) bool {
	if n.cfg.Token == "" {
		return true
	}
	return subtle.ConstantTimeCompare([]byte(token), []byte(n.cfg.Token)) == 1
}

// HTTPStatus maps an error from the Node's methods to an HTTP status code,
// the same table the node's own API uses.
func HTTPStatus(err error) int { return statusOf(err) }

// RegisterInstance validates and commits a registration (leader only) and
// starts its lease. health is the initial state: bulwark.HealthSuspect
// registers the instance not routable until its first renewal (a Consul
// check registered critical); anything else registers it up.
func (n *Node) RegisterInstance(req RegisterRequest, health bulwark.Health) (InstanceInfo, error) {
	if err := validateRegister(&req, n.cfg.MinTTL, n.cfg.MaxTTL, n.cfg.DefaultTTL); err != nil {
		return InstanceInfo{}, err
	}
	c := &command{Op: opRegister, Service: req.Service, ID: req.ID, Address: req.Address,
		Metadata: req.Metadata, HealthURL: req.HealthURL, TTL: req.TTL}
	if health == bulwark.HealthSuspect {
		c.Health = health
	}
	res, err := n.apply(c)
	if err != nil {
		return InstanceInfo{}, err
	}
	n.leases.renew(leaseKey{req.Service, req.ID}, res.info.RegisterIndex, time.Now(), time.Duration(req.TTL))
	return res.info, nil
}

// RenewInstance renews a lease (leader only). With keepState it only moves
// the deadline; otherwise a suspect instance is committed back to up, as
// our own renew endpoint does.
func (n *Node) RenewInstance(service, id string, keepState bool) (InstanceInfo, uint64, error) {
	if !keepState {
		return n.renew(service, id)
	}
	if !n.leaseReady.Load() {
		return InstanceInfo{}, 0, fmt.Errorf("%w: leader still catching up", ErrNotLeader)
	}
	info, ok := n.fsm.lookup(service, id)
	if !ok {
		return InstanceInfo{}, 0, fmt.Errorf("%w: %s/%s", ErrNotFound, service, id)
	}
	n.leases.renew(leaseKey{service, id}, info.RegisterIndex, time.Now(), time.Duration(info.TTL))
	return info, n.fsm.index(), nil
}

// SetInstanceHealth commits a state change of the current incarnation
// (leader only): bulwark.HealthSuspect takes it out of routing without
// removing it (a failing Consul check); bulwark.HealthUp puts it back. The
// lease keeps running either way.
func (n *Node) SetInstanceHealth(service, id string, h bulwark.Health) (InstanceInfo, uint64, error) {
	if h != bulwark.HealthSuspect && h != bulwark.HealthUp {
		return InstanceInfo{}, 0, fmt.Errorf("%w: health %v: want up or suspect", ErrInvalid, h)
	}
	info, ok := n.fsm.lookup(service, id)
	if !ok {
		return InstanceInfo{}, 0, fmt.Errorf("%w: %s/%s", ErrNotFound, service, id)
	}
	res, err := n.apply(&command{Op: opHealth, Service: service, ID: id, Health: h, RegisterIndex: info.RegisterIndex})
	if err != nil {
		return InstanceInfo{}, 0, err
	}
	if !res.changed {
		return info, res.index, nil
	}
	return res.info, res.index, nil
}

// DeregisterInstance removes an instance (leader only). It returns
// ErrNotFound when there was none.
func (n *Node) DeregisterInstance(service, id string) (uint64, error) {
	res, err := n.apply(&command{Op: opDeregister, Service: service, ID: id})
	if err != nil {
		return 0, err
	}
	if !res.changed {
		return res.index, fmt.Errorf("%w: %s/%s", ErrNotFound, service, id)
	}
	return res.index, nil
}

// Service returns one service from this node's catalog.
func (n *Node) Service(service string) ServiceResponse {
	return n.serviceResponse(service, n.fsm.service(service))
}

// WaitService is a blocking query on this node's catalog: it returns the
// service once its index passes index, when wait elapses, or at once when
// this node is stale. ok is false when ctx or the node ended first.
func (n *Node) WaitService(ctx context.Context, service string, index uint64, wait time.Duration) (ServiceResponse, bool) {
	v, ok := n.waitService(ctx, service, index, wait, true)
	if !ok {
		return ServiceResponse{}, false
	}
	return n.serviceResponse(service, v), true
}

// Services returns every service name with its instance count.
func (n *Node) Services() ServicesResponse {
	svcs, index := n.fsm.services()
	return ServicesResponse{Index: index, Stale: n.stale(), Services: svcs}
}

// Catalog returns every instance of every service, sorted by service and
// ID, and the catalog index, from one consistent read.
func (n *Node) Catalog() ([]InstanceInfo, uint64) {
	f := n.fsm
	f.mu.RLock()
	out := make([]InstanceInfo, 0, 64)
	for _, svc := range f.cat.Services {
		for _, inst := range svc {
			out = append(out, inst.clone())
		}
	}
	index := max(1, f.cat.Index)
	f.mu.RUnlock()
	slices.SortFunc(out, func(a, b InstanceInfo) int {
		if c := strings.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, index
}

// FindInstance returns the instances with this ID in any service (Consul's
// agent endpoints name a service instance by ID alone). It costs one map
// lookup per service.
func (n *Node) FindInstance(id string) []InstanceInfo {
	f := n.fsm
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []InstanceInfo
	for _, svc := range f.cat.Services {
		if inst := svc[id]; inst != nil {
			out = append(out, inst.clone())
		}
	}
	return out
}

// FindInstanceFunc returns the first instance for which match is true,
// scanning the whole catalog under its read lock (a fallback for lookups
// by a translated key, e.g. a custom Consul check ID). match must not call
// back into the Node.
func (n *Node) FindInstanceFunc(match func(*InstanceInfo) bool) (InstanceInfo, bool) {
	f := n.fsm
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, svc := range f.cat.Services {
		for _, inst := range svc {
			if match(inst) {
				return inst.clone(), true
			}
		}
	}
	return InstanceInfo{}, false
}

// Stale reports whether this node's reads may be out of date (it has not
// heard from a leader within two heartbeat timeouts).
func (n *Node) Stale() bool { return n.stale() }

// LastContact is the time since this node last heard from the leader (0
// on the leader, -1 when it never has).
func (n *Node) LastContact() time.Duration {
	if n.raft.State() == raft.Leader {
		return 0
	}
	lc := n.raft.LastContact()
	if lc.IsZero() {
		return -1
	}
	return time.Since(lc)
}
