package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"syscall"
	"time"

	"github.com/bulwark-go/bulwark/config"
	"github.com/bulwark-go/bulwark/dashboard"
)

// runValidate checks a config file and prints every problem with its line.
func runValidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "bulwark.yaml", "config file")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
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
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "bulwark.yaml", "config file")
	watch := fs.Duration("watch", time.Second, "how often to check the config file for changes (0 disables; SIGHUP always reloads)")
	drain := fs.Duration("drain", 10*time.Second, "how long in-flight requests may take to finish at shutdown")
	verbose := fs.Bool("v", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
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
	c, err := startComponentsWith(ctx, f, logger, logGatewayEvents(events))
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
	var admin *http.Server
	if f.Admin.Address != "" {
		ln, err := net.Listen("tcp", f.Admin.Address)
		if err != nil {
			gw.Close()
			return fmt.Errorf("admin: %w", err)
		}
		d, err := dashboard.New(dashboard.Config{Title: "Bulwark", Source: &upSource{c: c}, Events: events, Logger: logger})
		if err != nil {
			return err
		}
		if err := d.Start(); err != nil {
			return err
		}
		defer d.Close()
		admin = &http.Server{Handler: adminHandler(c, d, auth), ReadHeaderTimeout: 5 * time.Second}
		go admin.Serve(ln)
		fmt.Fprintf(stdout, "admin and dashboard on http://%s\n", ln.Addr())
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var tick <-chan time.Time
	if *watch > 0 {
		t := time.NewTicker(*watch)
		defer t.Stop()
		tick = t.C
	}
	lastMod := modTime(*path)
	reload := func(why string) {
		nf, err := config.Load(*path)
		if err != nil {
			logger.Error("config rejected; the running config keeps serving", "trigger", why, "err", err)
			return
		}
		if !reflect.DeepEqual(nf.Registry, f.Registry) || !reflect.DeepEqual(nf.Delivery, f.Delivery) || !reflect.DeepEqual(nf.Discovery, f.Discovery) {
			logger.Warn("registry, discovery and delivery changes take effect on restart; reloading the gateway part only", "trigger", why)
		}
		if err := gw.Reload(nf.Config); err != nil {
			logger.Error("reload failed; the running config keeps serving", "trigger", why, "err", err)
			return
		}
		logger.Info("config reloaded", "trigger", why, "file", *path)
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-hup:
			lastMod = modTime(*path)
			reload("SIGHUP")
		case <-tick:
			if m := modTime(*path); !m.Equal(lastMod) {
				lastMod = m
				reload("file change")
			}
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	var errs []error
	if admin != nil {
		errs = append(errs, admin.Shutdown(sctx))
	}
	errs = append(errs, gw.Shutdown(sctx), c.close())
	return errors.Join(errs...)
}

func modTime(path string) time.Time {
	st, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}
