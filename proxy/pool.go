package proxy

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/pki"
	"github.com/bulwark-go/bulwark/proxy/balance"
	"github.com/bulwark-go/bulwark/resilience"
	"github.com/bulwark-go/bulwark/resilience/breaker"
)

// Resolver follows the instances of a service. The registry's client
// satisfies it; the gateway declares it so that it does not depend on the
// registry.
type Resolver interface {
	// Watch calls update with the current instances of service, then again
	// every time they change, until ctx is done; then it returns ctx.Err().
	// While no registry node answers it keeps the last known list rather
	// than reporting an empty one.
	Watch(ctx context.Context, service string, update func([]bulwark.Instance)) error
}

// member is what the gateway keeps on each balance.Endpoint.
type member struct {
	id      string
	url     *url.URL // base URL; nil for TCP pools
	addr    string   // host:port
	breaker *breaker.Breaker
	sigKey  atomic.Pointer[ed25519.PublicKey] // for upstreams that require signatures

	// Guarded by pool.mu (update): the last update that listed the member
	// and the signature key it was given, unparsed.
	gen    uint64
	sigRaw string
}

// pool is one upstream: its endpoints, how to pick among them, and their
// health. It outlives reloads that leave its settings unchanged, so
// latency and health history survive a config edit.
type pool struct {
	name      string
	cfg       Upstream // with defaults applied
	set       *balance.Set
	passive   *passiveHealth
	active    *activeHealth
	maxVerify int64
	hashKey   func(*http.Request) string
	logger    *slog.Logger
	events    func(Event)
	run       func(ctx context.Context, name string, loop func(ctx context.Context) error)
	metrics   *poolMetrics
	transport *http.Transport   // mTLS to the endpoints; nil: the gateway's shared one
	fast      http.RoundTripper // the HTTP/1.1 engine for plain http:// (nil: engine net/http, or mTLS)
	sigMaxAge time.Duration     // > 0: answers must carry a valid signature
	latency   *poolLatency      // successful tries' latency: adaptive timeouts and hedge delays

	mu      sync.Mutex // guards static membership and closing
	stop    context.CancelFunc
	wg      sync.WaitGroup
	closed  bool
	members map[string]*member // by endpoint ID, for breakers that survive updates
	gen     uint64             // update counter (guarded by mu)
}

func newPool(u Upstream, opts *Options) (*pool, error) {
	u = upstreamDefaults(u)
	p := &pool{name: u.Name, cfg: u, maxVerify: int64(u.MaxVerifyBody), logger: opts.logger(),
		events: opts.emit, run: opts.Run, members: map[string]*member{}, latency: newPoolLatency()}
	p.passive = newPassiveHealth(p, u.Outlier)
	if u.Signatures.Require {
		p.sigMaxAge = u.Signatures.MaxAge
		if p.sigMaxAge == 0 {
			p.sigMaxAge = DefaultSignatureMaxAge
		}
	}
	pol, err := balancePolicy(u.Balance)
	if err != nil {
		return nil, err
	}
	// A Maglev table lags membership by up to 100 ms instead of being
	// rebuilt on the discovery goroutine for every change (seconds at
	// 100,000 endpoints); endpoints that leave are skipped at once.
	bc := balance.Config{Policy: pol, SlowStart: u.SlowStart, Seed: opts.Seed, Panic: p.passive.panicking, RebuildDelay: 100 * time.Millisecond}
	if p.set, err = balance.NewSet(bc); err != nil {
		return nil, fmt.Errorf("upstream %s: %w", u.Name, err)
	}
	if u.Balance == "hash" {
		p.hashKey = hashKeyFunc(u.HashOn)
	}
	if len(u.Endpoints) > 0 {
		if err := p.update(staticInstances(u)); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// start begins the pool's background work: active probes, outlier
// analysis, and following the registry for discovered upstreams.
func (p *pool) start(res Resolver) error {
	ctx, cancel := context.WithCancel(context.Background())
	p.stop = cancel
	if p.cfg.Discover != "" {
		if res == nil {
			cancel()
			return fmt.Errorf("upstream %s: discover: %s needs a registry: configure registry addresses", p.name, p.cfg.Discover)
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if p.run == nil {
				p.follow(ctx, res)
				return
			}
			p.run(ctx, "discovery "+p.name, func(ctx context.Context) error { p.follow(ctx, res); return nil })
		}()
	}
	p.passive.start(ctx, &p.wg)
	if p.cfg.Health.Path != "" || p.cfg.Health.TCP {
		p.mu.Lock()
		p.active = newActiveHealth(p)
		p.mu.Unlock()
		p.active.start(ctx, &p.wg)
	}
	return nil
}

// follow keeps the pool's membership in step with the registry.
func (p *pool) follow(ctx context.Context, res Resolver) {
	for ctx.Err() == nil {
		err := res.Watch(ctx, p.cfg.Discover, func(insts []bulwark.Instance) {
			if err := p.update(insts); err != nil {
				p.logger.Warn("discovered membership rejected", "upstream", p.name, "err", err)
			}
		})
		if ctx.Err() == nil {
			p.logger.Warn("registry watch ended; retrying", "upstream", p.name, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// update replaces the pool's membership with insts. Registry health states
// carry over: a suspect instance stays in the set (so its history is kept)
// but is not routable.
//
// The registry delivers the whole list on every change, so one pass over
// it is unavoidable; beyond that the cost follows what changed: members
// are kept in place (no map rebuilt per update), signature keys are parsed
// only when they change, and passive health and active probes hear of
// membership only when it changed (BenchmarkPoolAddRemove).
func (p *pool) update(insts []bulwark.Instance) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen++
	gen := p.gen
	ms := make([]balance.Member, 0, len(insts))
	var added []*member // new members, and new ones under an old ID (address changed)
	replaced := 0       // how many of added replace a member of the same ID
	for _, in := range insts {
		id := in.ID
		if id == "" {
			id = in.Address
		}
		m := p.members[id]
		if m == nil || m.addr != hostPort(in.Address) {
			if m != nil {
				replaced++
			}
			var err error
			if m, err = p.newMember(id, in.Address); err != nil {
				return err
			}
			added = append(added, m)
		}
		m.gen = gen
		if k := in.Metadata[MetadataSignatureKey]; k != m.sigRaw {
			m.setSignatureKey(k)
			m.sigRaw = k
		}
		w := 1
		if s := in.Metadata["weight"]; s != "" {
			// strconv, not fmt.Sscan: &w would escape, one allocation per
			// endpoint on every registry update.
			if v, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
				w = v
			}
		}
		ms = append(ms, balance.Member{ID: id, Address: in.Address, Weight: max(w, 1), Data: m})
	}
	if err := p.set.Update(ms); err != nil {
		return fmt.Errorf("upstream %s: %w", p.name, err)
	}
	// IDs are distinct now (Update refused duplicates), so members left
	// exactly when the kept ones do not account for every old one.
	var removed []string
	if len(insts)-len(added)+replaced != len(p.members) {
		for id, m := range p.members {
			if m.gen != gen {
				delete(p.members, id)
				removed = append(removed, id)
			}
		}
	}
	addedIDs := make([]string, len(added))
	for i, m := range added {
		p.members[m.id] = m
		addedIDs[i] = m.id
	}
	changed := len(added) > 0 || len(removed) > 0
	p.passive.setEndpoints(insts, addedIDs, removed, changed)
	if p.active != nil && changed {
		p.active.setTargets()
	}
	return nil
}

func (p *pool) newMember(id, addr string) (*member, error) {
	m := &member{id: id, addr: hostPort(addr)}
	if strings.Contains(addr, "://") {
		u, err := url.Parse(addr)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: endpoint %q: %w", p.name, addr, err)
		}
		m.url = u
	}
	if !p.cfg.Breaker.Disabled {
		b := p.cfg.Breaker
		var err error
		m.breaker, err = breaker.New(breaker.Config{
			Name: p.name + "/" + id, WindowSize: b.Window, MinimumCalls: b.MinCalls,
			FailureRateThreshold: b.FailureRate, OpenDuration: b.Open, OpenDurationMultiplier: 2,
			MaxOpenDuration: 8 * b.Open, OpenJitter: 0.2, HalfOpenCalls: 1,
			Observer: p.breakerObserver(id),
		})
		if err != nil {
			return nil, fmt.Errorf("upstream %s: breaker: %w", p.name, err)
		}
	}
	return m, nil
}

// setSignatureKey records the endpoint's public key; an invalid or empty
// one clears it (its answers then fail a required signature check).
func (m *member) setSignatureKey(s string) {
	if s == "" {
		m.sigKey.Store(nil)
		return
	}
	k, err := pki.ParsePublicKey(s)
	if err != nil {
		m.sigKey.Store(nil)
		return
	}
	m.sigKey.Store(&k)
}

func hostPort(addr string) string {
	if i := strings.Index(addr, "://"); i >= 0 {
		addr = addr[i+3:]
	}
	if i := strings.IndexByte(addr, '/'); i >= 0 {
		addr = addr[:i]
	}
	return addr
}

// pick chooses an endpoint for one try, skipping tried endpoints and those
// whose breaker is open. It falls back to panic routing (any endpoint not
// yet tried, whatever its health) rather than fail while one might answer.
// done, the breaker's (nil without one), must be called with the try's
// outcome.
func (p *pool) pick(r *http.Request, tried *balance.Tried) (*balance.Endpoint, func(resilience.Outcome), error) {
	req := balance.PickRequest{Tried: *tried}
	if p.hashKey != nil {
		req.Key = p.hashKey(r)
	}
	return p.pickWith(req, tried)
}

// pickWith is pick for a prepared request: endpoints whose breaker refuses
// are added to tried and passed over.
func (p *pool) pickWith(req balance.PickRequest, tried *balance.Tried) (*balance.Endpoint, func(resilience.Outcome), error) {
	for range balance.MaxTried {
		ep, err := p.set.Pick(req)
		if errors.Is(err, balance.ErrNoEndpoint) && !req.AnyHealth && !errors.Is(err, balance.ErrAllTried) {
			req.AnyHealth = true // nothing healthy left: any endpoint beats a certain error
			ep, err = p.set.Pick(req)
		}
		if err != nil {
			return nil, nil, err
		}
		m := ep.Data().(*member)
		if m.breaker == nil {
			return ep, nil, nil
		}
		done, err := m.breaker.Allow()
		if err != nil {
			req.Tried.Add(ep)
			tried.Add(ep)
			continue
		}
		return ep, done, nil
	}
	return nil, nil, balance.ErrNoEndpoint
}

// close stops the pool's background work and waits for it.
func (p *pool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	stop := p.stop
	p.mu.Unlock()
	if stop != nil {
		stop()
	}
	p.wg.Wait()
	p.set.Close()
	if p.transport != nil {
		p.transport.CloseIdleConnections()
	}
}

// roundTripper is the transport tries to this pool's endpoints use: its
// mTLS one, else the HTTP/1.1 engine (which hands https, upgrades and
// unbuffered bodies to shared), else shared.
func (p *pool) roundTripper(shared *http.Transport) http.RoundTripper {
	if p.transport != nil {
		return p.transport
	}
	if p.fast != nil {
		return p.fast
	}
	return shared
}

func balancePolicy(name string) (balance.Policy, error) {
	switch name {
	case "", "p2c-ewma":
		return balance.P2C{}, nil
	case "round-robin":
		return balance.RoundRobin{}, nil
	case "least-request":
		return balance.LeastRequest{}, nil
	case "hash":
		return balance.Maglev{}, nil
	}
	return nil, fmt.Errorf("unknown balance algorithm %q", name)
}

func hashKeyFunc(on string) func(*http.Request) string {
	switch {
	case on == "" || on == "ip":
		return func(r *http.Request) string { return clientIP(r).String() }
	case strings.HasPrefix(on, "header:"):
		h := http.CanonicalHeaderKey(strings.TrimPrefix(on, "header:"))
		return func(r *http.Request) string { return r.Header.Get(h) }
	case strings.HasPrefix(on, "cookie:"):
		name := strings.TrimPrefix(on, "cookie:")
		return func(r *http.Request) string {
			if c, err := r.Cookie(name); err == nil {
				return c.Value
			}
			return ""
		}
	}
	return nil
}

// breakerObserver reports an endpoint breaker's state changes as gateway
// events (the dashboard's event log).
func (p *pool) breakerObserver(id string) resilience.Observer {
	return func(e resilience.Event) {
		if e.Kind == resilience.EventStateChange {
			p.events(Event{Kind: "breaker", Upstream: p.name, Endpoint: id, Detail: e.From + " → " + e.To})
		}
	}
}
