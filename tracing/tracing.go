// Package tracing is Bulwark's OpenTelemetry tracing: it builds a tracer
// provider with an OTLP exporter (HTTP or gRPC) from bulwark.yaml's
// tracing section and the standard OTEL_* environment variables, and
// adapts it to the small interfaces the components declare for their
// spans (proxy.Tracer for the gateway, an HTTP middleware for the
// registry's API). Tracing is off unless configured: then Open returns a
// nil *Provider and the components are given no tracer at all, so the
// hot path pays one nil check.
//
// Only this package imports go.opentelemetry.io/otel; cmd/bulwark wires it.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Exporters.
const (
	ExporterNone     = "none"
	ExporterOTLPHTTP = "otlp-http"
	ExporterOTLPGRPC = "otlp-grpc"
)

// Config says where traces go. The zero value leaves tracing to the
// standard OTEL_* environment variables: off unless OTEL_TRACES_EXPORTER
// is "otlp" or an OTLP endpoint variable is set.
type Config struct {
	// Exporter is "" (the environment decides), "none", "otlp-http" or
	// "otlp-grpc".
	Exporter string
	// Endpoint is the collector: a URL (http://collector:4318, whose
	// scheme also says whether TLS is used; for OTLP/HTTP a URL without a
	// path gets /v1/traces) or host:port. Default:
	// OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, else localhost:4318 (HTTP) or
	// localhost:4317 (gRPC).
	Endpoint string
	// Insecure disables TLS for a host:port endpoint.
	Insecure bool
	// Headers are sent with every export (an API key, a tenant).
	Headers map[string]string
	// SampleRatio is the fraction of new traces recorded; a client's
	// sampled trace is always continued. Default: OTEL_TRACES_SAMPLER,
	// else every trace.
	SampleRatio float64
	// ServiceName is the resource's service.name. Default:
	// OTEL_SERVICE_NAME, else "bulwark".
	ServiceName string
	// ServiceVersion is the resource's service.version.
	ServiceVersion string
	// Logger receives export errors; nil discards them.
	Logger *slog.Logger
	// Getenv reads the environment; nil is os.Getenv (tests replace it).
	Getenv func(string) string
}

// Validate checks the fields that do not depend on the environment.
func (c *Config) Validate() error {
	switch c.Exporter {
	case "", ExporterNone, ExporterOTLPHTTP, ExporterOTLPGRPC:
	default:
		return fmt.Errorf("tracing: unknown exporter %q: use otlp-http, otlp-grpc or none", c.Exporter)
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		return fmt.Errorf("tracing: sample_ratio %v: use a fraction between 0 and 1", c.SampleRatio)
	}
	return nil
}

func (c *Config) getenv(k string) string {
	if c.Getenv != nil {
		return c.Getenv(k)
	}
	return os.Getenv(k)
}

// exporter decides the exporter from the config and the environment.
func (c *Config) exporter() string {
	if strings.EqualFold(c.getenv("OTEL_SDK_DISABLED"), "true") {
		return ExporterNone
	}
	if c.Exporter != "" {
		return c.Exporter
	}
	env := c.getenv("OTEL_TRACES_EXPORTER")
	endpoint := c.getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") + c.getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	if env == "none" || (env != "otlp" && endpoint == "") {
		return ExporterNone
	}
	proto := c.getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = c.getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if proto == "grpc" {
		return ExporterOTLPGRPC
	}
	return ExporterOTLPHTTP // the specification's default, http/protobuf
}

// Provider is a running tracer provider and its exporter.
type Provider struct {
	tp         *sdktrace.TracerProvider
	tracer     trace.Tracer
	propagator propagation.TraceContext
	exporter   string
}

// Open builds the provider that cfg and the environment ask for. It
// returns nil, nil when tracing is off.
func Open(ctx context.Context, cfg Config) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	kind := cfg.exporter()
	if kind == ExporterNone {
		return nil, nil
	}
	exp, err := newExporter(ctx, kind, &cfg)
	if err != nil {
		return nil, err
	}
	res, err := newResource(&cfg)
	if err != nil {
		return nil, err
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)), sdktrace.WithResource(res)}
	if cfg.SampleRatio > 0 {
		opts = append(opts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	p := &Provider{tp: tp, tracer: tp.Tracer("github.com/bulwark-go/bulwark"), exporter: kind}
	if cfg.Logger != nil {
		cfg.Logger.Info("tracing on", "exporter", kind, "endpoint", or(cfg.Endpoint, "from OTEL_EXPORTER_OTLP_* or the default"))
	}
	return p, nil
}

func newExporter(ctx context.Context, kind string, cfg *Config) (sdktrace.SpanExporter, error) {
	ep, isURL := cfg.Endpoint, strings.Contains(cfg.Endpoint, "://")
	if isURL {
		if _, err := url.Parse(ep); err != nil {
			return nil, fmt.Errorf("tracing: endpoint %q: %w", ep, err)
		}
	}
	switch kind {
	case ExporterOTLPHTTP:
		var opts []otlptracehttp.Option
		switch {
		case isURL:
			// A base URL gets the signal's path, as OTEL_EXPORTER_OTLP_ENDPOINT does.
			if u, _ := url.Parse(ep); u.Path == "" || u.Path == "/" {
				ep = strings.TrimSuffix(ep, "/") + "/v1/traces"
			}
			opts = append(opts, otlptracehttp.WithEndpointURL(ep))
		case ep != "":
			opts = append(opts, otlptracehttp.WithEndpoint(ep))
		}
		if cfg.Insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		if len(cfg.Headers) > 0 {
			opts = append(opts, otlptracehttp.WithHeaders(cfg.Headers))
		}
		return otlptracehttp.New(ctx, opts...)
	case ExporterOTLPGRPC:
		var opts []otlptracegrpc.Option
		switch {
		case isURL:
			opts = append(opts, otlptracegrpc.WithEndpointURL(ep))
		case ep != "":
			opts = append(opts, otlptracegrpc.WithEndpoint(ep))
		}
		if cfg.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		if len(cfg.Headers) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(cfg.Headers))
		}
		return otlptracegrpc.New(ctx, opts...)
	}
	return nil, fmt.Errorf("tracing: unknown exporter %q", kind)
}

func newResource(cfg *Config) (*resource.Resource, error) {
	var attrs []attribute.KeyValue
	switch {
	case cfg.ServiceName != "":
		attrs = append(attrs, attribute.String("service.name", cfg.ServiceName))
	case cfg.getenv("OTEL_SERVICE_NAME") == "" && !strings.Contains(cfg.getenv("OTEL_RESOURCE_ATTRIBUTES"), "service.name="):
		attrs = append(attrs, attribute.String("service.name", "bulwark"))
	}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.ServiceVersion))
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	return res, nil
}

// Exporter names the exporter in use.
func (p *Provider) Exporter() string { return p.exporter }

// Flush exports the spans ended so far.
func (p *Provider) Flush(ctx context.Context) error { return p.tp.ForceFlush(ctx) }

// Shutdown exports what is left and stops the exporter.
func (p *Provider) Shutdown(ctx context.Context) error { return p.tp.Shutdown(ctx) }

// Middleware traces an HTTP API (the registry's): a server span per
// request named after the matched route pattern, continuing the client's
// W3C trace context.
func (p *Provider) Middleware(component string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := p.propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := p.tracer.Start(ctx, component+" "+r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path),
				attribute.String("bulwark.component", component)))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		r = r.WithContext(ctx)
		h.ServeHTTP(sw, r)
		if r.Pattern != "" {
			span.SetName(component + " " + r.Pattern)
			span.SetAttributes(attribute.String("http.route", r.Pattern))
		}
		span.SetAttributes(attribute.Int("http.response.status_code", sw.code))
		if sw.code >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.code))
		}
	})
}

// statusWriter remembers the status; Unwrap keeps http.ResponseController
// (flushes of watch streams) working through it.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.code, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
