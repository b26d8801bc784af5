package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
)

// ErrClosed is returned by methods called after Close.
var ErrClosed = errors.New("health: closed")

// CheckerConfig configures active health checks. The zero value probes
// GET / every 5 s with a 2 s timeout and expects a 2xx or 3xx status; two
// passes mark an endpoint up, three failures mark it down.
type CheckerConfig struct {
	// Run runs each target's probe loop until ctx ends, and returns once
	// loop has returned for the last time; name is "health " + the
	// target's ID. Nil calls loop(ctx) directly. The gateway's owner
	// passes one that supervises the loop (see proxy.Options.Run).
	Run func(ctx context.Context, name string, loop func(ctx context.Context) error)
	// TCP probes with a TCP connect instead of an HTTP request. Default
	// false: HTTP.
	TCP bool
	// Path is the HTTP probe's path. Default "/".
	Path string
	// Host, when set, is sent as the HTTP probe's Host header (virtual
	// hosts). Default: the target's host.
	Host string
	// StatusMin and StatusMax bound the statuses that pass. Default 200
	// and 399 (HAProxy's httpchk default: 2xx and 3xx).
	StatusMin, StatusMax int
	// Interval is the time between probes of one endpoint. Default 5 s.
	Interval time.Duration
	// Timeout bounds one probe. Default 2 s, and never more than Interval.
	Timeout time.Duration
	// Rise is how many consecutive passes mark an endpoint up. Default 2.
	Rise int
	// Fall is how many consecutive failures mark an endpoint down. Default
	// 3. Thresholds above 1 keep one lost probe from flapping an endpoint
	// (traefik#12390, caddy#1345).
	Fall int
	// Probe, when set, replaces the built-in HTTP and TCP probes: it returns
	// nil when t is healthy. It must honour ctx (the probe timeout).
	Probe func(ctx context.Context, t Target) error
	// Client is the HTTP client for HTTP probes. Default: a client of its
	// own without keep-alives (each probe tests that the endpoint still
	// accepts connections) that does not follow redirects.
	Client *http.Client
	// OnChange is called when an endpoint's probe health changes: to
	// bulwark.HealthUp after Rise passes, to bulwark.HealthDown after Fall
	// failures. Calls are serialized and never happen after Close returns.
	// It must not call the Checker's SetTargets or Close. Wire it to
	// Detector.SetProbeHealth, or to balance.Set.SetHealth when there is no
	// Detector.
	OnChange func(id string, h bulwark.Health)
	// Seed seeds the jitter of each endpoint's first probe (spreading
	// probes over the interval). Default 0: a random seed.
	Seed uint64
	// Logger receives state changes at Info and probe errors at Debug.
	// Default nil: discard.
	Logger *slog.Logger
}

// Validate reports the first invalid field.
func (c *CheckerConfig) Validate() error {
	switch {
	case c.Interval < 0 || c.Timeout < 0:
		return fmt.Errorf("health: negative Interval %v or Timeout %v", c.Interval, c.Timeout)
	case c.Rise < 0 || c.Fall < 0:
		return fmt.Errorf("health: negative Rise %d or Fall %d", c.Rise, c.Fall)
	case c.StatusMin < 0 || c.StatusMax < 0 || (c.StatusMax != 0 && c.StatusMin > c.StatusMax):
		return fmt.Errorf("health: invalid status range %d-%d", c.StatusMin, c.StatusMax)
	case c.Path != "" && !strings.HasPrefix(c.Path, "/"):
		return fmt.Errorf("health: Path %q must start with /", c.Path)
	}
	return nil
}

// Checker runs active health probes against a changing set of endpoints,
// one goroutine per endpoint, and reports changes through
// [CheckerConfig.OnChange]. Its methods are safe for concurrent use.
type Checker struct {
	cfg      CheckerConfig
	probe    func(ctx context.Context, t Target) error
	log      *slog.Logger
	ownedCli *http.Client // closed on Close when the checker created it

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	cbMu   sync.Mutex // serializes OnChange

	mu      sync.Mutex
	rnd     *rand.Rand // jitter; guarded by mu
	targets map[string]*probed
	closed  bool
}

// probed is the state of one probed endpoint.
type probed struct {
	t       Target
	cancel  context.CancelFunc
	health  atomic.Uint32 // bulwark.Health
	lastErr atomic.Pointer[string]
}

// NewChecker returns a checker with no targets, or an error if cfg is
// invalid. Call [Checker.SetTargets] to start probing and [Checker.Close]
// to stop.
func NewChecker(cfg CheckerConfig) (*Checker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Interval = orDefault(cfg.Interval, 5*time.Second)
	cfg.Timeout = min(orDefault(cfg.Timeout, 2*time.Second), cfg.Interval)
	if cfg.Rise == 0 {
		cfg.Rise = 2
	}
	if cfg.Fall == 0 {
		cfg.Fall = 3
	}
	c := &Checker{cfg: cfg, log: cfg.Logger, targets: map[string]*probed{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	c.rnd = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	c.probe = cfg.Probe
	if c.probe == nil {
		c.probe = c.builtinProbe(cfg)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// builtinProbe returns the HTTP or TCP probe cfg asks for.
func (c *Checker) builtinProbe(cfg CheckerConfig) func(context.Context, Target) error {
	if cfg.TCP {
		return (&tcpProber{}).probe
	}
	cli := cfg.Client
	if cli == nil {
		cli = &http.Client{
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
		c.ownedCli = cli
	}
	p := &httpProber{client: cli, path: cfg.Path, host: cfg.Host, min: cfg.StatusMin, max: cfg.StatusMax}
	if p.path == "" {
		p.path = "/"
	}
	if p.min == 0 {
		p.min = 200
	}
	if p.max == 0 {
		p.max = 399
	}
	return p.probe
}

func orDefault(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

// SetTargets replaces the probed endpoints: new ones start being probed
// (health unknown until Rise or Fall is reached), removed ones stop, and
// ones whose ID and Address are unchanged keep their state. It returns
// [ErrClosed] after Close, or an error for an empty or duplicate ID.
func (c *Checker) SetTargets(ts []Target) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	want := make(map[string]Target, len(ts))
	for _, t := range ts {
		if t.ID == "" {
			return fmt.Errorf("health: target %q has no ID", t.Address)
		}
		if _, dup := want[t.ID]; dup {
			return fmt.Errorf("health: duplicate target ID %q", t.ID)
		}
		want[t.ID] = t
	}
	for id, p := range c.targets {
		if t, ok := want[id]; !ok || t != p.t {
			p.cancel()
			delete(c.targets, id)
		}
	}
	for id, t := range want {
		if c.targets[id] != nil {
			continue
		}
		ctx, cancel := context.WithCancel(c.ctx)
		p := &probed{t: t, cancel: cancel}
		c.targets[id] = p
		jitter := time.Duration(c.rnd.Int64N(int64(c.cfg.Interval)))
		c.wg.Go(func() {
			if c.cfg.Run == nil {
				c.run(ctx, p, jitter)
				return
			}
			c.cfg.Run(ctx, "health "+t.ID, func(ctx context.Context) error { c.run(ctx, p, jitter); return nil })
		})
	}
	return nil
}

// run probes one endpoint until ctx ends: first after jitter, then every
// Interval.
func (c *Checker) run(ctx context.Context, p *probed, jitter time.Duration) {
	timer := time.NewTimer(jitter)
	defer timer.Stop()
	var passes, fails int
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		pctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		err := c.probe(pctx, p.t)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			passes, fails = passes+1, 0
			p.lastErr.Store(nil)
		} else {
			passes, fails = 0, fails+1
			msg := err.Error()
			p.lastErr.Store(&msg)
			c.log.Debug("health probe failed", "endpoint", p.t.ID, "err", err)
		}
		old := bulwark.Health(p.health.Load())
		next := old
		switch {
		case err == nil && old != bulwark.HealthUp && passes >= c.cfg.Rise:
			next = bulwark.HealthUp
		case err != nil && old != bulwark.HealthDown && fails >= c.cfg.Fall:
			next = bulwark.HealthDown
		}
		if next != old {
			c.change(ctx, p, old, next, err)
		}
		timer.Reset(c.cfg.Interval)
	}
}

// change records and reports a health change, unless the target was
// removed or the checker closed meanwhile.
func (c *Checker) change(ctx context.Context, p *probed, old, next bulwark.Health, err error) {
	c.cbMu.Lock()
	defer c.cbMu.Unlock()
	if ctx.Err() != nil {
		return
	}
	p.health.Store(uint32(next))
	c.log.Info("health probe state changed", "endpoint", p.t.ID, "from", old, "to", next, "err", err)
	if c.cfg.OnChange != nil {
		c.cfg.OnChange(p.t.ID, next)
	}
}

// Health returns an endpoint's probe health: bulwark.HealthUnknown until
// Rise passes or Fall failures, or for an endpoint not probed.
func (c *Checker) Health(id string) bulwark.Health {
	c.mu.Lock()
	p := c.targets[id]
	c.mu.Unlock()
	if p == nil {
		return bulwark.HealthUnknown
	}
	return bulwark.Health(p.health.Load())
}

// TargetStatus is the probe state of one endpoint, for dashboards.
type TargetStatus struct {
	Target
	Health    bulwark.Health `json:"health"`               // probe health
	LastError string         `json:"last_error,omitempty"` // of the latest probe; "" if it passed
}

// Status returns the probe state of every endpoint, in no set order.
func (c *Checker) Status() []TargetStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]TargetStatus, 0, len(c.targets))
	for _, p := range c.targets {
		st := TargetStatus{Target: p.t, Health: bulwark.Health(p.health.Load())}
		if e := p.lastErr.Load(); e != nil {
			st.LastError = *e
		}
		out = append(out, st)
	}
	return out
}

// Close stops all probes and waits for their goroutines. It is idempotent.
func (c *Checker) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	if c.ownedCli != nil {
		c.ownedCli.CloseIdleConnections()
	}
	return nil
}
