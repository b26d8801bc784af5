package delivery

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		os.Exit(crashChild(dir))
	}
	if dir := os.Getenv(mailboxChildEnv); dir != "" {
		os.Exit(mailboxChild(dir))
	}
	goleak.VerifyTestMain(m)
}

// backend is a real HTTP server that deduplicates on Idempotency-Key, the
// way the package doc tells backends to. It records the first delivery of
// each key in order, and can be told to fail.
type backend struct {
	srv     *httptest.Server
	failing atomic.Bool
	status  atomic.Int32 // answer when not failing (default 200)
	hits    atomic.Int64 // every request, duplicates included

	mu    sync.Mutex
	seen  map[string]int // key → times seen
	order map[string][]string
	body  map[string]string
}

func newBackend(t *testing.T) *backend {
	b := &backend{seen: map[string]int{}, order: map[string][]string{}, body: map[string]string{}}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	b.hits.Add(1)
	body, _ := io.ReadAll(r.Body)
	if b.failing.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	b.mu.Lock()
	b.seen[key]++
	if b.seen[key] == 1 {
		ok := r.Header.Get("Order-Key")
		b.order[ok] = append(b.order[ok], string(body))
		b.body[key] = string(body)
	}
	b.mu.Unlock()
	code := int(b.status.Load())
	if code == 0 {
		code = http.StatusOK
	}
	w.WriteHeader(code)
}

func (b *backend) unique() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.seen)
}

func (b *backend) has(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seen[key] > 0
}

// httpForwarder is what the gateway's forwarding path does, reduced to the
// contract: method, path, headers and body to the upstream.
type httpForwarder struct {
	base   string
	client *http.Client
}

func newForwarder(t *testing.T, b *backend) *httpForwarder {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &httpForwarder{base: b.srv.URL, client: &http.Client{Transport: tr}}
}

func (f *httpForwarder) Forward(ctx context.Context, m *bulwark.Message) (int, error) {
	req, err := http.NewRequestWithContext(ctx, m.Method, f.base+m.Path, bytes.NewReader(m.Body))
	if err != nil {
		return 0, err
	}
	req.Header = m.Header.Clone()
	if m.OrderKey != "" {
		req.Header.Set("Order-Key", m.OrderKey)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// forwardFunc adapts a function to Forwarder.
type forwardFunc func(ctx context.Context, m *bulwark.Message) (int, error)

func (f forwardFunc) Forward(ctx context.Context, m *bulwark.Message) (int, error) { return f(ctx, m) }

// testConfig is a single embedded server with short timings.
func testConfig(t testing.TB, dir string) Config {
	return Config{
		DataDir:       dir,
		MaxAttempts:   1000,
		Backoff:       []time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond},
		AckWait:       3 * time.Second,
		Partitions:    4,
		StatsInterval: 50 * time.Millisecond,
		DrainTimeout:  2 * time.Second,
		Logger:        testLogger(t),
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("DELIVERY_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func open(t testing.TB, cfg Config, fwd Forwarder) *Service {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg, fwd)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a wait for state
	}
}

func waitState(t testing.TB, s *Service, id string, want bulwark.DeliveryState) bulwark.DeliveryStatus {
	t.Helper()
	var st bulwark.DeliveryStatus
	waitFor(t, 20*time.Second, fmt.Sprintf("%s to be %v", id, want), func() bool {
		var err error
		st, err = s.Status(context.Background(), id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatalf("Status: %v", err)
		}
		return st.State == want
	})
	return st
}

func msg(upstream, key, orderKey, body string) *bulwark.Message {
	return &bulwark.Message{Route: "r", Upstream: upstream, Method: http.MethodPost, Path: "/orders",
		Header: http.Header{"Content-Type": {"text/plain"}}, Body: []byte(body), IdempotencyKey: key, OrderKey: orderKey}
}

// startChild re-runs the test binary as a child process with env=dir set
// (its TestMain runs the child's part instead of the tests) and returns it
// with a scanner over its standard output.
func startChild(t *testing.T, env, dir string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewScanner(out)
}
