package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/bulwark-go/bulwark/internal/writeauth"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// TokenEnv is the environment variable `bulwark chaos proxy` reads the API
// token from when --token is not given.
const TokenEnv = "BULWARK_CHAOS_TOKEN"

// Config configures a [Server]. The zero value works.
type Config struct {
	// Listen is the API's address for [Server.Run]; default
	// "127.0.0.1:8474", Toxiproxy's port.
	Listen string
	// Seed seeds every random decision. 0 picks a random seed, which
	// [Server.Seed] reports (and the log shows) so the run can be replayed.
	Seed uint64
	// Proxies are created (and started when Enabled) by [New].
	Proxies []ProxyConfig
	// DialTimeout bounds dialling an upstream; default 5 s.
	DialTimeout time.Duration
	// Logger receives one line per change and per error; nil discards.
	Logger *slog.Logger
	// Token, when set, is required as "Authorization: Bearer <Token>" on
	// every API write (creating proxies, adding toxics, reset). Without it
	// the API must listen on loopback: anyone who can reach it can cut
	// traffic. Toxiproxy has no authentication; its clients send no token,
	// so they reach a token-protected API only through loopback or a
	// tunnel that adds the header.
	Token string
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	listen := c.Listen
	if listen == "" {
		listen = "127.0.0.1:8474"
	}
	if err := writeauth.CheckListener(listen, writeauth.Config{Token: c.Token}, "chaos: API", "a token (--token or "+TokenEnv+")"); err != nil {
		return err
	}
	if c.DialTimeout < 0 {
		return errors.New("chaos: dial timeout must not be negative")
	}
	seen := map[string]bool{}
	for i := range c.Proxies {
		pc := c.Proxies[i]
		if pc.Listen == "" {
			pc.Listen = "127.0.0.1:0"
		}
		if err := pc.Validate(); err != nil {
			return fmt.Errorf("chaos: proxies[%d]: %w", i, err)
		}
		if seen[pc.Name] {
			return fmt.Errorf("chaos: proxies[%d]: %w: %q", i, ErrProxyExists, pc.Name)
		}
		seen[pc.Name] = true
	}
	return nil
}

// Server is a set of named proxies and the Toxiproxy-compatible HTTP API
// that manages them. Methods are safe for concurrent use.
//
// Goroutines: each enabled proxy owns an accept loop (or an http.Server)
// and four goroutines per open connection; [Server.Close] stops them all
// and waits. [Server.Run] also owns the API's http.Server.
//
// Lock order: Server.mu before Proxy.mu; a proxy's link goroutines take
// Proxy.mu only briefly (to deregister) and are never waited for while it
// is held. The hot path (bytes through a link) takes no lock: it reads the
// proxy's toxic chain through an atomic pointer.
type Server struct {
	cfg  Config
	log  *slog.Logger
	seed uint64

	rngMu sync.Mutex // guards rng
	rng   *rand.Rand

	mu      sync.Mutex // guards proxies and closed; held while a proxy starts or stops
	proxies map[string]*Proxy
	closed  bool
}

// New creates a server and its configured proxies.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8474"
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64() | 1 // any non-zero value, reported so the run can be replayed
	}
	s := &Server{cfg: cfg, log: log, seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		proxies: map[string]*Proxy{}}
	log.Info("chaos server", "seed", seed)
	for _, pc := range cfg.Proxies {
		if _, err := s.CreateProxy(pc); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// Seed returns the seed in use.
func (s *Server) Seed() uint64 { return s.seed }

// CreateProxy creates a proxy and starts it if cfg.Enabled.
func (s *Server) CreateProxy(cfg ProxyConfig) (*Proxy, error) {
	s.rngMu.Lock()
	a, b := s.rng.Uint64(), s.rng.Uint64()
	s.rngMu.Unlock()
	p, err := newProxy(cfg, a, b, s.log, s.cfg.DialTimeout)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if _, ok := s.proxies[cfg.Name]; ok {
		return nil, fmt.Errorf("%w: %q", ErrProxyExists, cfg.Name)
	}
	if cfg.Enabled {
		if err := p.start(); err != nil {
			return nil, err
		}
	}
	s.proxies[cfg.Name] = p
	return p, nil
}

// Proxy returns the named proxy.
func (s *Server) Proxy(name string) (*Proxy, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.proxies[name]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrProxyNotFound, name)
}

// Proxies returns every proxy, sorted by name.
func (s *Server) Proxies() []*Proxy {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Proxy, 0, len(s.proxies))
	for _, p := range s.proxies {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *Proxy) int { return strings.Compare(a.Name(), b.Name()) })
	return out
}

// DeleteProxy stops the named proxy, closing its connections, and forgets it.
func (s *Server) DeleteProxy(name string) error {
	s.mu.Lock()
	p, ok := s.proxies[name]
	delete(s.proxies, name)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrProxyNotFound, name)
	}
	p.stop()
	return nil
}

// Reset enables every proxy and removes every toxic, as Toxiproxy's
// POST /reset does.
func (s *Server) Reset() error {
	var errs []error
	for _, p := range s.Proxies() {
		p.RemoveAllToxics()
		errs = append(errs, p.start())
	}
	return errors.Join(errs...)
}

// Populate replaces or creates the given proxies (Toxiproxy's
// POST /populate): a proxy whose name exists is deleted first.
func (s *Server) Populate(cfgs []ProxyConfig) ([]*Proxy, error) {
	out := make([]*Proxy, 0, len(cfgs))
	for _, c := range cfgs {
		if err := s.DeleteProxy(c.Name); err != nil && !errors.Is(err, ErrProxyNotFound) {
			return out, err
		}
		p, err := s.CreateProxy(c)
		if err != nil {
			return out, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Close stops every proxy and waits for their goroutines. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	ps := make([]*Proxy, 0, len(s.proxies))
	for _, p := range s.proxies {
		ps = append(ps, p)
	}
	s.proxies = map[string]*Proxy{}
	s.mu.Unlock()
	for _, p := range ps {
		p.stop()
	}
	return nil
}

// Run serves the API on Config.Listen until ctx ends, then shuts the API
// down and closes every proxy.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("chaos api: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves the API on ln until ctx ends, then shuts down like Run.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slogErrorLog(s.log)}
	s.log.Info("chaos api listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shCtx)
	if err == nil {
		err = <-errc
	}
	s.Close()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ParseProxies reads proxies in Toxiproxy's config-file format (a JSON
// array of {name, listen, upstream, enabled}; enabled defaults to true),
// plus Bulwark's protocol field, for Config.Proxies.
func ParseProxies(data []byte) ([]ProxyConfig, error) {
	var ins []proxyInput
	if err := json.Unmarshal(data, &ins); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidProxy, err)
	}
	out := make([]ProxyConfig, len(ins))
	seen := map[string]bool{}
	for i, in := range ins {
		out[i].Enabled = true
		in.apply(&out[i])
		if out[i].Listen == "" {
			out[i].Listen = "127.0.0.1:0"
		}
		if err := out[i].Validate(); err != nil {
			return nil, fmt.Errorf("proxies[%d]: %w", i, err)
		}
		if seen[out[i].Name] {
			return nil, fmt.Errorf("proxies[%d]: %w: %q", i, ErrProxyExists, out[i].Name)
		}
		seen[out[i].Name] = true
	}
	return out, nil
}
