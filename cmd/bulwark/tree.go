package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/dashboard"
	"github.com/bulwark-go/bulwark/supervise"
	"github.com/prometheus/client_golang/prometheus"
)

// Each process of Bulwark runs its long-lived loops under one supervision
// tree (package supervise), built here: a panic in one is recovered,
// logged, shown in the dashboard's events and restarted, instead of
// killing the process. docs/architecture.md draws the tree of each
// command.

// treeObserver logs supervision events, adds them to the dashboard's
// event log and counts them in bulwark_supervise_events_total (when reg
// is set).
func treeObserver(logger *slog.Logger, events *dashboard.EventLog, reg prometheus.Registerer) func(supervise.Event) {
	logEvent := supervise.LogObserver(logger)
	var counter *prometheus.CounterVec
	if reg != nil {
		counter = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "bulwark", Subsystem: "supervise", Name: "events_total",
			Help: "Supervision tree events by supervisor path, child and event (started, failed, restarted, exited, stopped, stop-timeout, gave-up)."},
			[]string{"supervisor", "child", "event"})
		if err := reg.Register(counter); err != nil {
			logger.Warn("supervise metrics not registered", "err", err)
			counter = nil
		}
	}
	return func(e supervise.Event) {
		logEvent(e)
		events.Add(dashboard.KindSupervise, e.String())
		if counter != nil {
			counter.WithLabelValues(e.Supervisor, e.Child, string(e.Kind)).Inc()
		}
	}
}

// dashboardTree converts a supervision tree for the dashboard (which does
// not import supervise: siblings meet in cmd).
func dashboardTree(n supervise.Node) *dashboard.TreeNode {
	out := &dashboard.TreeNode{Name: n.Name, Supervisor: n.Supervisor, Strategy: n.Strategy, Restart: n.Restart,
		State: string(n.State), Restarts: n.Restarts, LastFailure: n.LastFailure}
	if !n.LastFailureAt.IsZero() {
		out.LastFailureAt = n.LastFailureAt
	}
	for _, c := range n.Children {
		out.Children = append(out.Children, *dashboardTree(c))
	}
	return out
}

// testPanicEnv names the test-only fault hook: BULWARK_TEST_PANIC=NAME
// (or NAME@DELAY, default 2s) makes the component NAME panic once, DELAY
// after the process started, so the end-to-end tests can watch its
// supervisor restart it. It is read only from the environment and is no
// part of any API or flag.
const testPanicEnv = "BULWARK_TEST_PANIC"

// panicHook is the parsed BULWARK_TEST_PANIC; nil when unset.
type panicHook struct {
	name  string
	after time.Time
	fired atomic.Bool
}

func panicHookFromEnv() *panicHook {
	v := os.Getenv(testPanicEnv)
	if v == "" {
		return nil
	}
	name, delay, _ := strings.Cut(v, "@")
	d, err := time.ParseDuration(delay)
	if err != nil {
		d = 2 * time.Second
	}
	return &panicHook{name: name, after: time.Now().Add(d)}
}

// armedFor reports whether the hook names component and has not fired.
func (h *panicHook) armedFor(component string) bool {
	return h != nil && h.name == component && !h.fired.Load()
}

// maybe panics, once, if the hook names component and its time has come.
func (h *panicHook) maybe(component string) {
	if h == nil || h.name != component || time.Now().Before(h.after) || !h.fired.CompareAndSwap(false, true) {
		return
	}
	panic(fmt.Sprintf("%s=%s: test-only panic", testPanicEnv, component))
}

// httpService serves handler on addr as a supervised child. The first
// listener is opened by the caller (so the address is known and errors
// are reported at once); after a failure the restart listens again on
// the same address.
type httpService struct {
	ln      net.Listener
	addr    string
	handler http.Handler
}

func (h *httpService) Serve(ctx context.Context) error {
	ln := h.ln
	h.ln = nil
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", h.addr); err != nil {
			return err
		}
	}
	srv := &http.Server{Handler: h.handler, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	if errors.Is(err, context.DeadlineExceeded) {
		srv.Close()
	}
	return nil
}

// untilDone is a Service for a component that runs on its own
// goroutines (opened before the tree starts): it holds the component's
// place in the shutdown order and closes it when the tree stops.
func untilDone(close func(ctx context.Context) error, timeout time.Duration) supervise.Service {
	return supervise.ServiceFunc(func(ctx context.Context) error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := close(sctx); err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	})
}

// serveTree runs root in the background and returns a function that
// stops it and waits.
func serveTree(root *supervise.Supervisor, failed func(error)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := root.Serve(ctx); err != nil {
			failed(err)
		}
	}()
	return func() { cancel(); <-done }
}

// loopRunner runs components' long-lived loops (proxy.Options.Run: each
// pool's registry watch, outlier and probe loops; delivery's fetch loops;
// the registry's lease loop) as transient children of one supervisor of
// the tree, added when the loop begins and removed when its owner stops
// it.
type loopRunner struct {
	sup  *supervise.Supervisor
	hook *panicHook // test-only: BULWARK_TEST_PANIC=<loop name>
}

func newLoopRunner() *loopRunner {
	return &loopRunner{sup: supervise.New(supervise.Config{Name: "loops", MaxRestarts: 10, Period: time.Minute,
		Backoff: 100 * time.Millisecond}), hook: panicHookFromEnv()}
}

// run blocks until ctx ends and loop has returned.
func (r *loopRunner) run(ctx context.Context, name string, loop func(ctx context.Context) error) {
	var n string
	svc := supervise.ServiceFunc(func(cctx context.Context) error {
		lctx, cancel := context.WithCancel(cctx)
		defer cancel()
		stop := context.AfterFunc(ctx, cancel)
		defer stop()
		if r.hook.armedFor(n) {
			// The test hook cannot reach inside the component's loop: it
			// stops the loop when its time comes and panics in the loop's
			// goroutine, which is what the supervisor sees of a panic.
			t := time.AfterFunc(time.Until(r.hook.after), cancel)
			defer t.Stop()
		}
		err := loop(lctx)
		if ctx.Err() == nil && cctx.Err() == nil {
			r.hook.maybe(n)
		}
		return err
	})
	n = name
	for i := 2; ; i++ {
		err := r.sup.Add(supervise.Spec{Name: n, Service: svc, Restart: supervise.Transient})
		if err == nil {
			break
		}
		if !errors.Is(err, supervise.ErrDuplicate) {
			loop(ctx) // cannot be supervised: run it plainly rather than not at all
			return
		}
		n = fmt.Sprintf("%s (%d)", name, i) // a reload's new pool beside the old one
	}
	<-ctx.Done()
	r.sup.Remove(context.Background(), n)
}
