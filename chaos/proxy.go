package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Indexes of the two directions in a chain.
const (
	dirUp   = 0
	dirDown = 1
)

// Protocols a proxy speaks.
const (
	// ProtocolTCP forwards bytes and applies TCP toxics (the default).
	ProtocolTCP = "tcp"
	// ProtocolHTTP is a reverse proxy that applies HTTP toxics per request.
	ProtocolHTTP = "http"
)

// ProxyConfig describes a proxy. The JSON field names are Toxiproxy's;
// protocol is Bulwark's addition and is omitted for TCP proxies, so
// Toxiproxy clients see what they expect.
type ProxyConfig struct {
	// Name identifies the proxy. Required.
	Name string `json:"name"`
	// Listen is the address to listen on; default "127.0.0.1:0". Once the
	// proxy is listening, the actual address (with the port) is reported.
	Listen string `json:"listen"`
	// Upstream is the address forwarded to: host:port, or for HTTP proxies
	// also a base URL ("http://127.0.0.1:9001"). Required.
	Upstream string `json:"upstream"`
	// Enabled proxies listen and forward; a disabled proxy closes its
	// listener and every connection ("down" in Toxiproxy's terms).
	Enabled bool `json:"enabled"`
	// Protocol is ProtocolTCP (default, "") or ProtocolHTTP.
	Protocol string `json:"protocol,omitempty"`
}

// Validate checks the configuration.
func (c *ProxyConfig) Validate() error {
	switch {
	case c.Name == "":
		return fmt.Errorf("%w: name: required", ErrInvalidProxy)
	case c.Upstream == "":
		return fmt.Errorf("%w: upstream: required", ErrInvalidProxy)
	case c.Protocol != "" && c.Protocol != ProtocolTCP && c.Protocol != ProtocolHTTP:
		return fmt.Errorf("%w: protocol %q: want tcp or http", ErrInvalidProxy, c.Protocol)
	}
	if c.Protocol == ProtocolHTTP {
		if _, err := upstreamURL(c.Upstream); err != nil {
			return fmt.Errorf("%w: upstream: %w", ErrInvalidProxy, err)
		}
	}
	return nil
}

// chain is an immutable snapshot of a proxy's toxics. A change builds a
// new chain and closes the old one's changed channel.
type chain struct {
	all     []*Toxic // in the order they were added
	dirs    [2][]*Toxic
	changed chan struct{}
}

func newChain(all []*Toxic) *chain {
	c := &chain{all: all, changed: make(chan struct{})}
	for _, t := range all {
		d := dirDown
		if t.Stream == Upstream {
			d = dirUp
		}
		c.dirs[d] = append(c.dirs[d], t)
	}
	return c
}

// ProxyStats counts what a proxy did. All fields are totals since creation.
type ProxyStats struct {
	Connections        int64 `json:"connections"`
	Resets             int64 `json:"resets"`
	Timeouts           int64 `json:"timeouts"`
	Requests           int64 `json:"requests"`
	Aborted            int64 `json:"aborted"`
	Delayed            int64 `json:"delayed"`
	CorruptedResponses int64 `json:"corrupted_responses"`
	CorruptedBytes     int64 `json:"corrupted_bytes"`
	HeadersAltered     int64 `json:"headers_altered"`
}

type proxyStats struct {
	connections, resets, timeouts, requests, aborted, delayed atomic.Int64
	corruptedResponses, corruptedBytes, headersAltered        atomic.Int64
}

// Proxy is one named proxy: a listener, its upstream, and its toxics.
// Methods are safe for concurrent use. Toxic changes apply to open
// connections without dropping them.
type Proxy struct {
	log         *slog.Logger
	dialTimeout time.Duration

	rngMu sync.Mutex // guards rng
	rng   *rand.Rand

	chain atomic.Pointer[chain]
	stats proxyStats

	mu      sync.Mutex // guards the fields below; never held while waiting for goroutines of a link
	cfg     ProxyConfig
	ln      net.Listener
	links   map[*link]struct{}
	httpSrv *http.Server
	httpTr  *http.Transport
	cancel  context.CancelFunc
	wg      *sync.WaitGroup // the current run's goroutines
}

func newProxy(cfg ProxyConfig, seed1, seed2 uint64, log *slog.Logger, dialTimeout time.Duration) (*Proxy, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Proxy{
		log:         log.With("proxy", cfg.Name),
		dialTimeout: dialTimeout,
		rng:         rand.New(rand.NewPCG(seed1, seed2)),
		cfg:         cfg,
		links:       map[*link]struct{}{},
	}
	p.chain.Store(newChain(nil))
	return p, nil
}

// Name returns the proxy's name.
func (p *Proxy) Name() string { return p.cfg.Name }

// Config returns the proxy's configuration; Listen is the bound address
// while the proxy is enabled.
func (p *Proxy) Config() ProxyConfig {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg
}

// Addr returns the address the proxy listens on.
func (p *Proxy) Addr() string { return p.Config().Listen }

// Toxics returns the proxy's toxics in the order they were added.
func (p *Proxy) Toxics() []*Toxic { return slices.Clone(p.chain.Load().all) }

// Toxic returns the toxic called name.
func (p *Proxy) Toxic(name string) (*Toxic, error) {
	for _, t := range p.chain.Load().all {
		if t.Name == name {
			return t, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrToxicNotFound, name)
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() ProxyStats {
	s := &p.stats
	return ProxyStats{
		Connections: s.connections.Load(), Resets: s.resets.Load(), Timeouts: s.timeouts.Load(),
		Requests: s.requests.Load(), Aborted: s.aborted.Load(), Delayed: s.delayed.Load(),
		CorruptedResponses: s.corruptedResponses.Load(), CorruptedBytes: s.corruptedBytes.Load(),
		HeadersAltered: s.headersAltered.Load(),
	}
}

// seeds draws seeds for a new link's or request's rand from the proxy's.
func (p *Proxy) seeds() (a, b uint64) {
	p.rngMu.Lock()
	defer p.rngMu.Unlock()
	return p.rng.Uint64(), p.rng.Uint64()
}

// float64 draws one number in [0,1) from the proxy's rand.
func (p *Proxy) float64() float64 {
	p.rngMu.Lock()
	defer p.rngMu.Unlock()
	return p.rng.Float64()
}

// int64n draws one number in [0,n) from the proxy's rand.
func (p *Proxy) int64n(n int64) int64 {
	p.rngMu.Lock()
	defer p.rngMu.Unlock()
	return p.rng.Int64N(n)
}

// setToxics swaps the chain (callers hold p.mu) and wakes every pipe.
func (p *Proxy) setToxics(all []*Toxic) {
	old := p.chain.Load()
	p.chain.Store(newChain(all))
	close(old.changed)
}

// AddToxic adds t. It fails with ErrToxicExists if the name is taken and
// ErrInvalidToxic if the type does not fit the proxy's protocol.
func (p *Proxy) AddToxic(t *Toxic) error {
	if err := t.Validate(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if isHTTPType(t.Type) != (p.cfg.Protocol == ProtocolHTTP) {
		return fmt.Errorf("%w: type %s does not apply to a %s proxy", ErrInvalidToxic, t.Type, p.protocol())
	}
	cur := p.chain.Load().all
	if slices.ContainsFunc(cur, func(x *Toxic) bool { return x.Name == t.Name }) {
		return fmt.Errorf("%w: %q", ErrToxicExists, t.Name)
	}
	p.setToxics(append(slices.Clone(cur), t))
	p.log.Info("toxic added", "toxic", t.Name, "type", t.Type, "stream", t.Stream, "toxicity", t.Toxicity)
	return nil
}

// ReplaceToxic replaces the toxic with t's name by t (type and stream
// must not change).
func (p *Proxy) ReplaceToxic(t *Toxic) error {
	if err := t.Validate(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := slices.Clone(p.chain.Load().all)
	i := slices.IndexFunc(cur, func(x *Toxic) bool { return x.Name == t.Name })
	if i < 0 {
		return fmt.Errorf("%w: %q", ErrToxicNotFound, t.Name)
	}
	if cur[i].Type != t.Type || cur[i].Stream != t.Stream {
		return fmt.Errorf("%w: type and stream of %q cannot change", ErrInvalidToxic, t.Name)
	}
	cur[i] = t
	p.setToxics(cur)
	p.log.Info("toxic updated", "toxic", t.Name, "toxicity", t.Toxicity)
	return nil
}

// updateToxic applies a Toxiproxy-style JSON update to the named toxic.
func (p *Proxy) updateToxic(name string, patch []byte) (*Toxic, error) {
	t, err := p.Toxic(name)
	if err != nil {
		return nil, err
	}
	nt, err := t.patched(patch)
	if err != nil {
		return nil, err
	}
	return nt, p.ReplaceToxic(nt)
}

// RemoveToxic removes the named toxic.
func (p *Proxy) RemoveToxic(name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := p.chain.Load().all
	i := slices.IndexFunc(cur, func(x *Toxic) bool { return x.Name == name })
	if i < 0 {
		return fmt.Errorf("%w: %q", ErrToxicNotFound, name)
	}
	p.setToxics(slices.Delete(slices.Clone(cur), i, i+1))
	p.log.Info("toxic removed", "toxic", name)
	return nil
}

// RemoveAllToxics removes every toxic.
func (p *Proxy) RemoveAllToxics() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.chain.Load().all) > 0 {
		p.setToxics(nil)
	}
}

func (p *Proxy) protocol() string {
	if p.cfg.Protocol == "" {
		return ProtocolTCP
	}
	return p.cfg.Protocol
}

// Update changes listen address, upstream or enabled state. Changing the
// address or upstream restarts the listener and closes open connections,
// as Toxiproxy does.
func (p *Proxy) Update(cfg ProxyConfig) error {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	p.mu.Lock()
	old := p.cfg
	if cfg.Name != old.Name || cfg.Protocol != old.Protocol {
		p.mu.Unlock()
		return fmt.Errorf("%w: name and protocol cannot change", ErrInvalidProxy)
	}
	p.mu.Unlock()
	restart := cfg.Listen != old.Listen || cfg.Upstream != old.Upstream
	if restart || !cfg.Enabled {
		p.stop()
	}
	p.mu.Lock()
	p.cfg.Listen, p.cfg.Upstream = cfg.Listen, cfg.Upstream
	p.mu.Unlock()
	if cfg.Enabled {
		return p.start()
	}
	return nil
}

// start listens and serves if the proxy is not running.
func (p *Proxy) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.cfg.Enabled = true
		return nil
	}
	ln, err := net.Listen("tcp", p.cfg.Listen)
	if err != nil {
		return fmt.Errorf("proxy %s: %w", p.cfg.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.ln, p.cancel, p.wg = ln, cancel, &sync.WaitGroup{}
	p.cfg.Listen, p.cfg.Enabled = ln.Addr().String(), true
	wg := p.wg
	if p.cfg.Protocol == ProtocolHTTP {
		h, err := p.newHTTPHandler()
		if err != nil {
			cancel()
			_ = ln.Close()
			p.ln = nil
			return err
		}
		p.httpSrv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slogErrorLog(p.log),
			// Count connections in wg so that stop waits for their
			// handlers too (http.Server.Close does not). StateNew runs on
			// Serve's goroutine, which wg already counts, so Add never
			// races with Wait.
			ConnState: func(_ net.Conn, st http.ConnState) {
				switch st {
				case http.StateNew:
					wg.Add(1)
				case http.StateClosed, http.StateHijacked:
					wg.Done()
				}
			}}
		srv := p.httpSrv
		wg.Go(func() { _ = srv.Serve(ln) })
	} else {
		wg.Go(func() { p.accept(ctx, ln, wg) })
	}
	p.log.Info("proxy started", "listen", p.cfg.Listen, "upstream", p.cfg.Upstream, "protocol", p.protocol())
	return nil
}

// stop closes the listener and every connection and waits for the
// proxy's goroutines.
func (p *Proxy) stop() {
	p.mu.Lock()
	if p.ln == nil {
		p.cfg.Enabled = false
		p.mu.Unlock()
		return
	}
	_ = p.ln.Close()
	p.cancel()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	srv, tr, wg := p.httpSrv, p.httpTr, p.wg
	p.ln, p.httpSrv, p.httpTr, p.cfg.Enabled = nil, nil, nil, false
	p.mu.Unlock()
	for _, l := range links {
		l.close(false)
	}
	if srv != nil {
		_ = srv.Close()
	}
	wg.Wait()
	if tr != nil {
		tr.CloseIdleConnections()
	}
	p.log.Info("proxy stopped")
}

func (p *Proxy) accept(ctx context.Context, ln net.Listener, wg *sync.WaitGroup) {
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		p.stats.connections.Add(1)
		wg.Go(func() { p.connect(ctx, c, wg) })
	}
}

// connect dials the upstream for an accepted client and starts its link.
func (p *Proxy) connect(ctx context.Context, client net.Conn, wg *sync.WaitGroup) {
	p.mu.Lock()
	upstream := p.cfg.Upstream
	p.mu.Unlock()
	d := net.Dialer{Timeout: p.dialTimeout}
	server, err := d.DialContext(ctx, "tcp", upstream)
	if err != nil {
		p.log.Warn("dial upstream failed", "upstream", upstream, "err", err)
		_ = client.Close()
		return
	}
	l := newLink(p, client, server)
	p.mu.Lock()
	if ctx.Err() != nil { // stopped while dialling
		p.mu.Unlock()
		_ = client.Close()
		_ = server.Close()
		return
	}
	p.links[l] = struct{}{}
	p.mu.Unlock()
	a, b := p.seeds()
	c, d2 := p.seeds()
	l.start(wg, [4]uint64{a, b, c, d2})
}

func (p *Proxy) removeLink(l *link) {
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}
