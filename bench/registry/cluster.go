package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bulwark-go/bulwark/registry"
)

// procs owns every child process the benchmark starts, so that one call
// (killAll) stops them whatever path the program leaves by. Each child
// gets its own process group so a signal reaches anything it forks.
type procs struct {
	mu   sync.Mutex
	cmds map[int]*proc
	wg   sync.WaitGroup
}

// proc is one started child; done closes once it has been reaped.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// exited reports whether the child has been reaped.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func newProcs() *procs { return &procs{cmds: map[int]*proc{}} }

// start runs bin with args, stdout and stderr to the given files (empty =
// discarded).
func (p *procs) start(bin string, args []string, stdoutPath, stderrPath string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if stdoutPath != "" {
		f, err := os.Create(stdoutPath)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		cmd.Stdout = f
	}
	if stderrPath != "" {
		f, err := os.Create(stderrPath)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		cmd.Stderr = f
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pr := &proc{cmd: cmd, done: make(chan struct{})}
	p.mu.Lock()
	p.cmds[cmd.Process.Pid] = pr
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_ = cmd.Wait()
		p.mu.Lock()
		delete(p.cmds, cmd.Process.Pid)
		p.mu.Unlock()
		close(pr.done)
	}()
	return pr, nil
}

// kill sends sig to one child's process group.
func (p *procs) kill(pr *proc, sig syscall.Signal) {
	_ = syscall.Kill(-pr.cmd.Process.Pid, sig)
}

// killAll stops every child still running: SIGTERM, then SIGKILL after a
// grace period, and waits for all of them to be reaped.
func (p *procs) killAll(grace time.Duration) {
	p.mu.Lock()
	for pid := range p.cmds {
		_ = syscall.Kill(-pid, syscall.SIGTERM)
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(grace):
	}
	p.mu.Lock()
	for pid := range p.cmds {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	p.mu.Unlock()
	<-done
}

// node is one registry process of the cluster.
type node struct {
	id, http, raft string
	proc           *proc
	stderr         string
}

// cluster is three `bulwark run` processes that bootstrap together.
type cluster struct {
	nodes []*node
	p     *procs
}

// freePort returns a loopback port nothing listens on right now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startCluster writes one config per node under dir and starts the nodes,
// each bootstrapping with the full peer list, then waits for a leader that
// every node knows.
func startCluster(ctx context.Context, p *procs, bin, dir string, n int, ttl, suspect time.Duration) (*cluster, error) {
	c := &cluster{p: p}
	for i := range n {
		h, err := freePort()
		if err != nil {
			return nil, err
		}
		r, err := freePort()
		if err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, &node{id: fmt.Sprintf("n%d", i), http: h, raft: r})
	}
	for i, nd := range c.nodes {
		var b strings.Builder
		fmt.Fprintf(&b, "registry:\n  node_id: %s\n  http: %q\n  raft: %q\n  data_dir: %q\n  bootstrap: true\n  ttl: %s\n  suspect_timeout: %s\n  peers:\n",
			nd.id, nd.http, nd.raft, filepath.Join(dir, nd.id+"-data"), ttl, suspect)
		for j, o := range c.nodes {
			if j != i {
				fmt.Fprintf(&b, "    - {id: %s, raft: %q, http: %q}\n", o.id, o.raft, o.http)
			}
		}
		cfg := filepath.Join(dir, nd.id+".yaml")
		if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
		nd.stderr = filepath.Join(dir, nd.id+".log")
		pr, err := p.start(bin, []string{"run", "-c", cfg}, filepath.Join(dir, nd.id+".out"), nd.stderr)
		if err != nil {
			return nil, err
		}
		nd.proc = pr
	}
	return c, c.waitLeader(ctx, 30*time.Second)
}

// addrs returns the nodes' HTTP addresses rotated by k, so clients spread
// their preferred node across the cluster.
func (c *cluster) addrs(k int) []string {
	out := make([]string, len(c.nodes))
	for i := range c.nodes {
		out[i] = c.nodes[(i+k)%len(c.nodes)].http
	}
	return out
}

// status fetches one node's /v1/status.
func status(ctx context.Context, addr string) (registry.StatusResponse, error) {
	var st registry.StatusResponse
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// leader returns the leader's HTTP address once every node agrees on it.
func (c *cluster) leader(ctx context.Context) (string, error) {
	var lead string
	for _, nd := range c.nodes {
		st, err := status(ctx, nd.http)
		if err != nil {
			return "", err
		}
		if st.LeaderHTTP == "" || st.Stale || (lead != "" && st.LeaderHTTP != lead) {
			return "", fmt.Errorf("node %s: leader %q stale=%v", nd.id, st.LeaderHTTP, st.Stale)
		}
		lead = st.LeaderHTTP
	}
	return lead, nil
}

func (c *cluster) waitLeader(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		_, err := c.leader(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("cluster never agreed on a leader: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop terminates the nodes (the rest of procs stays).
func (c *cluster) stop() {
	for _, nd := range c.nodes {
		c.p.kill(nd.proc, syscall.SIGTERM)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, nd := range c.nodes {
		for !nd.proc.exited() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, nd := range c.nodes {
		if !nd.proc.exited() {
			c.p.kill(nd.proc, syscall.SIGKILL)
		}
		<-nd.proc.done
	}
}

// logLine is one "lease transition" or "became leader" line of a node log.
type logLine struct {
	t       time.Time
	node    string
	msg     string
	op, id  string
	service string
}

// readLogs returns the lease transitions and leader elections the nodes
// logged.
func (c *cluster) readLogs() []logLine {
	var out []logLine
	for _, nd := range c.nodes {
		f, err := os.Open(nd.stderr)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			var l logLine
			switch {
			case strings.Contains(line, `msg="registry: lease transition"`):
				l.msg = "transition"
			case strings.Contains(line, `msg="registry: became leader"`):
				l.msg = "leader"
			default:
				continue
			}
			l.node = nd.id
			for _, f := range strings.Fields(line) {
				k, v, ok := strings.Cut(f, "=")
				if !ok {
					continue
				}
				switch k {
				case "time":
					l.t, _ = time.Parse(time.RFC3339Nano, v)
				case "op":
					l.op = v
				case "id":
					l.id = v
				case "service":
					l.service = v
				}
			}
			out = append(out, l)
		}
		f.Close()
	}
	return out
}
