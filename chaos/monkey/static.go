package monkey

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"syscall"

	"github.com/bulwark-go/bulwark"
)

// StaticVictim is one instance of a static list: a process to signal or a
// URL to POST to.
type StaticVictim struct {
	Service string
	ID      string
	// PID, if not 0, is killed with SIGKILL; it is healthy while it exists.
	PID int
	// KillURL, if set (and PID is 0), receives a POST; the instance is
	// taken as healthy until killed, and again after [StaticVictims.Revive].
	KillURL string
}

// StaticVictims is a fixed list of instances that satisfies [Victims], for
// running the monkey without a registry.
type StaticVictims struct {
	// List is the instances.
	List []StaticVictim
	// Client sends kill requests; nil uses http.DefaultClient.
	Client *http.Client

	mu     sync.Mutex // guards killed
	killed map[string]bool
}

func key(service, id string) string { return service + "\x00" + id }

// Instances implements [Victims].
func (s *StaticVictims) Instances(_ context.Context, service string) ([]bulwark.Instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []bulwark.Instance
	for _, v := range s.List {
		if v.Service != service {
			continue
		}
		h := bulwark.HealthUp
		if s.killed[key(v.Service, v.ID)] || (v.PID != 0 && !processAlive(v.PID)) {
			h = bulwark.HealthDown
		}
		out = append(out, bulwark.Instance{Service: v.Service, ID: v.ID, Health: h})
	}
	return out, nil
}

// processAlive reports whether a process exists (signal 0 probes it).
func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, os.ErrPermission)
}

// Kill implements [Victims].
func (s *StaticVictims) Kill(ctx context.Context, inst bulwark.Instance) error {
	var v *StaticVictim
	for i := range s.List {
		if s.List[i].Service == inst.Service && s.List[i].ID == inst.ID {
			v = &s.List[i]
		}
	}
	if v == nil {
		return fmt.Errorf("monkey: unknown instance %s/%s", inst.Service, inst.ID)
	}
	var err error
	switch {
	case v.PID != 0:
		var p *os.Process
		if p, err = os.FindProcess(v.PID); err == nil {
			err = p.Signal(os.Kill)
		}
	case v.KillURL != "":
		err = s.post(ctx, v.KillURL)
	default:
		err = errors.New("no pid or kill URL")
	}
	if err != nil {
		return fmt.Errorf("monkey: kill %s/%s: %w", inst.Service, inst.ID, err)
	}
	s.mu.Lock()
	if s.killed == nil {
		s.killed = map[string]bool{}
	}
	s.killed[key(v.Service, v.ID)] = true
	s.mu.Unlock()
	return nil
}

// Revive marks a killed URL instance healthy again (after its restart).
func (s *StaticVictims) Revive(service, id string) {
	s.mu.Lock()
	delete(s.killed, key(service, id))
	s.mu.Unlock()
}

func (s *StaticVictims) post(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return err
	}
	c := s.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("POST %s: status %d", url, resp.StatusCode)
	}
	return nil
}
