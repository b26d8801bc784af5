//go:build !unix

package http1

import (
	"errors"
	"syscall"
)

// canPeek is false where a socket cannot be peeked at: idle connections
// keep their goroutine and state, blocked in a read.
const canPeek = false

func peekReadable(syscall.RawConn) error { return errors.ErrUnsupported }
