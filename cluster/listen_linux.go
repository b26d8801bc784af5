package cluster

import (
	"errors"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// listeners keeps a duplicate of each gateway listening socket, so that
// a graceful stop can fence them: a BPF filter that drops every packet
// makes the kernel discard new SYNs silently (the client retransmits, and
// by then the VIP has moved) instead of answering with a reset, and the
// duplicate keeps the socket listening after the gateway closes its copy,
// so there is never a port without a listener to reset connections.
type listeners struct {
	mu  sync.Mutex
	fds []int
}

// control is a net.ListenConfig.Control function.
func (l *listeners) control(network, address string, c syscall.RawConn) error {
	var dupErr error
	err := c.Control(func(fd uintptr) {
		nfd, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			dupErr = err
			return
		}
		l.mu.Lock()
		l.fds = append(l.fds, nfd)
		l.mu.Unlock()
	})
	return errors.Join(err, dupErr)
}

// fence attaches the drop-all filter to every listening socket.
func (l *listeners) fence() error {
	drop := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	prog := unix.SockFprog{Len: 1, Filter: &drop[0]}
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, fd := range l.fds {
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// close closes the duplicates.
func (l *listeners) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, fd := range l.fds {
		unix.Close(fd)
	}
	l.fds = nil
}
