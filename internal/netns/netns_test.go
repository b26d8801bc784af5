package netns

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	if code, done := Isolate(); done {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestIsolated checks that, as root, the tests really run in a namespace
// of their own: its lo is up and has no other interface beside it.
func TestIsolated(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: tests run on the host's loopback (isolation needs root for unshare -n)")
	}
	if !Inside() {
		t.Fatal("running as root but not isolated")
	}
	out, err := exec.Command("ip", "-o", "link").Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "lo:") || !strings.Contains(lines[0], "UP") {
		t.Fatalf("want only lo, up; got:\n%s", out)
	}
}
