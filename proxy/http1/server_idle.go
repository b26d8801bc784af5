package http1

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"
)

// defaultParkAfter is how long a kept-alive connection waits for its next
// request with its connection state (buffers, request template) and its
// goroutine (whose stack has grown to the handler's depth) before it is
// parked: the state goes back to the Server's pool, the goroutine ends,
// and a fresh goroutine with a minimal stack waits for the connection to
// become readable without reading (it peeks). A busy connection never
// waits this long, so the request path is unchanged; an idle one costs
// its socket, a small record and a small goroutine.
const defaultParkAfter = 50 * time.Millisecond

// parkedConn is an idle kept-alive connection without a srvConn.
type parkedConn struct {
	s          *Server
	rwc        net.Conn
	rc         syscall.RawConn
	remoteAddr string
	deadline   time.Time // the idle timeout's end
}

func (s *Server) parkAfter() time.Duration { return orDefault(s.parkDelay, defaultParkAfter) }

// idleWait waits for the first byte of the next request on a kept-alive
// connection, until the idle timeout. It reports whether one arrived;
// parked reports that the connection was handed to a parked waiter
// (then c must be released without closing its connection).
func (c *srvConn) idleWait() (ready, parked bool) {
	s := c.s
	now := time.Now()
	deadline := now.Add(s.idleTimeout())
	sc, canPark := c.rwc.(syscall.Conn)
	canPark = canPark && canPeek
	linger := deadline
	if canPark {
		if pa := s.parkAfter(); now.Add(pa).Before(deadline) {
			linger = now.Add(pa)
		} else {
			canPark = false
		}
	}
	c.rwc.SetReadDeadline(linger)
	_, err := c.br.Peek(1)
	if err == nil {
		return true, false
	}
	if !canPark || !errors.Is(err, os.ErrDeadlineExceeded) || c.br.Buffered() > 0 {
		return false, false // closed by Shutdown, timed out, or the client left
	}
	rc, err := sc.SyscallConn() // only now: it allocates
	if err != nil {
		return false, false
	}
	c.rwc.SetReadDeadline(deadline)
	p := &parkedConn{s: s, rwc: c.rwc, rc: rc, remoteAddr: c.remoteAddr, deadline: deadline}
	if !s.park(c, p) {
		return false, false
	}
	go p.wait()
	return false, true
}

// park moves c's connection from the active set to the parked set; it
// fails once the server is closing or c was closed by it.
func (s *Server) park(c *srvConn, p *parkedConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || !c.state.CompareAndSwap(stateIdle, stateClosed) {
		return false
	}
	delete(s.conns, c)
	s.parked[p] = struct{}{}
	s.wg.Add(1)
	s.parkWG.Add(1)
	return true
}

// wait is a parked connection's goroutine: it waits until the connection
// is readable (a request's first byte, or the client's close) and then
// serves it on a fresh srvConn, or closes it at the idle timeout or when
// the server closes it.
func (p *parkedConn) wait() {
	s := p.s
	defer s.wg.Done()
	err := peekReadable(p.rc)
	s.mu.Lock()
	_, mine := s.parked[p]
	delete(s.parked, p)
	var c *srvConn
	if mine && err == nil && !s.closing {
		c = s.newConn(p.rwc, p.remoteAddr)
		s.conns[c] = struct{}{}
		s.wg.Add(1)
	}
	s.signalDrainedLocked()
	s.mu.Unlock()
	if c == nil {
		p.rwc.Close()
		s.parkWG.Done()
		return
	}
	s.parkWG.Done()     // from here on c is tracked like any active connection
	c.phase = phaseIdle // no head deadline while peeking; the idle one holds
	if _, err := c.br.Peek(1); err != nil {
		c.phase = phaseHandler
		c.serveEnd()
		s.wg.Done()
		return
	}
	c.phase = phaseHead
	c.hdrStart = time.Now()
	c.serve()
}
