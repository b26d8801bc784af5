package delivery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tmpfs mounts a small tmpfs for a test (root only; the test skips with
// the reason otherwise) and unmounts it at the end.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs (a full disk on demand); .ci/run runs as root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file of zeros until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			return // ENOSPC: full
		}
	}
}

// TestDiskFull: when the store's disk fills up (another process filled
// it), Enqueue fails — the gateway answers 503 — instead of acknowledging
// what it cannot store; every message acknowledged before is delivered
// once space returns.
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs")
	}
	dir := tmpfs(t, "64m")
	b := newBackend(t)
	b.failing.Store(true)
	cfg := testConfig(t, filepath.Join(dir, "store"))
	cfg.MaxAttempts = 1 << 20
	s := open(t, cfg, newForwarder(t, b))
	var acked []string
	enqueue := func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		key := "k" + strconv.Itoa(i)
		_, err := s.Enqueue(ctx, msg("up", key, "", strings.Repeat("x", 4<<10)))
		if err == nil {
			acked = append(acked, key)
		}
		return err
	}
	for i := range 200 {
		if err := enqueue(i); err != nil {
			t.Fatalf("enqueue %d with space left: %v", i, err)
		}
	}
	fill(t, filepath.Join(dir, "filler"))
	// Once the guard has looked (it checks at most every 250 ms), Enqueue
	// refuses at once with ErrStoreFull: the gateway's 503. An Enqueue in
	// between may time out instead; neither is acknowledged.
	i := 200
	var failed error
	waitFor(t, 30*time.Second, "Enqueue to refuse with ErrStoreFull", func() bool {
		failed = enqueue(i)
		i++
		return errors.Is(failed, ErrStoreFull)
	})
	t.Logf("disk full after %d acknowledged messages: %v", len(acked), failed)
	if err := enqueue(i); !errors.Is(err, ErrStoreFull) {
		t.Fatalf("Enqueue on a full disk: %v, want ErrStoreFull", err)
	}
	os.Remove(filepath.Join(dir, "filler"))
	// nats-server's file store latches the write error it hit while the
	// disk was full (its own status and stream writes race the guard) and
	// refuses writes until the server restarts; Bulwark does not restart
	// the embedded server by itself yet (README's status says so). A
	// restart on the same directory accepts again and loses nothing that
	// was acknowledged.
	if err := s.Close(); err != nil {
		t.Logf("close after the disk filled: %v", err)
	}
	s = open(t, cfg, newForwarder(t, b))
	i++
	waitFor(t, 30*time.Second, "Enqueue to accept again once space returned and the store restarted", func() bool {
		err := enqueue(i)
		i++
		return err == nil
	})
	b.failing.Store(false)
	var missing []string
	waitFor(t, 60*time.Second, fmt.Sprintf("%d acknowledged messages delivered after space returned", len(acked)), func() bool {
		missing = missing[:0]
		for _, k := range acked {
			if !b.has(k) {
				missing = append(missing, k)
			}
		}
		return len(missing) == 0
	})
}
