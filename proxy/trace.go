package proxy

import (
	"context"
	"net/http"
)

// Tracer makes the gateway's trace spans (package tracing provides one on
// OpenTelemetry; the gateway declares only this). Options.Tracer nil means
// tracing is off and costs one nil check per request and per try.
//
// Each Start method returns the context carrying the new span and the
// function that ends it with the outcome: the HTTP status (0 if none),
// the outcome's name (the try's failure kind: ok, connect_error, reset,
// timeout, status, digest, other) and the error, if any.
type Tracer interface {
	// StartRequest starts the server span of a request on route,
	// continuing the client's W3C traceparent.
	StartRequest(ctx context.Context, r *http.Request, route string) (context.Context, func(status int, outcome string, err error))
	// StartDelivery starts the span of one delivery of an async message,
	// linked to the span of the request that was answered 202 (whose
	// context r's headers carry, put there by Inject at acceptance).
	StartDelivery(ctx context.Context, r *http.Request, route string) (context.Context, func(status int, outcome string, err error))
	// StartTry starts the child span of one try to endpoint.
	StartTry(ctx context.Context, endpoint string) (context.Context, func(status int, outcome string, err error))
	// Inject writes ctx's trace context into h (traceparent).
	Inject(ctx context.Context, h http.Header)
	// TraceID returns ctx's trace id, for the access log; "" if none.
	TraceID(ctx context.Context) string
}

// serveTraced is ServeHTTP's route dispatch inside a request span.
func (g *Gateway) serveTraced(tr Tracer, w http.ResponseWriter, r *http.Request, rt *route) {
	ctx, end := tr.StartRequest(r.Context(), r, rt.name)
	sw := &spanWriter{ResponseWriter: w}
	rt.dispatch(sw, r.WithContext(ctx))
	end(sw.code, "", nil)
}

// spanWriter remembers the status for the request span. Unwrap keeps
// http.ResponseController (flush, hijack for upgrades) working through it.
type spanWriter struct {
	http.ResponseWriter
	code int
}

func (s *spanWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *spanWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *spanWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
