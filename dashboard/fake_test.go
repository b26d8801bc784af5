package dashboard

import (
	"context"
	"fmt"
	"sync"
)

// fakeSystem is a Source and Controls over an in-memory set of instances:
// Kill marks an instance down, Restart up, SetFault records the fault.
type fakeSystem struct {
	mu      sync.Mutex
	inst    []Instance
	traffic bool
	calls   []string
	err     error // returned by Snapshot when set
	cluster Cluster
}

func newFakeSystem() *fakeSystem {
	return &fakeSystem{traffic: true, inst: []Instance{
		{ID: "api-1", Address: "http://127.0.0.1:9001", Health: HealthUp, Breaker: "closed", EWMAms: 4.2, InFlight: 2, Requests: 1520, Failures: 3},
		{ID: "api-2", Address: "http://127.0.0.1:9002", Health: HealthUp, Breaker: "closed", EWMAms: 5.1, InFlight: 1, Requests: 1498, Failures: 1},
		{ID: "api-3", Address: "http://127.0.0.1:9003", Health: HealthSuspect, Breaker: "half_open", EWMAms: 88, InFlight: 7, Requests: 1210, Failures: 95, Fault: "slow"},
	}, cluster: Cluster{VIP: "10.98.0.100", Owner: "g1", Leader: "g1", Term: 2, Epoch: 1, LeaseAgeSeconds: 0.04, HeldSeconds: 12, Nodes: []ClusterNode{
		{ID: "g1", Address: "10.98.0.11", State: "leader", Holding: true},
		{ID: "g2", Address: "10.98.0.12", State: "follower"},
		{ID: "g3", Address: "10.98.0.13", State: "follower"},
	}}}
}

// killGateway takes cluster node id down; the next node up takes the VIP
// (a new epoch and term), as the real cluster does after its lease.
func (f *fakeSystem) killGateway(id string) bool {
	c := &f.cluster
	idx := -1
	for i := range c.Nodes {
		if c.Nodes[i].ID == id {
			idx = i
		}
	}
	if idx < 0 {
		return false
	}
	n := &c.Nodes[idx]
	wasOwner := n.Holding
	n.State, n.Holding, n.Error = "down", false, "connection refused"
	if !wasOwner {
		return true
	}
	c.Owner, c.Leader = "", ""
	for i := range c.Nodes {
		if m := &c.Nodes[i]; m.State != "down" {
			m.State, m.Holding = "leader", true
			c.Owner, c.Leader = m.ID, m.ID
			c.Term++
			c.Epoch++
			c.Handovers = c.Epoch - 1
			c.HeldSeconds = 0.1
			break
		}
	}
	return true
}

func (f *fakeSystem) owner() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cluster.Owner
}

func (f *fakeSystem) Snapshot(ctx context.Context) (Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return Snapshot{}, f.err
	}
	cl := f.cluster
	cl.Nodes = append([]ClusterNode(nil), f.cluster.Nodes...)
	return Snapshot{
		Cluster:  &cl,
		Services: []Service{{Name: "api", Balance: "p2c-ewma", Instances: append([]Instance(nil), f.inst...)}},
		Registry: &Registry{Leader: "reg-1", Index: 4711, Nodes: []Node{
			{ID: "reg-1", Address: "127.0.0.1:7001", State: "leader"},
			{ID: "reg-2", Address: "127.0.0.1:7002", State: "follower"},
			{ID: "reg-3", Address: "127.0.0.1:7003", State: "follower"},
		}},
		Delivery: &Delivery{Queued: 12, InFlight: 3, Delivered: 9021, DeadLetters: 2, OldestAgeSeconds: 1.5},
		Traffic:  &TrafficState{Generator: f.traffic, Rate: 50},
		Supervision: &TreeNode{Name: "bulwark", Supervisor: true, Strategy: "one-for-one", State: "running", Children: []TreeNode{
			{Name: "gateway", Restart: "permanent", State: "running"},
			{Name: "fleet", Supervisor: true, Strategy: "one-for-one", State: "running", Children: []TreeNode{
				{Name: "api-3", Supervisor: true, Restart: "temporary", State: "gave-up", LastFailure: "supervise: too many restarts"},
			}},
		}},
	}, nil
}

func (f *fakeSystem) find(id string) (*Instance, error) {
	for i := range f.inst {
		if f.inst[i].ID == id {
			return &f.inst[i], nil
		}
	}
	return nil, fmt.Errorf("instance %q: %w", id, ErrNotFound)
}

func (f *fakeSystem) record(call string) { f.calls = append(f.calls, call) }

func (f *fakeSystem) Kill(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.killGateway(id) {
		f.record("kill " + id)
		return nil
	}
	in, err := f.find(id)
	if err != nil {
		return err
	}
	in.Health, in.Breaker, in.InFlight = HealthDown, "open", 0
	f.record("kill " + id)
	return nil
}

func (f *fakeSystem) Restart(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, err := f.find(id)
	if err != nil {
		return err
	}
	in.Health, in.Breaker = HealthUp, "closed"
	f.record("restart " + id)
	return nil
}

func (f *fakeSystem) Stop(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, err := f.find(id)
	if err != nil {
		return err
	}
	in.Health = HealthDown
	f.record("stop " + id)
	return nil
}

func (f *fakeSystem) SetFault(ctx context.Context, id string, fault Fault) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, err := f.find(id)
	if err != nil {
		return err
	}
	in.Fault = string(fault)
	if fault == FaultOK {
		in.Fault = ""
	}
	f.record("fault " + id + " " + string(fault))
	return nil
}

func (f *fakeSystem) SetTraffic(ctx context.Context, on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.traffic = on
	f.record(fmt.Sprint("traffic ", on))
	return nil
}

func (f *fakeSystem) health(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, err := f.find(id)
	if err != nil {
		return ""
	}
	return in.Health
}

func (f *fakeSystem) lastCall() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return ""
	}
	return f.calls[len(f.calls)-1]
}
