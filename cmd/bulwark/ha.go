package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Capabilities `up --ha` needs to build network namespaces (ip netns,
// veth, a bridge) and to let the gateway nodes add the VIP.
const (
	capNetAdmin = 12
	capSysAdmin = 21
)

// haUnavailable says why `bulwark up --ha` cannot run three gateway nodes
// in network namespaces here, or "" if it can. status is the text of
// /proc/self/status (its CapEff line is read); lookPath finds a tool.
func haUnavailable(status string, lookPath func(string) (string, error)) string {
	var eff uint64
	found := false
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err == nil {
				eff, found = n, true
			}
		}
	}
	if !found {
		return "cannot read this process's capabilities (/proc/self/status); --ha needs Linux"
	}
	var missing []string
	for _, c := range []struct {
		bit  uint
		name string
	}{{capSysAdmin, "CAP_SYS_ADMIN (ip netns)"}, {capNetAdmin, "CAP_NET_ADMIN (veth, bridge, the VIP)"}} {
		if eff&(1<<c.bit) == 0 {
			missing = append(missing, c.name)
		}
	}
	if len(missing) > 0 {
		return "not root: --ha needs " + strings.Join(missing, " and ") + " to build network namespaces; run it with sudo"
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := lookPath(tool); err != nil {
			return tool + " not found: --ha needs iproute2 (ip) and nftables (nft); apt-get install iproute2 nftables"
		}
	}
	return ""
}

// haCheck is haUnavailable for this process.
func haCheck() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return fmt.Sprintf("cannot read this process's capabilities: %v; --ha needs Linux", err)
	}
	return haUnavailable(string(b), exec.LookPath)
}
