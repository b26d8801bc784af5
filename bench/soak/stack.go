package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one process of the stack, which the fault schedule may kill,
// stop, continue and restart. Its arguments are fixed, so a restart comes
// back on the same ports and data directory.
type proc struct {
	kind, name string
	bin        string
	args       []string
	health     string // URL answering 200 once the process serves
	log        io.Writer

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	stopped bool // SIGSTOPped
}

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.cmd, p.done, p.stopped = cmd, done, false
	return nil
}

func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(sig)
	}
	switch sig {
	case syscall.SIGSTOP:
		p.stopped = true
	case syscall.SIGCONT:
		p.stopped = false
	}
}

// kill sends SIGKILL (continuing a stopped process first is not needed:
// SIGKILL ends it regardless) and waits for it to be gone.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done != nil {
		<-done
	}
}

// terminate asks the process to stop (SIGTERM) and waits up to d before
// killing it.
func (p *proc) terminate(d time.Duration) {
	p.signal(syscall.SIGCONT)
	p.signal(syscall.SIGTERM)
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
	case <-time.After(d):
		p.kill()
	}
}

// healthy reports whether the process answers its health URL.
func (p *proc) healthy(c *http.Client) bool {
	resp, err := c.Get(p.health)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// waitHealthy polls the health URL until it answers or d passes; it
// returns how long that took.
func (p *proc) waitHealthy(c *http.Client, d time.Duration) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < d {
		if p.healthy(c) {
			return time.Since(start), true
		}
		time.Sleep(25 * time.Millisecond) // polling interval
	}
	return time.Since(start), false
}

// freePort returns a loopback host:port nothing listens on right now.
func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// stack is the system under test.
type stack struct {
	dir      string
	regs     []*proc // registry nodes
	demos    []*proc // demo replicas (sync reads)
	gws      []*proc // gateways (bulwark run), each a JetStream cluster member
	jss      []*proc // delivery-only JetStream cluster member(s)
	gwURLs   []string
	regHTTP  []string
	sinkURL  string
	logFiles []*os.File
}

func (s *stack) procs() []*proc {
	return append(append(append(append([]*proc{}, s.regs...), s.demos...), s.gws...), s.jss...)
}

func (s *stack) logFor(name string) io.Writer {
	f, err := os.Create(filepath.Join(s.dir, name+".log"))
	if err != nil {
		return io.Discard
	}
	s.logFiles = append(s.logFiles, f)
	return f
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o644) }

// build writes the configs and creates (but does not start) the processes.
func build(bin, dir, sinkURL string) (*stack, error) {
	s := &stack{dir: dir, sinkURL: sinkURL}
	type node struct{ id, http, raft string }
	var nodes []node
	for i := range 3 {
		nodes = append(nodes, node{fmt.Sprintf("r%d", i), freePort(), freePort()})
	}
	for i, n := range nodes {
		var peers strings.Builder
		for j, p := range nodes {
			if j != i {
				fmt.Fprintf(&peers, "    - {id: %s, raft: %q, http: %q}\n", p.id, p.raft, p.http)
			}
		}
		conf := fmt.Sprintf("listeners:\n  - address: %s\nregistry:\n  node_id: %s\n  http: %s\n  raft: %s\n  data_dir: %s\n  bootstrap: true\n  peers:\n%s",
			freePort(), n.id, n.http, n.raft, filepath.Join(dir, n.id), peers.String())
		path := filepath.Join(dir, n.id+".yaml")
		if err := writeFile(path, conf); err != nil {
			return nil, err
		}
		s.regs = append(s.regs, &proc{kind: "registry", name: n.id, bin: bin, args: []string{"run", "-c", path},
			health: "http://" + n.http + "/v1/status", log: s.logFor(n.id)})
		s.regHTTP = append(s.regHTTP, n.http)
	}
	regs := strings.Join(s.regHTTP, ",")
	for i := range 3 {
		addr := freePort()
		name := fmt.Sprintf("d%d", i)
		s.demos = append(s.demos, &proc{kind: "demo", name: name, bin: bin,
			args:   []string{"demo", "--id", name, "--listen", addr, "--registry", regs, "--service", "demo"},
			health: "http://" + addr + "/health", log: s.logFor(name)})
	}
	var regList strings.Builder
	for _, r := range s.regHTTP {
		fmt.Fprintf(&regList, "    - %s\n", r)
	}
	// Delivery: a three-member embedded JetStream cluster (replicas 3),
	// two members inside the gateways and one delivery-only process.
	routes := []string{freePort(), freePort(), freePort()}
	cluster := func(i int) string {
		var peers strings.Builder
		for j, r := range routes {
			if j != i {
				fmt.Fprintf(&peers, "      - nats://%s\n", r)
			}
		}
		return fmt.Sprintf("delivery:\n  data_dir: %s\n  replicas: 3\n  max_attempts: 1000\n  backoff: [200ms, 500ms, 1s]\n  cluster:\n    name: soak\n    server_name: js%d\n    listen: %s\n    routes:\n%s",
			filepath.Join(dir, fmt.Sprintf("js%d", i)), i, routes[i], peers.String())
	}
	for i := range 2 {
		name := fmt.Sprintf("g%d", i)
		listen, admin := freePort(), freePort()
		conf := fmt.Sprintf(`listeners:
  - address: %s
routes:
  - name: reads
    match: {path_prefix: /read}
    upstream: demo
  - name: writes
    match: {path_prefix: /write, methods: [POST]}
    upstream: sink
    async: true
upstreams:
  - name: demo
    discover: demo
  - name: sink
    endpoints: [{url: %s}]
discovery:
  registries:
%s%sadmin:
  address: %s
`, listen, sinkURL, regList.String(), cluster(i), admin)
		path := filepath.Join(dir, name+".yaml")
		if err := writeFile(path, conf); err != nil {
			return nil, err
		}
		s.gws = append(s.gws, &proc{kind: "gateway", name: name, bin: bin, args: []string{"run", "-c", path, "--watch", "0"},
			health: "http://" + admin + "/healthz", log: s.logFor(name)})
		s.gwURLs = append(s.gwURLs, "http://"+listen)
	}
	// The third member delivers too (through its own forwarding path to
	// the sink): it needs the sink upstream and an async route.
	admin := freePort()
	conf := fmt.Sprintf(`listeners:
  - address: %s
routes:
  - name: writes
    match: {path_prefix: /write, methods: [POST]}
    upstream: sink
    async: true
upstreams:
  - name: sink
    endpoints: [{url: %s}]
%sadmin:
  address: %s
`, freePort(), sinkURL, cluster(2), admin)
	path := filepath.Join(dir, "j2.yaml")
	if err := writeFile(path, conf); err != nil {
		return nil, err
	}
	s.jss = append(s.jss, &proc{kind: "delivery", name: "j2", bin: bin, args: []string{"run", "-c", path, "--watch", "0"},
		health: "http://" + admin + "/healthz", log: s.logFor("j2")})
	return s, nil
}

// up starts every process and waits until each is healthy.
func (s *stack) up(c *http.Client) error {
	// The JetStream members start together: each one's Open waits for
	// the cluster's meta leader, which needs two of them.
	for _, group := range [][]*proc{s.regs, s.demos, append(append([]*proc{}, s.gws...), s.jss...)} {
		for _, p := range group {
			if err := p.start(); err != nil {
				return err
			}
		}
		for _, p := range group {
			if _, ok := p.waitHealthy(c, 60*time.Second); !ok {
				return fmt.Errorf("%s did not become healthy (log in %s)", p.name, filepath.Join(s.dir, p.name+".log"))
			}
		}
	}
	return nil
}

func (s *stack) down() {
	for _, p := range s.procs() {
		p.terminate(5 * time.Second)
	}
	for _, f := range s.logFiles {
		f.Close()
	}
}

// gwName is the name of the gateway serving url.
func (s *stack) gwName(url string) string {
	for i, u := range s.gwURLs {
		if u == url {
			return s.gws[i].name
		}
	}
	return url
}

// clientURLs are the JetStream members' current client URLs: a clustered
// embedded server listens on a random port, which its log names.
func (s *stack) clientURLs() []string {
	var urls []string
	for _, p := range append(append([]*proc{}, s.gws...), s.jss...) {
		b, err := os.ReadFile(filepath.Join(s.dir, p.name+".log"))
		if err != nil {
			continue
		}
		const mark = "Listening for client connections on "
		i := strings.LastIndex(string(b), mark)
		if i < 0 {
			continue
		}
		rest := string(b[i+len(mark):])
		if j := strings.IndexAny(rest, "\" \n"); j > 0 {
			urls = append(urls, "nats://"+rest[:j])
		}
	}
	return urls
}
