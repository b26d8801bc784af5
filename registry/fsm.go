package registry

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/hashicorp/raft"
)

// Duration is a time.Duration that travels in JSON as a Go duration
// string ("1s", "300ms").
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// InstanceInfo is an instance as the catalog holds it: the shared
// bulwark.Instance plus what the registry needs to manage its lease.
type InstanceInfo struct {
	bulwark.Instance
	// HealthURL is an optional URL a prober may check; the registry itself
	// only uses leases.
	HealthURL string `json:"health_url,omitempty"`
	// TTL is the lease duration: the instance must renew within it.
	TTL Duration `json:"ttl"`
	// RegisterIndex is the Raft index of the registration: it identifies
	// one incarnation, so a late expiry never removes a re-registration.
	RegisterIndex uint64 `json:"register_index"`
	// ModifyIndex is the Raft index of the last change to this instance.
	ModifyIndex uint64 `json:"modify_index"`
}

func (i *InstanceInfo) clone() InstanceInfo {
	c := *i
	c.Metadata = maps.Clone(i.Metadata)
	return c
}

// Operations carried by Raft log entries. Renewals are deliberately absent:
// they stay in the leader's memory (see lease.go).
const (
	opRegister   = "register"
	opDeregister = "deregister"
	opHealth     = "health" // set state of one incarnation (suspect, back to up)
	opExpire     = "expire" // remove one incarnation after its lease ran out
	opMember     = "member" // record a node's HTTP address
	// opRegisterBatch is many registrations in one entry (Batch holds
	// opRegister commands): POST /v1/register. Every node must know it
	// before a client uses it; an older node would skip the entry.
	opRegisterBatch = "register_batch"
)

// command is one Raft log entry, JSON-encoded.
type command struct {
	Op       string            `json:"op"`
	Service  string            `json:"service,omitempty"`
	ID       string            `json:"id,omitempty"`
	Address  string            `json:"address,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// HealthURL and TTL belong to register.
	HealthURL string   `json:"health_url,omitempty"`
	TTL       Duration `json:"ttl,omitempty"`
	// Health is the new state for opHealth.
	Health bulwark.Health `json:"health,omitzero"`
	// RegisterIndex guards opHealth and opExpire: they apply only to this
	// incarnation (0 = any).
	RegisterIndex uint64 `json:"register_index,omitempty"`
	// NodeID and HTTPAddr belong to opMember.
	NodeID   string `json:"node_id,omitempty"`
	HTTPAddr string `json:"http_addr,omitempty"`
	// Batch belongs to opRegisterBatch.
	Batch []command `json:"batch,omitempty"`
}

// applyResult is what fsm.Apply returns through raft's ApplyFuture.
type applyResult struct {
	index   uint64 // catalog index after the command
	changed bool   // whether the command changed anything
	info    InstanceInfo
}

// catalog is the replicated state; the snapshot is its JSON encoding.
type catalog struct {
	Services map[string]map[string]*InstanceInfo `json:"services"`
	// ServiceIndex is the Raft index of the last change per service. It
	// outlives the service's last instance so blocking queries on a now
	// empty service still see the removal.
	ServiceIndex map[string]uint64 `json:"service_index"`
	// Members maps node IDs to HTTP addresses (for write forwarding).
	Members map[string]string `json:"members"`
	// Index is the Raft index of the last change to anything.
	Index uint64 `json:"index"`
}

func newCatalog() catalog {
	return catalog{
		Services:     map[string]map[string]*InstanceInfo{},
		ServiceIndex: map[string]uint64{},
		Members:      map[string]string{},
	}
}

// fsm is the raft.FSM over the catalog. Raft calls Apply, Snapshot and
// Restore from its FSM goroutine; readers (HTTP handlers, the lease
// manager) take mu for reading. changed is closed and replaced on every
// change, waking blocking queries.
type fsm struct {
	mu      sync.RWMutex
	cat     catalog
	changed chan struct{}
}

func newFSM() *fsm { return &fsm{cat: newCatalog(), changed: make(chan struct{})} }

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	var c command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		// A corrupt entry cannot be skipped silently on one node only, but
		// every node decodes the same bytes, so all skip it alike.
		return fmt.Errorf("registry: decode log entry %d: %w", l.Index, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	res := f.cat.apply(&c, l.Index)
	if res.changed {
		close(f.changed)
		f.changed = make(chan struct{})
	}
	return res
}

// apply mutates the catalog; index is the command's Raft index.
func (cat *catalog) apply(c *command, index uint64) applyResult {
	touch := func(service string) {
		cat.ServiceIndex[service] = index
		cat.Index = index
	}
	svc := cat.Services[c.Service]
	switch c.Op {
	case opRegister:
		if svc == nil {
			svc = map[string]*InstanceInfo{}
			cat.Services[c.Service] = svc
		}
		// A registration may start suspect (a Consul check registered
		// critical, a Eureka instance STARTING); anything else starts up.
		health := bulwark.HealthUp
		if c.Health == bulwark.HealthSuspect {
			health = c.Health
		}
		info := &InstanceInfo{
			Instance: bulwark.Instance{Service: c.Service, ID: c.ID, Address: c.Address,
				Metadata: maps.Clone(c.Metadata), Health: health},
			HealthURL: c.HealthURL, TTL: c.TTL, RegisterIndex: index, ModifyIndex: index,
		}
		svc[c.ID] = info
		touch(c.Service)
		return applyResult{index: index, changed: true, info: info.clone()}
	case opDeregister, opExpire:
		inst := svc[c.ID]
		if inst == nil || (c.Op == opExpire && c.RegisterIndex != 0 && inst.RegisterIndex != c.RegisterIndex) {
			return applyResult{index: cat.Index}
		}
		delete(svc, c.ID)
		if len(svc) == 0 {
			delete(cat.Services, c.Service)
		}
		touch(c.Service)
		return applyResult{index: index, changed: true, info: inst.clone()}
	case opHealth:
		inst := svc[c.ID]
		if inst == nil || (c.RegisterIndex != 0 && inst.RegisterIndex != c.RegisterIndex) || inst.Health == c.Health {
			return applyResult{index: cat.Index}
		}
		inst.Health = c.Health
		inst.ModifyIndex = index
		touch(c.Service)
		return applyResult{index: index, changed: true, info: inst.clone()}
	case opRegisterBatch:
		// Every registration of the batch gets the entry's index as its
		// RegisterIndex: they are distinct instances (the decoder refuses
		// a repeated one), so each incarnation stays identified.
		for i := range c.Batch {
			if c.Batch[i].Op == opRegister {
				cat.apply(&c.Batch[i], index)
			}
		}
		if len(c.Batch) == 0 {
			return applyResult{index: cat.Index}
		}
		return applyResult{index: index, changed: true}
	case opMember:
		if cat.Members[c.NodeID] == c.HTTPAddr {
			return applyResult{index: cat.Index}
		}
		cat.Members[c.NodeID] = c.HTTPAddr
		cat.Index = index
		return applyResult{index: index, changed: true}
	}
	return applyResult{index: cat.Index}
}

// Snapshot implements raft.FSM. The catalog is encoded under the read lock
// so Persist does no work that races with Apply.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := json.Marshal(&f.cat)
	if err != nil {
		return nil, fmt.Errorf("registry: encode snapshot: %w", err)
	}
	return fsmSnapshot(b), nil
}

// Restore implements raft.FSM.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	cat := newCatalog()
	if err := json.NewDecoder(rc).Decode(&cat); err != nil {
		return fmt.Errorf("registry: decode snapshot: %w", err)
	}
	// JSON null maps decode to nil: make them usable again.
	if cat.Services == nil {
		cat.Services = map[string]map[string]*InstanceInfo{}
	}
	if cat.ServiceIndex == nil {
		cat.ServiceIndex = map[string]uint64{}
	}
	if cat.Members == nil {
		cat.Members = map[string]string{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cat = cat
	close(f.changed)
	f.changed = make(chan struct{})
	return nil
}

type fsmSnapshot []byte

// Persist implements raft.FSMSnapshot.
func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return fmt.Errorf("registry: write snapshot: %w", err)
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s fsmSnapshot) Release() {}

// serviceView is a consistent read of one service.
type serviceView struct {
	index     uint64
	instances []InstanceInfo
}

// service returns the instances of a service sorted by ID and the
// service's index (at least 1, so index=0 blocking queries return at once
// and a client never loops on 0).
func (f *fsm) service(name string) serviceView {
	f.mu.RLock()
	defer f.mu.RUnlock()
	v := serviceView{index: max(1, f.cat.ServiceIndex[name])}
	for _, inst := range f.cat.Services[name] {
		v.instances = append(v.instances, inst.clone())
	}
	slices.SortFunc(v.instances, func(a, b InstanceInfo) int { return strings.Compare(a.ID, b.ID) })
	return v
}

// serviceIndex returns a service's index and the channel closed at the
// next change, without copying instances: blocking queries wake on every
// catalog change and use this to go back to sleep cheaply when the change
// was to another service.
func (f *fsm) serviceIndex(name string) (uint64, <-chan struct{}) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return max(1, f.cat.ServiceIndex[name]), f.changed
}

// services returns every service name with its instance count, and the
// catalog index.
func (f *fsm) services() (map[string]int, uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[string]int, len(f.cat.Services))
	for name, svc := range f.cat.Services {
		out[name] = len(svc)
	}
	return out, max(1, f.cat.Index)
}

// lookup returns one instance.
func (f *fsm) lookup(service, id string) (InstanceInfo, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	inst := f.cat.Services[service][id]
	if inst == nil {
		return InstanceInfo{}, false
	}
	return inst.clone(), true
}

// catalogIndex returns the raw catalog index and the channel closed at the
// next change.
func (f *fsm) catalogIndex() (uint64, <-chan struct{}) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.cat.Index, f.changed
}

// index returns the catalog index.
func (f *fsm) index() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return max(1, f.cat.Index)
}

// member returns a node's HTTP address, if recorded.
func (f *fsm) member(id string) (string, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	a, ok := f.cat.Members[id]
	return a, ok
}

// leaseView is what the lease manager needs of one instance.
type leaseView struct {
	service, id   string
	health        bulwark.Health
	ttl           time.Duration
	registerIndex uint64
}

// leases lists every instance's lease-relevant fields.
func (f *fsm) leases(dst []leaseView) []leaseView {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, svc := range f.cat.Services {
		for _, inst := range svc {
			dst = append(dst, leaseView{inst.Service, inst.ID, inst.Health, time.Duration(inst.TTL), inst.RegisterIndex})
		}
	}
	return dst
}

// lookupLeases fills in the catalog view of each due lease, under one read
// lock.
func (f *fsm) lookupLeases(due []dueLease) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for i := range due {
		inst := f.cat.Services[due[i].key.service][due[i].key.id]
		if inst == nil {
			due[i].ok = false
			continue
		}
		due[i].view = leaseView{inst.Service, inst.ID, inst.Health, time.Duration(inst.TTL), inst.RegisterIndex}
		due[i].ok = true
	}
}
