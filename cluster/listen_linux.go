package cluster

import (
	"errors"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// listeners keeps a duplicate of each gateway listening socket, so that
// a graceful stop can fence them: a BPF filter that drops SYNs makes the
// kernel discard new connection attempts silently (the client retransmits, and
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

// synDrop drops TCP segments with SYN set and ACK clear, and keeps all
// others. A TCP socket filter sees the segment from its TCP header; byte
// 13 holds the flags (SYN 0x02, ACK 0x10).
var synDrop = []unix.SockFilter{
	{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 13},
	{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: 0x12},
	{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: 0x02, Jt: 0, Jf: 1},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff},
}

// fence attaches the SYN-drop filter to every listening socket: new
// connections are refused silently (clients retransmit the SYN), while
// handshakes already under way complete and are accepted.
func (l *listeners) fence() (int, error) {
	prog := unix.SockFprog{Len: uint16(len(synDrop)), Filter: &synDrop[0]}
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, fd := range l.fds {
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
			errs = append(errs, err)
		}
	}
	return len(l.fds), errors.Join(errs...)
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
