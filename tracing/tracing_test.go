package tracing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// TestExporterChoice: the config wins, then the standard OTEL_* variables;
// with neither, tracing is off.
func TestExporterChoice(t *testing.T) {
	tests := []struct {
		name string
		cfg  string
		env  map[string]string
		want string
	}{
		{"nothing set: off", "", nil, ExporterNone},
		{"config http", ExporterOTLPHTTP, nil, ExporterOTLPHTTP},
		{"config grpc", ExporterOTLPGRPC, nil, ExporterOTLPGRPC},
		{"config none beats env", ExporterNone, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, ExporterNone},
		{"endpoint env: http/protobuf by default", "", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, ExporterOTLPHTTP},
		{"traces endpoint env", "", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ExporterOTLPHTTP},
		{"exporter env with grpc protocol", "", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, ExporterOTLPGRPC},
		{"traces protocol beats general", "", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, ExporterOTLPHTTP},
		{"exporter env none", "", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, ExporterNone},
		{"sdk disabled beats config", ExporterOTLPHTTP, map[string]string{"OTEL_SDK_DISABLED": "true"}, ExporterNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Exporter: tt.cfg, Getenv: func(k string) string { return tt.env[k] }}
			if got := c.exporter(); got != tt.want {
				t.Fatalf("exporter() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOpenOffAndInvalid(t *testing.T) {
	p, err := Open(t.Context(), Config{Getenv: func(string) string { return "" }})
	if p != nil || err != nil {
		t.Fatalf("off: got %v, %v; want nil, nil", p, err)
	}
	for _, c := range []Config{{Exporter: "zipkin"}, {Exporter: ExporterOTLPHTTP, SampleRatio: 2}} {
		if _, err := Open(t.Context(), c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

// TestOpenGRPC: the gRPC exporter is built from a host:port endpoint
// (gRPC connects lazily, so no collector is needed to open it).
func TestOpenGRPC(t *testing.T) {
	p, err := Open(t.Context(), Config{Exporter: ExporterOTLPGRPC, Endpoint: "127.0.0.1:1", Insecure: true, Getenv: func(string) string { return "" }})
	if err != nil || p == nil || p.Exporter() != ExporterOTLPGRPC {
		t.Fatalf("Open grpc: %v, %v", p, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	p.Shutdown(ctx)
}

// discard is a span exporter that drops what it is given.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// BenchmarkGatewaySpans is the cost of tracing one request with one try
// when tracing is on, export excluded (a batcher in front of an exporter
// that drops); it is zero when off, since the gateway then holds no
// tracer (BenchmarkProxyRoundTrip in proxy shows it).
func BenchmarkGatewaySpans(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}))
	defer tp.Shutdown(context.Background())
	p := &Provider{tp: tp, tracer: tp.Tracer("bench"), exporter: "discard"}
	g := p.Gateway()
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	h := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		ctx, end := g.StartRequest(r.Context(), r, "reads")
		tctx, endTry := g.StartTry(ctx, "http://10.0.0.1:80")
		g.Inject(tctx, h)
		endTry(200, "ok", nil)
		end(200, "", nil)
	}
}
