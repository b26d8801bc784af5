package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark"
)

// Enqueuer stores requests for asynchronous delivery. The delivery
// package satisfies it; the gateway declares it so that it does not depend
// on delivery.
type Enqueuer interface {
	// Enqueue stores m durably and returns its id; it returns only once
	// the message is safe (acknowledged by the store). A request with the
	// same IdempotencyKey as an earlier one returns the earlier id.
	Enqueue(ctx context.Context, m *bulwark.Message) (string, error)
	// Status reports on a stored message.
	Status(ctx context.Context, id string) (bulwark.DeliveryStatus, error)
}

// statusPrefix is where async messages' status is served.
const statusPrefix = "/_bulwark/messages/"

// DefaultMaxAsyncBody is the largest request body an async route accepts.
const DefaultMaxAsyncBody = 1 << 20

// accept stores an async route's request and answers 202 Accepted with
// the message's status URL, once the store has acknowledged it.
func (g *Gateway) accept(w http.ResponseWriter, r *http.Request, rt *route) {
	start := time.Now()
	rec := rt.metrics.begin()
	code := g.acceptCode(w, r, rt)
	rec.end(code, start)
}

func (g *Gateway) acceptCode(w http.ResponseWriter, r *http.Request, rt *route) int {
	if g.opts.Enqueuer == nil {
		http.Error(w, "this route is async but the gateway has no delivery store configured", http.StatusServiceUnavailable)
		return http.StatusServiceUnavailable
	}
	maxBody := int64(rt.cfg.Retries.MaxBody)
	if maxBody < DefaultMaxAsyncBody {
		maxBody = DefaultMaxAsyncBody
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		http.Error(w, "reading the request body: "+err.Error(), http.StatusBadRequest)
		return http.StatusBadRequest
	}
	if int64(len(body)) > maxBody {
		http.Error(w, "request body too large for asynchronous delivery", http.StatusRequestEntityTooLarge)
		return http.StatusRequestEntityTooLarge
	}
	h := r.Header.Clone()
	removeHopHeaders(h, true)
	addForwarded(h, r)
	if tr := g.opts.Tracer; tr != nil {
		tr.Inject(r.Context(), h) // the delivery's span links to this request's
	}
	m := &bulwark.Message{
		Route: rt.name, Upstream: rt.cfg.Upstream, Method: r.Method, Path: r.URL.RequestURI(),
		Header: h, Body: body, IdempotencyKey: r.Header.Get("Idempotency-Key"), Accepted: time.Now(),
	}
	if rt.cfg.OrderBy != "" {
		m.OrderKey = r.Header.Get(rt.cfg.OrderBy)
	}
	id, err := g.opts.Enqueuer.Enqueue(r.Context(), m)
	if err != nil {
		g.logger.Error("async enqueue failed", "route", rt.name, "err", err)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "could not store the request durably; it was NOT accepted, retry", http.StatusServiceUnavailable)
		return http.StatusServiceUnavailable
	}
	loc := statusPrefix + id
	w.Header().Set("Location", loc)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	json.NewEncoder(w).Encode(map[string]string{"id": id, "status": loc})
	return http.StatusAccepted
}

// ErrMessageNotFound is what an Enqueuer's Status returns (wrapped) for an
// unknown id; the gateway answers 404.
var ErrMessageNotFound = errors.New("message not found")

func (g *Gateway) serveStatus(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, statusPrefix)
	if g.opts.Enqueuer == nil || id == "" || strings.Contains(id, "/") {
		http.Error(w, "no such message", http.StatusNotFound)
		return
	}
	st, err := g.opts.Enqueuer.Status(r.Context(), id)
	if err != nil || st.State == bulwark.DeliveryUnknown {
		code := http.StatusNotFound
		if err != nil && !errors.Is(err, ErrMessageNotFound) && !strings.Contains(err.Error(), "not found") {
			code = http.StatusServiceUnavailable
		}
		http.Error(w, "no such message", code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(st)
}

// messageRequest rebuilds the HTTP request stored in m, for delivery.
func messageRequest(ctx context.Context, m *bulwark.Message) (*http.Request, error) {
	r, err := http.NewRequestWithContext(ctx, m.Method, "http://delivery"+m.Path, bytes.NewReader(m.Body))
	if err != nil {
		return nil, err
	}
	r.RequestURI = m.Path
	for k, v := range m.Header {
		r.Header[k] = v
	}
	if m.IdempotencyKey != "" {
		r.Header.Set("Idempotency-Key", m.IdempotencyKey)
	}
	if host := r.Header.Get("X-Forwarded-Host"); host != "" {
		r.Host = host
	}
	r.RemoteAddr = "127.0.0.1:0"
	return r, nil
}
