package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/chaos"
	"github.com/bulwark-go/bulwark/chaos/experiment"
	"github.com/bulwark-go/bulwark/chaos/monkey"
	"github.com/bulwark-go/bulwark/registry"
)

const chaosUsage = `Usage:
  bulwark chaos proxy [--listen 127.0.0.1:8474] [--config proxies.json] [--seed N] [--token T]
      a toxic proxy server with Toxiproxy's HTTP API
  bulwark chaos run [--out DIR] EXPERIMENT.yaml
      run a self-verifying experiment; exits 1 when the hypothesis broke.
      ${NAME} in the file is replaced from the environment.
  bulwark chaos monkey --service NAME (--registry HOST:PORT | --victim SERVICE/ID=PID|URL ...) [--mtbk 1h] [--min-healthy 1] [--dry-run]
      kill instances of opted-in services on a schedule
`

func runChaos(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, chaosUsage)
		return fmt.Errorf("%w: chaos needs a subcommand", errUsage)
	}
	switch args[0] {
	case "proxy":
		return runChaosProxy(ctx, args[1:], stdout, stderr)
	case "run":
		return runChaosRun(ctx, args[1:], stdout, stderr)
	case "monkey":
		return runChaosMonkey(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, chaosUsage)
	return fmt.Errorf("%w: unknown chaos subcommand %q", errUsage, args[0])
}

func runChaosProxy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("chaos proxy", stderr)
	listen := fs.String("listen", "127.0.0.1:8474", "address of the Toxiproxy-compatible API")
	cfgPath := fs.String("config", "", "JSON file of proxies to create at start (Toxiproxy's format)")
	seed := fs.Uint64("seed", 0, "seed for every random choice (0: random, printed so a run can be replayed)")
	token := fs.String("token", "", "bearer token required on API writes (default $"+chaos.TokenEnv+"); required when --listen is not loopback")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *token == "" {
		*token = os.Getenv(chaos.TokenEnv)
	}
	cfg := chaos.Config{Listen: *listen, Seed: *seed, Token: *token, Logger: slog.New(slog.NewTextHandler(stderr, nil))}
	if *cfgPath != "" {
		b, err := os.ReadFile(*cfgPath)
		if err != nil {
			return err
		}
		if cfg.Proxies, err = chaos.ParseProxies(b); err != nil {
			return fmt.Errorf("%s: %w", *cfgPath, err)
		}
	}
	s, err := chaos.New(cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(stdout, "bulwark chaos proxy API on http://%s (seed %d)\n", *listen, s.Seed())
	if err := s.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// errHypothesis is returned when an experiment's steady state broke; the
// process exits 1 and the report says why.
var errHypothesis = errors.New("the steady-state hypothesis did not hold")

func runChaosRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("chaos run", stderr)
	out := fs.String("out", ".", "directory for the JSON result and the HTML report")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: chaos run takes one experiment file", errUsage)
	}
	raw, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	// ${NAME} is taken from the environment, so one file fits any stack.
	exp, err := experiment.Parse(fs.Arg(0), []byte(os.ExpandEnv(string(raw))))
	if err != nil {
		return err
	}
	res, runErr := experiment.Run(ctx, exp, experiment.Options{Progress: stderr})
	if res == nil {
		return runErr
	}
	base := strings.TrimSuffix(filepath.Base(fs.Arg(0)), filepath.Ext(fs.Arg(0)))
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	jsonPath, htmlPath := filepath.Join(*out, base+".json"), filepath.Join(*out, base+".html")
	if err := writeFile(jsonPath, func(w io.Writer) error { return experiment.WriteJSON(w, res) }); err != nil {
		return err
	}
	if err := writeFile(htmlPath, func(w io.Writer) error { return experiment.WriteHTML(w, res) }); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "verdict: %s\nreport: %s\nresult: %s\n", res.Verdict, htmlPath, jsonPath)
	for _, r := range res.Reasons {
		fmt.Fprintln(stdout, "  -", r)
	}
	if runErr != nil {
		return runErr
	}
	if res.Verdict != "passed" {
		return errHypothesis
	}
	return nil
}

func writeFile(path string, fn func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func runChaosMonkey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("chaos monkey", stderr)
	var services, victims multiFlag
	fs.Var(&services, "service", "an opted-in service (repeat)")
	fs.Var(&victims, "victim", "SERVICE/ID=PID or SERVICE/ID=URL (a POST kills it); repeat")
	var registries multiFlag
	fs.Var(&registries, "registry", "take victims from this registry (host:port; repeat for failover): instances registered with a pid or kill_url in their metadata")
	mtbk := fs.Duration("mtbk", time.Hour, "mean time between kills")
	minHealthy := fs.Int("min-healthy", 1, "never leave a service with fewer healthy instances")
	dry := fs.Bool("dry-run", false, "log decisions without killing")
	seed := fs.Uint64("seed", 0, "seed for the schedule and victims (0: random, logged)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var source monkey.Victims
	sv := &monkey.StaticVictims{}
	for _, v := range victims {
		name, target, ok := strings.Cut(v, "=")
		svc, id, ok2 := strings.Cut(name, "/")
		if !ok || !ok2 {
			return fmt.Errorf("%w: --victim %q: write SERVICE/ID=PID or SERVICE/ID=URL", errUsage, v)
		}
		sv2 := monkey.StaticVictim{Service: svc, ID: id}
		if pid, err := strconv.Atoi(target); err == nil {
			sv2.PID = pid
		} else {
			sv2.KillURL = target
		}
		sv.List = append(sv.List, sv2)
	}
	switch {
	case len(registries) > 0 && len(sv.List) > 0:
		return fmt.Errorf("%w: use --registry or --victim, not both", errUsage)
	case len(registries) > 0:
		c, err := registry.NewClient(registry.ClientConfig{Addrs: registries})
		if err != nil {
			return err
		}
		defer c.Close()
		source = registryVictims{c}
	default:
		source = sv
	}
	if len(services) == 0 || (len(sv.List) == 0 && len(registries) == 0) {
		return fmt.Errorf("%w: chaos monkey needs --service and --victim or --registry", errUsage)
	}
	m, err := monkey.New(monkey.Config{Services: services, MeanTimeBetweenKills: *mtbk, MinHealthy: *minHealthy,
		DryRun: *dry, Seed: *seed, Logger: slog.New(slog.NewTextHandler(stderr, nil))}, source)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "bulwark chaos monkey running: services %v, mean %v between kills\n", []string(services), *mtbk)
	if err := m.Run(ctx, nil); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// registryVictims takes the monkey's victims from the registry: the
// instances it lists (with their health, so the min-healthy guard sees
// suspect ones as unhealthy), killed by the pid (SIGKILL, same machine) or
// kill_url (POST) they registered in their metadata.
type registryVictims struct{ c *registry.Client }

func (r registryVictims) Instances(ctx context.Context, service string) ([]bulwark.Instance, error) {
	insts, err := r.c.Instances(ctx, service)
	if err != nil {
		return nil, err
	}
	// The registry learns of a death only when the lease lapses; a pid on
	// this machine tells at once, so the min-healthy guard never counts a
	// corpse as healthy.
	for i, in := range insts {
		if pid, err := strconv.Atoi(in.Metadata["pid"]); err == nil && pid > 0 && syscall.Kill(pid, 0) != nil {
			insts[i].Health = bulwark.HealthDown
		}
	}
	return insts, nil
}

func (r registryVictims) Kill(ctx context.Context, inst bulwark.Instance) error {
	if pid, err := strconv.Atoi(inst.Metadata["pid"]); err == nil && pid > 0 {
		return syscall.Kill(pid, syscall.SIGKILL)
	}
	if u := inst.Metadata["kill_url"]; u != "" {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			return fmt.Errorf("kill %s/%s: %s answered %s", inst.Service, inst.ID, u, resp.Status)
		}
		return nil
	}
	return fmt.Errorf("instance %s/%s registered no pid or kill_url: the monkey cannot kill it", inst.Service, inst.ID)
}
