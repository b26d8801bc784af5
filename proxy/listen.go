package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark/proxy/http1"
)

// runningListener is a listener the gateway serves.
type runningListener struct {
	cfg  Listener
	ln   net.Listener
	srv  *http.Server  // net/http: https, h2c, and http with engine net/http
	fast *http1.Server // http: the fast path
	tcp  *tcpProxy
	done chan struct{}
	err  error
}

func (l *runningListener) shutdown(ctx context.Context) error {
	var err error
	switch {
	case l.fast != nil:
		err = l.fast.Shutdown(ctx)
		if err != nil {
			l.fast.Close()
		}
	case l.srv != nil:
		err = l.srv.Shutdown(ctx)
		if err != nil {
			l.srv.Close()
		}
	default:
		err = l.tcp.shutdown(ctx)
	}
	<-l.done
	return err
}

// Listen opens every configured listener and starts serving on them. It
// returns once they all listen (or with the first error, closing the rest),
// so callers can read Addrs at once. Shutdown stops them.
func (g *Gateway) Listen() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("gateway: listen after close")
	}
	if len(g.listeners) > 0 {
		return errors.New("gateway: already listening")
	}
	st := g.state.Load()
	var started []*runningListener
	for i, lc := range st.cfg.Listeners {
		if lc.Name == "" {
			lc.Name = fmt.Sprintf("listener-%d", i)
		}
		l, err := g.startListener(lc)
		if err != nil {
			for _, s := range started {
				s.shutdown(context.Background())
			}
			return fmt.Errorf("gateway: listener %s: %w", lc.Name, err)
		}
		started = append(started, l)
	}
	g.listeners = started
	return nil
}

func (g *Gateway) startListener(lc Listener) (*runningListener, error) {
	lcfg := g.opts.ListenConfig
	if lcfg == nil {
		lcfg = &net.ListenConfig{}
	}
	ln, err := lcfg.Listen(context.Background(), "tcp", lc.Address)
	if err != nil {
		return nil, err
	}
	l := &runningListener{cfg: lc, ln: ln, done: make(chan struct{})}
	if lc.Protocol == "tcp" {
		l.tcp = newTCPProxy(g, lc, ln)
		go func() { defer close(l.done); l.err = l.tcp.serve() }()
		return l, nil
	}
	if (lc.Protocol == "" || lc.Protocol == "http") && lc.Engine != EngineNetHTTP {
		// The fast path: same timeouts as the net/http server below, plus
		// body and write timeouts that server never had (docs/fastpath.md).
		l.fast = &http1.Server{Handler: g, Logger: g.logger}
		go func() { defer close(l.done); l.err = l.fast.Serve(ln) }()
		return l, nil
	}
	srv := &http.Server{
		Handler:           g,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          nil,
		Protocols:         new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	if lc.Protocol == "h2c" {
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	l.srv = srv
	go func() {
		defer close(l.done)
		if lc.Protocol == "https" {
			l.err = srv.ServeTLS(ln, lc.CertFile, lc.KeyFile)
		} else {
			l.err = srv.Serve(ln)
		}
	}()
	return l, nil
}

// Addrs returns the addresses the gateway listens on, in config order
// (useful with port 0).
func (g *Gateway) Addrs() []net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]net.Addr, len(g.listeners))
	for i, l := range g.listeners {
		out[i] = l.ln.Addr()
	}
	return out
}

// Serve listens (see Listen) and serves until ctx is done, then shuts down
// gracefully, giving in-flight requests up to drain to finish.
func (g *Gateway) Serve(ctx context.Context, drain time.Duration) error {
	if err := g.Listen(); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	return g.Shutdown(sctx)
}

// tcpProxy forwards raw TCP connections to an upstream pool (HAProxy's
// mode tcp): least connections, health from probes and connect outcomes,
// and connect retries on other endpoints.
type tcpProxy struct {
	g     *Gateway
	cfg   Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
	ln    net.Listener
}

func newTCPProxy(g *Gateway, lc Listener, ln net.Listener) *tcpProxy {
	return &tcpProxy{g: g, cfg: lc, ln: ln, conns: map[net.Conn]struct{}{}}
}

func (t *tcpProxy) serve() error {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		t.wg.Add(1)
		go t.handle(c)
	}
}

func (t *tcpProxy) track(c net.Conn, add bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if add {
		t.conns[c] = struct{}{}
	} else {
		delete(t.conns, c)
	}
}

func (t *tcpProxy) handle(c net.Conn) {
	defer t.wg.Done()
	defer c.Close()
	t.track(c, true)
	defer t.track(c, false)
	p := t.g.state.Load().pools[t.cfg.Upstream]
	if p == nil {
		return
	}
	up, release, err := p.dialTCP(context.Background(), c.RemoteAddr())
	if err != nil {
		t.g.logger.Warn("tcp: no endpoint accepted the connection", "listener", t.cfg.Name, "err", err)
		return
	}
	defer up.Close()
	defer release()
	t.track(up, true)
	defer t.track(up, false)
	done := make(chan struct{}, 2)
	go func() { copyHalf(up, c); done <- struct{}{} }()
	go func() { copyHalf(c, up); done <- struct{}{} }()
	<-done
	<-done
}

// copyHalf copies src to dst and then half-closes dst, so that each
// direction ends on its own.
func copyHalf(dst, src net.Conn) {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	for {
		n, err := src.Read(*bp)
		if n > 0 {
			if _, werr := dst.Write((*bp)[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		dst.Close()
	}
}

// shutdown stops accepting and waits for open connections until ctx is
// done, then closes them.
func (t *tcpProxy) shutdown(ctx context.Context) error {
	t.ln.Close()
	idle := make(chan struct{})
	go func() { t.wg.Wait(); close(idle) }()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		t.mu.Lock()
		for c := range t.conns {
			c.Close()
		}
		t.mu.Unlock()
		<-idle
		return ctx.Err()
	}
}
