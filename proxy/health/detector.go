package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
)

// Outcome is what the proxy learned from one try against an endpoint.
//
// Report tries that the client cancelled only when the try had already
// outlived the proxy's per-try timeout: a client giving up says nothing
// about the endpoint, but a hung endpoint is often noticed only that way.
type Outcome struct {
	// Status is the HTTP status the endpoint answered; 0 when there was no
	// response.
	Status int
	// Err is the transport error: connection refused or reset, a timeout,
	// a malformed response. Any non-nil Err is a gateway failure.
	Err error
	// Latency is how long the try took.
	Latency time.Duration
	// DigestMismatch marks a response whose body failed its Content-Digest
	// check (RFC 9530): a wrong answer, counted as a failure like a 5xx.
	DigestMismatch bool
	// Byzantine marks an answer outvoted by the other replicas (replica
	// voting): a well-formed answer with wrong content. One is evidence
	// enough, since the majority that outvoted it agreed byte for byte: the
	// endpoint is ejected at once (within the ejection cap).
	Byzantine bool
}

// GatewayFailure reports whether the try failed the way an unreachable or
// overloaded endpoint fails: a transport error, or 502, 503 or 504 (Envoy's
// consecutive_gateway_failure).
func (o Outcome) GatewayFailure() bool {
	return o.Err != nil || o.Status == 502 || o.Status == 503 || o.Status == 504
}

// Failed reports whether the try counts as a failure: a gateway failure,
// any 5xx, or a digest mismatch.
func (o Outcome) Failed() bool {
	return o.GatewayFailure() || o.Status >= 500 || o.DigestMismatch || o.Byzantine
}

// Reason says why an endpoint was ejected.
type Reason uint8

// The ejection reasons. The values are stable: new ones are appended.
const (
	ReasonNone                      Reason = iota
	ReasonConsecutiveGatewayFailure        // ConsecutiveGatewayFailures in a row
	ReasonConsecutive5xx                   // Consecutive5xx failures in a row
	ReasonSuccessRate                      // success rate below the pool's mean − factor × stdev
	ReasonLatency                          // mean latency above factor × the pool's median
	ReasonByzantine                        // outvoted by the other replicas
	ReasonFlapping                         // probes saw it return again soon after a previous return
)

var reasonNames = [...]string{"", "consecutive_gateway_failure", "consecutive_5xx", "success_rate", "latency", "byzantine", "flapping"}

// String returns the reason's snake_case name, as used in metrics.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", r)
}

// MarshalText implements encoding.TextMarshaler.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// DetectorConfig configures passive outlier detection. The zero value is
// Envoy's outlier detection with a 50 % ejection cap: eject after 5
// consecutive gateway failures or 5 consecutive 5xx, every 10 s look for
// success-rate and latency outliers, eject for 30 s × the number of
// ejections (at most 300 s), and enter panic below 50 % healthy endpoints.
type DetectorConfig struct {
	// Run runs the analysis loop started by Start until ctx ends, and
	// returns once loop has returned for the last time. Nil calls
	// loop(ctx) directly. The gateway's owner passes one that supervises
	// the loop (see proxy.Options.Run).
	Run func(ctx context.Context, name string, loop func(ctx context.Context) error)
	// Interval is the time between analyses (success rate, latency,
	// un-ejection) when the Detector runs its own loop. Default 10 s.
	Interval time.Duration
	// ConsecutiveGatewayFailures ejects an endpoint after this many gateway
	// failures in a row. Default 5; negative: off.
	ConsecutiveGatewayFailures int
	// Consecutive5xx ejects an endpoint after this many failures in a row
	// (any 5xx, transport error or digest mismatch). Default 5; negative:
	// off.
	Consecutive5xx int
	// SuccessRateStdevFactor ejects an endpoint whose success rate in an
	// interval is below mean − factor × stdev of the pool's rates. Default
	// 1.9 (Envoy's 1900/1000); negative: off.
	SuccessRateStdevFactor float64
	// SuccessRateMinHosts is how many endpoints need RequestVolume requests
	// in an interval for the success-rate check to run. Default 5.
	SuccessRateMinHosts int
	// LatencyFactor ejects an endpoint whose mean latency in an interval is
	// above factor × the median of the pool's means (and above LatencyMin).
	// Default 3; negative: off.
	LatencyFactor float64
	// LatencyMin is the least mean latency that can count as an outlier, so
	// that 3 ms against a 1 ms pool does not. Default 10 ms.
	LatencyMin time.Duration
	// LatencyMinHosts is how many endpoints need RequestVolume requests in
	// an interval for the latency check to run. Default 3.
	LatencyMinHosts int
	// RequestVolume is the least number of requests an endpoint needs in an
	// interval to take part in the success-rate and latency checks. Default
	// 100.
	RequestVolume int
	// BaseEjectionTime is how long a first ejection lasts; the n-th lasts n
	// times as long. The count drops by one for every BaseEjectionTime the
	// endpoint then stays in. Default 30 s.
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps an ejection's duration (envoy#6016). Default
	// 300 s.
	MaxEjectionTime time.Duration
	// MaxEjectionPercent is the most endpoints outlier detection may eject
	// at once, as a percentage of the pool, 1..100. Default 50. A pool of
	// one endpoint is never ejected from.
	MaxEjectionPercent int
	// NoFlapDamping turns off flap damping: by default an endpoint whose
	// probes see it come back from down a second time within
	// BaseEjectionTime is ejected, for the usual growing ejection time
	// (see [Detector.SetProbeHealth]).
	NoFlapDamping bool
	// PanicThreshold is the percentage of routable endpoints (not ejected,
	// not down by probe) below which [Detector.Panic] reports true, 0..100.
	// Default 50; negative: never panic.
	PanicThreshold int
	// OnChange is called when an endpoint's effective health changes:
	// bulwark.HealthDown while probes say down, bulwark.HealthEjected while
	// ejected, bulwark.HealthSuspect when probes say so, bulwark.HealthUp
	// otherwise (once known). Calls are serialized, in order, and made
	// without the Detector's lock held; OnChange may call Health and Panic
	// but no other Detector method. Wire it to balance.Set.SetHealth.
	OnChange func(id string, h bulwark.Health)
	// Logger receives ejections and un-ejections at Info. Default nil:
	// discard.
	Logger *slog.Logger
}

// Validate reports the first invalid field.
func (c *DetectorConfig) Validate() error {
	switch {
	case c.Interval < 0 || c.BaseEjectionTime < 0 || c.MaxEjectionTime < 0 || c.LatencyMin < 0:
		return errors.New("health: negative duration in DetectorConfig")
	case c.MaxEjectionPercent < 0 || c.MaxEjectionPercent > 100:
		return fmt.Errorf("health: MaxEjectionPercent %d is outside 0..100", c.MaxEjectionPercent)
	case c.PanicThreshold > 100:
		return fmt.Errorf("health: PanicThreshold %d is above 100", c.PanicThreshold)
	case c.SuccessRateMinHosts < 0 || c.LatencyMinHosts < 0 || c.RequestVolume < 0:
		return errors.New("health: negative host or request minimum in DetectorConfig")
	}
	return nil
}

// withDefaults returns c with every zero field set to its default.
func (c DetectorConfig) withDefaults() DetectorConfig {
	c.Interval = orDefault(c.Interval, 10*time.Second)
	c.ConsecutiveGatewayFailures = intDefault(c.ConsecutiveGatewayFailures, 5)
	c.Consecutive5xx = intDefault(c.Consecutive5xx, 5)
	if c.SuccessRateStdevFactor == 0 {
		c.SuccessRateStdevFactor = 1.9
	}
	c.SuccessRateMinHosts = intDefault(c.SuccessRateMinHosts, 5)
	if c.LatencyFactor == 0 {
		c.LatencyFactor = 3
	}
	c.LatencyMin = orDefault(c.LatencyMin, 10*time.Millisecond)
	c.LatencyMinHosts = intDefault(c.LatencyMinHosts, 3)
	c.RequestVolume = intDefault(c.RequestVolume, 100)
	c.BaseEjectionTime = orDefault(c.BaseEjectionTime, 30*time.Second)
	c.MaxEjectionTime = max(orDefault(c.MaxEjectionTime, 300*time.Second), c.BaseEjectionTime)
	c.MaxEjectionPercent = intDefault(c.MaxEjectionPercent, 50)
	c.PanicThreshold = intDefault(c.PanicThreshold, 50)
	return c
}

func intDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// host is the detector's state for one endpoint.
type host struct {
	id string

	// Updated by Report without the lock.
	consecGW  atomic.Int64
	consec5xx atomic.Int64
	ok        atomic.Int64 // successes this interval
	total     atomic.Int64 // tries this interval
	latSum    atomic.Int64 // ns this interval
	eff       atomic.Uint32

	// Guarded by Detector.mu.
	ejected   bool
	until     time.Time
	ejections int       // the ejection-time multiplier
	calmSince time.Time // since when the multiplier has not grown or shrunk
	probe     bulwark.Health
	probeUp   time.Time // when it last came back (probes up after down, or un-ejected)
	known     bool      // un-ejected at least once: report Up rather than Unknown
	reason    Reason
	reported  bulwark.Health
}

// event is a pending OnChange call.
type event struct {
	id string
	h  bulwark.Health
}

// Detector is passive outlier detection: it learns from the outcomes of
// real traffic ([Detector.Report]) and ejects endpoints that fail or lag
// behind their pool, for a growing time, never more than a capped share of
// the pool. It also folds in active-probe health ([Detector.SetProbeHealth])
// so that [DetectorConfig.OnChange] reports one effective health per
// endpoint and [Detector.Panic] sees the whole picture. Safe for concurrent
// use; Report takes no lock unless it ejects.
type Detector struct {
	cfg DetectorConfig
	log *slog.Logger

	hosts atomic.Pointer[map[string]*host]
	panic atomic.Bool

	mu      sync.Mutex // guards host fields so marked, and ejected
	ejected int
	cbMu    sync.Mutex // serializes OnChange, in the order events were made

	life    sync.Mutex
	started bool
	closed  bool
	stop    chan struct{}
	done    chan struct{}
	// cancelRun ends the context given to DetectorConfig.Run (set by Start).
	cancelRun context.CancelFunc
}

// NewDetector returns a detector with no endpoints, or an error if cfg is
// invalid. Feed it with [Detector.SetEndpoints] and [Detector.Report]; run
// its analysis with [Detector.Start] or by calling [Detector.Tick].
func NewDetector(cfg DetectorConfig) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Detector{cfg: cfg.withDefaults(), log: cfg.Logger, stop: make(chan struct{}), done: make(chan struct{})}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.hosts.Store(&map[string]*host{})
	return d, nil
}

// SetEndpoints replaces the set of endpoints. Endpoints that stay keep
// their state (ejection, counters); new ones start unknown.
func (d *Detector) SetEndpoints(ids []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := *d.hosts.Load()
	next := make(map[string]*host, len(ids))
	d.ejected = 0
	for _, id := range ids {
		h := old[id]
		if h == nil {
			h = &host{id: id}
		}
		next[id] = h
		if h.ejected {
			d.ejected++
		}
	}
	d.hosts.Store(&next)
	d.updatePanic(next)
}

// Report records the outcome of one try against the endpoint id (unknown
// ids are ignored). A run of consecutive failures ejects the endpoint at
// once; the statistical checks wait for the next Tick.
func (d *Detector) Report(id string, o Outcome) {
	h := (*d.hosts.Load())[id]
	if h == nil {
		return
	}
	h.total.Add(1)
	h.latSum.Add(int64(o.Latency))
	if !o.Failed() {
		h.ok.Add(1)
		resetIfSet(&h.consec5xx)
		resetIfSet(&h.consecGW)
		return
	}
	n5 := h.consec5xx.Add(1)
	var ng int64
	if o.GatewayFailure() {
		ng = h.consecGW.Add(1)
	} else {
		resetIfSet(&h.consecGW)
	}
	var reason Reason
	switch {
	case o.Byzantine:
		reason = ReasonByzantine
	case d.cfg.ConsecutiveGatewayFailures > 0 && ng >= int64(d.cfg.ConsecutiveGatewayFailures):
		reason = ReasonConsecutiveGatewayFailure
	case d.cfg.Consecutive5xx > 0 && n5 >= int64(d.cfg.Consecutive5xx):
		reason = ReasonConsecutive5xx
	default:
		return
	}
	d.mu.Lock()
	d.unlockAndNotify(d.eject(h, reason, time.Now(), nil))
}

// resetIfSet zeroes a counter, writing only when needed: on the success
// path a load is cheaper than a store to a shared cache line.
func resetIfSet(c *atomic.Int64) {
	if c.Load() != 0 {
		c.Store(0)
	}
}

// SetProbeHealth records the endpoint's health as active probes see it
// (wire [CheckerConfig.OnChange] here). A probe-down endpoint reports
// bulwark.HealthDown whatever outlier detection thinks.
func (d *Detector) SetProbeHealth(id string, hl bulwark.Health) {
	d.mu.Lock()
	h := (*d.hosts.Load())[id]
	if h == nil {
		d.mu.Unlock()
		return
	}
	prev := h.probe
	h.probe = hl
	var evs []event
	if prev == bulwark.HealthDown && hl == bulwark.HealthUp {
		// Flap damping: an endpoint that probes see come back again within
		// BaseEjectionTime of its last return is flapping (up a moment,
		// hung the next). Rather than re-admit it each time, it is ejected
		// like an outlier, for base × ejections, so each flap keeps it out
		// longer; it slow-starts when it does return.
		now := time.Now()
		if !h.probeUp.IsZero() && now.Sub(h.probeUp) < d.cfg.BaseEjectionTime && !d.cfg.NoFlapDamping {
			evs = d.eject(h, ReasonFlapping, now, evs)
		}
		h.probeUp = now
	}
	d.unlockAndNotify(d.refresh(h, evs))
}

// eject takes h out of rotation for base × ejections (capped) unless that
// would exceed the ejection cap. Call with d.mu held; returns evs with the
// resulting change appended.
func (d *Detector) eject(h *host, reason Reason, now time.Time, evs []event) []event {
	// The counters restart either way, so that a failure storm on an
	// endpoint the cap protects does not take the lock on every failure.
	h.consecGW.Store(0)
	h.consec5xx.Store(0)
	if h.ejected {
		return evs
	}
	n := len(*d.hosts.Load())
	if (d.ejected+1)*100 > d.cfg.MaxEjectionPercent*n {
		d.log.Info("outlier ejection skipped: cap reached", "endpoint", h.id, "reason", reason,
			"ejected", d.ejected, "endpoints", n, "max_percent", d.cfg.MaxEjectionPercent)
		return evs
	}
	h.ejections++
	dur := min(d.cfg.BaseEjectionTime*time.Duration(h.ejections), d.cfg.MaxEjectionTime)
	h.ejected, h.until, h.reason = true, now.Add(dur), reason
	d.ejected++
	d.log.Info("endpoint ejected", "endpoint", h.id, "reason", reason, "for", dur, "ejections", h.ejections)
	return d.refresh(h, evs)
}

// effective folds probe health and ejection into one state.
func (h *host) effective() bulwark.Health {
	switch {
	case h.probe == bulwark.HealthDown:
		return bulwark.HealthDown
	case h.ejected:
		return bulwark.HealthEjected
	case h.probe != bulwark.HealthUnknown:
		return h.probe
	case h.known:
		return bulwark.HealthUp
	}
	return bulwark.HealthUnknown
}

// refresh recomputes h's effective health and the panic flag, appending an
// event when the health changed. Call with d.mu held.
func (d *Detector) refresh(h *host, evs []event) []event {
	e := h.effective()
	if e == h.reported {
		return evs
	}
	h.reported = e
	h.eff.Store(uint32(e))
	d.updatePanic(*d.hosts.Load())
	return append(evs, event{h.id, e})
}

// updatePanic recomputes the panic flag. Call with d.mu held.
func (d *Detector) updatePanic(hosts map[string]*host) {
	if d.cfg.PanicThreshold <= 0 || len(hosts) == 0 {
		d.panic.Store(false)
		return
	}
	healthy := 0
	for _, h := range hosts {
		if h.effective().Routable() {
			healthy++
		}
	}
	d.panic.Store(healthy*100 < d.cfg.PanicThreshold*len(hosts))
}

// unlockAndNotify releases d.mu and delivers evs. Taking cbMu before
// releasing mu keeps deliveries in the order the events were made.
func (d *Detector) unlockAndNotify(evs []event) {
	if len(evs) == 0 || d.cfg.OnChange == nil {
		d.mu.Unlock()
		return
	}
	d.cbMu.Lock()
	d.mu.Unlock()
	defer d.cbMu.Unlock()
	for _, e := range evs {
		d.cfg.OnChange(e.id, e.h)
	}
}

// Panic reports whether too few endpoints are routable (below
// [DetectorConfig.PanicThreshold]): the balancer should then route to all
// of them, as Envoy does, rather than overload the few that are left. It
// is one atomic load; wire it to balance.Config.Panic.
func (d *Detector) Panic() bool { return d.panic.Load() }

// Health returns the endpoint's effective health (see
// [DetectorConfig.OnChange]); bulwark.HealthUnknown for an unknown id.
func (d *Detector) Health(id string) bulwark.Health {
	h := (*d.hosts.Load())[id]
	if h == nil {
		return bulwark.HealthUnknown
	}
	return bulwark.Health(h.eff.Load())
}

// HostStatus is the detector's view of one endpoint, for dashboards.
type HostStatus struct {
	ID           string         `json:"id"`                     // endpoint ID
	Health       bulwark.Health `json:"health"`                 // effective health
	Ejected      bool           `json:"ejected"`                // out of rotation now
	EjectedUntil time.Time      `json:"ejected_until,omitzero"` // when the ejection ends (next Tick after)
	Reason       Reason         `json:"reason,omitempty"`       // of the latest ejection
	Ejections    int            `json:"ejections"`              // the ejection-time multiplier
}

// Status returns every endpoint's state, in no set order.
func (d *Detector) Status() []HostStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	hosts := *d.hosts.Load()
	out := make([]HostStatus, 0, len(hosts))
	for _, h := range hosts {
		st := HostStatus{ID: h.id, Health: h.effective(), Ejected: h.ejected, Reason: h.reason, Ejections: h.ejections}
		if h.ejected {
			st.EjectedUntil = h.until
		}
		out = append(out, st)
	}
	return out
}
