package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark/proxy"
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
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", ":8080", "address to accept clients on")
	var to multiFlag
	fs.Var(&to, "to", "an upstream endpoint URL (repeat for each replica)")
	health := fs.String("health", "", "path probed on every endpoint, e.g. /health (default: passive checks only)")
	admin := fs.String("admin", "", "address for /metrics and /api/upstreams (default: none)")
	perTry := fs.Duration("per-try-timeout", 0, "ceiling of one try; below it the timeout adapts to the pool's latency (default 5s)")
	hedge := fs.String("hedge", "", `hedge delay: the pool's p99 (default), "off", a duration such as 50ms, or a quantile such as p95`)
	limit := fs.String("limit", "", `concurrency limit: adaptive Gradient2 (default), "off", "gradient2", "vegas" or "aimd"`)
	verbose := fs.Bool("v", false, "log each reload, ejection and failed try")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if len(to) == 0 {
		return fmt.Errorf("%w: proxy needs at least one --to URL", errUsage)
	}
	cfg := proxy.Config{
		Listeners: []proxy.Listener{{Name: "proxy", Address: *listen}},
		Routes:    []proxy.Route{{Name: "default", Upstream: "default", Timeouts: proxy.Timeouts{PerTry: *perTry}, Hedge: proxy.Hedge{Delay: *hedge}, Limit: proxy.Limit{Algorithm: *limit}}},
		Upstreams: []proxy.Upstream{{Name: "default", Health: proxy.HealthCheck{Path: *health}}},
	}
	for _, u := range to {
		cfg.Upstreams[0].Endpoints = append(cfg.Upstreams[0].Endpoints, proxy.Endpoint{URL: u})
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	gw, err := proxy.New(cfg, proxy.Options{Logger: logger})
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	if err := gw.Listen(); err != nil {
		gw.Close()
		return err
	}
	fmt.Fprintf(stdout, "bulwark proxy listening on %s\n", gw.Addrs()[0])
	var adminSrv *http.Server
	if *admin != "" {
		ln, err := net.Listen("tcp", *admin)
		if err != nil {
			gw.Close()
			return fmt.Errorf("admin: %w", err)
		}
		adminSrv = &http.Server{Handler: gw.AdminHandler(), ReadHeaderTimeout: 5 * time.Second}
		go adminSrv.Serve(ln)
		fmt.Fprintf(stdout, "admin on http://%s\n", ln.Addr())
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if adminSrv != nil {
		adminSrv.Shutdown(sctx)
	}
	return gw.Shutdown(sctx)
}
