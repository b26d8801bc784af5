package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Service is a long-lived unit of work. Serve runs until ctx is cancelled
// (then it should return promptly) or until it fails. A nil return is a
// normal exit; an error, or a panic, is a failure.
type Service interface {
	Serve(ctx context.Context) error
}

// ServiceFunc adapts a function to [Service].
type ServiceFunc func(ctx context.Context) error

// Serve calls f.
func (f ServiceFunc) Serve(ctx context.Context) error { return f(ctx) }

// Restart says when a child that returned is started again.
type Restart int

// Restart policies, as in OTP.
const (
	// Permanent children are always restarted, even after a normal (nil)
	// return: a server that stops serving is a failure.
	Permanent Restart = iota
	// Transient children are restarted only after a failure (an error or a
	// panic); a nil return ends them for good.
	Transient
	// Temporary children are never restarted, whatever the reason; a
	// sibling's restart under OneForAll or RestForOne does not bring them
	// back either.
	Temporary
)

// String returns the policy's name: permanent, transient or temporary.
func (r Restart) String() string {
	switch r {
	case Permanent:
		return "permanent"
	case Transient:
		return "transient"
	case Temporary:
		return "temporary"
	}
	return fmt.Sprintf("Restart(%d)", int(r))
}

// Strategy says which children restart when one of them fails.
type Strategy int

// Supervision strategies, as in OTP.
const (
	// OneForOne restarts only the child that failed.
	OneForOne Strategy = iota
	// OneForAll stops every other child (reverse start order) and restarts
	// them all (start order).
	OneForAll
	// RestForOne stops the children started after the failed one (reverse
	// start order) and restarts the failed child and those (start order).
	RestForOne
)

// String returns the strategy's name: one-for-one, one-for-all or
// rest-for-one.
func (s Strategy) String() string {
	switch s {
	case OneForOne:
		return "one-for-one"
	case OneForAll:
		return "one-for-all"
	case RestForOne:
		return "rest-for-one"
	}
	return fmt.Sprintf("Strategy(%d)", int(s))
}

// Spec is one child of a supervisor.
type Spec struct {
	// Name identifies the child among its siblings (required, unique).
	Name string
	// Service is what runs (required). A *Supervisor nests a subtree.
	Service Service
	// Restart is the child's policy. Default Permanent.
	Restart Restart
	// Shutdown bounds how long the child may take to return after its
	// context is cancelled. Default: the supervisor's Config.Shutdown.
	Shutdown time.Duration
}

// Config configures a Supervisor. The zero value works: one-for-one, at
// most 5 restarts in 10s, backoff 10ms doubling to 5s (and back to 10ms
// after 5s of healthy running) with 20% jitter, 5s shutdown per child, no
// observer.
type Config struct {
	// Name names the supervisor in events and in Tree. Default
	// "supervisor".
	Name string
	// Strategy is how a failure spreads to siblings. Default OneForOne.
	Strategy Strategy
	// MaxRestarts and Period are the restart intensity: when a restart
	// would be the (MaxRestarts+1)th within Period, the supervisor gives
	// up, stops its children and returns ErrTooManyRestarts. Defaults 5
	// and 10s. MaxRestarts < 0 gives up on the first failure.
	MaxRestarts int
	Period      time.Duration
	// Backoff is the delay before a child's first restart; each further
	// restart of the same child within Period doubles it, up to
	// MaxBackoff. Default 10ms; negative restarts at once. MaxBackoff
	// default 5s.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// BackoffReset is how long a child must run before its next failure
	// starts again from the first delay, as a healthy child's would.
	// Default MaxBackoff.
	BackoffReset time.Duration
	// Jitter spreads each delay uniformly by ±Jitter of itself, so
	// siblings failing together do not restart in lockstep. Default 0.2;
	// negative disables; at most 1.
	Jitter float64
	// Rand is the jitter's source, for replayable runs. Nil seeds one from
	// the clock. Only the supervisor's goroutine uses it.
	Rand Rand
	// Shutdown is the default per-child stop timeout. Default 5s.
	Shutdown time.Duration
	// Observer receives every event, from the supervisor's goroutine. Nil:
	// a nested supervisor reports to its parent's observer; a root one
	// drops events.
	Observer func(Event)
}

// Rand is the part of *math/rand/v2.Rand the jitter uses.
type Rand interface {
	Float64() float64
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	var errs []error
	if c.Period < 0 {
		errs = append(errs, fmt.Errorf("period %v: want 0 (default 10s) or more", c.Period))
	}
	if c.MaxBackoff < 0 {
		errs = append(errs, fmt.Errorf("max backoff %v: want 0 (default 5s) or more", c.MaxBackoff))
	}
	if c.Jitter > 1 {
		errs = append(errs, fmt.Errorf("jitter %v: want at most 1", c.Jitter))
	}
	if c.Shutdown < 0 {
		errs = append(errs, fmt.Errorf("shutdown %v: want 0 (default 5s) or more", c.Shutdown))
	}
	if c.Strategy < OneForOne || c.Strategy > RestForOne {
		errs = append(errs, fmt.Errorf("strategy %d: want OneForOne, OneForAll or RestForOne", int(c.Strategy)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("supervise: invalid config for %q: %w", c.Name, err)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "supervisor"
	}
	if c.MaxRestarts == 0 {
		c.MaxRestarts = 5
	}
	if c.Period == 0 {
		c.Period = 10 * time.Second
	}
	if c.Backoff == 0 {
		c.Backoff = 10 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.BackoffReset <= 0 {
		c.BackoffReset = c.MaxBackoff
	}
	if c.Jitter == 0 {
		c.Jitter = 0.2
	}
	if c.Shutdown == 0 {
		c.Shutdown = 5 * time.Second
	}
	return c
}

// Errors callers branch on.
var (
	// ErrTooManyRestarts is returned (wrapped, with the last failure) by a
	// supervisor's Serve when its restart intensity is exceeded.
	ErrTooManyRestarts = errors.New("supervise: too many restarts")
	// ErrNoChild means no child has the given name.
	ErrNoChild = errors.New("supervise: no such child")
	// ErrDuplicate means a child of that name already exists.
	ErrDuplicate = errors.New("supervise: duplicate child name")
	// ErrNotRunning means the supervisor is not serving, so it cannot act
	// on a running child.
	ErrNotRunning = errors.New("supervise: supervisor is not running")
	// ErrRunning means Serve was called on a supervisor already serving.
	ErrRunning = errors.New("supervise: supervisor is already running")
)

// PanicError is a child's panic, recovered by its supervisor.
type PanicError struct {
	// Value is what was passed to panic.
	Value any
	// Stack is the panicking goroutine's stack (runtime/debug.Stack).
	Stack []byte
}

// Error returns "panic: " and the panic value.
func (p *PanicError) Error() string { return fmt.Sprintf("panic: %v", p.Value) }

// Unwrap returns the panic value if it is an error.
func (p *PanicError) Unwrap() error {
	err, _ := p.Value.(error)
	return err
}

// EventKind says what happened to a child.
type EventKind string

// Event kinds.
const (
	EventStarted     EventKind = "started"      // first start of a child
	EventFailed      EventKind = "failed"       // returned an error or panicked
	EventExited      EventKind = "exited"       // returned nil
	EventRestarted   EventKind = "restarted"    // started again after a failure (or a permanent child's exit)
	EventStopped     EventKind = "stopped"      // stopped by shutdown, StopChild or a sibling's restart
	EventStopTimeout EventKind = "stop-timeout" // did not return within its shutdown timeout; abandoned
	EventGaveUp      EventKind = "gave-up"      // restart intensity exceeded: the supervisor stops and escalates
)

// Event is one state change in a supervision tree.
type Event struct {
	Time time.Time
	Kind EventKind
	// Supervisor is the path of the supervisor that acted, names joined
	// by "/" from the root.
	Supervisor string
	// Child is the child's name; empty for EventGaveUp, which concerns the
	// supervisor itself.
	Child string
	// Err is the failure (EventFailed, EventGaveUp); a *PanicError for a
	// panic.
	Err error
	// Restarts is how many times the child has been restarted so far.
	Restarts int
	// Delay is the backoff before the coming restart (EventFailed and
	// EventExited when a restart follows).
	Delay time.Duration
	// Restarting says a restart follows (EventFailed, EventExited).
	Restarting bool
}

// String describes the event in one line, as the dashboard's event log
// shows it: "bulwark/fleet/demo-2/process failed: ... (restart in 50ms)".
func (e Event) String() string {
	who := e.Supervisor
	if e.Child != "" {
		who += "/" + e.Child
	}
	s := who + " " + string(e.Kind)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	if e.Restarting {
		s += fmt.Sprintf(" (restart in %v)", e.Delay.Round(time.Millisecond))
	}
	if e.Kind == EventRestarted {
		s += fmt.Sprintf(" (restart %d)", e.Restarts)
	}
	return s
}

// LogObserver returns an Observer that logs each event to l: failures,
// timeouts and giving up as errors, restarts and exits at info level,
// routine starts and stops at debug level. A panic's stack goes to the
// debug level.
func LogObserver(l *slog.Logger) func(Event) {
	return func(e Event) {
		attrs := []any{"supervisor", e.Supervisor, "child", e.Child}
		if e.Err != nil {
			attrs = append(attrs, "err", e.Err)
		}
		switch e.Kind {
		case EventFailed, EventStopTimeout, EventGaveUp:
			if e.Restarting {
				attrs = append(attrs, "restart_in", e.Delay)
			}
			l.Error("supervise: "+string(e.Kind), attrs...)
			var p *PanicError
			if errors.As(e.Err, &p) {
				l.Debug("supervise: panic stack", "supervisor", e.Supervisor, "child", e.Child, "stack", string(p.Stack))
			}
		case EventStarted, EventStopped:
			l.Debug("supervise: "+string(e.Kind), attrs...) // routine: every start and shutdown
		default:
			l.Info("supervise: "+string(e.Kind), attrs...)
		}
	}
}
