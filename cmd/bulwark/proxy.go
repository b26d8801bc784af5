package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark/config"
	"github.com/bulwark-go/bulwark/proxy"
	"github.com/bulwark-go/bulwark/supervise"
)

// multiFlag collects a repeated flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// runProxy is the one-liner gateway: every default is the fault-tolerant
// one (P2C-EWMA, outlier ejection, retries elsewhere within a budget,
// adaptive per-try timeouts, hedging within a budget, an adaptive
// concurrency limit, breakers, Content-Digest checks).
func runProxy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("proxy", stderr)
	listen := fs.String("listen", ":8080", "address to accept clients on")
	var to multiFlag
	fs.Var(&to, "to", "an upstream endpoint URL (repeat for each replica)")
	health := fs.String("health", "", "path probed on every endpoint, e.g. /health (default: passive checks only)")
	admin := fs.String("admin", "", "address for /metrics and /api/upstreams (default: none)")
	perTry := fs.Duration("per-try-timeout", 0, "ceiling of one try; below it the timeout adapts to the pool's latency (default 5s)")
	hedge := fs.String("hedge", "", `hedge delay: the pool's p99 (default), "off", a duration such as 50ms, or a quantile such as p95`)
	limit := fs.String("limit", "", `concurrency limit: adaptive Gradient2 (default), "off", "gradient2", "vegas" or "aimd"`)
	engine := fs.String("engine", "", `HTTP/1.1 engine of the listener and of tries to plain http:// endpoints: "bulwark" (default, the gateway's own) or "net/http" (Go's server and Transport)`)
	verbose := fs.Bool("v", false, "log each reload, ejection and failed try")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(to) == 0 {
		return fmt.Errorf("%w: proxy needs at least one --to URL", errUsage)
	}
	cfg := proxy.Config{
		Listeners: []proxy.Listener{{Name: "proxy", Address: *listen, Engine: *engine}},
		Routes:    []proxy.Route{{Name: "default", Upstream: "default", Timeouts: proxy.Timeouts{PerTry: *perTry}, Hedge: proxy.Hedge{Delay: *hedge}, Limit: proxy.Limit{Algorithm: *limit}}},
		Upstreams: []proxy.Upstream{{Name: "default", Health: proxy.HealthCheck{Path: *health}, Engine: *engine}},
	}
	for _, u := range to {
		cfg.Upstreams[0].Endpoints = append(cfg.Upstreams[0].Endpoints, proxy.Endpoint{URL: u})
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	tp, err := openTracing(ctx, config.Tracing{}, logger) // OTEL_* variables turn it on
	if err != nil {
		return err
	}
	if tp != nil {
		defer shutdownTracing(tp)()
	}
	// The gateway's loops (probes, outlier analysis) run under a
	// supervision tree, as in `bulwark run` (docs/architecture.md).
	loops := newLoopRunner()
	gw, err := proxy.New(cfg, proxy.Options{Logger: logger, Tracer: gatewayTracer(tp), Run: loops.run})
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	defer gw.Close()
	if err := gw.Listen(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "bulwark proxy listening on %s\n", gw.Addrs()[0])
	root := supervise.New(supervise.Config{Name: "bulwark", MaxRestarts: 20, Period: time.Minute, Observer: supervise.LogObserver(logger)},
		supervise.Spec{Name: "loops", Service: loops.sup},
		supervise.Spec{Name: "gateway", Service: untilDone(gw.Shutdown, 5*time.Second), Shutdown: 6 * time.Second})
	if *admin != "" {
		ln, err := net.Listen("tcp", *admin)
		if err != nil {
			return fmt.Errorf("admin: %w", err)
		}
		root.Add(supervise.Spec{Name: "admin-http", Service: &httpService{ln: ln, addr: ln.Addr().String(), handler: gw.AdminHandler()}})
		fmt.Fprintf(stdout, "admin on http://%s\n", ln.Addr())
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopTree := serveTree(root, func(err error) { cancel(err) })
	<-ctx.Done()
	stopTree()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("supervision tree gave up: %w", err)
	}
	return nil
}
