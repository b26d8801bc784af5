package tracing_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/delivery"
	"github.com/bulwark-go/bulwark/proxy"
	"github.com/bulwark-go/bulwark/tracing"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// receiver is an OTLP/HTTP trace receiver: the collector's protobuf types
// on a real HTTP listener, as an OpenTelemetry Collector would receive.
type receiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
	attrs map[string]string // resource attributes of the last export
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{attrs: map[string]string{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want POST /v1/traces, application/x-protobuf", http.StatusBadRequest)
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, kv := range rs.GetResource().GetAttributes() {
				rc.attrs[kv.Key] = kv.Value.GetStringValue()
			}
			for _, ss := range rs.ScopeSpans {
				rc.spans = append(rc.spans, ss.Spans...)
			}
		}
		rc.mu.Unlock()
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) snapshot() []*tracepb.Span {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.spans)
}

// attr returns a span attribute as text (integers in decimal).
func attr(s *tracepb.Span, key string) (string, bool) {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			if v, ok := kv.Value.Value.(*commonpb.AnyValue_IntValue); ok {
				return strconv.FormatInt(v.IntValue, 10), true
			}
			return kv.Value.GetStringValue(), true
		}
	}
	return "", false
}

// syncBuffer is a log sink safe for the gateway's goroutines.
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

const (
	clientTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientParent = "00f067aa0ba902b7"
)

// TestGatewaySpanTree is the acceptance test: the gateway, with an OTLP
// exporter pointed at an in-test OTLP/HTTP receiver, answers a request
// whose first try fails (503) and whose retry on the other endpoint
// succeeds. The receiver gets one server span continuing the client's
// traceparent and two try spans under it; the failed one carries the
// endpoint, the outcome and the error; each endpoint received the
// traceparent of its own try span.
func TestGatewaySpanTree(t *testing.T) {
	rc := newReceiver(t)
	var calls atomic.Int32
	var mu sync.Mutex
	seen := map[string]string{} // endpoint URL → traceparent it received
	var urls []string
	for range 2 {
		var self string
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen[self] = r.Header.Get("Traceparent")
			mu.Unlock()
			if calls.Add(1) == 1 { // the request's first try, whichever endpoint it picked
				http.Error(w, "not now", http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, "ok")
		}))
		self = s.URL
		t.Cleanup(s.Close)
		urls = append(urls, s.URL)
	}
	p, err := tracing.Open(t.Context(), tracing.Config{Exporter: tracing.ExporterOTLPHTTP, Endpoint: rc.srv.URL,
		ServiceName: "gateway-under-test", Getenv: func(string) string { return "" }})
	if err != nil || p == nil {
		t.Fatalf("Open: %v, %v", p, err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	cfg := proxy.Config{
		Routes:    []proxy.Route{{Name: "reads", Upstream: "app"}},
		Upstreams: []proxy.Upstream{{Name: "app", Endpoints: []proxy.Endpoint{{URL: urls[0]}, {URL: urls[1]}}}},
	}
	cfg.AccessLog = true
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	gw, err := proxy.New(cfg, proxy.Options{Tracer: p.Gateway(), Seed: 1, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	front := httptest.NewServer(gw)
	t.Cleanup(front.Close)

	req, _ := http.NewRequest("GET", front.URL+"/items/7", nil)
	req.Header.Set("Traceparent", "00-"+clientTrace+"-"+clientParent+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || calls.Load() != 2 {
		t.Fatalf("status %d after %d tries: want 200 after a retry", resp.StatusCode, calls.Load())
	}
	var spans []*tracepb.Span
	deadline := time.Now().Add(10 * time.Second)
	for len(spans) < 3 && time.Now().Before(deadline) {
		if err := p.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		spans = rc.snapshot()
	}
	if len(spans) != 3 {
		t.Fatalf("want 3 spans (request + 2 tries), got %d: %v", len(spans), spans)
	}
	var server *tracepb.Span
	var tries []*tracepb.Span
	for _, s := range spans {
		if hex.EncodeToString(s.TraceId) != clientTrace {
			t.Errorf("span %q is in trace %x, not the client's %s", s.Name, s.TraceId, clientTrace)
		}
		switch s.Kind {
		case tracepb.Span_SPAN_KIND_SERVER:
			server = s
		case tracepb.Span_SPAN_KIND_CLIENT:
			tries = append(tries, s)
		}
	}
	if server == nil || len(tries) != 2 {
		t.Fatalf("want one server span and two try spans, got %v", spans)
	}
	if got := hex.EncodeToString(server.ParentSpanId); got != clientParent {
		t.Errorf("server span's parent %s, want the client's span %s", got, clientParent)
	}
	if v, _ := attr(server, "http.response.status_code"); v != "200" {
		t.Errorf("server span status attribute %q, want 200", v)
	}
	if v, _ := attr(server, "bulwark.tries"); v != "2" {
		t.Errorf("server span bulwark.tries %q, want 2", v)
	}
	slices.SortFunc(tries, func(a, b *tracepb.Span) int {
		x, _ := attr(a, "bulwark.attempt")
		y, _ := attr(b, "bulwark.attempt")
		return strings.Compare(x, y)
	})
	failed, ok := tries[0], tries[1]
	for i, s := range tries {
		if !slices.Equal(s.ParentSpanId, server.SpanId) {
			t.Errorf("try %d's parent is %x, not the server span %x", i+1, s.ParentSpanId, server.SpanId)
		}
		if v, _ := attr(s, "bulwark.attempt"); v != strconv.Itoa(i+1) {
			t.Errorf("try %d has bulwark.attempt %q", i+1, v)
		}
		ep, _ := attr(s, "bulwark.endpoint")
		mu.Lock()
		tp := seen[ep]
		mu.Unlock()
		if want := "00-" + clientTrace + "-" + hex.EncodeToString(s.SpanId) + "-01"; tp != want {
			t.Errorf("endpoint %q received traceparent %q, want its try span's %q", ep, tp, want)
		}
	}
	ep1, _ := attr(failed, "bulwark.endpoint")
	ep2, _ := attr(ok, "bulwark.endpoint")
	if !slices.Contains(urls, ep1) || !slices.Contains(urls, ep2) || ep1 == ep2 {
		t.Errorf("tries on %q then %q: want the two endpoints, one each", ep1, ep2)
	}
	if out, _ := attr(failed, "bulwark.outcome"); out != "status" {
		t.Errorf("failed try outcome %q, want status", out)
	}
	if failed.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || !strings.Contains(failed.Status.GetMessage(), "503") {
		t.Errorf("failed try status %v, want an error naming the 503", failed.Status)
	}
	if !slices.ContainsFunc(failed.Events, func(e *tracepb.Span_Event) bool { return e.Name == "exception" }) {
		t.Errorf("failed try records no exception event: %v", failed.Events)
	}
	if reason, _ := attr(ok, "bulwark.retry_reason"); reason != "status" {
		t.Errorf("second try's bulwark.retry_reason %q, want status (a retry after the 503)", reason)
	}
	if _, marked := attr(failed, "bulwark.retry_reason"); marked {
		t.Error("the first try is marked as a retry")
	}
	if out, _ := attr(ok, "bulwark.outcome"); out != "ok" || ok.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("second try: outcome %q, status %v; want ok", out, ok.Status)
	}
	var line struct {
		Msg     string `json:"msg"`
		TraceID string `json:"trace_id"`
	}
	for _, l := range strings.Split(logs.String(), "\n") {
		if json.Unmarshal([]byte(l), &line) == nil && line.Msg == "access" {
			break
		}
	}
	if line.Msg != "access" || line.TraceID != clientTrace {
		t.Errorf("access log line %+v: want trace_id %s\n%s", line, clientTrace, logs.String())
	}
	if rc.attrs["service.name"] != "gateway-under-test" {
		t.Errorf("resource service.name %q", rc.attrs["service.name"])
	}
}

// lateEnqueuer lets the gateway be built before the delivery service that
// forwards through it.
type lateEnqueuer struct {
	s atomic.Pointer[delivery.Service]
}

func (l *lateEnqueuer) Enqueue(ctx context.Context, m *bulwark.Message) (string, error) {
	return l.s.Load().Enqueue(ctx, m)
}

func (l *lateEnqueuer) Status(ctx context.Context, id string) (bulwark.DeliveryStatus, error) {
	return l.s.Load().Status(ctx, id)
}

// TestDeliveryLinksAcceptedSpan: an async route's request is answered 202
// in the client's trace; the real delivery service (embedded JetStream)
// later forwards it through the gateway in a new trace whose delivery
// span links to the accepting span, with the try under it.
func TestDeliveryLinksAcceptedSpan(t *testing.T) {
	rc := newReceiver(t)
	got := make(chan string, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.Header.Get("Traceparent"):
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(backend.Close)
	p, err := tracing.Open(t.Context(), tracing.Config{Exporter: tracing.ExporterOTLPHTTP, Endpoint: rc.srv.URL, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	enq := &lateEnqueuer{}
	cfg := proxy.Config{
		Routes:    []proxy.Route{{Name: "writes", Upstream: "orders", Async: true}},
		Upstreams: []proxy.Upstream{{Name: "orders", Endpoints: []proxy.Endpoint{{URL: backend.URL}}}},
	}
	gw, err := proxy.New(cfg, proxy.Options{Tracer: p.Gateway(), Enqueuer: enq})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	d, err := delivery.Open(t.Context(), delivery.Config{DataDir: t.TempDir()}, gw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	enq.s.Store(d)
	front := httptest.NewServer(gw)
	t.Cleanup(front.Close)

	req, _ := http.NewRequest("POST", front.URL+"/orders", strings.NewReader(`{"n":1}`))
	req.Header.Set("Traceparent", "00-"+clientTrace+"-"+clientParent+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d, want 202", resp.StatusCode)
	}
	var backendTP string
	select {
	case backendTP = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("the message was not delivered within 30s")
	}
	var accepted, deliver, try *tracepb.Span
	deadline := time.Now().Add(10 * time.Second)
	for (accepted == nil || deliver == nil || try == nil) && time.Now().Before(deadline) {
		p.Flush(t.Context())
		for _, s := range rc.snapshot() {
			switch s.Kind {
			case tracepb.Span_SPAN_KIND_SERVER:
				accepted = s
			case tracepb.Span_SPAN_KIND_CONSUMER:
				deliver = s
			case tracepb.Span_SPAN_KIND_CLIENT:
				try = s
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if accepted == nil || deliver == nil || try == nil {
		t.Fatalf("want the 202 span, a delivery span and a try span; got %v", rc.snapshot())
	}
	if hex.EncodeToString(accepted.TraceId) != clientTrace {
		t.Errorf("the 202 span is not in the client's trace: %x", accepted.TraceId)
	}
	if v, _ := attr(accepted, "http.response.status_code"); v != "202" {
		t.Errorf("accepting span status %q, want 202", v)
	}
	if slices.Equal(deliver.TraceId, accepted.TraceId) {
		t.Error("the delivery span shares the request's trace: want its own trace, linked")
	}
	if len(deliver.Links) != 1 || !slices.Equal(deliver.Links[0].TraceId, accepted.TraceId) || !slices.Equal(deliver.Links[0].SpanId, accepted.SpanId) {
		t.Errorf("delivery span links %v, want one link to the 202 span %x/%x", deliver.Links, accepted.TraceId, accepted.SpanId)
	}
	if !slices.Equal(try.ParentSpanId, deliver.SpanId) || !slices.Equal(try.TraceId, deliver.TraceId) {
		t.Errorf("the try is not the delivery span's child")
	}
	if want := "00-" + hex.EncodeToString(try.TraceId) + "-" + hex.EncodeToString(try.SpanId) + "-01"; backendTP != want {
		t.Errorf("backend received traceparent %q, want the delivery try's %q", backendTP, want)
	}
}

// TestHedgedTrySpan: when the first try is slow, the hedge sent after the
// hedge delay is a second try span marked bulwark.hedge, and it wins.
func TestHedgedTrySpan(t *testing.T) {
	rc := newReceiver(t)
	var calls atomic.Int32
	release := make(chan struct{})
	defer close(release)
	var urls []string
	for range 2 {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) == 1 { // the first try hangs until cancelled
				select {
				case <-r.Context().Done():
				case <-release:
				}
				return
			}
			io.WriteString(w, "ok")
		}))
		t.Cleanup(s.Close)
		urls = append(urls, s.URL)
	}
	p, err := tracing.Open(t.Context(), tracing.Config{Exporter: tracing.ExporterOTLPHTTP, Endpoint: rc.srv.URL, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	cfg := proxy.Config{
		Routes:    []proxy.Route{{Name: "reads", Upstream: "app", Hedge: proxy.Hedge{Delay: "20ms"}}},
		Upstreams: []proxy.Upstream{{Name: "app", Endpoints: []proxy.Endpoint{{URL: urls[0]}, {URL: urls[1]}}}},
	}
	gw, err := proxy.New(cfg, proxy.Options{Tracer: p.Gateway()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	front := httptest.NewServer(gw)
	t.Cleanup(front.Close)
	resp, err := http.Get(front.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var tries []*tracepb.Span
	deadline := time.Now().Add(10 * time.Second)
	for len(tries) < 2 && time.Now().Before(deadline) {
		p.Flush(t.Context())
		tries = tries[:0]
		for _, s := range rc.snapshot() {
			if s.Kind == tracepb.Span_SPAN_KIND_CLIENT {
				tries = append(tries, s)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(tries) != 2 {
		t.Fatalf("want 2 try spans, got %d", len(tries))
	}
	for _, s := range tries {
		attempt, _ := attr(s, "bulwark.attempt")
		hedge := false
		for _, kv := range s.Attributes {
			if kv.Key == "bulwark.hedge" {
				hedge = kv.Value.GetBoolValue()
			}
		}
		outcome, _ := attr(s, "bulwark.outcome")
		if (attempt == "2") != hedge {
			t.Errorf("try %s: bulwark.hedge = %v (outcome %s)", attempt, hedge, outcome)
		}
		if attempt == "2" && outcome != "ok" {
			t.Errorf("the hedge's outcome is %q, want ok", outcome)
		}
	}
}
