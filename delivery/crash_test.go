package delivery

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
)

// crashChildEnv makes the test binary run crashChild instead of the tests.
const crashChildEnv = "BULWARK_DELIVERY_CRASH_CHILD"

// crashChild opens a Service on dir whose backend always fails, then
// enqueues forever, printing the key of each message once Enqueue returned
// (that is, once JetStream acknowledged it). The parent kills it with
// SIGKILL.
func crashChild(dir string) int {
	cfg := Config{DataDir: dir, MaxAttempts: 1 << 30, Backoff: []time.Duration{50 * time.Millisecond}, Partitions: 4}
	s, err := Open(context.Background(), cfg, forwardFunc(func(context.Context, *bulwark.Message) (int, error) {
		return 503, nil
	}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for i := 0; ; i++ {
		key := "c" + strconv.Itoa(i)
		orderKey := ""
		if i%2 == 0 {
			orderKey = "even"
		}
		if _, err := s.Enqueue(context.Background(), msg("up", key, orderKey, strconv.Itoa(i/2))); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintln(os.Stdout, key) // unbuffered: one write per acknowledged message
	}
}

// TestKill9 kills a process that is enqueueing (SIGKILL, no shutdown) and
// checks that every message it saw acknowledged is delivered after a
// restart on the same DataDir.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd, sc := startChild(t, crashChildEnv, dir)
	var acked []string
	for len(acked) < 300 && sc.Scan() {
		acked = append(acked, strings.TrimSpace(sc.Text()))
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Lines printed after the ones read are acknowledged too.
	for sc.Scan() {
		acked = append(acked, strings.TrimSpace(sc.Text()))
	}
	_ = cmd.Wait()
	if len(acked) < 300 {
		t.Fatalf("child acknowledged only %d messages before it ended", len(acked))
	}

	b := newBackend(t)
	s := open(t, testConfig(t, dir), newForwarder(t, b))
	start := time.Now()
	var missing []string
	defer func() {
		if t.Failed() {
			t.Logf("missing after %v: %v", time.Since(start), missing)
			dumpState(t, s)
		}
	}()
	waitFor(t, 30*time.Second, fmt.Sprintf("%d acknowledged messages delivered", len(acked)), func() bool {
		missing = missing[:0]
		for _, k := range acked {
			if !b.has(k) {
				missing = append(missing, k)
			}
		}
		return len(missing) == 0
	})
	waitFor(t, 10*time.Second, "empty backlog", func() bool { return s.Snapshot().Queued == 0 })
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, v := range b.order["even"] {
		if v != strconv.Itoa(i) {
			t.Fatalf("ordered key after kill -9: position %d holds %s", i, v)
		}
	}
	t.Logf("child acknowledged %d; delivered after restart %d (extra ones were stored but not yet acknowledged to the child)", len(acked), len(b.seen))
}
