// Command ha compares VIP failover of a Bulwark gateway cluster with
// keepalived (VRRP, Debian's package), on the same network namespaces, in
// one run: three gateway namespaces and a client namespace on one bridge,
// the VIP 10.99.0.100 on the bridge subnet, a `bulwark run` gateway in each
// gateway namespace (in front of a backend in the client namespace).
//
// The fault is the death of the VIP owner's node: every process in its
// namespace gets SIGKILL and its link goes down, so neither system can be
// helped by a surviving process (keepalived leaves its VIP on the
// interface when killed). The measure is kill-to-first-successful-request:
// a prober opens a new connection to the VIP every 10 ms (connect timeout
// 100 ms, like kube-vip's failover measurement) and the figure is the
// first answered request sent after the kill. A closed-loop client
// (4 workers, keep-alive, 2 s timeout) counts failed requests. After each
// kill the node comes back (link up, processes restarted) and the system
// settles before the next kill. Last, the owner is cut off from the other
// two with nftables for 5 s and every namespace is sampled every 10 ms
// for two VIP holders (split brain).
//
// Systems: bulwark (defaults), keepalived (defaults: advert_int 1 s),
// and the tuned variants bulwark-fast (lease 400 ms, Raft heartbeat
// 150 ms) and keepalived-fast (VRRPv3, advert_int 0.1 s).
//
// Run it through run.sh (root: it builds everything and runs this under
// private PID and network namespaces). Nothing leaves those namespaces.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bulwark-go/bulwark/internal/hanet"
)

var (
	vip      = netip.MustParseAddr("10.99.0.100")
	clientIP = netip.MustParseAddr("10.99.0.2")
	gwIPs    = []netip.Addr{netip.MustParseAddr("10.99.0.11"), netip.MustParseAddr("10.99.0.12"), netip.MustParseAddr("10.99.0.13")}
	names    = []string{"g1", "g2", "g3"}
)

type run struct {
	bin, work string
	net       *hanet.Net
	client    *hanet.Node
	procs     map[string][]*exec.Cmd
}

func main() {
	bin := flag.String("bin", "bulwark", "bulwark binary")
	work := flag.String("work", "/tmp/habench", "work directory (configs, logs)")
	kills := flag.Int("kills", 10, "kills per system")
	systems := flag.String("systems", "bulwark,keepalived,bulwark-fast,keepalived-fast", "systems to measure")
	jsonOut := flag.String("json", "", "write results here")
	flag.Parse()
	if why := hanet.Usable(); why != "" {
		fatal(errors.New(why))
	}
	var all []result
	for _, s := range strings.Split(*systems, ",") {
		r, err := measure(*bin, filepath.Join(*work, s), s, *kills)
		if err != nil {
			fatal(fmt.Errorf("%s: %w", s, err))
		}
		all = append(all, r)
	}
	fmt.Println()
	fmt.Printf("%-16s %5s %10s %10s %10s %8s %10s %12s\n", "system", "kills", "median", "worst", "best", "failed", "requests", "split-brain")
	for _, r := range all {
		fmt.Printf("%-16s %5d %10v %10v %10v %8d %10d %6d/%d\n", r.System, len(r.Failover), r.Median.Round(time.Millisecond), r.Worst.Round(time.Millisecond),
			r.Best.Round(time.Millisecond), r.Failed, r.Requests, r.SplitSamples, r.PartitionSamples)
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(all, "", "  ")
		os.WriteFile(*jsonOut, b, 0o644)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "habench:", err)
	os.Exit(1)
}

type result struct {
	System   string          `json:"system"`
	Failover []time.Duration `json:"failover_ns"`
	Median   time.Duration   `json:"median_ns"`
	Worst    time.Duration   `json:"worst_ns"`
	Best     time.Duration   `json:"best_ns"`
	Failed   int             `json:"failed_requests"`
	Requests int             `json:"requests"`
	Errors   []string        `json:"sample_errors,omitempty"`
	// PartitionSamples and SplitSamples: holder samples during a partition
	// of the owner, and how many saw two holders.
	PartitionSamples int `json:"partition_samples"`
	SplitSamples     int `json:"split_brain_samples"`
}

func measure(bin, work, sys string, kills int) (result, error) {
	res := result{System: sys}
	os.MkdirAll(work, 0o755)
	n, err := hanet.New("hab")
	if err != nil {
		return res, err
	}
	r := &run{bin: bin, work: work, net: n, procs: map[string][]*exec.Cmd{}}
	defer func() {
		for _, name := range names {
			r.stop(name)
		}
		n.Close()
	}()
	if r.client, err = n.Add("c", clientIP); err != nil {
		return res, err
	}
	for i, name := range names {
		if _, err := n.Add(name, gwIPs[i]); err != nil {
			return res, err
		}
	}
	ln, err := r.client.Listen(net.JoinHostPort(clientIP.String(), "9000"))
	if err != nil {
		return res, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })}
	go srv.Serve(ln)
	defer srv.Close()
	for i := range names {
		if err := r.start(sys, i); err != nil {
			return res, err
		}
	}
	if _, err := r.waitOwner("", 30*time.Second); err != nil {
		return res, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr := newProber(ctx, r.client)
	ld := newLoad(ctx, r.client, 4)
	time.Sleep(2 * time.Second)
	for k := range kills {
		owner, err := r.waitOwner("", 30*time.Second)
		if err != nil {
			return res, err
		}
		t0 := r.killNode(owner) // the node's processes are dead from here; its link goes down next
		d, err := pr.firstAfter(t0, 20*time.Second)
		if err != nil {
			return res, fmt.Errorf("kill %d of %s: %w", k+1, owner, err)
		}
		res.Failover = append(res.Failover, d)
		fmt.Printf("%s kill %2d: %s died; first successful request after %v\n", sys, k+1, owner, d.Round(time.Millisecond))
		time.Sleep(2500 * time.Millisecond) // in-flight requests on the dead node time out (2 s)
		if err := r.revive(sys, owner); err != nil {
			return res, err
		}
		time.Sleep(4 * time.Second) // let it rejoin (Raft catch-up, VRRP backup) before the next kill
	}
	// One partition: the owner cut off from the other two for 5 s,
	// holders sampled every 10 ms in every namespace.
	owner, err := r.waitOwner("", 30*time.Second)
	if err != nil {
		return res, err
	}
	var peers []*hanet.Node
	for _, nm := range names {
		if nm != owner {
			peers = append(peers, r.net.Nodes[nm])
		}
	}
	if err := r.net.Nodes[owner].Cut(peers...); err != nil {
		return res, err
	}
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		held, _ := r.net.Holders(vip, names...)
		res.PartitionSamples++
		if len(held) > 1 {
			res.SplitSamples++
		}
	}
	r.net.Nodes[owner].Heal()
	fmt.Printf("%s partition of the owner: %d of %d samples (10 ms apart) saw two VIP holders\n", sys, res.SplitSamples, res.PartitionSamples)
	cancel()
	res.Requests, res.Failed, res.Errors = ld.finish()
	s := slices.Clone(res.Failover)
	slices.Sort(s)
	res.Median, res.Best, res.Worst = s[len(s)/2], s[0], s[len(s)-1]
	if len(s)%2 == 0 {
		res.Median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return res, nil
}

func (r *run) start(sys string, i int) error {
	name := names[i]
	node := r.net.Nodes[name]
	gwCfg := filepath.Join(r.work, name+".yaml")
	cfg := fmt.Sprintf("listeners:\n  - address: \":8080\"\nupstreams:\n  - name: app\n    endpoints:\n      - url: http://%s:9000\nroutes:\n  - upstream: app\n", clientIP)
	if strings.HasPrefix(sys, "bulwark") {
		var peers []string
		for j, ip := range gwIPs {
			if j != i {
				peers = append(peers, fmt.Sprintf("    - {id: %s, raft: \"%s:7946\"}", names[j], ip))
			}
		}
		cfg += fmt.Sprintf("cluster:\n  node_id: %s\n  raft: \"%s:7946\"\n  data_dir: %s\n  vip: %s\n  interface: eth0\n  peers:\n%s\n",
			name, gwIPs[i], filepath.Join(r.work, name+"-data"), vip, strings.Join(peers, "\n"))
		if sys == "bulwark-fast" {
			// Tuned like keepalived-fast: shorter lease and Raft timeouts.
			cfg += "  lease: 400ms\n  renew: 50ms\n  removal: 75ms\n  drift: 25ms\n  heartbeat_timeout: 150ms\n"
		}
	}
	if err := os.WriteFile(gwCfg, []byte(cfg), 0o644); err != nil {
		return err
	}
	if err := r.spawn(name, r.bin, "run", "-c", gwCfg, "--watch", "0"); err != nil {
		return err
	}
	if strings.HasPrefix(sys, "keepalived") {
		// Defaults (advert_int 1 s), as users run it; keepalived-fast is
		// VRRPv3 with 100 ms adverts, the tuning keepalived's maintainers
		// suggest for fast takeover. nopreempt so a revived node does not
		// take the VIP back (one more outage per kill otherwise).
		advert, version := "1", "2"
		if sys == "keepalived-fast" {
			advert, version = "0.1", "3"
		}
		kc := fmt.Sprintf(`global_defs {
  router_id %s
  vrrp_version %s
  script_user root
}
vrrp_instance VI_1 {
  state BACKUP
  nopreempt
  interface eth0
  virtual_router_id 51
  priority %d
  advert_int %s
  virtual_ipaddress {
    %s/24 dev eth0
  }
}
`, name, version, 150-10*i, advert, vip)
		kcPath := filepath.Join(r.work, name+"-keepalived.conf")
		if err := os.WriteFile(kcPath, []byte(kc), 0o644); err != nil {
			return err
		}
		// Stale VIP from a killed keepalived (it does not clean up on SIGKILL).
		exec.Command("ip", "-n", node.NS, "addr", "del", vip.String()+"/24", "dev", "eth0").Run()
		pid := filepath.Join(r.work, name)
		// A killed keepalived leaves its pid files; with pids reused it
		// would then refuse to start ("daemon is already running").
		for _, f := range []string{".pid", "-vrrp.pid", "-chk.pid"} {
			os.Remove(pid + f)
		}
		if err := r.spawn(name, "keepalived", "-n", "-l", "-D", "-f", kcPath, "-p", pid+".pid", "-r", pid+"-vrrp.pid", "-c", pid+"-chk.pid"); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) spawn(name, bin string, args ...string) error {
	logf, err := os.OpenFile(filepath.Join(r.work, name+"-"+filepath.Base(bin)+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := r.net.Nodes[name].Command(context.Background(), bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { cmd.Wait(); logf.Close() }()
	r.procs[name] = append(r.procs[name], cmd)
	return nil
}

// killNode SIGKILLs every process in the node's namespace and downs its
// link. It returns when the processes were killed.
func (r *run) killNode(name string) time.Time {
	ns := r.net.Nodes[name].NS
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		var pid int
		fmt.Sscan(f, &pid)
		if pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	killed := time.Now()
	exec.Command("ip", "-n", ns, "link", "set", "eth0", "down").Run()
	return killed
}

func (r *run) stop(name string) {
	for _, c := range r.procs[name] {
		if c.Process != nil {
			c.Process.Kill()
		}
	}
	r.killNode(name)
	r.procs[name] = nil
}

func (r *run) revive(sys, name string) error {
	r.stop(name)
	exec.Command("ip", "-n", r.net.Nodes[name].NS, "link", "set", "eth0", "up").Run()
	return r.start(sys, slices.Index(names, name))
}

func (r *run) waitOwner(not string, within time.Duration) (string, error) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		held, err := r.net.Holders(vip, names...)
		if err != nil {
			return "", err
		}
		if len(held) == 1 && held[0] != not {
			return held[0], nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return "", fmt.Errorf("no single VIP owner within %v", within)
}

// prober opens a new connection every 10 ms and records answered requests.
type prober struct {
	mu sync.Mutex
	ok []probeOK
}

type probeOK struct{ sent, answered time.Time }

func newProber(ctx context.Context, c *hanet.Node) *prober {
	p := &prober{}
	addr := net.JoinHostPort(vip.String(), "8080")
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			go func() {
				sent := time.Now()
				dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				conn, err := c.DialContext(dctx, "tcp", addr)
				cancel()
				if err != nil {
					return
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(time.Second))
				if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n")); err != nil {
					return
				}
				line, err := bufio.NewReader(conn).ReadString('\n')
				if err == nil && strings.HasPrefix(line, "HTTP/1.1 200") {
					p.mu.Lock()
					p.ok = append(p.ok, probeOK{sent, time.Now()})
					p.mu.Unlock()
				}
			}()
		}
	}()
	return p
}

func (p *prober) firstAfter(t time.Time, within time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		best := time.Duration(-1)
		for _, o := range p.ok {
			if o.sent.After(t) && (best < 0 || o.answered.Sub(t) < best) {
				best = o.answered.Sub(t)
			}
		}
		p.mu.Unlock()
		if best >= 0 {
			return best, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("no request answered within %v", within)
}

// load is a closed-loop client; a dial is retried (100 ms attempts) so a
// request fails only when it errors after connecting.
type load struct {
	wg       sync.WaitGroup
	requests atomic.Int64
	failed   atomic.Int64
	mu       sync.Mutex
	errs     []string
}

func newLoad(ctx context.Context, c *hanet.Node, workers int) *load {
	l := &load{}
	tr := &http.Transport{MaxIdleConnsPerHost: workers, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		for {
			dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			conn, err := c.DialContext(dctx, network, addr)
			cancel()
			if err == nil || ctx.Err() != nil {
				return conn, err
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}}
	client := &http.Client{Timeout: 2 * time.Second, Transport: tr}
	url := "http://" + net.JoinHostPort(vip.String(), "8080") + "/"
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if ctx.Err() != nil {
					return
				}
				l.requests.Add(1)
				if err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.errs) < 5 {
						l.errs = append(l.errs, err.Error())
					}
					l.mu.Unlock()
				}
			}
		}()
	}
	return l
}

func (l *load) finish() (int, int, []string) {
	l.wg.Wait()
	return int(l.requests.Load()), int(l.failed.Load()), l.errs
}
