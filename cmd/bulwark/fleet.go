package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/bulwark-go/bulwark/dashboard"
)

// fleet runs the demo replicas of `bulwark up` as child processes of this
// binary (`bulwark demo`), so they can be killed for real. Each child dies
// with its parent (Pdeathsig), and stop waits for all of them.
type fleet struct {
	exe      string
	registry string // host:port the replicas register with
	service  string
	logger   io.Writer

	mu       sync.Mutex
	replicas map[string]*replica
	wg       sync.WaitGroup
}

// replica is one demo child.
type replica struct {
	id     string
	seed   int
	cmd    *exec.Cmd
	url    string
	fault  dashboard.Fault
	killed bool
	done   chan struct{}
}

var listenRE = regexp.MustCompile(`listening on (http://\S+)`)

// start launches replica id, waits for its listening line and returns it.
func (f *fleet) start(ctx context.Context, id string, seed int) (*replica, error) {
	cmd := exec.Command(f.exe, "demo", "--id", id, "--seed", fmt.Sprint(seed),
		"--registry", f.registry, "--service", f.service, "--listen", "127.0.0.1:0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = f.logger
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting replica %s: %w", id, err)
	}
	r := &replica{id: id, seed: seed, cmd: cmd, done: make(chan struct{})}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		cmd.Wait()
		close(r.done)
	}()
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case first <- sc.Text():
			default:
			}
		}
	}()
	select {
	case line := <-first:
		m := listenRE.FindStringSubmatch(line)
		if m == nil {
			cmd.Process.Kill()
			return nil, fmt.Errorf("replica %s said %q", id, line)
		}
		r.url = m[1]
	case <-r.done:
		return nil, fmt.Errorf("replica %s exited before listening", id)
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		return nil, fmt.Errorf("replica %s did not start in 15s", id)
	case <-ctx.Done():
		cmd.Process.Kill()
		return nil, ctx.Err()
	}
	f.mu.Lock()
	f.replicas[id] = r
	f.mu.Unlock()
	return r, nil
}

func (f *fleet) get(id string) (*replica, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.replicas[id]
	if r == nil {
		return nil, fmt.Errorf("%w: %q", dashboard.ErrNotFound, id)
	}
	return r, nil
}

// Kill SIGKILLs a replica: its renewals stop, its connections reset.
func (f *fleet) Kill(ctx context.Context, id string) error {
	r, err := f.get(id)
	if err != nil {
		return err
	}
	f.mu.Lock()
	r.killed = true
	f.mu.Unlock()
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
	return nil
}

// Restart starts a new process for a replica (killed or not).
func (f *fleet) Restart(ctx context.Context, id string) error {
	r, err := f.get(id)
	if err != nil {
		return err
	}
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
	if _, err := f.start(ctx, id, r.seed); err != nil {
		return err
	}
	return nil
}

// SetFault switches a replica's fault mode through its /_demo/fault.
func (f *fleet) SetFault(ctx context.Context, id string, fault dashboard.Fault) error {
	r, err := f.get(id)
	if err != nil {
		return err
	}
	body := map[string]any{"mode": string(fault)}
	switch fault {
	case dashboard.FaultSlow:
		body["delay"] = "300ms"
	case dashboard.FaultCorrupt, dashboard.FaultLie:
		body["rate"] = 0.3
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url+"/_demo/fault", bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("replica %s: %w", id, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("replica %s answered %s", id, resp.Status)
	}
	f.mu.Lock()
	r.fault = fault
	if fault == dashboard.FaultOK {
		r.fault = ""
	}
	f.mu.Unlock()
	return nil
}

// state reports, per replica id, whether it was killed and its fault.
func (f *fleet) state() map[string]replica {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]replica, len(f.replicas))
	for id, r := range f.replicas {
		out[id] = replica{id: id, url: r.url, fault: r.fault, killed: r.killed}
	}
	return out
}

func (f *fleet) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]string, 0, len(f.replicas))
	for id := range f.replicas {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// stop ends every replica: SIGTERM (they deregister), then SIGKILL after
// the grace period, and waits for all of them.
func (f *fleet) stop(grace time.Duration) {
	f.mu.Lock()
	for _, r := range f.replicas {
		r.cmd.Process.Signal(syscall.SIGTERM)
	}
	f.mu.Unlock()
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(grace):
	}
	f.mu.Lock()
	for _, r := range f.replicas {
		r.cmd.Process.Signal(syscall.SIGKILL)
	}
	f.mu.Unlock()
	<-done
}
