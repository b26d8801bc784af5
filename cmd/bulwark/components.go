package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/cluster"
	"github.com/bulwark-go/bulwark/config"
	"github.com/bulwark-go/bulwark/delivery"
	"github.com/bulwark-go/bulwark/pki"
	"github.com/bulwark-go/bulwark/proxy"
	"github.com/bulwark-go/bulwark/registry"
	"github.com/bulwark-go/bulwark/registry/consulapi"
	"github.com/bulwark-go/bulwark/registry/eureka"
	"github.com/bulwark-go/bulwark/tracing"
	"github.com/prometheus/client_golang/prometheus"
)

// components are the parts a config file enables, started in dependency
// order (registry, discovery client, gateway, delivery) and stopped in
// reverse.
type components struct {
	logger      *slog.Logger
	reg         *prometheus.Registry
	node        *registry.Node
	cluster     *cluster.Node
	client      *registry.Client
	gateway     *proxy.Gateway
	delivery    *delivery.Service
	enqueuer    *lateEnqueuer
	closeFns    []func() error
	registryURL string
	tracer      *tracing.Provider
}

// lateEnqueuer lets the gateway be built before delivery (which needs the
// gateway as its forwarder): it answers "not ready" until bound.
type lateEnqueuer struct {
	s atomic.Pointer[delivery.Service]
}

var errDeliveryStarting = errors.New("delivery is starting")

func (l *lateEnqueuer) Enqueue(ctx context.Context, m *bulwark.Message) (string, error) {
	s := l.s.Load()
	if s == nil {
		return "", errDeliveryStarting
	}
	return s.Enqueue(ctx, m)
}

func (l *lateEnqueuer) Status(ctx context.Context, id string) (bulwark.DeliveryStatus, error) {
	s := l.s.Load()
	if s == nil {
		return bulwark.DeliveryStatus{}, errDeliveryStarting
	}
	st, err := s.Status(ctx, id)
	if errors.Is(err, delivery.ErrNotFound) {
		err = fmt.Errorf("%w: %w", proxy.ErrMessageNotFound, err)
	}
	return st, err
}

// startComponents starts what f enables. On error everything started so
// far is stopped.
func startComponents(ctx context.Context, f *config.File, logger *slog.Logger) (*components, error) {
	return startComponentsWith(ctx, f, logger, nil, nil)
}

// startComponentsWith is startComponents with a listener for gateway
// events (ejections, breaker changes) and a runner for the gateway's
// loops (nil: plain goroutines; see loopRunner).
func startComponentsWith(ctx context.Context, f *config.File, logger *slog.Logger, onEvent func(proxy.Event), loops *loopRunner) (c *components, err error) {
	c = &components{logger: logger, reg: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if c.tracer, err = openTracing(ctx, f.Tracing, logger); err != nil {
		return c, err
	}
	if c.tracer != nil {
		c.closeFns = append(c.closeFns, shutdownTracing(c.tracer)) // closed last: flushes every component's spans
	}
	if r := f.Registry; r != nil {
		token := r.Token
		if token == "" {
			token = os.Getenv("BULWARK_REGISTRY_TOKEN")
		}
		cfg := registry.Config{Middleware: apiMiddleware(c.tracer, "registry"), NodeID: r.NodeID, HTTPAddr: or(r.HTTP, "127.0.0.1:8500"), RaftAddr: or(r.Raft, "127.0.0.1:8501"),
			DataDir: r.DataDir, Bootstrap: r.Bootstrap, Token: token, DefaultTTL: r.TTL, SuspectTimeout: r.SuspectTimeout,
			Logger: logger.With("component", "registry")}
		if loops != nil {
			cfg.Run = loops.run
		}
		// Consul's and Eureka's APIs share the registry's listener, so
		// services with those clients register unchanged.
		cfg.Mount = func(n *registry.Node, mux *http.ServeMux) {
			consulapi.New(n, consulapi.Options{Logger: cfg.Logger}).Register(mux)
			eureka.New(n, eureka.Options{Logger: cfg.Logger}).Register(mux)
		}
		for _, p := range r.Peers {
			cfg.Peers = append(cfg.Peers, registry.Peer{ID: p.ID, RaftAddr: p.Raft, HTTPAddr: p.HTTP})
		}
		scheme := "http://"
		if r.TLS != (pki.Files{}) {
			if cfg.ServerTLS, err = r.TLS.ServerConfig(); err != nil {
				return c, fmt.Errorf("registry.tls: %w", err)
			}
			if cfg.ClientTLS, err = r.TLS.ClientConfig(); err != nil {
				return c, fmt.Errorf("registry.tls: %w", err)
			}
			scheme = "https://"
		}
		if c.node, err = registry.Open(ctx, cfg); err != nil {
			return c, fmt.Errorf("registry: %w", err)
		}
		c.closeFns = append(c.closeFns, c.node.Close)
		c.reg.MustRegister(c.node.Collector())
		c.registryURL = scheme + c.node.HTTPAddr()
	}
	addrs := f.Discovery.Registries
	if len(addrs) == 0 && c.node != nil {
		addrs = []string{c.node.HTTPAddr()}
	}
	if len(addrs) > 0 {
		token := f.Discovery.Token
		if token == "" && f.Registry != nil {
			token = f.Registry.Token
		}
		if token == "" {
			token = os.Getenv("BULWARK_REGISTRY_TOKEN")
		}
		files := f.Discovery.TLS
		if files == (pki.Files{}) && f.Registry != nil {
			files = f.Registry.TLS
		}
		var clientTLS *tls.Config
		if files != (pki.Files{}) {
			if clientTLS, err = files.ClientConfig(); err != nil {
				return c, fmt.Errorf("discovery.tls: %w", err)
			}
		}
		if c.client, err = registry.NewClient(registry.ClientConfig{Addrs: addrs, Token: token, TLS: clientTLS, Logger: logger.With("component", "discovery")}); err != nil {
			return c, fmt.Errorf("discovery: %w", err)
		}
		c.closeFns = append(c.closeFns, func() error { c.client.Close(); return nil })
	}
	opts := proxy.Options{Logger: logger.With("component", "gateway"), Registry: c.reg, OnEvent: onEvent, Tracer: gatewayTracer(c.tracer)}
	if loops != nil {
		opts.Run = loops.run
	}
	if f.Cluster != nil {
		if c.cluster, err = openCluster(f.Cluster, logger, c.reg, onEvent); err != nil {
			return c, err
		}
		c.closeFns = append(c.closeFns, c.cluster.Close)
		opts.ListenConfig = c.cluster.ListenConfig()
	}
	if c.client != nil {
		opts.Resolver = c.client
	}
	if f.Delivery != nil {
		c.enqueuer = &lateEnqueuer{}
		opts.Enqueuer = c.enqueuer
	}
	if c.gateway, err = proxy.New(f.Config, opts); err != nil {
		return c, err
	}
	c.closeFns = append(c.closeFns, c.gateway.Close)
	if d := f.Delivery; d != nil {
		cfg := delivery.Config{DataDir: d.DataDir, URLs: d.NATS, Replicas: d.Replicas, MaxAttempts: d.MaxAttempts,
			Backoff: d.Backoff, MaxBody: int(d.MaxBody), SyncAlways: d.SyncAlways, MaxBacklog: d.MaxBacklog,
			Logger: logger.With("component", "delivery"), Registerer: c.reg}
		if d.TLS != (pki.Files{}) {
			if cfg.TLS, err = d.TLS.MutualConfig(); err != nil {
				return c, fmt.Errorf("delivery.tls: %w", err)
			}
		}
		if cl := d.Cluster; cl != nil {
			host, port, _ := net.SplitHostPort(cl.Listen) // validated by config
			p, _ := strconv.Atoi(port)
			cfg.ServerName = cl.ServerName
			cfg.Cluster = &delivery.ClusterConfig{Name: cl.Name, Host: host, Port: p, Routes: cl.Routes}
		}
		if loops != nil {
			cfg.Run = loops.run
		}
		if c.delivery, err = delivery.Open(ctx, cfg, c.gateway); err != nil {
			return c, fmt.Errorf("delivery: %w", err)
		}
		c.enqueuer.s.Store(c.delivery)
		// Delivery closes before the gateway: its workers forward through it.
		c.closeFns = append(c.closeFns, c.delivery.Close)
	}
	return c, nil
}

// close stops the components in reverse order of their start.
func (c *components) close() error {
	var errs []error
	for i := len(c.closeFns) - 1; i >= 0; i-- {
		if err := c.closeFns[i](); err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
	}
	c.closeFns = nil
	return errors.Join(errs...)
}

func or(v, def string) string {
	if strings.TrimSpace(v) == "" {
		return def
	}
	return v
}
