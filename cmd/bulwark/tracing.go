package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/bulwark-go/bulwark/config"
	"github.com/bulwark-go/bulwark/proxy"
	"github.com/bulwark-go/bulwark/tracing"
)

// openTracing starts the tracer provider bulwark.yaml's tracing section
// and the OTEL_* environment variables ask for; nil when tracing is off.
func openTracing(ctx context.Context, t config.Tracing, logger *slog.Logger) (*tracing.Provider, error) {
	return tracing.Open(ctx, tracing.Config{Exporter: t.Exporter, Endpoint: t.Endpoint, Insecure: t.Insecure,
		Headers: t.Headers, SampleRatio: t.SampleRatio, ServiceName: t.ServiceName,
		ServiceVersion: readBuildInfo().Version, Logger: logger.With("component", "tracing")})
}

// shutdownTracing flushes the spans left, within a few seconds.
func shutdownTracing(p *tracing.Provider) func() error {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return p.Shutdown(ctx)
	}
}

// gatewayTracer is p's gateway tracer, or nil (off) for a nil p: a nil
// *GatewayTracer in the interface would not be a nil proxy.Tracer.
func gatewayTracer(p *tracing.Provider) proxy.Tracer {
	if p == nil {
		return nil
	}
	return p.Gateway()
}

// apiMiddleware traces an HTTP API with p, or is nil (off) for a nil p.
func apiMiddleware(p *tracing.Provider, component string) func(http.Handler) http.Handler {
	if p == nil {
		return nil
	}
	return func(h http.Handler) http.Handler { return p.Middleware(component, h) }
}
