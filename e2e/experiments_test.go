package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOwnExperiments runs every experiment in examples/experiments
// against a real stack (three demo replicas behind `bulwark proxy`, all
// separate processes) and requires every verdict to pass. The experiments
// in clusterExperiments need stacks of their own and are run by
// TestOwnClusterExperiments.
func TestOwnExperiments(t *testing.T) {
	files, err := filepath.Glob("../examples/experiments/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no experiments found: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		if clusterExperiments[name] {
			continue
		}
		t.Run(name, func(t *testing.T) {
			bs := startDemos(t, 3)
			args := []string{"proxy", "--listen", "127.0.0.1:0", "--per-try-timeout", "500ms", "--hedge", "100ms"}
			for _, b := range bs {
				args = append(args, "--to", b.url)
			}
			gw := start(t, args...)
			out := t.TempDir()
			cmd := exec.CommandContext(t.Context(), binary, "chaos", "run", "--out", out, file)
			cmd.Env = append(os.Environ(), "GATEWAY="+gw.url)
			for i, b := range bs {
				cmd.Env = append(cmd.Env, fmt.Sprintf("REPLICA%d=%s", i+1, b.url), fmt.Sprintf("PID%d=%d", i+1, b.cmd.Process.Pid))
			}
			output, runErr := cmd.CombinedOutput()
			var res struct {
				Verdict string   `json:"verdict"`
				Reasons []string `json:"reasons"`
				Totals  struct {
					Requests int `json:"requests"`
				} `json:"totals"`
			}
			b, err := os.ReadFile(filepath.Join(out, name+".json"))
			if err != nil {
				t.Fatalf("no result file (%v); output:\n%s", err, output)
			}
			if err := json.Unmarshal(b, &res); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: verdict %s, %d requests", name, res.Verdict, res.Totals.Requests)
			if runErr != nil || res.Verdict != "passed" {
				t.Fatalf("verdict %q (exit %v), reasons %v; output:\n%s", res.Verdict, runErr, res.Reasons, tail(string(output), 2000))
			}
			if _, err := os.Stat(filepath.Join(out, name+".html")); err != nil {
				t.Fatalf("no HTML report: %v", err)
			}
		})
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
