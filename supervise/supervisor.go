package supervise

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"time"
)

// Supervisor runs its children and restarts them by its strategy and
// their policies. Build it with New, add children with New or Add, and
// run it with Serve (directly, or as a child of another Supervisor).
type Supervisor struct {
	cfg    Config
	rand   Rand
	parent *Supervisor

	// mu guards children's fields read by Tree and the control entry
	// points; only the loop goroutine writes them, under mu.
	mu       sync.Mutex
	children []*child
	serving  bool
	ctl      chan func() // requests run on the loop goroutine
	loopDone chan struct{}

	// Loop-only state.
	base     context.Context // children's parent context: never cancelled by the caller
	notify   chan struct{}   // a child returned (coalesced)
	restarts []time.Time     // restart decisions within Period (intensity)
}

// child is one Spec and its live state.
type child struct {
	spec     Spec
	state    State
	run      *run
	due      time.Time // when the pending restart is due (state Backoff)
	restarts int       // restarts so far (this Serve)
	recent   []time.Time
	lastErr  error
	lastAt   time.Time
	started  bool // started at least once in this Serve
}

// run is one execution of a child's Serve.
type run struct {
	began  time.Time
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done is closed
}

// State is a child's state in Tree.
type State string

// Child states.
const (
	StateIdle     State = "idle"     // the supervisor has not started it (not serving)
	StateRunning  State = "running"  // its Serve is running
	StateBackoff  State = "backoff"  // failed; waiting to restart
	StateStopped  State = "stopped"  // stopped by StopChild (or shutdown); StartChild brings it back
	StateExited   State = "exited"   // returned nil and is not restarted (transient, temporary)
	StateFailed   State = "failed"   // failed and is not restarted (temporary)
	StateGaveUp   State = "gave-up"  // a nested supervisor that exceeded its intensity and is not restarted
	StateStopping State = "stopping" // being stopped
)

// New returns a supervisor with the given children, started in order.
// It panics if cfg is invalid or a child spec is (a programming error,
// like regexp.MustCompile); use Add for specs built at run time.
func New(cfg Config, children ...Spec) *Supervisor {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	s := &Supervisor{cfg: cfg.withDefaults()}
	s.rand = cfg.Rand
	if s.rand == nil {
		s.rand = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5eed))
	}
	for _, sp := range children {
		if err := s.Add(sp); err != nil {
			panic(err)
		}
	}
	return s
}

// Wrapper is implemented by a Service that runs a *Supervisor with some
// set-up or tear-down of its own. Its supervisor nests like a direct
// child: its events reach the parent's observer under its path, and Tree
// shows its nodes.
type Wrapper interface {
	Unwrap() *Supervisor
}

// nested is the supervisor a child's service is or wraps, or nil.
func nested(svc Service) *Supervisor {
	switch v := svc.(type) {
	case *Supervisor:
		return v
	case Wrapper:
		return v.Unwrap()
	}
	return nil
}

// Name returns the supervisor's name.
func (s *Supervisor) Name() string { return s.cfg.Name }

// String returns the supervisor's name.
func (s *Supervisor) String() string { return s.cfg.Name }

// Add appends a child. While the supervisor serves, the child starts at
// once; otherwise it starts with the others when Serve is called.
func (s *Supervisor) Add(sp Spec) error {
	if sp.Name == "" || sp.Service == nil {
		return fmt.Errorf("supervise: %s: a child needs a name and a service", s.cfg.Name)
	}
	if sp.Restart < Permanent || sp.Restart > Temporary {
		return fmt.Errorf("supervise: %s/%s: restart %d: want Permanent, Transient or Temporary", s.cfg.Name, sp.Name, int(sp.Restart))
	}
	if sp.Shutdown < 0 {
		return fmt.Errorf("supervise: %s/%s: shutdown %v: want 0 (default) or more", s.cfg.Name, sp.Name, sp.Shutdown)
	}
	if sub := nested(sp.Service); sub != nil {
		if sub == s {
			return fmt.Errorf("supervise: %s cannot supervise itself", s.cfg.Name)
		}
		sub.parent = s
	}
	c := &child{spec: sp, state: StateIdle}
	for {
		s.mu.Lock()
		if !s.serving {
			defer s.mu.Unlock()
			if s.find(sp.Name) != nil {
				return fmt.Errorf("%w: %s/%s", ErrDuplicate, s.cfg.Name, sp.Name)
			}
			s.children = append(s.children, c)
			return nil
		}
		s.mu.Unlock()
		err := s.do(func() error {
			if s.find(sp.Name) != nil {
				return fmt.Errorf("%w: %s/%s", ErrDuplicate, s.cfg.Name, sp.Name)
			}
			s.mu.Lock()
			s.children = append(s.children, c)
			s.mu.Unlock()
			s.start(c)
			return nil
		})
		if !errors.Is(err, ErrNotRunning) {
			return err
		}
	}
}

// Remove stops the named child (waiting up to its shutdown timeout) and
// removes it from the supervisor, for children added for a while (a
// loop that belongs to a component which is going away).
func (s *Supervisor) Remove(ctx context.Context, name string) error {
	for {
		s.mu.Lock()
		if !s.serving {
			defer s.mu.Unlock()
			return s.remove(name)
		}
		s.mu.Unlock()
		err := s.doCtx(ctx, func() error {
			c := s.find(name)
			if c == nil {
				return fmt.Errorf("%w: %s/%s", ErrNoChild, s.cfg.Name, name)
			}
			if c.run != nil {
				s.stop(c)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.remove(name)
		})
		if !errors.Is(err, ErrNotRunning) {
			return err
		}
	}
}

// remove deletes the named child from the list; s.mu is held.
func (s *Supervisor) remove(name string) error {
	for i, c := range s.children {
		if c.spec.Name == name {
			s.children = append(s.children[:i:i], s.children[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("%w: %s/%s", ErrNoChild, s.cfg.Name, name)
}

// StopChild stops the named child and keeps it down (no restart) until
// StartChild. It waits for the child to return, up to its shutdown
// timeout.
func (s *Supervisor) StopChild(ctx context.Context, name string) error {
	return s.doCtx(ctx, func() error {
		c := s.find(name)
		if c == nil {
			return fmt.Errorf("%w: %s/%s", ErrNoChild, s.cfg.Name, name)
		}
		if c.run != nil {
			s.stop(c)
		}
		s.setState(c, StateStopped)
		return nil
	})
}

// StartChild starts the named child if it is not running (stopped,
// exited, failed, gave up or waiting for a restart). It does not count as
// a restart for the intensity limit: it is an operator's decision.
func (s *Supervisor) StartChild(ctx context.Context, name string) error {
	return s.doCtx(ctx, func() error {
		c := s.find(name)
		if c == nil {
			return fmt.Errorf("%w: %s/%s", ErrNoChild, s.cfg.Name, name)
		}
		if c.run != nil {
			return nil
		}
		c.recent, c.started = nil, false // an operator's start, not a restart
		s.start(c)
		return nil
	})
}

// do runs f on the loop goroutine and returns its error, or ErrNotRunning
// when the supervisor is not serving.
func (s *Supervisor) do(f func() error) error { return s.doCtx(context.Background(), f) }

func (s *Supervisor) doCtx(ctx context.Context, f func() error) error {
	s.mu.Lock()
	ctl, done := s.ctl, s.loopDone
	serving := s.serving
	s.mu.Unlock()
	if !serving {
		return fmt.Errorf("%w: %s", ErrNotRunning, s.cfg.Name)
	}
	reply := make(chan error, 1)
	select {
	case ctl <- func() { reply <- f() }:
	case <-done:
		return fmt.Errorf("%w: %s", ErrNotRunning, s.cfg.Name)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Supervisor) find(name string) *child {
	for _, c := range s.children {
		if c.spec.Name == name {
			return c
		}
	}
	return nil
}

// path is the supervisor's name prefixed by its ancestors'.
func (s *Supervisor) path() string {
	if s.parent == nil {
		return s.cfg.Name
	}
	return s.parent.path() + "/" + s.cfg.Name
}

// emit sends e to the nearest observer up the tree.
func (s *Supervisor) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
		e.Supervisor = s.path()
	}
	for p := s; p != nil; p = p.parent {
		if p.cfg.Observer != nil {
			p.cfg.Observer(e)
			return
		}
	}
}

func (s *Supervisor) setState(c *child, st State) {
	s.mu.Lock()
	c.state = st
	s.mu.Unlock()
}

// Serve starts the children in order and supervises them until ctx is
// cancelled (it then stops them in reverse order and returns nil) or the
// restart intensity is exceeded (it stops them and returns an error
// wrapping ErrTooManyRestarts and the last failure). A Supervisor may be
// served again after Serve returns, which is how a parent restarts it;
// each Serve starts from a clean slate.
func (s *Supervisor) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.serving {
		s.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrRunning, s.cfg.Name)
	}
	s.serving = true
	s.ctl = make(chan func())
	s.loopDone = make(chan struct{})
	s.notify = make(chan struct{}, 1)
	s.restarts = nil
	for _, c := range s.children {
		c.state, c.run, c.restarts, c.recent, c.started = StateIdle, nil, 0, nil, false
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.serving = false
		close(s.loopDone)
		s.mu.Unlock()
	}()
	return s.loop(ctx)
}

func (s *Supervisor) loop(ctx context.Context) error {
	// Children run under their own context, cancelled only by the loop,
	// so that shutdown can stop them one at a time in reverse order.
	base := context.WithoutCancel(ctx)
	s.base = base
	for _, c := range s.children {
		s.start(c)
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var timerC <-chan time.Time
		if due, ok := s.nextDue(); ok {
			timer.Reset(time.Until(due))
			timerC = timer.C
		}
		select {
		case <-ctx.Done():
			s.stopAll(nil)
			return nil
		case f := <-s.ctl:
			f()
		case <-s.notify:
			if err := s.reap(); err != nil {
				return err
			}
		case <-timerC:
			s.restartDue()
		}
	}
}

// nextDue is the earliest pending restart.
func (s *Supervisor) nextDue() (time.Time, bool) {
	var due time.Time
	ok := false
	for _, c := range s.children {
		if c.state == StateBackoff && (!ok || c.due.Before(due)) {
			due, ok = c.due, true
		}
	}
	return due, ok
}

// restartDue starts, in start order, every child whose backoff is over.
func (s *Supervisor) restartDue() {
	now := time.Now()
	for _, c := range s.children {
		if c.state == StateBackoff && !c.due.After(now) {
			s.start(c)
		}
	}
}

// start runs c's Serve in a new goroutine.
func (s *Supervisor) start(c *child) {
	cctx, cancel := context.WithCancel(s.base)
	r := &run{began: time.Now(), cancel: cancel, done: make(chan struct{})}
	notify := s.notify
	s.mu.Lock()
	c.run = r
	c.state = StateRunning
	s.mu.Unlock()
	kind := EventStarted
	if c.started {
		kind = EventRestarted
	}
	c.started = true
	svc := c.spec.Service
	go func() {
		r.err = serveSafe(cctx, svc)
		cancel()
		close(r.done)
		select {
		case notify <- struct{}{}:
		default:
		}
	}()
	s.emit(Event{Kind: kind, Child: c.spec.Name, Restarts: c.restarts})
}

// serveSafe runs svc.Serve, turning a panic into a *PanicError.
func serveSafe(ctx context.Context, svc Service) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return svc.Serve(ctx)
}

// reap handles every child that has returned on its own. A non-nil
// result means the supervisor gave up.
func (s *Supervisor) reap() error {
	for _, c := range s.children {
		r := c.run
		if r == nil {
			continue
		}
		select {
		case <-r.done:
		default:
			continue
		}
		s.mu.Lock()
		c.run = nil
		s.mu.Unlock()
		if time.Since(r.began) >= s.cfg.BackoffReset {
			c.recent = nil // it ran long enough to count as healthy: back to the first delay
		}
		if err := s.exited(c, r.err); err != nil {
			return err
		}
	}
	return nil
}

// exited applies c's policy and the strategy after c returned err.
func (s *Supervisor) exited(c *child, err error) error {
	now := time.Now()
	if err != nil {
		s.mu.Lock()
		c.lastErr, c.lastAt = err, now
		s.mu.Unlock()
	}
	restart := c.spec.Restart == Permanent || (c.spec.Restart == Transient && err != nil)
	kind := EventExited
	if err != nil {
		kind = EventFailed
	}
	if !restart {
		st := StateExited
		if err != nil {
			st = StateFailed
			if errors.Is(err, ErrTooManyRestarts) {
				st = StateGaveUp
			}
		}
		s.setState(c, st)
		s.emit(Event{Kind: kind, Child: c.spec.Name, Err: err, Restarts: c.restarts})
		return nil
	}
	if !s.allowRestart(now) {
		s.setState(c, StateFailed)
		if errors.Is(err, ErrTooManyRestarts) {
			s.setState(c, StateGaveUp)
		}
		s.emit(Event{Kind: kind, Child: c.spec.Name, Err: err, Restarts: c.restarts})
		if err == nil {
			err = errors.New("exited")
		}
		gaveUp := fmt.Errorf("%w: %s: more than %d in %v; last: %s: %w", ErrTooManyRestarts, s.path(), s.cfg.MaxRestarts, s.cfg.Period, c.spec.Name, err)
		s.stopAll(nil)
		s.emit(Event{Kind: EventGaveUp, Err: gaveUp})
		return gaveUp
	}
	delay := s.backoff(c, now)
	s.emit(Event{Kind: kind, Child: c.spec.Name, Err: err, Restarts: c.restarts, Delay: delay, Restarting: true})
	group := []*child{c}
	switch s.cfg.Strategy {
	case OneForAll:
		group = s.stopAll(c)
	case RestForOne:
		group = s.stopAfter(c)
	}
	for _, g := range group {
		s.schedule(g, now.Add(delay))
	}
	return nil
}

// schedule puts c in backoff until due.
func (s *Supervisor) schedule(c *child, due time.Time) {
	s.mu.Lock()
	c.state, c.due = StateBackoff, due
	c.restarts++
	s.mu.Unlock()
	c.recent = append(c.recent, due)
}

// allowRestart records a restart decision at now, or reports that it
// would exceed the intensity.
func (s *Supervisor) allowRestart(now time.Time) bool {
	if s.cfg.MaxRestarts < 0 {
		return false
	}
	s.restarts = prune(s.restarts, now.Add(-s.cfg.Period))
	if len(s.restarts) >= s.cfg.MaxRestarts {
		return false
	}
	s.restarts = append(s.restarts, now)
	return true
}

func prune(ts []time.Time, after time.Time) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(after) {
		i++
	}
	return append(ts[:0], ts[i:]...)
}

// backoff is c's delay before its next restart: Backoff doubled for each
// restart of c within Period, capped, jittered.
func (s *Supervisor) backoff(c *child, now time.Time) time.Duration {
	if s.cfg.Backoff < 0 {
		return 0
	}
	c.recent = prune(c.recent, now.Add(-s.cfg.Period))
	d := s.cfg.Backoff
	for range c.recent {
		d *= 2
		if d >= s.cfg.MaxBackoff {
			d = s.cfg.MaxBackoff
			break
		}
	}
	d = min(d, s.cfg.MaxBackoff)
	if j := s.cfg.Jitter; j > 0 {
		d = time.Duration(float64(d) * (1 + j*(2*s.rand.Float64()-1)))
	}
	return d
}

// stopAll stops every running child in reverse start order, except
// skip, and returns the children to restart with skip (in start order):
// those that were running or waiting to restart, and are not Temporary.
func (s *Supervisor) stopAll(skip *child) []*child {
	return s.stopFrom(0, skip)
}

// stopAfter stops the children started after c, and returns c and those
// of them to restart.
func (s *Supervisor) stopAfter(c *child) []*child {
	for i, o := range s.children {
		if o == c {
			return s.stopFrom(i+1, c)
		}
	}
	return []*child{c}
}

func (s *Supervisor) stopFrom(from int, failed *child) []*child {
	var group []*child
	for i := len(s.children) - 1; i >= from; i-- {
		o := s.children[i]
		if o == failed {
			continue
		}
		wasLive := o.run != nil || o.state == StateBackoff
		if o.run != nil {
			s.stop(o)
		}
		if wasLive {
			if failed != nil && o.spec.Restart != Temporary {
				group = append(group, o)
			} else {
				s.setState(o, StateStopped)
			}
		}
	}
	// Restart in start order: the failed child first when it comes first.
	out := make([]*child, 0, len(group)+1)
	if failed != nil {
		out = append(out, failed)
	}
	for i := len(group) - 1; i >= 0; i-- {
		out = append(out, group[i])
	}
	if failed != nil {
		sortByIndex(s.children, out)
	}
	return out
}

// sortByIndex orders group as the children are ordered.
func sortByIndex(children, group []*child) {
	pos := make(map[*child]int, len(children))
	for i, c := range children {
		pos[c] = i
	}
	for i := 1; i < len(group); i++ {
		for j := i; j > 0 && pos[group[j]] < pos[group[j-1]]; j-- {
			group[j], group[j-1] = group[j-1], group[j]
		}
	}
}

// stop cancels c's run and waits for it up to its shutdown timeout.
func (s *Supervisor) stop(c *child) {
	r := c.run
	s.setState(c, StateStopping)
	r.cancel()
	timeout := c.spec.Shutdown
	if timeout == 0 {
		timeout = s.cfg.Shutdown
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-r.done:
		s.mu.Lock()
		c.run = nil
		c.state = StateStopped
		s.mu.Unlock()
		s.emit(Event{Kind: EventStopped, Child: c.spec.Name, Restarts: c.restarts})
	case <-t.C:
		s.mu.Lock()
		c.run = nil
		c.state = StateStopped
		s.mu.Unlock()
		s.emit(Event{Kind: EventStopTimeout, Child: c.spec.Name, Restarts: c.restarts,
			Err: fmt.Errorf("did not return within %v of its context's cancellation", timeout)})
	}
}
