package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/vishvananda/netlink"
)

// DefaultDevice is the TUN device that carries the VIP.
const DefaultDevice = "bwvip0"

// NetAddress is the VIP on this host's network: a /32 on a private,
// non-persistent TUN device, announced with gratuitous ARP on the LAN
// interface. The kernel answers ARP on the LAN interface for it (any local
// address, arp_ignore=0, the default) and delivers packets for it locally.
// The device exists only while this process holds its file descriptor, so
// the address vanishes the instant the process dies, even by kill -9.
//
// When TUN is unavailable (no /dev/net/tun) the address goes on the LAN
// interface itself, through netlink, or `ip addr` if netlink fails; then a
// crashed process leaves it behind, as keepalived does, and the next start
// removes it.
type NetAddress struct {
	// VIP is the virtual address (IPv4).
	VIP netip.Addr
	// Interface is the LAN interface the VIP is announced on.
	Interface string
	// Device names the TUN device; default DefaultDevice.
	Device string
	// GARPs is how many gratuitous ARPs to send on Add; default 3.
	GARPs int
	// Logger; nil discards.
	Logger *slog.Logger

	mu      sync.Mutex
	tun     *netlink.Tuntap
	onIface bool
}

func (a *NetAddress) device() string {
	if a.Device == "" {
		return DefaultDevice
	}
	return a.Device
}

func (a *NetAddress) logger() *slog.Logger {
	if a.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Logger
}

func (a *NetAddress) prefix() *net.IPNet {
	return &net.IPNet{IP: a.VIP.AsSlice(), Mask: net.CIDRMask(32, 32)}
}

// Add puts the VIP up and announces it.
func (a *NetAddress) Add() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.addLocked(); err != nil {
		return err
	}
	if err := a.announce(); err != nil {
		// The address is up; neighbours will learn it by ARP request.
		a.logger().Warn("cluster: gratuitous ARP failed", "vip", a.VIP, "interface", a.Interface, "err", err)
	}
	return nil
}

func (a *NetAddress) addLocked() error {
	if a.tun != nil || a.onIface {
		return nil
	}
	err := a.addTUN()
	if err == nil {
		return nil
	}
	a.logger().Warn("cluster: no TUN device for the VIP; putting it on the interface (a crash would leave it there)", "err", err)
	if err := a.addIface(); err != nil {
		return fmt.Errorf("cluster: adding %s: %w", a.VIP, err)
	}
	a.onIface = true
	return nil
}

func (a *NetAddress) addTUN() error {
	t := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: a.device()}, Mode: netlink.TUNTAP_MODE_TUN,
		Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_ONE_QUEUE, NonPersist: true, Queues: 1}
	if err := netlink.LinkAdd(t); err != nil {
		return err
	}
	fail := func(err error) error {
		for _, f := range t.Fds {
			f.Close()
		}
		netlink.LinkDel(t)
		return err
	}
	if err := netlink.AddrAdd(t, &netlink.Addr{IPNet: a.prefix()}); err != nil {
		return fail(err)
	}
	if err := netlink.LinkSetUp(t); err != nil {
		return fail(err)
	}
	a.tun = t
	return nil
}

func (a *NetAddress) addIface() error {
	link, err := netlink.LinkByName(a.Interface)
	if err == nil {
		err = netlink.AddrAdd(link, &netlink.Addr{IPNet: a.prefix()})
		if err == nil || errors.Is(err, syscall.EEXIST) {
			return nil
		}
	}
	out, xerr := exec.Command("ip", "addr", "add", a.VIP.String()+"/32", "dev", a.Interface).CombinedOutput()
	if xerr != nil && !strings.Contains(string(out), "exists") {
		return fmt.Errorf("netlink: %v; ip addr add: %v: %s", err, xerr, strings.TrimSpace(string(out)))
	}
	return nil
}

// Remove takes the VIP down.
func (a *NetAddress) Remove() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	if t := a.tun; t != nil {
		a.tun = nil
		// Deleting the address first makes the removal immediate even if
		// something else holds the device; closing the last descriptor
		// then destroys it.
		if err := netlink.AddrDel(t, &netlink.Addr{IPNet: a.prefix()}); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			errs = append(errs, err)
		}
		for _, f := range t.Fds {
			f.Close()
		}
		netlink.LinkDel(t)
	}
	if a.onIface {
		a.onIface = false
		errs = append(errs, a.removeIface())
	}
	return errors.Join(errs...)
}

func (a *NetAddress) removeIface() error {
	link, err := netlink.LinkByName(a.Interface)
	if err == nil {
		err = netlink.AddrDel(link, &netlink.Addr{IPNet: a.prefix()})
		if err == nil || errors.Is(err, syscall.EADDRNOTAVAIL) {
			return nil
		}
	}
	out, xerr := exec.Command("ip", "addr", "del", a.VIP.String()+"/32", "dev", a.Interface).CombinedOutput()
	if xerr != nil && !strings.Contains(string(out), "Cannot assign") {
		return fmt.Errorf("cluster: removing %s: netlink: %v; ip addr del: %v: %s", a.VIP, err, xerr, strings.TrimSpace(string(out)))
	}
	return nil
}

// Clean removes a VIP left on the interface or a stale device by an
// earlier process (only possible without TUN), before this node competes.
func (a *NetAddress) Clean() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if link, err := netlink.LinkByName(a.Interface); err == nil {
		netlink.AddrDel(link, &netlink.Addr{IPNet: a.prefix()})
	}
	if link, err := netlink.LinkByName(a.device()); err == nil {
		netlink.LinkDel(link)
	}
}

// announce sends gratuitous ARP requests (sender and target both the VIP,
// to broadcast), which make neighbours that already have an entry for the
// VIP switch to this interface's MAC at once.
func (a *NetAddress) announce() error {
	if a.Interface == "" {
		return nil
	}
	ifi, err := net.InterfaceByName(a.Interface)
	if err != nil {
		return err
	}
	c, err := arp.Dial(ifi)
	if err != nil {
		return err
	}
	defer c.Close()
	p, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, a.VIP, ethernet.Broadcast, a.VIP)
	if err != nil {
		return err
	}
	n := a.GARPs
	if n <= 0 {
		n = 3
	}
	for range n {
		if err := c.WriteTo(p, ethernet.Broadcast); err != nil {
			return err
		}
	}
	return nil
}

// HasTUN reports whether this host can create the TUN device.
func HasTUN() bool {
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}
