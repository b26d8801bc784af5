//go:build unix

package http1

import (
	"errors"
	"syscall"
)

const canPeek = true

// peekReadable waits (through the runtime's poller, with the
// connection's read deadline) until the socket has a byte to read or
// the peer has closed, without reading it.
func peekReadable(rc syscall.RawConn) error {
	var b [1]byte
	return rc.Read(func(fd uintptr) bool {
		_, _, e := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if errors.Is(e, syscall.EAGAIN) || errors.Is(e, syscall.EINTR) {
			return false
		}
		return true // a byte, the peer's close (n == 0) or an error: the read that follows reports it
	})
}
