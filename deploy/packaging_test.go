package deploy

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bulwark-go/bulwark/config"
	"go.yaml.in/yaml/v3"
)

// dockerStage is one FROM ... [AS name] section of a Dockerfile.
type dockerStage struct {
	from, name string
	lines      []string // instructions, continuation lines joined
}

func dockerStages(t *testing.T, path string) []dockerStage {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stages []dockerStage
	joined := strings.ReplaceAll(string(b), "\\\n", " ")
	for _, line := range strings.Split(joined, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if strings.EqualFold(f[0], "FROM") {
			s := dockerStage{from: f[1]}
			if len(f) == 4 && strings.EqualFold(f[2], "AS") {
				s.name = f[3]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("%s: %q before the first FROM", path, line)
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
	}
	return stages
}

// TestDockerfile checks the image's recipe: the build stage builds with
// deploy/build.sh — the release build that TestReleaseBuild checks —
// and with no go build of its own, so the flags are identical; the final
// stage is distroless or scratch, runs as a non-root user and starts
// bulwark. Where a Docker engine answers, it also builds the image.
func TestDockerfile(t *testing.T) {
	stages := dockerStages(t, "Dockerfile")
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage Dockerfile, got %d stage(s)", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	usesScript := false
	for _, s := range stages {
		for _, l := range s.lines {
			if regexp.MustCompile(`\bgo\s+(build|install)\b`).MatchString(l) {
				t.Errorf("stage %q runs its own %q: build with deploy/build.sh so the flags match the release build", s.name, l)
			}
			if strings.HasPrefix(l, "RUN ") && strings.Contains(l, "deploy/build.sh") {
				usesScript = s.name == build.name
			}
		}
	}
	if !usesScript {
		t.Error("the build stage does not run deploy/build.sh")
	}
	if !strings.HasPrefix(final.from, "gcr.io/distroless/static") && final.from != "scratch" {
		t.Errorf("final stage FROM %s: want scratch or distroless/static (a static binary needs no OS)", final.from)
	}
	var user, entry string
	for _, l := range final.lines {
		f := strings.Fields(l)
		switch strings.ToUpper(f[0]) {
		case "USER":
			user = f[1]
		case "ENTRYPOINT":
			entry = l
		}
	}
	if u := strings.Split(user, ":")[0]; u == "" || u == "0" || u == "root" {
		t.Errorf("final stage runs as %q: want a non-root USER", user)
	}
	if !strings.Contains(entry, "bulwark") {
		t.Errorf("final stage ENTRYPOINT %q does not start bulwark", entry)
	}
	docker, err := exec.LookPath("docker")
	if err != nil || exec.Command(docker, "info").Run() != nil {
		t.Skip("no Docker engine answers here: the Dockerfile's instructions were checked, the image was not built")
	}
	cmd := exec.Command(docker, "build", "-f", "deploy/Dockerfile", "-t", "bulwark:test", ".")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
}

// TestReleaseBuild: deploy/build.sh makes a static binary (no ELF
// interpreter: it runs on scratch) with trimmed paths, no cgo and the
// version stamped in, and `bulwark version -v` reports that build.
func TestReleaseBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds bulwark")
	}
	bin := buildBulwark(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the release binary has an ELF interpreter: it is not static")
		}
	}
	out, err := exec.Command(bin, "version", "-v").CombinedOutput()
	if err != nil {
		t.Fatalf("bulwark version -v: %v\n%s", err, out)
	}
	// (Go leaves -ldflags out of the build info under -trimpath; the
	// version line shows that -X took.)
	for _, want := range []string{"bulwark test ", "CGO_ENABLED  0", "-trimpath    true"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("bulwark version -v lacks %q:\n%s", want, out)
		}
	}
}

// TestSystemdUnits runs systemd-analyze verify on the units (with
// ExecStart pointing at a real binary, since verify checks that it
// exists) and checks the capabilities: none for the plain service,
// exactly CAP_NET_ADMIN and CAP_NET_RAW for the virtual-IP one.
func TestSystemdUnits(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not found: install Debian's systemd package (.ci/setup does) to verify the units")
	}
	bin, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	wantCaps := map[string]string{"bulwark.service": "", "bulwark-ha.service": "CAP_NET_ADMIN CAP_NET_RAW"}
	for name, caps := range wantCaps {
		b, err := os.ReadFile(filepath.Join("systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		unit := string(b)
		for _, want := range []string{"ExecReload=/bin/kill -HUP $MAINPID", "NoNewPrivileges=yes", "ProtectSystem=strict",
			"CapabilityBoundingSet=" + caps + "\n", "AmbientCapabilities=" + caps + "\n", "SystemCallFilter=@system-service"} {
			if !strings.Contains(unit, want) {
				t.Errorf("%s lacks %q", name, strings.TrimSpace(want))
			}
		}
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/bulwark", bin)), 0o644); err != nil {
			t.Fatal(err)
		}
		// verify exits 0 on unknown keys and bad values but prints them:
		// any output is a finding.
		out, err := exec.Command(sa, "verify", path).CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out)
		}
	}
}

// TestComposeCluster checks the compose file's topology (three registry
// nodes, two gateways, NATS) and that every bulwark.yaml it mounts is a
// valid config describing that cluster: one bootstrapping node, each
// node listing the other two as peers at their fixed addresses, the
// gateways discovering from all three and delivering through NATS.
func TestComposeCluster(t *testing.T) {
	b, err := os.ReadFile("compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			Image    string   `yaml:"image"`
			Volumes  []string `yaml:"volumes"`
			Networks map[string]struct {
				IPv4 string `yaml:"ipv4_address"`
			} `yaml:"networks"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	ips := map[string]string{}
	var registries, gateways []*config.File
	bootstraps := 0
	for _, name := range []string{"registry-1", "registry-2", "registry-3", "gateway-1", "gateway-2", "nats"} {
		s, ok := c.Services[name]
		if !ok {
			t.Fatalf("compose.yaml has no service %s", name)
		}
		ips[name] = s.Networks["bulwark"].IPv4
		if name == "nats" {
			continue
		}
		var file string
		for _, v := range s.Volumes {
			if strings.HasSuffix(v, ":/etc/bulwark/bulwark.yaml:ro") {
				file = strings.TrimPrefix(strings.Split(v, ":")[0], "./")
			}
		}
		f, err := config.Load(filepath.Join("compose", file))
		if err != nil {
			t.Fatalf("%s mounts %q: %v", name, file, err)
		}
		if f.Admin.Address == "" {
			t.Errorf("%s has no admin listener: Prometheus cannot scrape it", name)
		}
		if strings.HasPrefix(name, "registry") {
			registries = append(registries, f)
			if f.Registry == nil {
				t.Fatalf("%s runs no registry node", name)
			}
			if f.Registry.Bootstrap {
				bootstraps++
			}
			if ips[name] == "" || !strings.HasPrefix(f.Registry.Raft, ips[name]+":") || !strings.HasPrefix(f.Registry.HTTP, ips[name]+":") {
				t.Errorf("%s: raft %s and http %s must be the container's fixed address %q (peers dial them)", name, f.Registry.Raft, f.Registry.HTTP, ips[name])
			}
			for _, p := range f.Registry.Peers {
				if p.ID == f.Registry.NodeID {
					t.Errorf("%s lists itself as a peer", name)
				}
			}
			if len(f.Registry.Peers) != 2 {
				t.Errorf("%s lists %d peers, want the other two", name, len(f.Registry.Peers))
			}
		} else {
			gateways = append(gateways, f)
			if len(f.Discovery.Registries) != 3 {
				t.Errorf("%s discovers from %v, want all three registry nodes", name, f.Discovery.Registries)
			}
			if f.Delivery == nil || len(f.Delivery.NATS) == 0 || !strings.Contains(f.Delivery.NATS[0], "nats:") {
				t.Errorf("%s does not deliver through the NATS service", name)
			}
		}
	}
	raftOf := map[string]string{}
	for _, f := range registries {
		raftOf[f.Registry.NodeID] = f.Registry.Raft
	}
	for _, f := range registries {
		for _, p := range f.Registry.Peers {
			if raftOf[p.ID] != p.Raft {
				t.Errorf("node %s lists peer %s at %s; that node's raft address is %q", f.Registry.NodeID, p.ID, p.Raft, raftOf[p.ID])
			}
		}
	}
	if bootstraps != 1 {
		t.Errorf("%d registry nodes bootstrap, want exactly 1", bootstraps)
	}
	if len(registries) != 3 || len(gateways) != 2 {
		t.Fatalf("%d registries, %d gateways", len(registries), len(gateways))
	}
}
