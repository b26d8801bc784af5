package dashboard

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func newTestDashboard(t *testing.T, cfg Config) *Dashboard {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func do(t *testing.T, h http.Handler, method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"explicit", Config{Interval: 250 * time.Millisecond, History: 600, Title: "x"}, true},
		{"negative interval", Config{Interval: -time.Second}, false},
		{"tiny interval", Config{Interval: time.Millisecond}, false},
		{"negative history", Config{History: -1}, false},
		{"huge history", Config{History: 1 << 20}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if _, err := New(tt.cfg); (err == nil) != tt.ok {
				t.Fatalf("New() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestReadEndpoints(t *testing.T) {
	fs := newFakeSystem()
	d := newTestDashboard(t, Config{Source: fs, Controls: fs, Title: "Bulwark test"})
	h := d.Handler()
	d.Events().Add(KindLeader, "reg-1 became leader")

	t.Run("page", func(t *testing.T) {
		rec := do(t, h, "GET", "/", "")
		body := rec.Body.String()
		if rec.Code != 200 || !strings.Contains(body, "<title>Bulwark test</title>") ||
			!strings.Contains(body, `data-controls="true"`) || !strings.Contains(body, `id="traffic-toggle"`) {
			t.Fatalf("GET / = %d\n%s", rec.Code, body)
		}
		if rec := do(t, h, "GET", "/nope", ""); rec.Code != 404 {
			t.Errorf("GET /nope = %d, want 404", rec.Code)
		}
	})
	t.Run("static", func(t *testing.T) {
		for path, ctype := range map[string]string{"/static/app.js": "javascript", "/static/app.css": "text/css"} {
			rec := do(t, h, "GET", path, "")
			if rec.Code != 200 || !strings.Contains(rec.Header().Get("Content-Type"), ctype) || rec.Body.Len() < 1000 {
				t.Errorf("GET %s = %d %q (%d bytes)", path, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
			}
		}
	})
	t.Run("snapshot", func(t *testing.T) {
		rec := do(t, h, "GET", "/api/snapshot", "")
		var snap Snapshot
		if err := json.Unmarshal(rec.Body.Bytes(), &snap); err != nil || rec.Code != 200 {
			t.Fatalf("GET /api/snapshot = %d %v\n%s", rec.Code, err, rec.Body)
		}
		if len(snap.Services) != 1 || len(snap.Services[0].Instances) != 3 || snap.Registry.Leader != "reg-1" ||
			snap.Delivery.DeadLetters != 2 || !snap.Traffic.Generator || snap.Time.IsZero() {
			t.Errorf("snapshot = %+v", snap)
		}
	})
	t.Run("stats", func(t *testing.T) {
		d.Traffic().Record(time.Millisecond, true)
		d.series.sample(time.Now())
		d.series.sample(time.Now())
		var st Stats
		rec := do(t, h, "GET", "/api/stats?since=1", "")
		if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || st.IntervalMS != 1000 || len(st.Points) != 1 || st.Points[0].Seq != 2 {
			t.Errorf("GET /api/stats?since=1 = %d %v %+v", rec.Code, err, st)
		}
		if rec := do(t, h, "GET", "/api/stats?since=x", ""); rec.Code != 400 {
			t.Errorf("since=x: %d, want 400", rec.Code)
		}
	})
	t.Run("events", func(t *testing.T) {
		var evs []Event
		rec := do(t, h, "GET", "/api/events", "")
		if err := json.Unmarshal(rec.Body.Bytes(), &evs); err != nil || len(evs) != 1 || evs[0].Kind != KindLeader {
			t.Errorf("GET /api/events = %d %v %+v", rec.Code, err, evs)
		}
		if rec := do(t, h, "GET", "/api/events?since=1", ""); strings.TrimSpace(rec.Body.String()) != "[]" {
			t.Errorf("since=1: %s, want []", rec.Body)
		}
	})
}

// TestClusterSnapshot: the gateway cluster's section reaches the API and
// the page has its panel; killing the VIP's owner through the kill
// control shows another owner and one more handover in the next snapshot.
func TestClusterSnapshot(t *testing.T) {
	fs := newFakeSystem()
	d := newTestDashboard(t, Config{Source: fs, Controls: fs})
	h := d.Handler()
	if body := do(t, h, "GET", "/", "").Body.String(); !strings.Contains(body, `id="cluster"`) || !strings.Contains(body, `id="cluster-owner"`) {
		t.Fatalf("page has no cluster panel:\n%s", body)
	}
	snapshot := func() *Cluster {
		t.Helper()
		var snap Snapshot
		rec := do(t, h, "GET", "/api/snapshot", "")
		if err := json.Unmarshal(rec.Body.Bytes(), &snap); err != nil || snap.Cluster == nil {
			t.Fatalf("GET /api/snapshot = %d %v %s", rec.Code, err, rec.Body)
		}
		return snap.Cluster
	}
	c := snapshot()
	if c.Owner != "g1" || c.VIP != "10.98.0.100" || len(c.Nodes) != 3 || !c.Nodes[0].Holding || c.Handovers != 0 {
		t.Fatalf("cluster = %+v", c)
	}
	if rec := do(t, h, "POST", "/api/instances/g1/kill", ""); rec.Code != 200 {
		t.Fatalf("kill g1 = %d %s", rec.Code, rec.Body)
	}
	c = snapshot()
	if c.Owner != "g2" || c.Nodes[0].State != "down" || c.Nodes[0].Holding || !c.Nodes[1].Holding || c.Handovers != 1 || c.Epoch != 2 {
		t.Fatalf("after killing the owner: cluster = %+v", c)
	}
	if evs := d.Events().Since(0); len(evs) != 1 || !strings.Contains(evs[0].Text, "killed g1") {
		t.Errorf("events = %+v, want the kill", evs)
	}
}

func TestSnapshotSourceError(t *testing.T) {
	fs := newFakeSystem()
	fs.err = errors.New("gateway gone")
	d := newTestDashboard(t, Config{Source: fs})
	rec := do(t, d.Handler(), "GET", "/api/snapshot", "")
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "gateway gone") {
		t.Errorf("GET /api/snapshot = %d %s, want 503 with the cause", rec.Code, rec.Body)
	}
}

func TestControlEndpoints(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		hdr                      []string
		want                     int
		wantCall                 string
	}{
		{"kill", "POST", "/api/instances/api-2/kill", "", nil, 200, "kill api-2"},
		{"kill unknown", "POST", "/api/instances/nope/kill", "", nil, 404, ""},
		{"kill gateway node", "POST", "/api/instances/g1/kill", "", nil, 200, "kill g1"},
		{"restart", "POST", "/api/instances/api-2/restart", "", nil, 200, "restart api-2"},
		{"stop", "POST", "/api/instances/api-2/stop", "", nil, 200, "stop api-2"},
		{"stop unknown", "POST", "/api/instances/nope/stop", "", nil, 404, ""},
		{"fault slow", "POST", "/api/instances/api-1/fault", `{"fault":"slow"}`, nil, 200, "fault api-1 slow"},
		{"fault ok", "POST", "/api/instances/api-1/fault", `{"fault":"ok"}`, nil, 200, "fault api-1 ok"},
		{"fault unknown id", "POST", "/api/instances/nope/fault", `{"fault":"corrupt"}`, nil, 404, ""},
		{"fault unknown name", "POST", "/api/instances/api-1/fault", `{"fault":"fire"}`, nil, 400, ""},
		{"fault missing", "POST", "/api/instances/api-1/fault", `{}`, nil, 400, ""},
		{"fault not json", "POST", "/api/instances/api-1/fault", `slow`, nil, 400, ""},
		{"fault empty body", "POST", "/api/instances/api-1/fault", ``, nil, 400, ""},
		{"fault extra field", "POST", "/api/instances/api-1/fault", `{"fault":"slow","x":1}`, nil, 400, ""},
		{"fault two values", "POST", "/api/instances/api-1/fault", `{"fault":"slow"}{}`, nil, 400, ""},
		{"fault huge body", "POST", "/api/instances/api-1/fault", `{"fault":"` + strings.Repeat("s", 8000) + `"}`, nil, 400, ""},
		{"long id", "POST", "/api/instances/" + strings.Repeat("i", 300) + "/kill", "", nil, 400, ""},
		{"traffic off", "POST", "/api/traffic", `{"on":false}`, nil, 200, "traffic false"},
		{"traffic wrong type", "POST", "/api/traffic", `{"on":"yes"}`, nil, 400, ""},
		{"traffic missing", "POST", "/api/traffic", `{}`, nil, 400, ""},
		{"GET on a POST route", "GET", "/api/instances/api-1/kill", "", nil, 405, ""},
		{"cross-site POST", "POST", "/api/instances/api-1/kill", "", []string{"Sec-Fetch-Site", "cross-site"}, 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFakeSystem()
			d := newTestDashboard(t, Config{Source: fs, Controls: fs})
			rec := do(t, d.Handler(), tt.method, tt.path, tt.body, tt.hdr...)
			if rec.Code != tt.want {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, rec.Code, rec.Body, tt.want)
			}
			if got := fs.lastCall(); got != tt.wantCall {
				t.Errorf("controls saw %q, want %q", got, tt.wantCall)
			}
			evs := d.Events().Since(0)
			if tt.want == 200 {
				var ok map[string]bool
				if json.Unmarshal(rec.Body.Bytes(), &ok) != nil || !ok["ok"] {
					t.Errorf("body %s, want {\"ok\":true}", rec.Body)
				}
				if len(evs) != 1 {
					t.Errorf("events = %+v, want one for the action", evs)
				}
			} else {
				if len(evs) != 0 {
					t.Errorf("events = %+v, want none for a refused action", evs)
				}
				if tt.want != 405 && tt.want != 403 && !strings.Contains(rec.Body.String(), `"error"`) {
					t.Errorf("body %s, want a JSON error message", rec.Body)
				}
			}
		})
	}
	if fs := newFakeSystem(); fs.Kill(context.Background(), "api-1") != nil || fs.health("api-1") != HealthDown {
		t.Error("fake Kill does not mark the instance down")
	}
}

// errControls fails every action with err.
type errControls struct{ err error }

func (c errControls) Kill(context.Context, string) error            { return c.err }
func (c errControls) Restart(context.Context, string) error         { return c.err }
func (c errControls) SetFault(context.Context, string, Fault) error { return c.err }
func (c errControls) SetTraffic(context.Context, bool) error        { return c.err }

func TestControlErrorStatus(t *testing.T) {
	tests := []struct {
		name     string
		controls Controls
		want     int
	}{
		{"no controls", nil, http.StatusNotImplemented},
		{"unsupported", errControls{errors.ErrUnsupported}, http.StatusNotImplemented},
		{"not found", errControls{ErrNotFound}, http.StatusNotFound},
		{"timeout", errControls{context.DeadlineExceeded}, http.StatusGatewayTimeout},
		{"other", errControls{errors.New("exec: killed")}, http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newTestDashboard(t, Config{Controls: tt.controls})
			if rec := do(t, d.Handler(), "POST", "/api/instances/a/kill", ""); rec.Code != tt.want {
				t.Errorf("kill = %d %s, want %d", rec.Code, rec.Body, tt.want)
			}
			if rec := do(t, d.Handler(), "POST", "/api/traffic", `{"on":true}`); rec.Code != tt.want {
				t.Errorf("traffic = %d %s, want %d", rec.Code, rec.Body, tt.want)
			}
		})
	}
	d := newTestDashboard(t, Config{})
	if body := do(t, d.Handler(), "GET", "/", "").Body.String(); strings.Contains(body, "traffic-toggle") ||
		!strings.Contains(body, `data-controls="false"`) {
		t.Error("page without controls shows the traffic switch")
	}
}

// streamRecorder is an in-memory ResponseWriter that supports Flush, for
// reading a Server-Sent-Event stream inside a synctest bubble (where a real
// socket would keep fake time from advancing).
type streamRecorder struct {
	hdr http.Header
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *streamRecorder) Header() http.Header { return s.hdr }
func (s *streamRecorder) WriteHeader(int)     {}
func (s *streamRecorder) Flush()              {}
func (s *streamRecorder) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(b)
}

// messages parses the stream written so far.
func (s *streamRecorder) messages(t *testing.T) []StreamMessage {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []StreamMessage
	for _, ev := range strings.Split(s.buf.String(), "\n\n") {
		for _, line := range strings.Split(ev, "\n") {
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				var m StreamMessage
				if err := json.Unmarshal([]byte(data), &m); err != nil {
					t.Fatalf("bad event %q: %v", data, err)
				}
				out = append(out, m)
			}
		}
	}
	return out
}

func TestStreamTicks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := newFakeSystem()
		d, err := New(Config{Source: fs, Controls: fs})
		if err != nil {
			t.Fatal(err)
		}
		d.Start()
		ctx, cancel := context.WithCancel(t.Context())
		rec := &streamRecorder{hdr: http.Header{}}
		done := make(chan struct{})
		go func() {
			defer close(done)
			d.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(ctx, "GET", "/api/stream", nil))
		}()
		for i := range 3 {
			for range (i + 1) * 10 {
				d.Traffic().Record(20*time.Millisecond, true)
			}
			if i == 1 {
				if rec := do(t, d.Handler(), "POST", "/api/instances/api-2/kill", ""); rec.Code != 200 {
					t.Fatalf("kill = %d", rec.Code)
				}
			}
			time.Sleep(time.Second)
			synctest.Wait()
		}
		cancel()
		<-done
		d.Close()

		if ct := rec.hdr.Get("Content-Type"); ct != "text/event-stream" {
			t.Errorf("Content-Type %q", ct)
		}
		msgs := rec.messages(t)
		var points []Point
		var events []Event
		for _, m := range msgs {
			points = append(points, m.Points...)
			events = append(events, m.Events...)
		}
		if len(msgs) < 3 || len(points) != 3 {
			t.Fatalf("got %d messages with %d points, want >= 3 messages and 3 points (one per tick)", len(msgs), len(points))
		}
		for i, p := range points {
			if p.Seq != uint64(i+1) || p.Requests != uint64((i+1)*10) || p.RPS != float64((i+1)*10) || !within(p.P50ms, 20) {
				t.Errorf("point %d = %+v, want seq %d with %d requests at 20ms", i, p, i+1, (i+1)*10)
			}
		}
		last := msgs[len(msgs)-1].Snapshot
		if last == nil || last.Services[0].Instances[1].Health != HealthDown {
			t.Errorf("last snapshot %+v, want api-2 down after the kill", last)
		}
		if len(events) != 1 || events[0].Kind != KindChaos || !strings.Contains(events[0].Text, "killed api-2") {
			t.Errorf("events = %+v, want the kill once", events)
		}
	})
}

func TestCloseEndsStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d, err := New(Config{})
		if err != nil {
			t.Fatal(err)
		}
		d.Start()
		rec := &streamRecorder{hdr: http.Header{}}
		done := make(chan struct{})
		go func() {
			defer close(done)
			d.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), "GET", "/api/stream", nil))
		}()
		synctest.Wait()
		d.Close()
		<-done // the stream must end without its request being cancelled
		d.Close()
		if err := d.Start(); !errors.Is(err, ErrClosed) {
			t.Errorf("Start after Close = %v, want ErrClosed", err)
		}
	})
}

// TestServeOverNetwork runs the dashboard on a real listener: a client
// reads the page, the API and the first stream events, then everything is
// closed and no goroutine may remain.
func TestServeOverNetwork(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	fs := newFakeSystem()
	d, err := New(Config{Source: fs, Controls: fs, Interval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	srv := httptest.NewServer(d.Handler())
	tr := &http.Transport{}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	defer func() {
		tr.CloseIdleConnections()
		srv.Close()
		d.Close()
	}()

	resp, err := client.Get(srv.URL + "/api/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("snapshot: %d", resp.StatusCode)
	}

	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/api/stream", nil)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var withPoints int
	for n := 0; sc.Scan() && withPoints < 2; {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var m StreamMessage
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			t.Fatal(err)
		}
		if len(m.Points) > 0 {
			withPoints++
		}
		if n++; n > 100 {
			t.Fatal("no points after 100 events")
		}
	}
	if withPoints < 2 {
		t.Fatalf("stream ended after %d events with points: %v", withPoints, sc.Err())
	}
}

// TestStopUnsupported: Controls without Stop answer 501 to the stop
// endpoint.
func TestStopUnsupported(t *testing.T) {
	fs := newFakeSystem()
	d := newTestDashboard(t, Config{Source: fs, Controls: struct{ Controls }{fs}})
	if rec := do(t, d.Handler(), "POST", "/api/instances/api-1/stop", ""); rec.Code != http.StatusNotImplemented {
		t.Fatalf("stop without a Stopper = %d %s, want 501", rec.Code, rec.Body)
	}
}

// TestServe: the sampler runs in the caller's goroutine until its context
// ends, and a snapshot's supervision tree reaches /api/snapshot.
func TestServe(t *testing.T) {
	src := SourceFunc(func(ctx context.Context) (Snapshot, error) {
		return Snapshot{Supervision: &TreeNode{Name: "root", Supervisor: true, State: "running",
			Children: []TreeNode{{Name: "w", State: "backoff", Restarts: 2, LastFailure: "boom"}}}}, nil
	})
	d := newTestDashboard(t, Config{Source: src, Interval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for d.latest.Load() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the sampler did not take a snapshot")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rec := do(t, d.Handler(), "GET", "/api/snapshot", "")
	var snap Snapshot
	if err := json.Unmarshal(rec.Body.Bytes(), &snap); err != nil || snap.Supervision == nil || snap.Supervision.Children[0].LastFailure != "boom" {
		t.Fatalf("snapshot %s: %v", rec.Body, err)
	}
}
