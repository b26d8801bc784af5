package dashboard

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Health values an [Instance] may report, as the page colours them. They
// match the names of bulwark.Health.
const (
	HealthUp      = "up"      // serving: green
	HealthSuspect = "suspect" // routed away from, not yet removed: amber
	HealthEjected = "ejected" // out of rotation by outlier detection: orange
	HealthDown    = "down"    // gone: red
	HealthUnknown = "unknown" // not yet observed: grey
)

// Snapshot is everything the page shows at one moment, read from the
// components by a [Source]. Every section is optional: a node that runs only
// a gateway fills in Services and leaves Registry and Delivery nil.
type Snapshot struct {
	// Time is when the snapshot was taken; the dashboard sets it when the
	// Source leaves it zero.
	Time time.Time `json:"time"`
	// Services are the gateway's upstream pools (or the registry's
	// services), each with its instances.
	Services []Service `json:"services,omitempty"`
	// Registry is the registry's cluster view, when this node runs one or
	// reads one.
	Registry *Registry `json:"registry,omitempty"`
	// Delivery is the durable queue's state, when delivery runs here.
	Delivery *Delivery `json:"delivery,omitempty"`
	// Traffic is the demo traffic generator's state, when there is one.
	Traffic *TrafficState `json:"traffic,omitempty"`
	// Supervision is the process's supervision tree, when it has one.
	Supervision *TreeNode `json:"supervision,omitempty"`
	// Cluster is the gateway cluster that owns the virtual IP, when this
	// node is one of it or watches one.
	Cluster *Cluster `json:"cluster,omitempty"`
}

// Cluster is the gateway cluster that owns a virtual IP by Raft quorum
// (package cluster), as the nodes report it.
type Cluster struct {
	// VIP is the virtual IP address.
	VIP string `json:"vip"`
	// Owner is the node that answers for the VIP now, empty while none
	// does (between a crash and the next acquisition).
	Owner string `json:"owner"`
	// Leader is the cluster's Raft leader, empty while there is none.
	Leader string `json:"leader"`
	// Term is the highest Raft term a node reports.
	Term uint64 `json:"term"`
	// Epoch counts lease acquisitions since the cluster was founded;
	// Handovers is Epoch − 1 (every acquisition after the first moved
	// the VIP or gave it back).
	Epoch     uint64 `json:"epoch"`
	Handovers uint64 `json:"handovers"`
	// LeaseAgeSeconds is, on the owner, the time since its last committed
	// renewal was proposed; HeldSeconds how long it has held the VIP.
	LeaseAgeSeconds float64 `json:"lease_age_seconds"`
	HeldSeconds     float64 `json:"held_seconds"`
	// Nodes are the members, each as it reports itself.
	Nodes []ClusterNode `json:"nodes"`
}

// ClusterNode is one gateway of the cluster.
type ClusterNode struct {
	ID      string `json:"id"`
	Address string `json:"address,omitempty"`
	// State is leader, follower, candidate, or down (not answering).
	State string `json:"state"`
	// Holding is true while the node answers for the VIP.
	Holding bool `json:"holding,omitempty"`
	// Fault is the chaos fault applied to it ("partition"), if any.
	Fault string `json:"fault,omitempty"`
	// Error says why a down node's status could not be read.
	Error string `json:"error,omitempty"`
}

// TreeNode is one node of a supervision tree: a supervisor with Children,
// or a supervised worker.
type TreeNode struct {
	Name       string `json:"name"`
	Supervisor bool   `json:"supervisor,omitempty"`
	// Strategy is a supervisor's restart strategy (one-for-one, ...).
	Strategy string `json:"strategy,omitempty"`
	// Restart is the node's policy in its parent: permanent, transient or
	// temporary.
	Restart string `json:"restart,omitempty"`
	// State is running, backoff, stopped, exited, failed, gave-up,
	// stopping or idle.
	State string `json:"state"`
	// Restarts counts the node's restarts by its supervisor.
	Restarts int `json:"restarts"`
	// LastFailure is the last failure's reason, LastFailureAt its time.
	LastFailure   string     `json:"last_failure,omitempty"`
	LastFailureAt time.Time  `json:"last_failure_at,omitzero"`
	Children      []TreeNode `json:"children,omitempty"`
}

// Service is one service (an upstream pool) and its instances.
type Service struct {
	Name string `json:"name"`
	// Balance names the balancing policy, e.g. "p2c-ewma" (optional).
	Balance   string     `json:"balance,omitempty"`
	Instances []Instance `json:"instances"`
	// TLS is true when the gateway reaches the instances over mutual TLS.
	TLS bool `json:"tls,omitempty"`
}

// Instance is one replica as the gateway and the registry see it.
type Instance struct {
	ID      string `json:"id"`
	Address string `json:"address,omitempty"`
	// Health is one of the Health* constants; anything else shows as
	// unknown.
	Health string `json:"health"`
	// Breaker is the endpoint breaker's state: closed, open, half_open,
	// disabled (optional).
	Breaker string `json:"breaker,omitempty"`
	// EWMAms is the peak-EWMA latency in milliseconds.
	EWMAms   float64 `json:"ewma_ms"`
	InFlight int64   `json:"inflight"`
	Requests uint64  `json:"requests"`
	Failures uint64  `json:"failures"`
	// Fault is the chaos fault applied to the instance ("slow", "corrupt",
	// "partition"), empty when none.
	Fault string `json:"fault,omitempty"`
}

// Registry is the registry cluster as one node sees it.
type Registry struct {
	// Leader is the current leader's ID, empty while there is none.
	Leader string `json:"leader"`
	Nodes  []Node `json:"nodes,omitempty"`
	// Index is the last applied Raft index.
	Index uint64 `json:"index"`
	// Stale is true when the view comes from a last-known-good cache
	// rather than a live leader.
	Stale bool `json:"stale,omitempty"`
	// TLS is true when the nodes' API and Raft run over mutual TLS.
	TLS bool `json:"tls,omitempty"`
}

// Node is one registry node.
type Node struct {
	ID      string `json:"id"`
	Address string `json:"address,omitempty"`
	// State is leader, follower, candidate or down.
	State string `json:"state"`
}

// Delivery is the durable asynchronous path's state.
type Delivery struct {
	Queued      int64 `json:"queued"`
	InFlight    int64 `json:"inflight"`
	Delivered   int64 `json:"delivered"`
	DeadLetters int64 `json:"dead_letters"`
	// OldestAgeSeconds is the age of the oldest undelivered message.
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
}

// TrafficState is the demo traffic generator's state.
type TrafficState struct {
	// Generator is true while the generator sends requests.
	Generator bool `json:"generator"`
	// Rate is its target rate in requests per second (optional).
	Rate float64 `json:"rate,omitempty"`
}

// Source provides snapshots of the components. cmd/bulwark implements it
// by adapting the gateway, registry and delivery. Snapshot may be called
// concurrently and should return quickly; the dashboard bounds each call
// with a deadline of one sampling interval.
type Source interface {
	Snapshot(ctx context.Context) (Snapshot, error)
}

// SourceFunc adapts a function to [Source].
type SourceFunc func(ctx context.Context) (Snapshot, error)

// Snapshot calls f.
func (f SourceFunc) Snapshot(ctx context.Context) (Snapshot, error) { return f(ctx) }

// Fault is a chaos fault the demo applies to one instance.
type Fault string

// The faults [Controls.SetFault] accepts.
const (
	FaultOK        Fault = "ok"        // remove any fault
	FaultSlow      Fault = "slow"      // add latency
	FaultCorrupt   Fault = "corrupt"   // corrupt response bodies (the digest check catches it)
	FaultLie       Fault = "lie"       // wrong data with a valid digest (only voting catches it)
	FaultPartition Fault = "partition" // drop traffic to the instance
)

// ParseFault parses a fault name.
func ParseFault(s string) (Fault, error) {
	switch f := Fault(s); f {
	case FaultOK, FaultSlow, FaultCorrupt, FaultLie, FaultPartition:
		return f, nil
	}
	return "", fmt.Errorf("%w %q: want one of ok, slow, corrupt, lie, partition", ErrBadFault, s)
}

// Controls are the demo's chaos actions. They are optional: with nil
// Controls the page shows no buttons and the POST endpoints answer 501.
// Methods are called from HTTP handlers, possibly concurrently. An unknown
// id must yield an error wrapping [ErrNotFound] (the API answers 404); an
// action a node cannot perform may return one wrapping
// errors.ErrUnsupported (501).
type Controls interface {
	// Kill stops the instance abruptly (SIGKILL for a process).
	Kill(ctx context.Context, id string) error
	// Restart starts a killed instance again.
	Restart(ctx context.Context, id string) error
	// SetFault applies a fault to the instance; FaultOK removes it.
	SetFault(ctx context.Context, id string, f Fault) error
	// SetTraffic turns the demo traffic generator on or off.
	SetTraffic(ctx context.Context, on bool) error
}

// Stopper is an optional part of [Controls]: stopping an instance and
// keeping it down (its supervisor does not restart it) until Restart.
// Without it POST /api/instances/{id}/stop answers 501.
type Stopper interface {
	Stop(ctx context.Context, id string) error
}

// Errors that callers and Controls implementations branch on.
var (
	// ErrNotFound means no instance has the given id.
	ErrNotFound = errors.New("dashboard: no such instance")
	// ErrBadFault means a fault name is not one of ok, slow, corrupt,
	// lie, partition.
	ErrBadFault = errors.New("dashboard: unknown fault")
	// ErrNoControls means the dashboard was built without Controls.
	ErrNoControls = errors.New("dashboard: chaos controls are not enabled on this node")
	// ErrClosed means the dashboard was closed.
	ErrClosed = errors.New("dashboard: closed")
)
