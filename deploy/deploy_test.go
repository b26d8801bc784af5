// Package deploy holds what operators install beside the binary: the
// Grafana dashboard, the Prometheus alert rules, the container image, the
// compose cluster and the systemd unit. Its tests check them against the
// real binary: the metric names the dashboard and the rules use are
// scraped from a running `bulwark up`, the rules go through promtool, the
// unit through systemd-analyze, and the image's build flags are the
// release build's.
package deploy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// rulesFile is Prometheus' rule file format, as far as these tests read it.
type rulesFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert  string `yaml:"alert"`
			Record string `yaml:"record"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found: install Debian's prometheus package (.ci/setup does) to check the alert rules")
	}
	return p
}

// TestAlertRules loads the alert rules with promtool and runs their unit
// tests (bulwark-alerts_test.yml: an error ratio, a lost registry leader,
// an upstream with no endpoint, a dead letter).
func TestAlertRules(t *testing.T) {
	pt := promtool(t)
	for _, args := range [][]string{
		{"check", "rules", "bulwark-alerts.yml"},
		{"test", "rules", "bulwark-alerts_test.yml"},
		{"check", "config", "prometheus.yml"},
	} {
		cmd := exec.Command(pt, args...)
		cmd.Dir = "prometheus"
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// dashboardExprs returns every PromQL expression of the Grafana dashboard.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("grafana/bulwark.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string                   `json:"title"`
			Type    string                   `json:"type"`
			GridPos struct{ H, W, X, Y int } `json:"gridPos"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/bulwark.json: %v", err)
	}
	if d.UID == "" {
		t.Error("the dashboard has no uid: provisioning would duplicate it on every import")
	}
	var exprs []string
	for i, p := range d.Panels {
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside Grafana's 24 columns", p.Title, g)
		}
		for _, q := range d.Panels[:i] {
			h := q.GridPos
			if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
				t.Errorf("panels %q and %q overlap", q.Title, p.Title)
			}
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	return exprs
}

func ruleExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("prometheus/bulwark-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f rulesFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	return exprs
}

// grafanaVars replaces the dashboard's template variables by what Grafana
// would substitute, so that the queries can be checked as plain PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$job", ".*", "$instance", ".*")

// TestDashboardQueriesParse runs every dashboard query through
// Prometheus' own parser (as recording rules for promtool).
func TestDashboardQueriesParse(t *testing.T) {
	pt := promtool(t)
	var f struct {
		Groups []map[string]any `yaml:"groups"`
	}
	var rules []map[string]string
	for i, e := range dashboardExprs(t) {
		rules = append(rules, map[string]string{"record": fmt.Sprintf("dashboard:query_%d", i), "expr": grafanaVars.Replace(e)})
	}
	f.Groups = append(f.Groups, map[string]any{"name": "dashboard", "rules": rules})
	b, err := yaml.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(pt, "check", "rules", path).CombinedOutput(); err != nil {
		t.Fatalf("a dashboard query does not parse: %v\n%s", err, out)
	}
}

// metricRE finds metric names in an expression: Bulwark's all start with
// bulwark_; `up` is Prometheus' own per-target series.
var metricRE = regexp.MustCompile(`\b(bulwark_[a-z0-9_]+|up)\b[^(]`)

// TestMetricNamesExported checks that every metric the dashboard and the
// alert rules use is one that Bulwark really exports, scraped from a
// running `bulwark up` after a few requests.
func TestMetricNamesExported(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs bulwark up")
	}
	exported := scrapeUp(t)
	exported["up"] = true // Prometheus adds it for every target
	check := func(what string, exprs []string) {
		for _, e := range exprs {
			names := metricRE.FindAllStringSubmatch(e+" ", -1)
			if len(names) == 0 {
				t.Errorf("%s: %q uses no Bulwark metric", what, e)
			}
			for _, m := range names {
				if !exported[m[1]] {
					t.Errorf("%s uses %s, which a running bulwark up does not export (query %q)", what, m[1], e)
				}
			}
		}
	}
	check("the dashboard", dashboardExprs(t))
	check("the alert rules", ruleExprs(t))
}

// scrapeUp builds bulwark, runs `bulwark up` (registry, gateway, delivery,
// three demo replicas), sends reads and async writes through it, and
// returns the metric names its /metrics serves (histograms with their
// _bucket, _sum and _count series).
func scrapeUp(t *testing.T) map[string]bool {
	bin := buildBulwark(t)
	gw, dash := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "up", "--dir", t.TempDir(), "--listen", gw, "--dashboard", dash, "--traffic=false")
	out := startProc(t, cmd)
	waitFor(t, 60*time.Second, func() bool { return strings.Contains(out.String(), "bulwark is up") }, out)
	for i := range 5 {
		if resp, err := http.Get("http://" + gw + "/read"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		req, _ := http.NewRequest("POST", "http://"+gw+"/write", strings.NewReader("x"))
		req.Header.Set("Idempotency-Key", fmt.Sprint("k", i))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	names := map[string]bool{}
	waitFor(t, 20*time.Second, func() bool {
		resp, err := http.Get("http://" + dash + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
				names[f[2]] = true
				if f[3] == "histogram" || f[3] == "summary" {
					for _, s := range []string{"_bucket", "_sum", "_count"} {
						names[f[2]+s] = true
					}
				}
			}
		}
		// Delivery's gauges and the registry's leases appear once both have started.
		return names["bulwark_registry_leases"] && names["bulwark_delivery_enqueued_total"] && names["bulwark_gateway_requests_total"]
	}, out)
	var list []string
	for n := range names {
		list = append(list, n)
	}
	slices.Sort(list)
	t.Logf("bulwark up exports %d metric names", len(list))
	return names
}

// buildBulwark builds the binary with the release build's flags
// (deploy/build.sh) into a temporary directory.
func buildBulwark(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bulwark")
	cmd := exec.Command("sh", "build.sh", bin)
	cmd.Env = append(os.Environ(), "VERSION=test")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building bulwark: %v\n%s", err, out)
	}
	return bin
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startProc starts cmd with its output captured; at the end of the test
// it is stopped with SIGTERM (so `up` stops its demo replicas), then
// SIGKILL if it has not exited within 10 s.
func startProc(t *testing.T, cmd *exec.Cmd) *lockedBuffer {
	t.Helper()
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return out
}

func waitFor(t *testing.T, d time.Duration, cond func() bool, out *lockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v; output:\n%s", d, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
