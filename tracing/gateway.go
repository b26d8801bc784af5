package tracing

import (
	"context"
	"net/http"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Gateway returns the gateway's tracer: it satisfies proxy.Tracer (the
// interface the gateway declares), without this package importing proxy.
//
// The spans it makes:
//   - a server span per request, "ROUTE" (kind server), continuing the
//     client's traceparent; attributes: method, path, route, status, tries;
//   - a child per try, "try ENDPOINT" (kind client), whose traceparent the
//     endpoint receives; attributes: bulwark.endpoint, bulwark.attempt,
//     bulwark.hedge (started while another try was in flight),
//     bulwark.retry and bulwark.retry_reason (a retry after a try that
//     failed with that outcome), bulwark.outcome (ok, connect_error, reset, timeout, status, digest,
//     other), the status; a failed try has status Error with the error;
//   - a delivery span per delivery attempt of an async message (kind
//     consumer), in its own trace, linked to the span of the request that
//     was answered 202, whose context the message carries.
func (p *Provider) Gateway() *GatewayTracer { return &GatewayTracer{p: p} }

// GatewayTracer makes the gateway's spans; see [Provider.Gateway].
type GatewayTracer struct{ p *Provider }

// requestKey finds a request's state in its context.
type requestKey struct{}

// request counts a request's tries, hedged ones included, and those in
// flight: a try that starts while another is in flight is a hedge.
type request struct {
	tries, inflight atomic.Int32
	last            atomic.Pointer[string] // the outcome of the last try that ended
}

// span is a started span.
type span struct {
	span trace.Span
	req  *request
}

// end records the outcome: the status sent or received (0 if none), the
// outcome's name, and the error of a failed try; then ends the span. The
// tracer's Start methods return it as a plain func so that the gateway's
// interface needs no type from this package.
func (s *span) end(status int, outcome string, err error) {
	if status > 0 {
		s.span.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	if outcome != "" {
		s.span.SetAttributes(attribute.String("bulwark.outcome", outcome))
	}
	if s.req != nil {
		s.span.SetAttributes(attribute.Int("bulwark.tries", int(s.req.tries.Load())))
	}
	if err != nil {
		s.span.RecordError(err)
		s.span.SetStatus(codes.Error, err.Error())
	} else if status >= 500 {
		s.span.SetStatus(codes.Error, http.StatusText(status))
	}
	s.span.End()
}

func requestAttrs(r *http.Request, route string) trace.SpanStartOption {
	return trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path),
		attribute.String("server.address", r.Host), attribute.String("bulwark.route", route))
}

// StartRequest starts the server span of a request on route, continuing
// the W3C trace context of its traceparent header, if any.
func (g *GatewayTracer) StartRequest(ctx context.Context, r *http.Request, route string) (context.Context, func(status int, outcome string, err error)) {
	ctx = g.p.propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
	ctx, sp := g.p.tracer.Start(ctx, route, trace.WithSpanKind(trace.SpanKindServer), requestAttrs(r, route))
	req := &request{}
	return context.WithValue(ctx, requestKey{}, req), (&span{span: sp, req: req}).end
}

// StartDelivery starts the span of one delivery attempt of an async
// message: a new trace, linked to the accepting request's span whose
// context h (the stored request's headers) carries.
func (g *GatewayTracer) StartDelivery(ctx context.Context, r *http.Request, route string) (context.Context, func(status int, outcome string, err error)) {
	accepted := trace.SpanContextFromContext(g.p.propagator.Extract(context.Background(), propagation.HeaderCarrier(r.Header)))
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithNewRoot(), requestAttrs(r, route)}
	if accepted.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: accepted, Attributes: []attribute.KeyValue{attribute.String("bulwark.link", "accepted")}}))
	}
	ctx, sp := g.p.tracer.Start(ctx, "deliver "+route, opts...)
	req := &request{}
	return context.WithValue(ctx, requestKey{}, req), (&span{span: sp, req: req}).end
}

// StartTry starts the span of one try to endpoint, a child of the
// request's span in ctx.
func (g *GatewayTracer) StartTry(ctx context.Context, endpoint string) (context.Context, func(status int, outcome string, err error)) {
	attempt, hedged := 1, false
	req, _ := ctx.Value(requestKey{}).(*request)
	if req != nil {
		attempt = int(req.tries.Add(1))
		hedged = req.inflight.Add(1) > 1
	}
	attrs := []attribute.KeyValue{attribute.String("bulwark.endpoint", endpoint), attribute.Int("bulwark.attempt", attempt),
		attribute.Bool("bulwark.hedge", hedged)}
	if last := req.lastOutcome(); attempt > 1 && !hedged && last != "" {
		// A retry: the previous try failed with last.
		attrs = append(attrs, attribute.Bool("bulwark.retry", true), attribute.String("bulwark.retry_reason", last))
	}
	ctx, sp := g.p.tracer.Start(ctx, "try "+endpoint, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	s := &span{span: sp}
	if req == nil {
		return ctx, s.end
	}
	return ctx, func(status int, outcome string, err error) {
		req.last.Store(&outcome)
		req.inflight.Add(-1)
		s.end(status, outcome, err)
	}
}

func (r *request) lastOutcome() string {
	if r == nil {
		return ""
	}
	if p := r.last.Load(); p != nil {
		return *p
	}
	return ""
}

// Inject writes ctx's trace context into h as traceparent (and
// tracestate), replacing what the client sent.
func (g *GatewayTracer) Inject(ctx context.Context, h http.Header) {
	g.p.propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

// TraceID returns the trace id in ctx, or "" (for the access log).
func (g *GatewayTracer) TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return sc.TraceID().String()
}
