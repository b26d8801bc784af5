package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/registry"
)

// syncBuffer is an io.Writer safe for the demo's goroutines and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDemoRegisterRetries: a replica starting while the registry has no
// leader (503) for longer than the registry client's 5 s retry window keeps
// trying instead of exiting — the soak's restarted demo (seed 7) exited and
// stayed down — while a refusal (403) fails at once.
func TestDemoRegisterRetries(t *testing.T) {
	var puts atomic.Int32
	leaderless := time.Now().Add(8 * time.Second)
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut {
			w.WriteHeader(http.StatusOK)
			return
		}
		puts.Add(1)
		if time.Now().Before(leaderless) {
			http.Error(w, "registry: not the leader: no known leader to forward to", http.StatusServiceUnavailable)
			return
		}
		var req registry.RegisterRequest
		json.NewDecoder(r.Body).Decode(&req)
		json.NewEncoder(w).Encode(registry.WriteResponse{Index: 1, Instance: &registry.InstanceInfo{TTL: registry.Duration(time.Second)}})
	}))
	defer reg.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- runDemo(ctx, []string{"--id", "d1", "--registry", strings.TrimPrefix(reg.URL, "http://")}, &stdout, &stderr)
	}()
	for !strings.Contains(stdout.String(), "listening") {
		select {
		case err := <-done:
			t.Fatalf("demo exited before serving: %v\nstderr: %s", err, stderr.String())
		case <-ctx.Done():
			t.Fatalf("demo never served; stderr: %s", stderr.String())
		case <-time.After(20 * time.Millisecond): // polling its output
		}
	}
	if n := puts.Load(); n < 2 {
		t.Errorf("%d registration attempts, want several (503s, then success)", n)
	}
	cancel()
	<-done

	refused := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "registry: token required", http.StatusForbidden)
	}))
	defer refused.Close()
	err := runDemo(t.Context(), []string{"--id", "d2", "--registry", strings.TrimPrefix(refused.URL, "http://")}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "registering") {
		t.Fatalf("a refused registration: err = %v, want it reported", err)
	}
}
