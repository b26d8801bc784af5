package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/bulwark-go/bulwark/cluster"
	"github.com/bulwark-go/bulwark/config"
	"github.com/bulwark-go/bulwark/dashboard"
	"github.com/bulwark-go/bulwark/pki"
	"github.com/bulwark-go/bulwark/proxy"
	"github.com/bulwark-go/bulwark/supervise"
)

// upState is what `bulwark up` keeps in its data dir between runs: the
// ports it chose, so a second run finds its registry's Raft state at the
// same address.
type upState struct {
	RegistryHTTP string `json:"registry_http"`
	RegistryRaft string `json:"registry_raft"`
}

// runUp runs the whole system on this machine: a registry node, the
// gateway, delivery on an embedded JetStream, the dashboard, three demo
// replicas as child processes, and a gentle traffic generator.
func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("up", stderr)
	cache, _ := os.UserCacheDir()
	dir := fs.String("dir", filepath.Join(cache, "bulwark"), "data directory (reused by the next up)")
	listen := fs.String("listen", "127.0.0.1:8080", "gateway address")
	dash := fs.String("dashboard", "127.0.0.1:8081", "dashboard address")
	replicas := fs.Int("replicas", 3, "demo replicas to run")
	traffic := fs.Bool("traffic", true, "start the built-in traffic generator (switchable in the dashboard)")
	rate := fs.Float64("rate", 50, "traffic generator requests per second")
	cfgPath := fs.String("config", "", "run this config file (with the dashboard) instead of the demo system")
	useTLS := fs.Bool("tls", false, "mutual TLS between the parts: a CA in DIR/pki issues certificates for the gateway, the registry and the replicas; gateway → replica and replica/gateway → registry traffic (API and Raft) then runs over mTLS")
	ha := fs.Bool("ha", false, "run three gateway nodes owning a virtual IP in network namespaces (needs root: CAP_SYS_ADMIN, CAP_NET_ADMIN, ip, nft); without them, says why and runs one gateway")
	verbose := fs.Bool("v", false, "debug logging")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *ha {
		why := haCheck()
		if why == "" {
			why = "the three-node network-namespace mode is not built yet (docs/ha.md runs the cluster by hand)"
		}
		fmt.Fprintf(stderr, "up --ha: cannot run the gateway cluster: %s; running one gateway\n", why)
	}
	// The dashboard carries the chaos controls and dead-letter replay: on
	// loopback (the default) it needs no setup, elsewhere a token.
	auth := adminAuth("")
	if err := checkAdminListener(*dash, "--dashboard", auth); err != nil {
		return err
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	events := dashboard.NewEventLog(256)

	if *useTLS && *cfgPath != "" {
		return fmt.Errorf("%w: --tls runs the demo system under mTLS; with --config, put tls: sections in the config file (docs/config.md)", errUsage)
	}
	var f *config.File
	var pkiDir string
	if *cfgPath != "" {
		var err error
		if f, err = config.Load(*cfgPath); err != nil {
			return err
		}
	} else {
		if err := os.MkdirAll(*dir, 0o755); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		st, err := loadUpState(*dir)
		if err != nil {
			return err
		}
		f = demoConfig(*dir, *listen, st)
		if *useTLS {
			if pkiDir, err = upPKI(filepath.Join(*dir, "pki")); err != nil {
				return err
			}
			f.Registry.TLS = pki.FilesFor(pkiDir, "registry")
			f.Upstreams[0].TLS = pki.FilesFor(pkiDir, "gateway")
		}
	}
	loops := newLoopRunner()
	c, err := startComponentsWith(ctx, f, logger, logGatewayEvents(events), loops)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.gateway.Listen(); err != nil {
		return err
	}
	gwURL := "http://" + c.gateway.Addrs()[0].String()

	// The process's supervision tree (docs/architecture.md): components
	// first, so that shutdown (reverse order) stops the traffic and the
	// replicas before the dashboard and the gateway.
	hook := panicHookFromEnv()
	root := supervise.New(supervise.Config{Name: "bulwark", MaxRestarts: 20, Period: time.Minute,
		Observer: treeObserver(logger, events, c.reg)})
	var fl *fleet
	var gen *trafficGen
	src := &upSource{c: c, tree: root, tls: pkiDir != ""}
	if *cfgPath == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		fl = newFleet(exe, c.node.HTTPAddr(), "demo", stderr)
		if pkiDir != "" {
			clientTLS, err := pki.FilesFor(pkiDir, "dashboard").ClientConfig()
			if err != nil {
				return err
			}
			fl.useTLS(pki.FilesFor(pkiDir, "demo"), clientTLS)
		}
		for i := 1; i <= *replicas; i++ {
			if err := fl.add(fmt.Sprintf("demo-%d", i), i); err != nil {
				return err
			}
		}
		gen = newTrafficGen(gwURL, *rate, *traffic, nil)
		gen.hook = hook
		src.fleet, src.gen = fl, gen
	}
	d, err := dashboard.New(dashboard.Config{Title: "Bulwark", Source: src, Controls: controlsOf(fl, gen, events), Events: events, Logger: logger})
	if err != nil {
		return err
	}
	defer d.Close()
	if gen != nil {
		gen.traffic = d.Traffic()
	}
	ln, err := net.Listen("tcp", *dash)
	if err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	dashURL := "http://" + ln.Addr().String()
	gw := c.gateway
	root.Add(supervise.Spec{Name: "loops", Service: loops.sup})
	root.Add(supervise.Spec{Name: "gateway", Service: untilDone(gw.Shutdown, 5*time.Second), Shutdown: 6 * time.Second})
	root.Add(supervise.Spec{Name: "dashboard", Service: d})
	root.Add(supervise.Spec{Name: "admin-http", Service: &httpService{ln: ln, addr: ln.Addr().String(), handler: adminHandler(c, d, auth)}})
	if fl != nil {
		root.Add(supervise.Spec{Name: "fleet", Service: fl, Shutdown: 15 * time.Second})
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopTree := serveTree(root, func(err error) { cancel(err) })
	defer stopTree()

	fmt.Fprintf(stdout, "gateway    %s\n", gwURL)
	fmt.Fprintf(stdout, "dashboard  %s\n", dashURL)
	if c.node != nil {
		fmt.Fprintf(stdout, "registry   %s\n", c.registryURL)
	}
	if pkiDir != "" {
		fmt.Fprintf(stdout, "mtls       CA %s (gateway → replicas, replicas and gateway → registry, registry Raft)\n", filepath.Join(pkiDir, pki.CACertFile))
		events.Add(dashboard.KindInfo, "mutual TLS on: gateway → replicas, replicas and gateway → registry, registry Raft; CA "+filepath.Join(pkiDir, pki.CACertFile))
	}
	if fl != nil {
		if err := waitRoutable(ctx, c.gateway, *replicas, 20*time.Second); err != nil {
			return err
		}
		// Traffic starts once the replicas serve; it is the last child, so
		// it stops first.
		if err := root.Add(supervise.Spec{Name: "traffic", Service: gen}); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "bulwark is up: open %s — Ctrl-C stops everything\n", dashURL)
	<-ctx.Done()
	fmt.Fprintln(stdout, "stopping…")
	stopTree()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("supervision tree gave up: %w", err)
	}
	return nil
}

// logGatewayEvents feeds the gateway's endpoint events to the dashboard's
// event log.
func logGatewayEvents(events *dashboard.EventLog) func(proxy.Event) {
	return func(e proxy.Event) {
		who := e.Endpoint
		if who == "" {
			who = e.Upstream // a route's event (a strict vote's disagreement), not one endpoint's
		}
		events.Add(eventKind(e.Kind), who+": "+e.Kind+" ("+e.Detail+")")
	}
}

func eventKind(k string) string {
	switch k {
	case "ejected", "returned", "health":
		return dashboard.KindEjection
	case "breaker":
		return dashboard.KindBreaker
	case "byzantine", "disagreement":
		return dashboard.KindByzantine
	}
	return dashboard.KindInfo
}

func loadUpState(dir string) (upState, error) {
	path := filepath.Join(dir, "up.json")
	var st upState
	b, err := os.ReadFile(path)
	if err == nil {
		if err := json.Unmarshal(b, &st); err == nil && st.RegistryHTTP != "" && st.RegistryRaft != "" {
			return st, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return st, err
	}
	for _, p := range []*string{&st.RegistryHTTP, &st.RegistryRaft} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return st, err
		}
		*p = ln.Addr().String()
		ln.Close()
	}
	b, _ = json.MarshalIndent(st, "", "  ")
	return st, os.WriteFile(path, b, 0o644)
}

// demoConfig is the system `bulwark up` runs: reads voted on by the demo
// replicas found in the registry (so the dashboard's "lie" control is
// outvoted), writes accepted for durable asynchronous delivery.
func demoConfig(dir, listen string, st upState) *config.File {
	return &config.File{
		Config: proxy.Config{
			Listeners: []proxy.Listener{{Name: "gateway", Address: listen}},
			Routes: []proxy.Route{
				{Name: "writes", Match: proxy.Match{PathPrefix: "/write", Methods: []string{"POST"}}, Upstream: "demo", Async: true},
				{Name: "reads", Upstream: "demo", Timeouts: proxy.Timeouts{PerTry: time.Second}, Vote: proxy.Vote{F: 1}},
			},
			Upstreams: []proxy.Upstream{{Name: "demo", Discover: "demo",
				Outlier: proxy.Outlier{BaseEjection: 5 * time.Second}, Breaker: proxy.Breaker{Open: 2 * time.Second}}},
		},
		Registry: &config.Registry{NodeID: "up", HTTP: st.RegistryHTTP, Raft: st.RegistryRaft,
			DataDir: filepath.Join(dir, "registry"), Bootstrap: true},
		Delivery: &config.Delivery{DataDir: filepath.Join(dir, "delivery"), Backoff: []time.Duration{time.Second, 2 * time.Second}},
	}
}

// upPKI makes sure dir holds a CA (created on the first `up --tls`, kept
// after) and issues fresh certificates for the parts of the demo system:
// gateway (client of the replicas and the registry), registry (its API
// and Raft), demo (every replica: server, and client of the registry) and
// dashboard (the fleet's client for the replicas' fault switch). All are
// for 127.0.0.1, ::1 and localhost: `up` runs on loopback.
func upPKI(dir string) (string, error) {
	ca, err := pki.Load(dir)
	if errors.Is(err, pki.ErrNoCA) {
		ca, err = pki.Init(dir, "bulwark up CA")
	}
	if err != nil {
		return "", fmt.Errorf("up --tls: %w", err)
	}
	for _, name := range []string{"gateway", "registry", "demo", "dashboard"} {
		req := pki.Request{Name: name, DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}
		if _, err := ca.Issue(req); err != nil {
			return "", fmt.Errorf("up --tls: %w", err)
		}
	}
	return dir, nil
}

// waitRoutable waits until the gateway routes to n endpoints.
func waitRoutable(ctx context.Context, gw *proxy.Gateway, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		up := 0
		for _, u := range gw.Upstreams() {
			for _, e := range u.Endpoints {
				if e.Health.Routable() {
					up++
				}
			}
		}
		if up >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d replicas became routable in %v", up, n, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// upSource builds the dashboard's snapshots from the running components.
type upSource struct {
	tls   bool // up --tls: the pool and the registry speak mTLS
	c     *components
	fleet *fleet
	gen   *trafficGen
	tree  *supervise.Supervisor
}

func (s *upSource) Snapshot(ctx context.Context) (dashboard.Snapshot, error) {
	var snap dashboard.Snapshot
	var fs map[string]replicaState
	if s.fleet != nil {
		fs = s.fleet.state()
	}
	for _, u := range s.c.gateway.Upstreams() {
		svc := dashboard.Service{Name: u.Name, Balance: u.Balance, TLS: s.tls}
		seen := map[string]bool{}
		for _, e := range u.Endpoints {
			in := dashboard.Instance{ID: e.ID, Address: e.Address, Health: e.Health.String(), Breaker: e.Breaker,
				EWMAms: e.EWMA, InFlight: e.InFlight, Requests: e.Requests, Failures: e.Failures}
			if r, ok := fs[e.ID]; ok {
				in.Fault = string(r.fault)
				if r.down {
					in.Health = dashboard.HealthDown
				}
			}
			if in.Health == "unknown" {
				in.Health = dashboard.HealthUp
			}
			seen[e.ID] = true
			svc.Instances = append(svc.Instances, in)
		}
		// Replicas the registry already removed still show, as down.
		for _, id := range s.fleet.idsOrNil() {
			if !seen[id] && u.Discover == "demo" {
				r := fs[id]
				svc.Instances = append(svc.Instances, dashboard.Instance{ID: id, Address: r.url, Health: dashboard.HealthDown, Fault: string(r.fault)})
			}
		}
		snap.Services = append(snap.Services, svc)
	}
	if n := s.c.node; n != nil {
		st := n.Status()
		reg := &dashboard.Registry{Leader: st.LeaderID, Index: st.Index, Stale: st.Stale, TLS: s.tls}
		for _, p := range st.Nodes {
			state := "follower"
			if p.ID == st.LeaderID {
				state = "leader"
			}
			reg.Nodes = append(reg.Nodes, dashboard.Node{ID: p.ID, Address: p.HTTPAddr, State: state})
		}
		snap.Registry = reg
	}
	if dl := s.c.delivery; dl != nil {
		ds := dl.Snapshot()
		snap.Delivery = &dashboard.Delivery{Queued: ds.Queued, InFlight: ds.InFlight, Delivered: int64(ds.Delivered),
			DeadLetters: ds.DeadLetters, OldestAgeSeconds: ds.OldestAge.Seconds()}
	}
	if s.gen != nil {
		snap.Traffic = &dashboard.TrafficState{Generator: s.gen.on.Load(), Rate: s.gen.rate}
	}
	if s.tree != nil {
		snap.Supervision = dashboardTree(s.tree.Tree())
	}
	if n := s.c.cluster; n != nil {
		// A `bulwark run` cluster node shows its own view; its peers'
		// states are on their own dashboards.
		st := n.Status()
		snap.Cluster = dashboardCluster(st.VIP, []string{st.Node}, map[string]cluster.Status{st.Node: st}, nil)
		if st.Owner != "" {
			snap.Cluster.Owner = st.Owner // the replicated owner, also when it is a peer
		}
	}
	return snap, nil
}

func (f *fleet) idsOrNil() []string {
	if f == nil {
		return nil
	}
	return f.ids()
}

// upControls are the dashboard's chaos buttons for the demo fleet.
type upControls struct {
	*fleet
	gen    *trafficGen
	events *dashboard.EventLog
}

func controlsOf(fl *fleet, gen *trafficGen, events *dashboard.EventLog) dashboard.Controls {
	if fl == nil {
		return nil
	}
	return &upControls{fleet: fl, gen: gen, events: events}
}

func (u *upControls) SetTraffic(ctx context.Context, on bool) error {
	u.gen.set(on)
	state := "off"
	if on {
		state = "on"
	}
	u.events.Add(dashboard.KindTraffic, "traffic generator "+state)
	return nil
}
