package tracing_test

import (
	"context"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/registry"
	"github.com/bulwark-go/bulwark/tracing"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// TestRegistryAPISpans: a real registry node with the tracing middleware
// makes a server span per API call, named after the route pattern and
// continuing the caller's traceparent.
func TestRegistryAPISpans(t *testing.T) {
	rc := newReceiver(t)
	p, err := tracing.Open(t.Context(), tracing.Config{Exporter: tracing.ExporterOTLPHTTP, Endpoint: rc.srv.URL, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	n, err := registry.Open(t.Context(), registry.Config{NodeID: "r1", HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		Bootstrap: true, Middleware: func(h http.Handler) http.Handler { return p.Middleware("registry", h) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := registry.NewClient(registry.ClientConfig{Addrs: []string{n.HTTPAddr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reg, err := c.Register(ctx, bulwark.Instance{Service: "app", ID: "a1", Address: "http://127.0.0.1:1"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	req, _ := http.NewRequest("GET", "http://"+n.HTTPAddr()+"/v1/services/app", nil)
	req.Header.Set("Traceparent", "00-"+clientTrace+"-"+clientParent+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var names []string
	var read *tracepb.Span
	deadline := time.Now().Add(10 * time.Second)
	for read == nil && time.Now().Before(deadline) {
		p.Flush(t.Context())
		names = names[:0]
		for _, s := range rc.snapshot() {
			names = append(names, s.Name)
			if s.Name == "registry GET /v1/services/{service}" && hex.EncodeToString(s.TraceId) == clientTrace {
				read = s
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if read == nil {
		t.Fatalf("no span for the traced read; spans: %v", names)
	}
	if hex.EncodeToString(read.ParentSpanId) != clientParent || read.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("read span: parent %x, kind %v", read.ParentSpanId, read.Kind)
	}
	if !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "registry PUT /v1/instances") }) {
		t.Errorf("no span for the registration; spans: %v", names)
	}
}
