package main

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cutter drops a process's TCP traffic with nftables: a set of the ports
// of every socket the victim owns (its listeners, its accepted and its
// dialled connections, refreshed while the cut lasts so that new dials are
// caught too) and an output rule dropping any packet from or to one of them.
// Every process talks over loopback, so that isolates the victim both ways
// without a reset: its peers see silence, as with a pulled cable, and TCP
// resumes when the cut heals. It runs only in a private network namespace
// (run.sh, as root, runs the soak under unshare -n), never on the host's.
type cutter struct {
	mu    sync.Mutex
	owned map[string][]int // victim → ports added to the set
}

const nftTable = "bulwark_soak"

// newCutter sets up the table, or says why network cuts are skipped.
func newCutter() (*cutter, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("not root")
	}
	if os.Getenv("BULWARK_SOAK_NETNS") != "1" {
		return nil, errors.New("not in the soak's private network namespace (run bench/soak/run.sh as root)")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return nil, errors.New("nft not installed (.ci/setup installs nftables)")
	}
	script := fmt.Sprintf(`table inet %[1]s {
	set cut { type inet_service; }
	chain out {
		type filter hook output priority 0; policy accept;
		tcp sport @cut drop
		tcp dport @cut drop
	}
}
`, nftTable)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nft: %v: %s", err, out)
	}
	return &cutter{owned: map[string][]int{}}, nil
}

func nft(args ...string) error {
	cmd := exec.Command("nft", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// cut isolates p for hold, then heals it. It reports whether p's health
// endpoint answered while cut (it must not: the proof that the cut holds).
func (c *cutter) cut(p *proc, hold time.Duration) (reachable bool, err error) {
	end := time.Now().Add(hold)
	probed := false
	for {
		if err := c.add(p); err != nil {
			c.heal(p)
			return false, err
		}
		if !probed && time.Until(end) > 600*time.Millisecond {
			probed = true
			reachable = p.healthy(&http.Client{Timeout: 500 * time.Millisecond})
		}
		if time.Now().After(end) {
			break
		}
		time.Sleep(min(100*time.Millisecond, time.Until(end))) // refresh: sockets dialled meanwhile
	}
	return reachable, c.heal(p)
}

func (c *cutter) add(p *proc) error {
	p.mu.Lock()
	pid := 0
	if p.cmd != nil && p.cmd.Process != nil {
		pid = p.cmd.Process.Pid
	}
	p.mu.Unlock()
	ports := socketPorts(pid)
	c.mu.Lock()
	defer c.mu.Unlock()
	have := map[int]bool{}
	for _, o := range c.owned[p.name] {
		have[o] = true
	}
	var fresh []string
	for _, port := range ports {
		if !have[port] {
			fresh = append(fresh, strconv.Itoa(port))
			c.owned[p.name] = append(c.owned[p.name], port)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	return nft("add", "element", "inet", nftTable, "cut", "{ "+strings.Join(fresh, ", ")+" }")
}

func (c *cutter) heal(p *proc) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ports := c.owned[p.name]
	delete(c.owned, p.name)
	if len(ports) == 0 {
		return nil
	}
	s := make([]string, len(ports))
	for i, port := range ports {
		s[i] = strconv.Itoa(port)
	}
	return nft("delete", "element", "inet", nftTable, "cut", "{ "+strings.Join(s, ", ")+" }")
}

// close removes the table.
func (c *cutter) close() { _ = nft("delete", "table", "inet", nftTable) }

// socketPorts lists the local TCP ports of pid's sockets (from its fds and
// the namespace's /proc/net/tcp tables).
func socketPorts(pid int) []int {
	if pid == 0 {
		return nil
	}
	inodes := map[string]bool{}
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	seen := map[int]bool{}
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			if len(fl) < 10 || !inodes[fl[9]] {
				continue
			}
			i := strings.LastIndexByte(fl[1], ':')
			if port, err := strconv.ParseUint(fl[1][i+1:], 16, 16); err == nil && i > 0 && port > 0 {
				seen[int(port)] = true
			}
		}
		f.Close()
	}
	out := make([]int, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Ints(out)
	return out
}
