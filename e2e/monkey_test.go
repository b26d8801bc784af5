package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMonkeyFromRegistry: the monkey takes its victims from the registry
// and, with min-healthy 2 of 3, kills exactly one replica however many
// kill decisions it makes.
func TestMonkeyFromRegistry(t *testing.T) {
	dir := t.TempDir()
	regAddr := freeAddr(t)
	conf := fmt.Sprintf("registry:\n  http: %s\n  raft: %s\n  data_dir: %s\n  bootstrap: true\n", regAddr, freeAddr(t), filepath.Join(dir, "reg"))
	path := filepath.Join(dir, "bulwark.yaml")
	os.WriteFile(path, []byte(conf), 0o644)
	start(t, "run", "-c", path)
	var reps []*proc
	for i := range 3 {
		reps = append(reps, start(t, "demo", "--id", fmt.Sprintf("r%d", i+1), "--registry", regAddr, "--service", "demo"))
	}
	waitFor(t, 5*time.Second, func() bool { return len(routable(t, regAddr)) == 3 })
	cmd := exec.Command(binary, "chaos", "monkey", "--registry", regAddr, "--service", "demo", "--mtbk", "50ms", "--min-healthy", "2", "--seed", "7")
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // dozens of kill decisions
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	dead := 0
	for _, r := range reps {
		select {
		case <-r.done:
			dead++
		default:
		}
	}
	t.Logf("monkey log:\n%s", tail(out.String(), 1500))
	if dead != 1 {
		t.Fatalf("%d replicas killed, want exactly 1 (min-healthy 2 of 3)", dead)
	}
	if !strings.Contains(out.String(), "kill") {
		t.Fatal("the monkey logged no kill")
	}
}
