package tracing_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/proxy"
	"github.com/bulwark-go/bulwark/tracing"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// grpcReceiver is an OTLP/gRPC trace receiver on the collector's own
// service definition.
type grpcReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (g *grpcReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			g.spans = append(g.spans, ss.Spans...)
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (g *grpcReceiver) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.spans)
}

// TestGRPCExporter: with exporter otlp-grpc the gateway's spans reach an
// OTLP/gRPC receiver on a real listener.
func TestGRPCExporter(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rcv := &grpcReceiver{}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, rcv)
	go srv.Serve(ln)
	defer srv.Stop()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer backend.Close()
	p, err := tracing.Open(t.Context(), tracing.Config{Exporter: tracing.ExporterOTLPGRPC, Endpoint: ln.Addr().String(), Insecure: true,
		Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	gw, err := proxy.New(proxy.Config{Routes: []proxy.Route{{Upstream: "app"}},
		Upstreams: []proxy.Upstream{{Name: "app", Endpoints: []proxy.Endpoint{{URL: backend.URL}}}}}, proxy.Options{Tracer: p.Gateway()})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	gw.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
	deadline := time.Now().Add(10 * time.Second)
	for rcv.count() < 2 && time.Now().Before(deadline) {
		p.Flush(t.Context())
		time.Sleep(20 * time.Millisecond)
	}
	if n := rcv.count(); n != 2 {
		t.Fatalf("the gRPC receiver got %d spans, want 2 (request and try)", n)
	}
}
