package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"reflect"
	"syscall"
	"time"

	"github.com/bulwark-go/bulwark/config"
	"github.com/bulwark-go/bulwark/dashboard"
	"github.com/bulwark-go/bulwark/proxy"
	"github.com/bulwark-go/bulwark/supervise"
)

// runValidate checks a config file and prints every problem with its line.
func runValidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("validate", stderr)
	path := fs.String("c", "bulwark.yaml", "config file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if _, err := config.Load(*path); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return nil
}

// runRun runs the components a config file enables, reloading on SIGHUP
// and when the file changes; an invalid new version is refused with its
// errors and the running config keeps serving.
func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", stderr)
	path := fs.String("c", "bulwark.yaml", "config file")
	watch := fs.Duration("watch", time.Second, "how often to check the config file for changes (0 disables; SIGHUP always reloads)")
	drain := fs.Duration("drain", 10*time.Second, "how long in-flight requests may take to finish at shutdown")
	verbose := fs.Bool("v", false, "debug logging")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	f, err := config.Load(*path)
	if err != nil {
		return err
	}
	auth := adminAuth(f.Admin.Token)
	if f.Admin.Address != "" {
		if err := checkAdminListener(f.Admin.Address, "admin.address", auth); err != nil {
			return err
		}
	}
	events := dashboard.NewEventLog(256)
	loops := newLoopRunner()
	c, err := startComponentsWith(ctx, f, logger, logGatewayEvents(events), loops)
	if err != nil {
		return err
	}
	defer c.close()
	gw := c.gateway
	if err := gw.Listen(); err != nil {
		return err
	}
	for _, a := range gw.Addrs() {
		fmt.Fprintf(stdout, "bulwark gateway listening on %s\n", a)
	}
	if c.node != nil {
		fmt.Fprintf(stdout, "registry node %s on %s\n", c.node.ID(), c.registryURL)
	}
	shutdownGateway := gw.Shutdown
	if c.cluster != nil {
		fmt.Fprintf(stdout, "gateway cluster node %s competing for VIP %s\n", c.cluster.ID(), f.Cluster.VIP)
		deregister := registerGateway(ctx, c, f, logger)
		defer deregister()
		// Off the registry first, then the VIP's owner drains before it
		// hands the address over.
		shutdownGateway = func(ctx context.Context) error {
			deregister()
			return c.cluster.Leave(ctx, gw.Shutdown)
		}
	}
	// The process's supervision tree (docs/architecture.md).
	hook := panicHookFromEnv()
	root := supervise.New(supervise.Config{Name: "bulwark", MaxRestarts: 20, Period: time.Minute,
		Observer: treeObserver(logger, events, c.reg)})
	root.Add(supervise.Spec{Name: "loops", Service: loops.sup})
	root.Add(supervise.Spec{Name: "gateway", Service: untilDone(shutdownGateway, *drain), Shutdown: *drain + time.Second})
	if f.Admin.Address != "" {
		ln, err := net.Listen("tcp", f.Admin.Address)
		if err != nil {
			return fmt.Errorf("admin: %w", err)
		}
		d, err := dashboard.New(dashboard.Config{Title: "Bulwark", Source: &upSource{c: c, tree: root}, Events: events, Logger: logger})
		if err != nil {
			ln.Close()
			return err
		}
		defer d.Close()
		root.Add(supervise.Spec{Name: "dashboard", Service: d})
		root.Add(supervise.Spec{Name: "admin-http", Service: &httpService{ln: ln, addr: ln.Addr().String(), handler: adminHandler(c, d, auth)}})
		fmt.Fprintf(stdout, "admin and dashboard on http://%s\n", ln.Addr())
	}
	w := &configWatch{path: *path, every: *watch, current: f, gw: gw, logger: logger, hook: hook}
	root.Add(supervise.Spec{Name: "config-watch", Service: w})
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopTree := serveTree(root, func(err error) { cancel(err) })
	<-ctx.Done()
	stopTree()
	errs := []error{c.close()}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		errs = append(errs, fmt.Errorf("supervision tree gave up: %w", err))
	}
	return errors.Join(errs...)
}

// configWatch reloads the gateway's part of the config on SIGHUP and
// when the file changes; an invalid new version is refused with its
// errors and the running config keeps serving.
type configWatch struct {
	path    string
	every   time.Duration
	gw      *proxy.Gateway
	logger  *slog.Logger
	hook    *panicHook
	current *config.File // only the watch's goroutine touches it
}

func (w *configWatch) Serve(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var tick <-chan time.Time
	if w.every > 0 {
		t := time.NewTicker(w.every)
		defer t.Stop()
		tick = t.C
	}
	lastMod := modTime(w.path)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			lastMod = modTime(w.path)
			w.reload("SIGHUP")
		case <-tick:
			w.hook.maybe("config-watch")
			if m := modTime(w.path); !m.Equal(lastMod) {
				lastMod = m
				w.reload("file change")
			}
		}
	}
}

func (w *configWatch) reload(why string) {
	nf, err := config.Load(w.path)
	if err != nil {
		w.logger.Error("config rejected; the running config keeps serving", "trigger", why, "err", err)
		return
	}
	f := w.current
	if !reflect.DeepEqual(nf.Registry, f.Registry) || !reflect.DeepEqual(nf.Delivery, f.Delivery) || !reflect.DeepEqual(nf.Discovery, f.Discovery) {
		w.logger.Warn("registry, discovery and delivery changes take effect on restart; reloading the gateway part only", "trigger", why)
	}
	if err := w.gw.Reload(nf.Config); err != nil {
		w.logger.Error("reload failed; the running config keeps serving", "trigger", why, "err", err)
		return
	}
	w.current = nf
	w.logger.Info("config reloaded", "trigger", why, "file", w.path)
}

func modTime(path string) time.Time {
	st, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}
