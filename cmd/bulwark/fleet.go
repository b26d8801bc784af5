package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
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
	"github.com/bulwark-go/bulwark/pki"
	"github.com/bulwark-go/bulwark/supervise"
)

// fleet runs the demo replicas of `bulwark up` as child processes of this
// binary (`bulwark demo`), so they can be killed for real, each under its
// own supervisor:
//
//	fleet (one-for-one)
//	└── demo-N (supervisor, temporary in fleet; ≤ 8 restarts in 30s, backoff 50ms doubling to 2s)
//	    └── process (permanent: restarted with backoff whenever it dies)
//
// A replica that dies (SIGKILL from the dashboard, a chaos monkey or a
// crash) is restarted on the same address, so the gateway's endpoint
// stays valid and its registration resumes. A crash loop exhausts its
// supervisor's intensity: the supervisor gives up and, being temporary,
// stays down and shows as gave-up. Stop keeps a replica down; Restart
// brings it back. Each child dies with its parent (Pdeathsig).
type fleet struct {
	exe      string
	registry string // host:port the replicas register with
	service  string
	logger   io.Writer
	sup      *supervise.Supervisor
	// intensity is each replica supervisor's config (replicaIntensity).
	intensity supervise.Config
	// tls, when set, makes each replica serve mTLS (and register over
	// it) with these files; client then carries the fleet's own
	// certificate to reach the replicas' fault switch.
	tls    *pki.Files
	client *http.Client

	mu       sync.Mutex
	replicas map[string]*replica
}

// replica is one demo child and its current process.
type replica struct {
	id    string
	seed  int
	addr  string // host:port; fixed after the first start
	url   string
	fault dashboard.Fault
	run   *procRun // nil while no process runs
	pid   int
}

// procRun is one process of a replica.
type procRun struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
}

// replicaIntensity is a replica supervisor's restart limit and backoff.
var replicaIntensity = supervise.Config{MaxRestarts: 8, Period: 30 * time.Second,
	Backoff: 50 * time.Millisecond, MaxBackoff: 2 * time.Second, BackoffReset: 500 * time.Millisecond, Shutdown: 3 * time.Second}

func newFleet(exe, registry, service string, logger io.Writer) *fleet {
	return &fleet{exe: exe, registry: registry, service: service, logger: logger, intensity: replicaIntensity, client: http.DefaultClient,
		sup:      supervise.New(supervise.Config{Name: "fleet", MaxRestarts: -1, Shutdown: 5 * time.Second}),
		replicas: map[string]*replica{}}
}

// Serve runs the fleet's supervisor. When ctx ends it first sends
// SIGTERM to every replica at once, so they deregister and exit in
// parallel, then lets the supervisor stop them in order (each already on
// its way out): the grace periods overlap instead of adding up.
func (f *fleet) Serve(ctx context.Context) error {
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
			f.terminateAll()
			cancel()
		case <-sctx.Done():
		}
	}()
	err := f.sup.Serve(sctx)
	cancel()
	<-stopped
	return err
}

// Unwrap returns the fleet's supervisor, so it nests in the tree.
func (f *fleet) Unwrap() *supervise.Supervisor { return f.sup }

func (f *fleet) terminateAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.replicas {
		if r.run != nil {
			r.run.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
}

// add declares replica id; it starts when the fleet's supervisor serves.
func (f *fleet) add(id string, seed int) error {
	r := &replica{id: id, seed: seed, addr: "127.0.0.1:0"}
	f.mu.Lock()
	f.replicas[id] = r
	f.mu.Unlock()
	cfg := f.intensity
	cfg.Name = id
	sub := supervise.New(cfg, supervise.Spec{Name: "process", Service: &replicaProcess{f: f, r: r}})
	return f.sup.Add(supervise.Spec{Name: id, Service: sub, Restart: supervise.Temporary, Shutdown: 5 * time.Second})
}

// useTLS makes the replicas serve (and register) under mTLS with
// replica's files, and the fleet reach them with client's.
func (f *fleet) useTLS(replica pki.Files, client *tls.Config) {
	f.tls = &replica
	f.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: client}}
}

var listenRE = regexp.MustCompile(`listening on (https?://(\S+))`)

// replicaProcess is the supervised child: one `bulwark demo` process per
// Serve.
type replicaProcess struct {
	f *fleet
	r *replica
}

// errReplicaExited is what a replica process's death is reported as.
var errReplicaExited = errors.New("replica process exited")

func (p *replicaProcess) Serve(ctx context.Context) error {
	f, r := p.f, p.r
	f.mu.Lock()
	addr := r.addr
	f.mu.Unlock()
	args := []string{"demo", "--id", r.id, "--seed", fmt.Sprint(r.seed),
		"--registry", f.registry, "--service", f.service, "--listen", addr}
	if f.tls != nil {
		args = append(args, "--tls-cert", f.tls.Cert, "--tls-key", f.tls.Key, "--tls-ca", f.tls.CA)
	}
	cmd := exec.Command(f.exe, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = f.logger
	lines := &firstLine{c: make(chan string, 1)}
	cmd.Stdout = lines
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting replica %s: %w", r.id, err)
	}
	run := &procRun{cmd: cmd, done: make(chan struct{})}
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(run.done) }()
	select {
	case line := <-lines.c:
		m := listenRE.FindStringSubmatch(line)
		if m == nil {
			cmd.Process.Kill()
			<-run.done
			return fmt.Errorf("replica %s said %q", r.id, line)
		}
		f.mu.Lock()
		r.url, r.addr, r.run, r.pid, r.fault = m[1], m[2], run, cmd.Process.Pid, ""
		f.mu.Unlock()
	case <-run.done:
		return fmt.Errorf("%w before listening: %s: %v", errReplicaExited, r.id, waitErr)
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-run.done
		return fmt.Errorf("replica %s did not start in 15s", r.id)
	case <-ctx.Done():
		cmd.Process.Kill()
		<-run.done
		return nil
	}
	defer func() {
		f.mu.Lock()
		r.run = nil
		f.mu.Unlock()
	}()
	select {
	case <-run.done:
		return fmt.Errorf("%w: %s (pid %d): %v", errReplicaExited, r.id, cmd.Process.Pid, waitErr)
	case <-ctx.Done():
	}
	// Stopping: SIGTERM lets it deregister; the supervisor's shutdown
	// timeout is the grace period, after which SIGKILL.
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-run.done:
	case <-time.After(f.intensity.Shutdown - 100*time.Millisecond):
		cmd.Process.Kill()
		<-run.done
	}
	return nil
}

// firstLine is a replica's stdout: it hands over the first line (the
// listening line) and discards the rest.
type firstLine struct {
	mu   sync.Mutex
	buf  []byte
	sent bool
	c    chan string
}

func (w *firstLine) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sent {
		return len(b), nil
	}
	w.buf = append(w.buf, b...)
	if i := bytes.IndexByte(w.buf, '\n'); i >= 0 {
		w.sent = true
		w.c <- string(w.buf[:i])
		w.buf = nil
	}
	return len(b), nil
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

// Kill SIGKILLs a replica's process and waits for it to die; its
// supervisor then restarts it.
func (f *fleet) Kill(ctx context.Context, id string) error {
	r, err := f.get(id)
	if err != nil {
		return err
	}
	f.mu.Lock()
	run := r.run
	f.mu.Unlock()
	if run == nil {
		return fmt.Errorf("replica %s is not running", id)
	}
	run.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-run.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop stops a replica (SIGTERM: it deregisters) and keeps it down.
func (f *fleet) Stop(ctx context.Context, id string) error {
	if _, err := f.get(id); err != nil {
		return err
	}
	return f.sup.StopChild(ctx, id)
}

// Restart stops a replica if it runs and starts it afresh, with a fresh
// restart budget (after a stop, or a crash loop its supervisor gave up
// on).
func (f *fleet) Restart(ctx context.Context, id string) error {
	if _, err := f.get(id); err != nil {
		return err
	}
	if err := f.sup.StopChild(ctx, id); err != nil {
		return err
	}
	return f.sup.StartChild(ctx, id)
}

// SetFault switches a replica's fault mode through its /_demo/fault.
func (f *fleet) SetFault(ctx context.Context, id string, fault dashboard.Fault) error {
	r, err := f.get(id)
	if err != nil {
		return err
	}
	f.mu.Lock()
	url, running := r.url, r.run != nil
	f.mu.Unlock()
	if !running {
		return fmt.Errorf("replica %s is not running", id)
	}
	body := map[string]any{"mode": string(fault)}
	switch fault {
	case dashboard.FaultSlow:
		body["delay"] = "300ms"
	case dashboard.FaultCorrupt, dashboard.FaultLie:
		body["rate"] = 0.3
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/_demo/fault", bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp, err := f.client.Do(req)
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

// replicaState is what the dashboard shows of a replica.
type replicaState struct {
	url   string
	fault dashboard.Fault
	down  bool // no process runs
}

// state reports each replica's address, fault and whether it is down.
func (f *fleet) state() map[string]replicaState {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]replicaState, len(f.replicas))
	for id, r := range f.replicas {
		out[id] = replicaState{url: r.url, fault: r.fault, down: r.run == nil}
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
