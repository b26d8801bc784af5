package supervise

import "time"

// Node is one node of a supervision tree as [Supervisor.Tree] reports it:
// a supervisor (with Children) or a worker.
type Node struct {
	Name string `json:"name"`
	// Supervisor is true for a supervisor node.
	Supervisor bool `json:"supervisor,omitempty"`
	// Strategy is a supervisor's strategy; Restart a child's policy.
	Strategy string `json:"strategy,omitempty"`
	Restart  string `json:"restart,omitempty"`
	// State is the node's State (for the root: running or idle).
	State State `json:"state"`
	// Restarts counts the node's restarts since its supervisor started.
	Restarts int `json:"restarts"`
	// LastFailure is the last failure's message, LastFailureAt its time.
	LastFailure   string    `json:"last_failure,omitempty"`
	LastFailureAt time.Time `json:"last_failure_at,omitzero"`
	Children      []Node    `json:"children,omitempty"`
}

// Tree returns a snapshot of the supervisor and, recursively, its
// children. Safe to call from any goroutine at any time.
func (s *Supervisor) Tree() Node {
	s.mu.Lock()
	n := Node{Name: s.cfg.Name, Supervisor: true, Strategy: s.cfg.Strategy.String(), State: StateIdle}
	if s.serving {
		n.State = StateRunning
	}
	kids := make([]Node, 0, len(s.children))
	subs := make([]*Supervisor, 0, len(s.children))
	for _, c := range s.children {
		k := Node{Name: c.spec.Name, Restart: c.spec.Restart.String(), State: c.state, Restarts: c.restarts, LastFailureAt: c.lastAt}
		if c.lastErr != nil {
			k.LastFailure = c.lastErr.Error()
		}
		kids = append(kids, k)
		subs = append(subs, nested(c.spec.Service))
	}
	s.mu.Unlock()
	// Children's own locks are taken after ours is released: no lock order
	// between levels.
	for i, sub := range subs {
		if sub == nil {
			continue
		}
		t := sub.Tree()
		kids[i].Supervisor, kids[i].Strategy, kids[i].Children = true, t.Strategy, t.Children
	}
	n.Children = kids
	return n
}
