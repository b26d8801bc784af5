// Package hanet builds the private network the gateway-cluster tests and
// benchmarks run on: named network namespaces joined by a Linux bridge
// (itself in a namespace of its own, so nothing touches the host's
// interfaces), and the tools to act inside them: dial or listen from a
// namespace, see which namespaces hold an address, cut links with
// nftables. Root only (CAP_SYS_ADMIN and CAP_NET_ADMIN).
package hanet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Net is a bridge and the namespaces on it.
type Net struct {
	prefix string // unique name prefix
	sw     string // the bridge's namespace
	Nodes  map[string]*Node
	order  []string
}

// Node is one namespace with one interface (eth0) on the bridge.
type Node struct {
	Name string // short name given to Add
	NS   string // the namespace's name (ip netns)
	IP   netip.Addr
	h    netns.NsHandle
	nl   *netlink.Handle
}

// Usable says why namespaces cannot be built here, or "" if they can.
func Usable() string {
	if os.Geteuid() != 0 {
		return "not root: the gateway-cluster network tests need ip netns, veth and a bridge (CI runs them as root)"
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not found (.ci/setup installs iproute2 and nftables)"
		}
	}
	return ""
}

// New makes the bridge namespace. Names start with prefix and a number
// from the process ID (keep it short: interface names are limited to 15
// bytes).
func New(prefix string) (*Net, error) {
	return Open(fmt.Sprintf("%s%d", prefix, os.Getpid()%100000))
}

// Open is New with prefix used as it is: every namespace's name is prefix
// followed by the node's name ("sw" for the bridge's).
func Open(prefix string) (*Net, error) {
	n := &Net{prefix: prefix, Nodes: map[string]*Node{}}
	n.sw = n.prefix + "sw"
	if err := run("ip", "netns", "add", n.sw); err != nil {
		return nil, err
	}
	if err := runAll([][]string{
		{"ip", "-n", n.sw, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", n.sw, "link", "set", "br0", "up"},
		{"ip", "-n", n.sw, "link", "set", "lo", "up"},
	}); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// Add makes a namespace named name with eth0 at ip/24 on the bridge.
func (n *Net) Add(name string, ip netip.Addr) (*Node, error) {
	ns := n.prefix + name
	veth := fmt.Sprintf("v%d", len(n.order))
	if err := run("ip", "netns", "add", ns); err != nil {
		return nil, err
	}
	node := &Node{Name: name, NS: ns, IP: ip}
	n.Nodes[name] = node
	n.order = append(n.order, name)
	if err := runAll([][]string{
		{"ip", "-n", n.sw, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"ip", "-n", n.sw, "link", "set", veth, "master", "br0", "up"},
		{"ip", "-n", ns, "addr", "add", ip.String() + "/24", "dev", "eth0"},
		{"ip", "-n", ns, "link", "set", "eth0", "up"},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
	}); err != nil {
		return nil, err
	}
	h, err := netns.GetFromName(ns)
	if err != nil {
		return nil, err
	}
	node.h = h
	if node.nl, err = netlink.NewHandleAt(h); err != nil {
		return nil, err
	}
	return node, nil
}

// Close deletes every namespace (processes still inside keep theirs alive
// until they exit; kill them first).
func (n *Net) Close() {
	for _, name := range n.order {
		node := n.Nodes[name]
		if node.nl != nil {
			node.nl.Close()
		}
		if node.h != 0 {
			node.h.Close()
		}
		run("ip", "netns", "del", node.NS)
	}
	run("ip", "netns", "del", n.sw)
}

// Command is exec.Command run inside the node's namespace.
func (node *Node) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", node.NS, name}, args...)...)
}

// Has reports whether any interface in the namespace has addr.
func (node *Node) Has(addr netip.Addr) (bool, error) {
	as, err := node.nl.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return false, err
	}
	for _, a := range as {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
			return true, nil
		}
	}
	return false, nil
}

// Holders lists the nodes (by name) whose namespace holds addr.
func (n *Net) Holders(addr netip.Addr, names ...string) ([]string, error) {
	var out []string
	for _, name := range names {
		ok, err := n.Nodes[name].Has(addr)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, name)
		}
	}
	return out, nil
}

// inNS runs f on an OS thread switched into the namespace. Sockets
// created there belong to it for good, whichever thread uses them later.
// The thread is switched back afterwards and returned to the scheduler;
// only if that fails is it discarded (the goroutine exits locked). Not
// discarding threads matters to a process whose children carry Pdeathsig:
// the kernel signals a child when the thread that forked it exits, and
// any thread may have forked one (go.dev/issue/27505).
func (node *Node) inNS(f func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return // thread discarded: its namespace is unknown
		}
		defer orig.Close()
		if err := netns.Set(node.h); err != nil {
			errc <- err
			return
		}
		f()
		errc <- nil
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
	}()
	return <-errc
}

// Listen opens a TCP listener inside the namespace.
func (node *Node) Listen(addr string) (net.Listener, error) {
	var ln net.Listener
	var lerr error
	if err := node.inNS(func() { ln, lerr = net.Listen("tcp", addr) }); err != nil {
		return nil, err
	}
	return ln, lerr
}

// DialContext dials from inside the namespace. Pass it as an
// http.Transport's DialContext.
func (node *Node) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	var derr error
	if err := node.inNS(func() {
		var d net.Dialer
		c, derr = d.DialContext(ctx, network, addr)
	}); err != nil {
		return nil, err
	}
	return c, derr
}

// Cut drops all traffic between node and the peers (both directions,
// filtered in node's namespace) with an nftables table of its own,
// including what node sends to multicast groups (VRRP adverts) and
// receives from the peers there.
func (node *Node) Cut(peers ...*Node) error {
	var ips []string
	for _, p := range peers {
		ips = append(ips, p.IP.String())
	}
	set := "{ " + strings.Join(ips, ", ") + " }"
	rules := "table inet bwcut {\n" +
		" chain in { type filter hook input priority -10; policy accept; ip saddr " + set + " drop; }\n" +
		" chain out { type filter hook output priority -10; policy accept; ip daddr " + set + " drop; ip daddr 224.0.0.0/4 drop; }\n}\n"
	node.Heal()
	cmd := exec.Command("ip", "netns", "exec", node.NS, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %v: %s", node.NS, err, out)
	}
	return nil
}

// IsCut reports whether node's cut table is in place.
func (node *Node) IsCut() bool {
	return exec.Command("ip", "netns", "exec", node.NS, "nft", "list", "table", "inet", "bwcut").Run() == nil
}

// Heal removes node's cut table, if any.
func (node *Node) Heal() {
	exec.Command("ip", "netns", "exec", node.NS, "nft", "delete", "table", "inet", "bwcut").Run()
}

// RemoveStale deletes the namespaces a crashed run left behind: those
// named prefix, a process ID, then "-" and anything, whose process no
// longer runs. Processes still inside one are killed first (SIGKILL).
// It returns the names it removed.
func RemoveStale(prefix string) ([]string, error) {
	entries, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		pid, ok := staleOwner(prefix, e.Name())
		if !ok || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // its run is alive
		}
		if out, err := exec.Command("ip", "netns", "pids", e.Name()).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if p, err := strconv.Atoi(f); err == nil {
					syscall.Kill(p, syscall.SIGKILL)
				}
			}
		}
		if err := run("ip", "netns", "del", e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}

// staleOwner parses a namespace name of the form prefix, digits, "-",
// rest, returning the digits' value.
func staleOwner(prefix, name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	digits, _, ok := strings.Cut(rest, "-")
	if !ok || digits == "" {
		return 0, false
	}
	pid, err := strconv.Atoi(digits)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

var mu sync.Mutex // ip netns add/del race on /run/netns when concurrent

func run(name string, args ...string) error {
	mu.Lock()
	defer mu.Unlock()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func runAll(cmds [][]string) error {
	var errs []error
	for _, c := range cmds {
		if err := run(c[0], c[1:]...); err != nil {
			errs = append(errs, err)
			break
		}
	}
	return errors.Join(errs...)
}
