//go:build !linux

package cluster

import (
	"errors"
	"log/slog"
	"net/netip"
	"syscall"
)

var errNotLinux = errors.New("cluster: the VIP needs Linux (netlink, TUN, packet sockets)")

// DefaultDevice is the TUN device that carries the VIP (Linux only).
const DefaultDevice = "bwvip0"

// NetAddress is the VIP on this host's network; Linux only.
type NetAddress struct {
	VIP       netip.Addr
	Interface string
	Device    string
	GARPs     int
	Logger    *slog.Logger
}

// Add fails: not Linux.
func (a *NetAddress) Add() error { return errNotLinux }

// Remove does nothing: not Linux.
func (a *NetAddress) Remove() error { return nil }

// Clean does nothing: not Linux.
func (a *NetAddress) Clean() {}

// HasTUN reports false: not Linux.
func HasTUN() bool { return false }

type listeners struct{}

func (l *listeners) control(network, address string, c syscall.RawConn) error { return nil }
func (l *listeners) fence() (int, error)                                      { return 0, errNotLinux }
func (l *listeners) close()                                                   {}
