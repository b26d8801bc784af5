// Package proxy is Bulwark's gateway: a fault-tolerant, load-balancing
// reverse proxy (the role of Nginx, HAProxy or Envoy) that also defends
// against Byzantine upstreams.
//
// A request flows through it like this:
//
//	listener ─► route (match) ─► rate limit ─► adaptive limit ─► tries:
//	    balance.Pick (P2C over peak EWMA, skipping tried and ejected endpoints)
//	    ─► the endpoint's circuit breaker ─► upstream (per-try timeout)
//	    ─► Content-Digest check ─► retry elsewhere, within the retry budget, or answer
//
// Every outcome feeds the balancer's latency estimate, the endpoint's
// breaker and passive health (package health: outlier ejection), so a
// crashed, hung, slow, failing or corrupting endpoint stops getting
// traffic while the client's request is retried on another one.
//
// The defaults are fault-tolerant: a config that lists only endpoints gets
// P2C-EWMA balancing, outlier ejection, a per-endpoint breaker, retries of
// idempotent requests on different endpoints while a 20% retry budget
// lasts, a per-try timeout that adapts to the pool's latency (3 × p99, at
// least 100 ms, at most 5 s), hedging after the pool's p99 within a 5%
// budget, an adaptive (Gradient2) concurrency limit per route that sheds
// with 503, and Content-Digest verification. The try loop is in try.go;
// the latency the adaptive parts learn from is in latency.go.
//
// Package proxy never imports the registry or delivery packages: it
// declares what it needs from them as [Resolver] and [Enqueuer], and
// cmd/bulwark wires them in.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/pki"
	"github.com/bulwark-go/bulwark/proxy/http1"
	"github.com/prometheus/client_golang/prometheus"
)

// Options are the gateway's collaborators; all are optional.
type Options struct {
	// Logger receives the gateway's logs; nil discards them.
	Logger *slog.Logger
	// Resolver serves upstreams configured with discover: SERVICE.
	Resolver Resolver
	// Enqueuer stores the requests of async routes.
	Enqueuer Enqueuer
	// Registry receives the gateway's metrics; nil makes a private one,
	// served by the admin handler.
	Registry *prometheus.Registry
	// Seed seeds the balancers' random choices; 0 picks one at random.
	Seed uint64
	// OnEvent is told of ejections, returns and breaker state changes (for
	// the dashboard's event log). It must not block.
	OnEvent func(Event)
	// Tracer makes a span per request and per try; nil is off.
	Tracer Tracer
	// Run runs one of the gateway's long-lived loops (a pool's registry
	// watch) until ctx ends, and returns once loop has returned for the
	// last time. Nil calls loop(ctx) directly. cmd/bulwark passes one that
	// runs the loop under the process's supervision tree, so a panic in
	// it is recovered and the loop restarted.
	Run func(ctx context.Context, name string, loop func(ctx context.Context) error)
	// ListenConfig, when set, opens the listeners (a gateway cluster
	// fences the sockets through it on handover).
	ListenConfig *net.ListenConfig
}

func (o *Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

func (o *Options) emit(e Event) {
	if o.OnEvent != nil {
		e.Time = time.Now()
		o.OnEvent(e)
	}
}

// Event is something that happened to an endpoint.
type Event struct {
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"` // "ejected", "returned", "breaker", "health", "byzantine" (a dissenting replica), "disagreement" (a strict vote refused; Endpoint empty)
	Upstream string    `json:"upstream"`
	Endpoint string    `json:"endpoint"`
	Detail   string    `json:"detail"`
}

// Gateway is a running gateway configuration. Its routes and pools are
// swapped atomically by Reload; in-flight requests finish on the
// configuration they started with.
type Gateway struct {
	opts      Options
	logger    *slog.Logger
	metrics   *metrics
	transport *http.Transport
	fast      *http1.Transport // plain http:// pools' engine; falls back to transport

	state atomic.Pointer[state]

	mu        sync.Mutex // serializes Reload, Serve and Close
	listeners []*runningListener
	closed    bool
}

// state is one configuration, compiled.
type state struct {
	cfg      Config
	routes   []*route
	pools    map[string]*pool
	delivery map[string]*route // one route per upstream, for async deliveries
}

// New compiles cfg into a gateway. It starts the pools' background work
// (probes, outlier analysis, discovery) but no listener: call Serve, or use
// the Gateway as an http.Handler.
func New(cfg Config, opts Options) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	g := &Gateway{opts: opts, logger: opts.logger(), metrics: newMetrics(reg)}
	g.transport = newTransport(cfg)
	g.fast = newFastTransport(cfg, g.transport)
	st, err := g.build(cfg, nil)
	if err != nil {
		return nil, err
	}
	g.state.Store(st)
	reg.MustRegister(&stateCollector{g: g})
	return g, nil
}

func newTransport(cfg Config) *http.Transport {
	d := &net.Dialer{Timeout: connectTimeout(cfg), KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // pass Accept-Encoding and bodies through untouched
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
}

// newFastTransport is the engine of plain http:// pools (docs/fastpath.md):
// HTTP/1.1 on the try's own goroutine. What it does not carry (https,
// upgrades, unbuffered request bodies) goes to fallback, the shared
// net/http Transport.
func newFastTransport(cfg Config, fallback *http.Transport) *http1.Transport {
	return &http1.Transport{
		ConnectTimeout:      connectTimeout(cfg),
		MaxIdleConnsPerHost: fallback.MaxIdleConnsPerHost,
		IdleConnTimeout:     fallback.IdleConnTimeout,
		Fallback:            fallback,
	}
}

// connectTimeout is the longest connect timeout of any route: the
// transports are shared by every pool.
func connectTimeout(cfg Config) time.Duration {
	connect := DefaultConnectTimeout
	for _, r := range cfg.Routes {
		connect = max(connect, r.Timeouts.Connect)
	}
	return connect
}

// build compiles cfg, reusing pools of old whose settings are unchanged
// (so their endpoints keep their latency and health history).
func (g *Gateway) build(cfg Config, old *state) (*state, error) {
	st := &state{cfg: cfg, pools: map[string]*pool{}, delivery: map[string]*route{}}
	var fresh []*pool
	fail := func(err error) (*state, error) {
		for _, p := range fresh {
			p.close()
		}
		return nil, err
	}
	for _, u := range cfg.Upstreams {
		if old != nil {
			if p := old.pools[u.Name]; p != nil && samePoolSettings(p.cfg, upstreamDefaults(u)) {
				if len(u.Endpoints) > 0 {
					if err := p.update(staticInstances(u)); err != nil {
						return fail(err)
					}
				}
				st.pools[u.Name] = p
				continue
			}
		}
		p, err := newPool(u, &g.opts)
		if err != nil {
			return fail(err)
		}
		if u.TLS != (pki.Files{}) {
			tc, err := u.TLS.ClientConfig()
			if err != nil {
				return fail(fmt.Errorf("upstream %s: tls: %w", u.Name, err))
			}
			p.transport = g.transport.Clone()
			p.transport.TLSClientConfig = tc
		}
		if u.TLS == (pki.Files{}) && u.Engine != EngineNetHTTP {
			p.fast = g.fast
		}
		p.metrics = g.metrics.pool(p.name)
		if err := p.start(g.opts.Resolver); err != nil {
			p.close()
			return fail(err)
		}
		fresh = append(fresh, p)
		st.pools[u.Name] = p
	}
	for i, rc := range cfg.Routes {
		rt, err := g.compileRoute(i, rc, st.pools)
		if err != nil {
			return fail(err)
		}
		rt.accessLog = cfg.AccessLog
		st.routes = append(st.routes, rt)
	}
	for name := range st.pools {
		// Deliveries are writes, retried by delivery itself with backoff:
		// no hedging and no adaptive per-try timeout (re-sending a write
		// that is merely slow would deliver it twice), the old fixed three
		// tries, and no concurrency limit (Forward does not pass through
		// serve, where it is applied).
		rt, err := g.compileRoute(0, Route{Name: "delivery:" + name, Upstream: name,
			Timeouts: Timeouts{FixedPerTry: true}, Retries: Retries{Attempts: 3},
			Hedge: Hedge{Delay: "off"}, Limit: Limit{Algorithm: "off"}}, st.pools)
		if err != nil {
			return fail(err)
		}
		st.delivery[name] = rt
	}
	return st, nil
}

func staticInstances(u Upstream) []bulwark.Instance {
	out := make([]bulwark.Instance, len(u.Endpoints))
	for i, e := range u.Endpoints {
		w := e.Weight
		if w == 0 {
			w = 1
		}
		out[i] = bulwark.Instance{ID: e.URL, Address: e.URL, Metadata: map[string]string{"weight": fmt.Sprint(w)}}
		if e.SignatureKey != "" {
			out[i].Metadata[MetadataSignatureKey] = e.SignatureKey
		}
	}
	return out
}

// samePoolSettings reports whether a pool can be kept across a reload:
// everything but the static endpoint list must be equal.
func samePoolSettings(a, b Upstream) bool {
	a.Endpoints, b.Endpoints = nil, nil
	return reflect.DeepEqual(a, b)
}

// Reload switches to cfg atomically: new requests use it at once,
// in-flight ones finish on the old one, and no request fails because of
// the switch. When cfg is invalid the old config keeps running and the
// error says why. Listener changes take effect only on restart.
func (g *Gateway) Reload(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.state.Load()
	st, err := g.build(cfg, old)
	if err != nil {
		return err
	}
	g.state.Store(st)
	for name, p := range old.pools {
		if st.pools[name] != p {
			p.close() // stops its probes and waits; requests still using it finish normally
		}
	}
	g.logger.Info("configuration reloaded", "routes", len(st.routes), "upstreams", len(st.pools))
	return nil
}

// ServeHTTP routes r: the first matching route forwards it.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := g.state.Load()
	if r.Method == http.MethodGet && len(r.URL.Path) > len(statusPrefix) && r.URL.Path[:len(statusPrefix)] == statusPrefix {
		g.serveStatus(w, r)
		return
	}
	for _, rt := range st.routes {
		if rt.matches(r) {
			if tr := g.opts.Tracer; tr != nil {
				g.serveTraced(tr, w, r, rt)
				return
			}
			rt.dispatch(w, r)
			return
		}
	}
	http.Error(w, "no route matches "+r.Method+" "+r.Host+r.URL.Path, http.StatusNotFound)
}

// dispatch serves r on its route: accepted for delivery, upgraded, or
// forwarded.
func (rt *route) dispatch(w http.ResponseWriter, r *http.Request) {
	if rt.cfg.Async {
		rt.gw.accept(w, r, rt)
		return
	}
	if _, ok := isUpgrade(r.Header); ok {
		rt.upgrade(w, r)
		return
	}
	rt.serve(w, r)
}

// Forward sends an asynchronous message to its upstream through the same
// path as live requests (balancing, breakers, retries, digest checks) and
// returns the status the backend answered. It satisfies delivery's
// Forwarder interface.
func (g *Gateway) Forward(ctx context.Context, m *bulwark.Message) (code int, err error) {
	st := g.state.Load()
	rt := st.delivery[m.Upstream]
	if rt == nil {
		return 0, fmt.Errorf("gateway: no upstream %q for message %s", m.Upstream, m.ID)
	}
	r, err := messageRequest(ctx, m)
	if err != nil {
		return 0, err
	}
	if tr := g.opts.Tracer; tr != nil {
		var end func(int, string, error)
		ctx, end = tr.StartDelivery(ctx, r, rt.name)
		r = r.WithContext(ctx)
		defer func() { end(code, "", err) }()
	}
	sw := &statusWriter{header: http.Header{}}
	t := rt.forward(ctx, r, m.Body, true)
	code = rt.respond(sw, r, t)
	if t.kind != failNone && t.resp == nil {
		return code, fmt.Errorf("gateway: %s: %w", t.kind, t.err)
	}
	return code, nil
}

// statusWriter is a ResponseWriter that keeps only the status.
type statusWriter struct {
	header http.Header
	code   int
}

func (s *statusWriter) Header() http.Header         { return s.header }
func (s *statusWriter) Write(b []byte) (int, error) { return len(b), nil }
func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
}

// Close stops the listeners (without draining: use Shutdown for that) and
// every pool's background work. It is idempotent.
func (g *Gateway) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return g.Shutdown(ctx)
}

// Shutdown stops accepting connections, lets in-flight requests finish
// until ctx is done, then stops the pools' background work.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	ls := g.listeners
	g.mu.Unlock()
	var errs []error
	for _, l := range ls {
		if err := l.shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
	}
	for _, p := range g.state.Load().pools {
		p.close()
	}
	g.fast.CloseIdleConnections() // and its fallback, g.transport
	return errors.Join(errs...)
}

// discardBody is for tests and callers that only want the status.
var _ io.Writer = (*statusWriter)(nil)
