// Package monkey kills instances of opted-in services at random times, as
// Netflix's Chaos Monkey does, so that the system's ability to survive the
// loss of an instance is exercised all the time rather than discovered in
// an outage.
//
// Kills form a Poisson process: the time to the next kill is drawn from an
// exponential distribution with the configured mean, from a seeded rand (a
// seed replays a schedule), and kills happen only inside the allowed hours.
// Unlike Chaos Monkey, which relies only on an outage check, the monkey
// never takes a service below MinHealthy healthy instances. Victims come
// from a [Victims] source: the registry client, or [StaticVictims] (pids
// and kill URLs).
package monkey

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/bulwark-go/bulwark"
)

// Victims lists a service's instances and kills one. The consumer declares
// it; the registry client or [StaticVictims] implement it.
type Victims interface {
	// Instances returns the service's current instances with their health.
	Instances(ctx context.Context, service string) ([]bulwark.Instance, error)
	// Kill terminates one instance.
	Kill(ctx context.Context, inst bulwark.Instance) error
}

// Config configures a [Monkey]. Services is required; everything else has
// a working zero value.
type Config struct {
	// Services are the opted-in services; no other service is touched.
	Services []string
	// MeanTimeBetweenKills is the mean of the exponential time between
	// kills (across all services); default 1 h.
	MeanTimeBetweenKills time.Duration
	// MinHealthy is the fewest healthy instances a kill may leave a
	// service with; default 1.
	MinHealthy int
	// StartHour and EndHour bound the hours (in Location) in which kills
	// happen: [StartHour, EndHour). Both 0 (the default) means all day.
	StartHour, EndHour int
	// Location is the time zone of the allowed hours; default time.Local.
	Location *time.Location
	// DryRun logs each decision without killing.
	DryRun bool
	// Seed seeds the schedule and the choice of victims; 0 picks one at
	// random (logged, so the schedule can be replayed).
	Seed uint64
	// OutageCheck, if set, is asked before every kill; a kill is skipped
	// when it reports an outage or fails (Chaos Monkey's outage checker).
	OutageCheck func(ctx context.Context) (bool, error)
	// Logger receives one record per decision; nil discards.
	Logger *slog.Logger
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case len(c.Services) == 0:
		return errors.New("monkey: no services opted in")
	case c.MeanTimeBetweenKills < 0:
		return errors.New("monkey: mean time between kills must be positive")
	case c.MinHealthy < 0:
		return errors.New("monkey: min healthy must not be negative")
	case c.StartHour < 0 || c.StartHour > 23 || c.EndHour < 0 || c.EndHour > 24:
		return fmt.Errorf("monkey: allowed hours %d–%d: want 0..23 and 1..24", c.StartHour, c.EndHour)
	case c.EndHour != 0 && c.EndHour <= c.StartHour:
		return fmt.Errorf("monkey: allowed hours %d–%d: end must be after start", c.StartHour, c.EndHour)
	}
	return nil
}

// Decision actions.
const (
	ActionKilled  = "killed"
	ActionDryRun  = "dry-run"
	ActionSkipped = "skipped"
	ActionFailed  = "failed"
)

// Decision is one kill decision.
type Decision struct {
	Time     time.Time `json:"time"`
	Service  string    `json:"service"`
	Instance string    `json:"instance,omitempty"`
	Action   string    `json:"action"`
	// Reason explains a skip or a failure.
	Reason string `json:"reason,omitempty"`
	// Healthy is the service's healthy instances before the decision.
	Healthy int `json:"healthy"`
}

// Monkey kills instances on a schedule. Run owns its one goroutine's loop;
// Step may be called directly (e.g. for a one-off kill).
type Monkey struct {
	cfg     Config
	victims Victims
	log     *slog.Logger
	seed    uint64
	rng     *rand.Rand // used only by the goroutine calling Run or Step
}

// New returns a monkey for the victims.
func New(cfg Config, victims Victims) (*Monkey, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if victims == nil {
		return nil, errors.New("monkey: no victims source")
	}
	if cfg.MeanTimeBetweenKills == 0 {
		cfg.MeanTimeBetweenKills = time.Hour
	}
	if cfg.MinHealthy == 0 {
		cfg.MinHealthy = 1
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.StartHour == 0 && cfg.EndHour == 0 {
		cfg.EndHour = 24
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64() | 1
	}
	log.Info("monkey configured", "seed", seed, "services", cfg.Services, "mean", cfg.MeanTimeBetweenKills,
		"min_healthy", cfg.MinHealthy, "hours", fmt.Sprintf("%02d-%02d", cfg.StartHour, cfg.EndHour), "dry_run", cfg.DryRun)
	return &Monkey{cfg: cfg, victims: victims, log: log, seed: seed,
		rng: rand.New(rand.NewPCG(seed, seed^0xda942042e4dd58b5))}, nil
}

// Seed returns the seed in use.
func (m *Monkey) Seed() uint64 { return m.seed }

// Run kills on schedule until ctx ends, calling onDecision (if not nil)
// after each decision. It returns ctx's error.
func (m *Monkey) Run(ctx context.Context, onDecision func(Decision)) error {
	for {
		next := time.Now().Add(time.Duration(m.rng.ExpFloat64() * float64(m.cfg.MeanTimeBetweenKills)))
		if open := m.nextAllowed(next); !open.Equal(next) {
			// Outside the allowed hours: the process restarts when the
			// window opens (it is memoryless, so nothing is lost).
			if err := sleepUntil(ctx, open); err != nil {
				return err
			}
			continue
		}
		if err := sleepUntil(ctx, next); err != nil {
			return err
		}
		d := m.Step(ctx)
		if onDecision != nil {
			onDecision(d)
		}
	}
}

// nextAllowed returns t if it is inside the allowed hours, else the start
// of the next allowed period.
func (m *Monkey) nextAllowed(t time.Time) time.Time {
	lt := t.In(m.cfg.Location)
	if h := lt.Hour(); h >= m.cfg.StartHour && h < m.cfg.EndHour {
		return t
	}
	day := time.Date(lt.Year(), lt.Month(), lt.Day(), m.cfg.StartHour, 0, 0, 0, m.cfg.Location)
	if !day.After(lt) {
		day = day.AddDate(0, 0, 1)
	}
	return day
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Step makes one kill decision now: a random opted-in service, a random
// instance of it, killed unless that would leave fewer than MinHealthy
// healthy instances or the outage check objects.
func (m *Monkey) Step(ctx context.Context) Decision {
	svc := m.cfg.Services[m.rng.IntN(len(m.cfg.Services))]
	d := Decision{Time: time.Now(), Service: svc}
	d = m.decide(ctx, d)
	m.log.Info("monkey decision", "service", d.Service, "instance", d.Instance, "action", d.Action,
		"reason", d.Reason, "healthy", d.Healthy, "dry_run", m.cfg.DryRun)
	return d
}

// countsHealthy is what the guard counts as a healthy instance: routable,
// or suspect — an instance that missed a renewal (a loaded host, a slow
// network) is usually alive and serving, and killing it may take the
// service below MinHealthy. Only down and ejected instances do not count.
func countsHealthy(h bulwark.Health) bool {
	return h.Routable() || h == bulwark.HealthSuspect
}

func (m *Monkey) decide(ctx context.Context, d Decision) Decision {
	insts, err := m.victims.Instances(ctx, d.Service)
	if err != nil {
		d.Action, d.Reason = ActionSkipped, "listing instances: "+err.Error()
		return d
	}
	if len(insts) == 0 {
		d.Action, d.Reason = ActionSkipped, "no instances"
		return d
	}
	for _, in := range insts {
		if countsHealthy(in.Health) {
			d.Healthy++
		}
	}
	victim := insts[m.rng.IntN(len(insts))]
	d.Instance = victim.ID
	if countsHealthy(victim.Health) && d.Healthy-1 < m.cfg.MinHealthy {
		d.Action = ActionSkipped
		d.Reason = fmt.Sprintf("would leave %d healthy, below the minimum %d", d.Healthy-1, m.cfg.MinHealthy)
		return d
	}
	if m.cfg.OutageCheck != nil {
		if out, err := m.cfg.OutageCheck(ctx); err != nil || out {
			d.Action, d.Reason = ActionSkipped, "outage check: ongoing outage"
			if err != nil {
				d.Reason = "outage check failed: " + err.Error()
			}
			return d
		}
	}
	if m.cfg.DryRun {
		d.Action = ActionDryRun
		return d
	}
	if err := m.victims.Kill(ctx, victim); err != nil {
		d.Action, d.Reason = ActionFailed, err.Error()
		return d
	}
	d.Action = ActionKilled
	return d
}
