package proxy

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/proxy/balance"
	"github.com/bulwark-go/bulwark/proxy/health"
)

// errTry stands for a transport failure when the detector only needs to
// know there was one.
var errTry = errors.New("try failed")

// passiveHealth connects a pool to outlier detection: every try's outcome
// goes to the detector, and its verdicts (ejected, down, up) go to the
// balancer, combined with what the registry says of the instance.
type passiveHealth struct {
	p *pool
	d *health.Detector // nil when outlier detection is disabled

	mu       sync.Mutex
	registry map[string]bulwark.Health // health the registry reported, by endpoint ID
}

func newPassiveHealth(p *pool, o Outlier) *passiveHealth {
	ph := &passiveHealth{p: p, registry: map[string]bulwark.Health{}}
	if o.Disabled {
		return ph
	}
	// Gateway defaults: Envoy's rules with a 1 s analysis interval (Envoy's
	// 10 s is slow for a pool of a few replicas) and statistical checks that
	// run on pools of 3, the smallest redundant pool. No panic threshold:
	// with Envoy's 50 %, one healthy replica of three (one crashed, one
	// hung) would send two thirds of the traffic to the dead two; the
	// gateway instead routes to unroutable endpoints only when none is
	// routable (pool.pick), and the concurrency limit protects the
	// survivors.
	d, err := health.NewDetector(health.DetectorConfig{
		Interval:                   time.Second,
		ConsecutiveGatewayFailures: o.ConsecutiveFailures,
		Consecutive5xx:             o.Consecutive5xx,
		SuccessRateMinHosts:        3,
		LatencyMinHosts:            3,
		RequestVolume:              20,
		PanicThreshold:             -1,
		BaseEjectionTime:           o.BaseEjection,
		MaxEjectionPercent:         o.MaxEjectionPercent,
		OnChange:                   ph.changed,
		Logger:                     p.logger,
		Run:                        p.runAs("outlier " + p.name),
	})
	if err != nil { // only invalid config fails, and Validate has run
		p.logger.Error("outlier detection disabled", "upstream", p.name, "err", err)
		return ph
	}
	ph.d = d
	return ph
}

func (ph *passiveHealth) start(ctx context.Context, wg *sync.WaitGroup) {
	if ph.d == nil {
		return
	}
	ph.d.Start()
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		ph.d.Close()
	}()
}

// observe reports one try.
func (ph *passiveHealth) observe(ep *balance.Endpoint, k failKind, status int, lat time.Duration) {
	if ph.d == nil || ep == nil {
		return
	}
	o := health.Outcome{Status: status, Latency: lat}
	switch k {
	case failConnect, failReset, failTimeout:
		o.Err = errTry
	case failDigest:
		o.DigestMismatch = true
	case failByzantine:
		o.Byzantine = true
	}
	ph.d.Report(ep.ID(), o)
}

// changed receives the detector's verdicts.
func (ph *passiveHealth) changed(id string, h bulwark.Health) {
	p := ph.p
	ph.mu.Lock()
	reg := ph.registry[id]
	ph.mu.Unlock()
	p.set.SetHealth(id, combine(h, reg))
	switch h {
	case bulwark.HealthEjected:
		p.metrics.ejected()
		p.events(Event{Kind: "ejected", Upstream: p.name, Endpoint: id, Detail: "outlier detection"})
	case bulwark.HealthDown:
		p.events(Event{Kind: "health", Upstream: p.name, Endpoint: id, Detail: "down by active probes"})
	case bulwark.HealthUp:
		p.events(Event{Kind: "returned", Upstream: p.name, Endpoint: id, Detail: "back in rotation"})
	}
}

// setEndpoints tells the detector the pool's membership and the registry's
// view of each instance, and applies the combined health to the endpoints
// whose registry health changed and to the added ones. The detector hears
// of membership only when it changed (added or removed non-empty, or
// membership set).
func (ph *passiveHealth) setEndpoints(insts []bulwark.Instance, added, removed []string, membership bool) {
	var apply []string
	ph.mu.Lock()
	for _, id := range removed {
		delete(ph.registry, id)
	}
	for _, in := range insts {
		id := instanceID(in)
		if h, ok := ph.registry[id]; !ok || h != in.Health {
			ph.registry[id] = in.Health
			if ok {
				apply = append(apply, id) // added ones follow below
			}
		}
	}
	ph.mu.Unlock()
	apply = append(apply, added...)
	if ph.d != nil && membership {
		ids := make([]string, len(insts))
		for i, in := range insts {
			ids[i] = instanceID(in)
		}
		ph.d.SetEndpoints(ids)
	}
	for _, id := range apply {
		det := bulwark.HealthUnknown
		if ph.d != nil {
			det = ph.d.Health(id)
		}
		ph.mu.Lock()
		reg := ph.registry[id]
		ph.mu.Unlock()
		ph.p.set.SetHealth(id, combine(det, reg))
	}
}

// combine returns the worse of the gateway's own verdict and the
// registry's: a suspect instance is routed away from even while its
// traffic looks fine.
func combine(own, registry bulwark.Health) bulwark.Health {
	if registry == bulwark.HealthSuspect || registry == bulwark.HealthDown {
		if !own.Routable() && own != bulwark.HealthUnknown {
			return own
		}
		return registry
	}
	return own
}

func (ph *passiveHealth) panicking() bool { return ph.d != nil && ph.d.Panic() }

// ejectedUntil returns when the endpoint's ejection ends, or zero.
func (ph *passiveHealth) ejectedUntil(id string) time.Time {
	if ph.d == nil {
		return time.Time{}
	}
	for _, s := range ph.d.Status() {
		if s.ID == id && s.Ejected {
			return s.EjectedUntil
		}
	}
	return time.Time{}
}

func instanceID(in bulwark.Instance) string {
	if in.ID != "" {
		return in.ID
	}
	return in.Address
}

// activeHealth runs the pool's active probes.
type activeHealth struct {
	p *pool
	c *health.Checker
}

func newActiveHealth(p *pool) *activeHealth {
	h := p.cfg.Health
	lo, hi, _ := parseStatusRange(h.ExpectStatus)
	ah := &activeHealth{p: p}
	var client *http.Client
	if p.transport != nil { // probes present the gateway's certificate too
		tr := p.transport.Clone()
		tr.DisableKeepAlives = true
		client = &http.Client{Transport: tr}
	}
	c, err := health.NewChecker(health.CheckerConfig{
		Client: client,
		TCP:    h.TCP, Path: h.Path, StatusMin: lo, StatusMax: hi, Interval: h.Interval, Timeout: h.Timeout,
		Rise: h.Rise, Fall: h.Fall, Logger: p.logger, Run: p.runAs(""),
		OnChange: func(id string, hl bulwark.Health) {
			if p.passive.d != nil {
				p.passive.d.SetProbeHealth(id, hl)
				return
			}
			p.passive.changed(id, hl)
		},
	})
	if err != nil {
		p.logger.Error("active health checks disabled", "upstream", p.name, "err", err)
		return ah
	}
	ah.c = c
	return ah
}

func (ah *activeHealth) start(ctx context.Context, wg *sync.WaitGroup) {
	if ah.c == nil {
		return
	}
	ah.setTargets()
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		ah.c.Close()
	}()
}

func (ah *activeHealth) setTargets() {
	if ah.c == nil {
		return
	}
	eps := ah.p.set.Endpoints()
	ts := make([]health.Target, len(eps))
	for i, e := range eps {
		ts[i] = health.Target{ID: e.ID(), Address: e.Address()}
	}
	ah.c.SetTargets(ts)
}

// runAs adapts the gateway's Options.Run for a health loop, naming it
// name (or, when empty, the loop's own name) within the upstream; nil
// when there is no Run hook.
func (p *pool) runAs(name string) func(ctx context.Context, name string, loop func(ctx context.Context) error) {
	if p.run == nil {
		return nil
	}
	return func(ctx context.Context, own string, loop func(ctx context.Context) error) {
		n := name
		if n == "" {
			n = own + " (" + p.name + ")"
		}
		p.run(ctx, n, loop)
	}
}
