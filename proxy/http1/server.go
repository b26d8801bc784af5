package http1

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server serves an http.Handler over HTTP/1.0 and HTTP/1.1 on plain
// connections with one goroutine per connection and no other: the
// goroutine reads a request head with ReadRequest, runs the handler, writes
// the answer straight into the connection's buffer, and loops for the
// next request (keep-alive; pipelined requests are answered in order, as
// they are read). net/http's server adds a background read goroutine per
// connection and more per-request allocations; this one is the gateway's
// client-facing fast path (docs/fastpath.md).
//
// What the handler sees follows net/http: a *http.Request with canonical
// header keys (Host moved to Request.Host, Transfer-Encoding to
// Request.TransferEncoding), a body that is http.NoBody when there is
// none, and a ResponseWriter that implements http.Flusher, http.Hijacker
// and the methods http.ResponseController looks for (FlushError,
// SetReadDeadline, SetWriteDeadline, EnableFullDuplex). Responses get
// Content-Length when it is set or the whole body fits the 2 KiB the
// writer holds back before the head, chunked framing otherwise (HTTP/1.1),
// a Date, a sniffed Content-Type when none is set, and no body for HEAD,
// 1xx, 204 and 304. Differences from net/http, chosen for cost:
//
//   - The request's context is the connection's: it is cancelled when the
//     connection ends, when a write to the client fails, or when the
//     server closes; not when ServeHTTP returns, and a client that goes
//     away is noticed only at the next write (net/http keeps a goroutine
//     reading in the background to notice it at once).
//   - Request trailers are read (strictly) and discarded.
//   - Request heads are parsed by ReadRequest, which refuses what a proxy
//     must not forward (see the package doc) with 400, 431 or 505 and
//     closes the connection.
//
// The zero value serves with the defaults documented on each field; set
// Handler before calling Serve. A Server must not be copied after first use.
type Server struct {
	// Handler answers every request.
	Handler http.Handler
	// ReadHeaderTimeout bounds reading a request head, from its first byte
	// (from the accept for a connection's first request): a client
	// sending the head a byte at a time is cut off there. Default 10s.
	ReadHeaderTimeout time.Duration
	// BodyReadTimeout bounds each wait for request body bytes (an idle
	// timeout, like nginx's client_body_timeout). Default 60s.
	BodyReadTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a keep-alive
	// connection. Default 120s.
	IdleTimeout time.Duration
	// WriteTimeout bounds each write to the client (a client that stops
	// reading is cut off; a stream that writes now and then is not).
	// Default 60s.
	WriteTimeout time.Duration
	// MaxHeaderBytes is the largest request head accepted; larger ones get
	// 431. Default 1 MiB (net/http's default).
	MaxHeaderBytes int
	// Logger receives handler panics and write errors worth knowing; nil
	// discards.
	Logger *slog.Logger

	initOnce sync.Once
	ctx      context.Context // cancelled by Close: every connection's context derives from it
	cancel   context.CancelFunc
	pool     sync.Pool // *srvConn with its buffers, reused across connections

	stopping atomic.Bool // closing, readable without mu on the hot path

	mu        sync.Mutex
	closing   bool
	listeners map[*net.Listener]struct{}
	conns     map[*srvConn]struct{}
	parked    map[*parkedConn]struct{} // idle connections without a srvConn (server_idle.go)
	parkDelay time.Duration            // tests: defaultParkAfter when zero
	parkWG    sync.WaitGroup           // parked connections' waiters, until closed or tracked again
	drained   chan struct{}            // closed when closing and no tracked connection is left
	wg        sync.WaitGroup
}

// Defaults of the Server's zero-valued fields.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultBodyReadTimeout   = 60 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultMaxHeaderBytes    = 1 << 20
)

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.listeners = map[*net.Listener]struct{}{}
		s.conns = map[*srvConn]struct{}{}
		s.parked = map[*parkedConn]struct{}{}
		s.drained = make(chan struct{})
		if s.Logger == nil {
			s.Logger = slog.New(slog.DiscardHandler)
		}
	})
}

func (s *Server) readHeaderTimeout() time.Duration {
	return orDefault(s.ReadHeaderTimeout, DefaultReadHeaderTimeout)
}
func (s *Server) bodyReadTimeout() time.Duration {
	return orDefault(s.BodyReadTimeout, DefaultBodyReadTimeout)
}
func (s *Server) idleTimeout() time.Duration { return orDefault(s.IdleTimeout, DefaultIdleTimeout) }
func (s *Server) writeTimeout() time.Duration {
	return orDefault(s.WriteTimeout, DefaultWriteTimeout)
}
func (s *Server) maxHeaderBytes() int {
	if s.MaxHeaderBytes > 0 {
		return s.MaxHeaderBytes
	}
	return DefaultMaxHeaderBytes
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Serve accepts connections on ln and serves each on its own goroutine
// until Shutdown or Close, then returns http.ErrServerClosed (any other
// error is the listener's). Serve closes ln when it returns.
func (s *Server) Serve(ln net.Listener) error {
	s.init()
	if s.Handler == nil {
		return errors.New("http1: Server.Handler is nil")
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	s.listeners[&ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, &ln)
		s.mu.Unlock()
		ln.Close()
	}()
	var delay time.Duration
	for {
		rwc, err := ln.Accept()
		if err != nil {
			if s.shuttingDown() {
				return http.ErrServerClosed
			}
			if !retryableAccept(err) {
				return err
			}
			// Out of file descriptors and the like: back off as net/http does
			// instead of spinning, and keep serving the connections we have.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.Logger.Warn("http1: accept failed; retrying", "err", err, "delay", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
			}
			continue
		}
		delay = 0
		c := s.newConn(rwc, "")
		if !s.track(c) {
			rwc.Close()
			s.putConn(c)
			return http.ErrServerClosed
		}
		s.wg.Add(1)
		go c.serve()
	}
}

func retryableAccept(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.ECONNRESET} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (s *Server) shuttingDown() bool { return s.stopping.Load() }

// track registers c; it fails once the server is closing.
func (s *Server) track(c *srvConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// untrack forgets c (closed or hijacked) and signals Shutdown when it was
// the last.
func (s *Server) untrack(c *srvConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	s.signalDrainedLocked()
}

func (s *Server) signalDrainedLocked() {
	if s.closing && len(s.conns) == 0 && len(s.parked) == 0 {
		select {
		case <-s.drained:
		default:
			close(s.drained)
		}
	}
}

// beginClose stops accepting: it closes the listeners and marks the server
// closing, so that connections finish their current exchange with
// "Connection: close" and end.
func (s *Server) beginClose() {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	s.stopping.Store(true)
	for ln := range s.listeners {
		(*ln).Close()
	}
	s.signalDrainedLocked()
}

// closeIdle closes the connections that wait for a next request. A
// connection that is reading or answering one is left to finish it.
func (s *Server) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			c.rwc.Close()
		}
	}
	for p := range s.parked {
		p.rwc.Close() // its waiter wakes, forgets it and signals drained
	}
}

// Shutdown stops accepting, closes idle connections, and waits until
// every other connection has finished the request it is serving (each
// then closes), or until ctx is done (then it returns ctx's error and
// leaves them; call Close to end them). Hijacked connections are not
// waited for, as with net/http.
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginClose()
	s.closeIdle()
	select {
	case <-s.drained:
		s.parkWG.Wait() // each has closed its connection or handed it to a tracked srvConn
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting and closes every connection at once, cancelling
// the requests' contexts; it does not wait for handlers to return.
// Hijacked connections belong to their hijackers and stay open.
func (s *Server) Close() error {
	s.beginClose()
	s.mu.Lock()
	for c := range s.conns {
		c.state.Store(stateClosed)
		c.rwc.Close()
	}
	for p := range s.parked {
		p.rwc.Close()
	}
	s.mu.Unlock()
	s.cancel()
	return nil
}

// newConn takes a connection state from the pool (or makes one) for rwc,
// whose remote address is ra ("": ask rwc).
func (s *Server) newConn(rwc net.Conn, ra string) *srvConn {
	c, _ := s.pool.Get().(*srvConn)
	if c == nil {
		c = &srvConn{s: s}
		c.cr.c = c
		c.br = bufio.NewReaderSize(&c.cr, 4<<10)
		c.out = make([]byte, 0, 4<<10)
		c.w.header = make(http.Header)
	} else {
		c.br.Reset(&c.cr)
	}
	c.rwc = rwc
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	c.state.Store(stateActive)
	c.phase = phaseHead
	c.hdrStart = time.Now()
	c.dlSet = false
	c.hijacked = false
	c.werr = nil
	c.out = c.out[:0]
	c.hold, c.mark = -1, 0
	c.remoteAddr = ra
	if a := rwc.RemoteAddr(); ra == "" && a != nil {
		c.remoteAddr = a.String()
	}
	return c
}

// putConn returns c's buffers for reuse, unless they grew large.
func (s *Server) putConn(c *srvConn) {
	if cap(c.out) > 64<<10 || cap(c.head.Raw) > 64<<10 || cap(c.scratch) > 64<<10 {
		return
	}
	c.rwc, c.ctx, c.cancel, c.req, c.body = nil, nil, nil, nil, nil
	c.w.req = nil
	clear(c.w.header)
	s.pool.Put(c)
}
