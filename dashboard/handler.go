package dashboard

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"time"
)

//go:embed index.html.tmpl
var pageFS embed.FS

//go:embed static
var staticFS embed.FS

// controlTimeout bounds one chaos action started from the page.
const controlTimeout = 10 * time.Second

// maxBody bounds a POST body: the API takes only tiny JSON objects.
const maxBody = 4 << 10

// Handler returns the dashboard's HTTP handler:
//
//	GET  /                              the page
//	GET  /static/...                    its CSS and JavaScript
//	GET  /api/snapshot                  a fresh Snapshot
//	GET  /api/stats[?since=SEQ]         {"interval_ms", "points": [Point...]}
//	GET  /api/events[?since=SEQ]        [Event...]
//	GET  /api/stream                    Server-Sent Events, one StreamMessage per interval
//	POST /api/instances/{id}/kill       Controls.Kill
//	POST /api/instances/{id}/restart    Controls.Restart
//	POST /api/instances/{id}/stop       Stopper.Stop (keep it down), when Controls implement it
//	POST /api/instances/{id}/fault      {"fault": "slow"} → Controls.SetFault
//	POST /api/traffic                   {"on": true} → Controls.SetTraffic
//
// The page refers to its files and the API by relative URLs, so the
// handler can be mounted under a prefix with http.StripPrefix (serve
// "/dash/" → StripPrefix("/dash", h)).
//
// Unsafe cross-origin requests are refused (http.CrossOriginProtection), so
// another site cannot press the chaos buttons through a visitor's browser.
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.servePage)
	static, _ := fs.Sub(staticFS, "static") // cannot fail: the directory is embedded
	mux.Handle("GET /static/", noCache(http.StripPrefix("/static/", http.FileServerFS(static))))
	mux.HandleFunc("GET /api/snapshot", d.serveSnapshot)
	mux.HandleFunc("GET /api/stats", d.serveStats)
	mux.HandleFunc("GET /api/events", d.serveEvents)
	mux.HandleFunc("GET /api/stream", d.serveStream)
	mux.HandleFunc("POST /api/instances/{id}/kill", d.control(func(ctx context.Context, c Controls, id string, _ *http.Request) (string, error) {
		return "killed " + id, c.Kill(ctx, id)
	}))
	mux.HandleFunc("POST /api/instances/{id}/restart", d.control(func(ctx context.Context, c Controls, id string, _ *http.Request) (string, error) {
		return "restarted " + id, c.Restart(ctx, id)
	}))
	mux.HandleFunc("POST /api/instances/{id}/stop", d.control(func(ctx context.Context, c Controls, id string, _ *http.Request) (string, error) {
		s, ok := c.(Stopper)
		if !ok {
			return "", fmt.Errorf("stop: %w", errors.ErrUnsupported)
		}
		return "stopped " + id, s.Stop(ctx, id)
	}))
	mux.HandleFunc("POST /api/instances/{id}/fault", d.control(d.setFault))
	mux.HandleFunc("POST /api/traffic", d.control(d.setTraffic))
	return http.NewCrossOriginProtection().Handler(mux)
}

// noCache makes browsers revalidate the static files, so a new build's
// JavaScript is picked up on reload.
func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// pageData is what the page template sees.
type pageData struct {
	Title      string
	Controls   bool
	IntervalMS int64
}

func (d *Dashboard) servePage(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	data := pageData{Title: d.cfg.Title, Controls: d.cfg.Controls != nil, IntervalMS: d.cfg.Interval.Milliseconds()}
	if err := d.page.Execute(&buf, data); err != nil {
		d.log.Error("dashboard: render page", "err", err)
		http.Error(w, "render page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(buf.Bytes())
}

func (d *Dashboard) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), max(d.cfg.Interval, time.Second))
	defer cancel()
	snap, err := d.snapshot(ctx)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	writeJSON(w, http.StatusOK, snap)
}

// Stats is the answer of GET /api/stats.
type Stats struct {
	IntervalMS int64   `json:"interval_ms"`
	Points     []Point `json:"points"`
}

func (d *Dashboard) serveStats(w http.ResponseWriter, r *http.Request) {
	since, err := sinceParam(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, Stats{IntervalMS: d.cfg.Interval.Milliseconds(), Points: d.series.since(since)})
}

func (d *Dashboard) serveEvents(w http.ResponseWriter, r *http.Request) {
	since, err := sinceParam(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, d.events.Since(since))
}

func sinceParam(r *http.Request) (uint64, error) {
	s := r.URL.Query().Get("since")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("since %q: want a sequence number", s)
	}
	return n, nil
}

// StreamMessage is the data of one Server-Sent Event on /api/stream: the
// latest snapshot, and the points and events the client has not had yet
// (on connect: all that are held).
type StreamMessage struct {
	Snapshot *Snapshot `json:"snapshot,omitempty"`
	Points   []Point   `json:"points"`
	Events   []Event   `json:"events"`
	// Error is the Source's last error, when the snapshot is stale.
	Error string `json:"error,omitempty"`
}

func (d *Dashboard) serveStream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // a stream outlives a server's WriteTimeout; unsupported is fine
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // tell nginx-style proxies not to buffer
	w.WriteHeader(http.StatusOK)
	sub := d.subscribe()
	defer d.unsubscribe(sub)

	var pointSeq, eventSeq uint64
	send := func() error {
		msg := StreamMessage{Snapshot: d.latest.Load(), Points: d.series.since(pointSeq), Events: d.events.Since(eventSeq)}
		if e := d.lastErr.Load(); e != nil {
			msg.Error = *e
		}
		if n := len(msg.Points); n > 0 {
			pointSeq = msg.Points[n-1].Seq
		}
		if n := len(msg.Events); n > 0 {
			eventSeq = msg.Events[n-1].Seq
		}
		b, err := json.Marshal(msg)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "retry: 2000\ndata: %s\n\n", b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send(); err != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-d.done:
			return
		case <-sub:
			if err := send(); err != nil {
				return
			}
		}
	}
}

// action performs one chaos action and returns the text for the event log.
type action func(ctx context.Context, c Controls, id string, r *http.Request) (string, error)

// errBadRequest marks request errors the handler answers with 400.
var errBadRequest = errors.New("bad request")

// control wraps an action with the checks every POST shares and the
// mapping from errors to HTTP status (the one table at the HTTP edge).
func (d *Dashboard) control(act action) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if d.cfg.Controls == nil {
			writeError(w, http.StatusNotImplemented, ErrNoControls)
			return
		}
		id := r.PathValue("id")
		if len(id) > 256 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("instance id longer than 256 bytes"))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		ctx, cancel := context.WithTimeout(r.Context(), controlTimeout)
		defer cancel()
		text, err := act(ctx, d.cfg.Controls, id, r)
		switch {
		case err == nil:
		case errors.Is(err, errBadRequest), errors.Is(err, ErrBadFault):
			writeError(w, http.StatusBadRequest, err)
			return
		case errors.Is(err, ErrNotFound):
			writeError(w, http.StatusNotFound, err)
			return
		case errors.Is(err, errors.ErrUnsupported):
			writeError(w, http.StatusNotImplemented, err)
			return
		case errors.Is(err, context.DeadlineExceeded):
			writeError(w, http.StatusGatewayTimeout, err)
			return
		default:
			d.log.Warn("dashboard: control failed", "path", r.URL.Path, "err", err)
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		kind := KindChaos
		if id == "" {
			kind = KindTraffic
		}
		d.events.Add(kind, text+" (from the dashboard)")
		d.requestRefresh()
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	}
}

// decodeBody decodes a small JSON object strictly into v.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %w", errBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: body: more than one JSON value", errBadRequest)
	}
	return nil
}

func (d *Dashboard) setFault(ctx context.Context, c Controls, id string, r *http.Request) (string, error) {
	var body struct {
		Fault *string `json:"fault"`
	}
	if err := decodeBody(r, &body); err != nil {
		return "", err
	}
	if body.Fault == nil {
		return "", fmt.Errorf(`%w: body: want {"fault": "slow|corrupt|lie|partition|ok"}`, errBadRequest)
	}
	f, err := ParseFault(*body.Fault)
	if err != nil {
		return "", err
	}
	text := fmt.Sprintf("fault %s on %s", f, id)
	if f == FaultOK {
		text = "cleared faults on " + id
	}
	return text, c.SetFault(ctx, id, f)
}

func (d *Dashboard) setTraffic(ctx context.Context, c Controls, _ string, r *http.Request) (string, error) {
	var body struct {
		On *bool `json:"on"`
	}
	if err := decodeBody(r, &body); err != nil {
		return "", err
	}
	if body.On == nil {
		return "", fmt.Errorf(`%w: body: want {"on": true|false}`, errBadRequest)
	}
	text := "traffic generator off"
	if *body.On {
		text = "traffic generator on"
	}
	return text, c.SetTraffic(ctx, *body.On)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
