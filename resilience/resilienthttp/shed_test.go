package resilienthttp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark/resilience/limit"
)

func TestShedRejects(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter time.Duration
		want       string
	}{
		{"default", 0, "1"},
		{"rounded up", 1500 * time.Millisecond, "2"},
		{"whole seconds", 30 * time.Second, "30"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &testGuard{}
			g.reject.Store(true)
			ran := false
			s := Shed(g, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran = true }))
			s.RetryAfter = tt.retryAfter
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			if rec.Code != http.StatusServiceUnavailable {
				t.Errorf("status %d, want 503", rec.Code)
			}
			if got := rec.Header().Get("Retry-After"); got != tt.want {
				t.Errorf("Retry-After %q, want %q", got, tt.want)
			}
			if rec.Body.String() != shedBody {
				t.Errorf("body %q", rec.Body.String())
			}
			if ran {
				t.Error("the handler ran for a shed request")
			}
		})
	}
}

func TestShedReleases(t *testing.T) {
	tests := []struct {
		name        string
		handler     func(w http.ResponseWriter, r *http.Request)
		deadline    bool // the request context has a 1 s deadline
		wantDropped bool
		wantErrCode int // 0: no error
	}{
		{"200 by Write", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }, false, false, 0},
		{"200 by io.Copy", func(w http.ResponseWriter, r *http.Request) {
			io.Copy(w, io.LimitReader(strings.NewReader("ok"), 2)) // no WriterTo: ReadFrom runs
		}, false, false, 0},
		{"nothing written", func(w http.ResponseWriter, r *http.Request) {}, false, false, 0},
		{"404", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) }, false, false, 0},
		{"500", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }, false, false, 500},
		{"503 is dropped", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }, false, true, 503},
		{"103 then 200", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusOK)
		}, false, false, 0},
		{"deadline hit is dropped", func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
			w.WriteHeader(http.StatusGatewayTimeout)
		}, true, true, 504},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := &testGuard{}
				s := Shed(g, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					time.Sleep(250 * time.Millisecond)
					tt.handler(w, r)
				}))
				req := httptest.NewRequest(http.MethodGet, "/", nil)
				wantLatency := 250 * time.Millisecond
				if tt.deadline {
					ctx, cancel := context.WithTimeout(t.Context(), time.Second)
					defer cancel()
					req = req.WithContext(ctx)
					wantLatency = time.Second
				}
				s.ServeHTTP(httptest.NewRecorder(), req)
				o := g.Outcomes()
				if len(o) != 1 {
					t.Fatalf("%d releases, want 1", len(o))
				}
				if o[0].Latency != wantLatency {
					t.Errorf("latency %v, want %v", o[0].Latency, wantLatency)
				}
				if o[0].Dropped != tt.wantDropped {
					t.Errorf("dropped %v, want %v", o[0].Dropped, tt.wantDropped)
				}
				var se *StatusError
				switch {
				case tt.wantErrCode == 0 && o[0].Err != nil:
					t.Errorf("err %v, want none", o[0].Err)
				case tt.wantErrCode != 0 && (!errors.As(o[0].Err, &se) || se.Code != tt.wantErrCode):
					t.Errorf("err %v, want StatusError %d", o[0].Err, tt.wantErrCode)
				}
			})
		})
	}
}

func TestShedReleasesOnPanic(t *testing.T) {
	g := &testGuard{}
	s := Shed(g, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
	func() {
		defer func() {
			if recover() != http.ErrAbortHandler {
				t.Error("the panic did not propagate")
			}
		}()
		s.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	}()
	if o := g.Outcomes(); len(o) != 1 || o[0].Err == nil {
		t.Fatalf("outcomes %+v, want one failure", o)
	}
}

func TestShedNilFields(t *testing.T) {
	rec := httptest.NewRecorder()
	(&Shedder{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("status %d, want 404", rec.Code)
	}
}

// Flush, Hijack and ResponseController keep working through the wrapper,
// on a real server.
func TestShedWriterInterfaces(t *testing.T) {
	proceed := make(chan struct{})
	g := &testGuard{released: make(chan struct{}, 3)}
	mux := http.NewServeMux()
	mux.HandleFunc("/flush", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush() // a direct type assertion, as old handlers do
		select {
		case <-proceed:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "second\n")
	})
	mux.HandleFunc("/controller", func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("SetWriteDeadline through the wrapper: %v", err)
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/hijack", func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		rw.Flush()
	})
	srv, base := newServer(t, Shed(g, mux))
	client := &http.Client{Transport: base}

	resp, err := client.Get(srv.URL + "/flush")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "first\n" {
		t.Fatalf("first chunk %q, %v: Flush did not reach the client", line, err)
	}
	close(proceed)
	rest, _ := io.ReadAll(br)
	resp.Body.Close()
	if string(rest) != "second\n" {
		t.Errorf("rest %q", rest)
	}

	for path, want := range map[string]string{"/controller": "ok", "/hijack": "hijacked"} {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != want {
			t.Errorf("%s: %d %q, want 200 %q", path, resp.StatusCode, b, want)
		}
	}
	for i := range 3 { // the hijacked handler may return after its client has read the answer
		select {
		case <-g.released:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d releases, want 3", i)
		}
	}
	if _, ok := any(&statusWriter{}).(http.Pusher); !ok {
		t.Error("the wrapper hides http.Pusher")
	}
}

// With resilience/limit at a limit of 1: a request arriving while another
// is being served is shed, and the slot is free after.
func TestShedWithLimitPackage(t *testing.T) {
	l, err := limit.New(limit.Config{Algorithm: limit.Fixed(1)})
	if err != nil {
		t.Fatal(err)
	}
	inside := make(chan struct{})
	proceed := make(chan struct{})
	first := true
	srv, base := newServer(t, Shed(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if first {
			first = false
			close(inside)
			<-proceed
		}
		io.WriteString(w, "served")
	})))
	client := &http.Client{Transport: base}
	done := make(chan error, 1)
	go func() {
		resp, err := client.Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-inside
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("second request: %d, Retry-After %q; want 503, 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	close(proceed)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := l.Snapshot(); s.Inflight != 0 {
		t.Errorf("%d requests still in flight", s.Inflight)
	}
}
