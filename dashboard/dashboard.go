package dashboard

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Dashboard. The zero value works: an empty page with
// live traffic charts and an event log, no chaos buttons.
type Config struct {
	// Source provides the component snapshots. Nil shows no services,
	// registry or delivery: only traffic and events.
	Source Source
	// Controls enables the chaos buttons and the POST endpoints. Nil hides
	// the buttons; the endpoints then answer 501.
	Controls Controls
	// Traffic is the request counter the gateway feeds. Nil makes a new
	// one, returned by [Dashboard.Traffic].
	Traffic *Traffic
	// Events is the event log the components feed. Nil makes a new one
	// with DefaultEventCapacity, returned by [Dashboard.Events].
	Events *EventLog
	// Title is the page's title. Default "Bulwark".
	Title string
	// Interval is how often the sampler closes a traffic point, refreshes
	// the snapshot and pushes to the streams. Default 1s; at least 10ms.
	Interval time.Duration
	// History is how many points /api/stats and a new stream get.
	// Default 120 (two minutes at the default interval); at most 100000.
	History int
	// Logger receives warnings (a failing Source). Nil discards.
	Logger *slog.Logger
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	var errs []error
	if c.Interval < 0 || (c.Interval > 0 && c.Interval < 10*time.Millisecond) {
		errs = append(errs, fmt.Errorf("interval %v: want 0 (default 1s) or at least 10ms", c.Interval))
	}
	if c.History < 0 || c.History > 100000 {
		errs = append(errs, fmt.Errorf("history %d: want 0 (default 120) up to 100000", c.History))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dashboard: invalid config: %w", err)
	}
	return nil
}

// Dashboard serves the page and its API. Create it with New, serve
// Handler, call Start to begin sampling, and Close to stop.
type Dashboard struct {
	cfg     Config
	log     *slog.Logger
	traffic *Traffic
	events  *EventLog
	series  *series
	page    *template.Template

	latest  atomic.Pointer[Snapshot] // last snapshot the sampler read
	lastErr atomic.Pointer[string]   // last Source error, nil when fine

	mu     sync.Mutex
	subs   map[chan struct{}]struct{}
	kick   chan struct{} // asks the sampler for a snapshot now (after a control)
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed by Close: ends the sampler and streams
	wg     sync.WaitGroup
	start  sync.Once
	closed bool
}

// New returns a Dashboard for cfg. It does not start sampling: call Start.
func New(cfg Config) (*Dashboard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Title == "" {
		cfg.Title = "Bulwark"
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	if cfg.History == 0 {
		cfg.History = 120
	}
	if cfg.Traffic == nil {
		cfg.Traffic = NewTraffic()
	}
	if cfg.Events == nil {
		cfg.Events = NewEventLog(0)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	page, err := template.ParseFS(pageFS, "index.html.tmpl")
	if err != nil {
		return nil, fmt.Errorf("dashboard: parse page template: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Dashboard{
		cfg: cfg, log: log, traffic: cfg.Traffic, events: cfg.Events, page: page,
		series: newSeries(cfg.Traffic, cfg.History, time.Now()),
		subs:   make(map[chan struct{}]struct{}),
		kick:   make(chan struct{}, 1),
		ctx:    ctx, cancel: cancel, done: make(chan struct{}),
	}, nil
}

// Traffic returns the request counter to feed from the gateway's request
// path.
func (d *Dashboard) Traffic() *Traffic { return d.traffic }

// Events returns the event log to feed from the components' callbacks.
func (d *Dashboard) Events() *EventLog { return d.events }

// Start starts the sampler goroutine. It returns ErrClosed after Close;
// calling it again is a no-op.
func (d *Dashboard) Start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	d.start.Do(func() {
		d.wg.Add(1)
		go d.run()
	})
	return nil
}

// Close stops the sampler, ends open event streams and waits for the
// sampler to return. Idempotent.
func (d *Dashboard) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.cancel()
	close(d.done)
	d.mu.Unlock()
	d.wg.Wait()
	return nil
}

// run is the sampler goroutine of Start.
func (d *Dashboard) run() {
	defer d.wg.Done()
	d.Serve(d.ctx)
}

// Serve runs the sampler in the calling goroutine until ctx ends or the
// dashboard is closed, for callers that supervise it (use it instead of
// Start, not with it). Once per interval it closes a traffic point and
// refreshes the snapshot, then wakes the streams. A kick (after a chaos
// action) refreshes the snapshot at once, so the page shows the effect
// without waiting for the next tick. Serve may be called again after it
// returns (a supervisor's restart).
func (d *Dashboard) Serve(ctx context.Context) error {
	d.refresh()
	d.broadcast()
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-d.done:
			return nil
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			d.series.sample(now)
			d.refresh()
		case <-d.kick:
			d.refresh()
		}
		d.broadcast()
	}
}

// refresh reads a snapshot from the Source, bounded by one interval.
func (d *Dashboard) refresh() {
	ctx, cancel := context.WithTimeout(d.ctx, d.cfg.Interval)
	defer cancel()
	snap, err := d.snapshot(ctx)
	if err != nil {
		if d.ctx.Err() != nil {
			return // closing: not the Source's fault
		}
		msg := err.Error()
		if prev := d.lastErr.Load(); prev == nil || *prev != msg {
			d.log.Warn("dashboard: snapshot failed", "err", err)
		}
		d.lastErr.Store(&msg)
		return
	}
	d.lastErr.Store(nil)
	d.latest.Store(&snap)
}

// snapshot calls the Source, if any.
func (d *Dashboard) snapshot(ctx context.Context) (Snapshot, error) {
	var snap Snapshot
	if d.cfg.Source != nil {
		var err error
		if snap, err = d.cfg.Source.Snapshot(ctx); err != nil {
			return Snapshot{}, fmt.Errorf("dashboard: snapshot: %w", err)
		}
	}
	if snap.Time.IsZero() {
		snap.Time = time.Now()
	}
	return snap, nil
}

// requestRefresh asks the sampler for a fresh snapshot without blocking.
func (d *Dashboard) requestRefresh() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// subscribe registers a stream; its channel (capacity 1, so wake-ups
// coalesce) receives a value whenever there is something new.
func (d *Dashboard) subscribe() chan struct{} {
	ch := make(chan struct{}, 1)
	d.mu.Lock()
	d.subs[ch] = struct{}{}
	d.mu.Unlock()
	return ch
}

func (d *Dashboard) unsubscribe(ch chan struct{}) {
	d.mu.Lock()
	delete(d.subs, ch)
	d.mu.Unlock()
}

// broadcast wakes every stream without blocking: a stream that is still
// writing the previous message catches up from the series and the event
// log, so nothing is lost.
func (d *Dashboard) broadcast() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for ch := range d.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
