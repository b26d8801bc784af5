package registry

import (
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDiskFull: a node whose disk is full refuses writes with 503 and an
// error that says so (nothing half-written), keeps serving reads, and
// accepts writes again by itself once space returns.
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs (a full disk on demand); .ci/run runs as root")
	}
	checkLeaks(t)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	})
	tc := newCluster(t, 1, func(_ int, c *Config) { c.DataDir = filepath.Join(dir, "node") })
	base := "http://" + tc.nodes[0].HTTPAddr()
	reg := func(id string) (int, map[string]any) {
		st, _, body := call(t, "PUT", base+"/v1/instances", "", `{"service":"a","id":"`+id+`","address":"h:1","ttl":"1h"}`)
		return st, body
	}
	if st, body := reg("before"); st != 200 {
		t.Fatalf("register with space: %d %v", st, body)
	}
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for buf := make([]byte, 64<<10); ; {
		if _, err := f.Write(buf); err != nil {
			break // ENOSPC
		}
	}
	f.Close()
	var st int
	var body map[string]any
	// Until the guard looks (at most every 250 ms) a write may still fit
	// in the log store's preallocated pages (then it is stored, and must
	// stay), or fail in Raft (the leader steps down: 503 "not the
	// leader"); after that every write is refused up front, saying why.
	want := map[string]bool{"before": true, "after": true}
	n := 0
	tc.waitFor("writes refused with a disk-full error", 10*time.Second, func() bool {
		id := "during" + strconv.Itoa(n)
		n++
		st, body = reg(id)
		if st == 200 {
			want[id] = true
		}
		msg, _ := body["error"].(string)
		return st == http.StatusServiceUnavailable && strings.Contains(msg, "disk full") && strings.Contains(msg, "bytes free")
	})
	t.Logf("refused: %v (after %d writes, %d stored in preallocated space)", body["error"], n, len(want)-2)
	if st, _, _ := call(t, "GET", base+"/v1/services/a", "", ""); st != 200 {
		t.Fatalf("reads on a full disk: %d", st)
	}
	os.Remove(filler)
	tc.waitFor("writes accepted again once space returned", 10*time.Second, func() bool {
		st, _ := reg("after")
		return st == 200
	})
	v := tc.nodes[0].fsm.service("a")
	got := map[string]bool{}
	for _, inst := range v.instances {
		got[inst.ID] = true
	}
	if !maps.Equal(got, want) {
		t.Fatalf("catalog after recovery: %v, want the acknowledged writes %v", got, want)
	}
}
