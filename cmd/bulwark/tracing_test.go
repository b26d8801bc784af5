package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/bulwark-go/bulwark/config"
)

// TestTracingWiring: the tracing section of bulwark.yaml, or the standard
// OTEL_EXPORTER_OTLP_ENDPOINT variable alone, makes `bulwark run`'s
// components export the gateway's spans over OTLP/HTTP; with neither,
// nothing is exported and the gateway has no tracer.
func TestTracingWiring(t *testing.T) {
	var exports atomic.Int32
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/traces" {
			exports.Add(1)
		}
		io.Copy(io.Discard, r.Body)
	}))
	defer collector.Close()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer backend.Close()
	yaml := "routes:\n  - upstream: app\nupstreams:\n  - name: app\n    endpoints: [{url: " + backend.URL + "}]\n"
	for _, tc := range []struct {
		name, extra, env string
		want             bool
	}{
		{"config section", "tracing:\n  exporter: otlp-http\n  endpoint: " + collector.URL + "\n", "", true},
		{"OTEL environment", "", collector.URL, true},
		{"off", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exports.Store(0)
			t.Setenv("OTEL_TRACES_EXPORTER", "")
			t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", tc.env)
			f, err := config.Parse("bulwark.yaml", []byte(yaml+tc.extra))
			if err != nil {
				t.Fatal(err)
			}
			c, err := startComponents(t.Context(), f, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			if (c.tracer != nil) != tc.want {
				t.Fatalf("tracer on = %v, want %v", c.tracer != nil, tc.want)
			}
			rec := httptest.NewRecorder()
			c.gateway.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
			if rec.Code != 200 {
				t.Fatalf("status %d", rec.Code)
			}
			if err := c.close(); err != nil { // flushes the spans
				t.Fatal(err)
			}
			if got := exports.Load() > 0; got != tc.want {
				t.Fatalf("exported = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestProxyTracingFromEnvironment: the one-liner `bulwark proxy` has no
// config file; OTEL_EXPORTER_OTLP_ENDPOINT alone turns its tracing on.
func TestProxyTracingFromEnvironment(t *testing.T) {
	var exports atomic.Int32
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/traces" {
			exports.Add(1)
		}
		io.Copy(io.Discard, r.Body)
	}))
	defer collector.Close()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer backend.Close()
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"proxy", "--listen", "127.0.0.1:0", "--to", backend.URL}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	addr := strings.TrimSpace(strings.TrimPrefix(line, "bulwark proxy listening on "))
	resp, err := http.Get("http://" + addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel() // shutdown flushes the spans
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if exports.Load() == 0 {
		t.Fatal("bulwark proxy exported no spans with OTEL_EXPORTER_OTLP_ENDPOINT set")
	}
}
